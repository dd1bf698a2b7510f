//! Endpoint links watched for the webhooks: `endpoint.down` when a link
//! that was up goes down, `endpoint.up` when it comes back (polled once a
//! second; a flap shorter than that may go unseen, and is in the log).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_net::LinkStatus;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// How often the links are looked at.
const POLL: Duration = Duration::from_secs(1);

/// Watches every endpoint of `state` until `shutdown`.
pub async fn endpoints(state: Arc<AppState>, shutdown: CancellationToken) {
    let mut last: HashMap<String, LinkStatus> = HashMap::new();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for e in &state.endpoints {
            let s = e.state();
            let before = last.insert(e.name().to_owned(), s.status);
            let event = match (before, s.status) {
                (Some(LinkStatus::Up), LinkStatus::Down) => "endpoint.down",
                (Some(LinkStatus::Down), LinkStatus::Up) => "endpoint.up",
                _ => continue,
            };
            let payload = serde_json::json!({
                "endpoint": e.name(),
                "address": e.options().address,
                "status": s.status.as_str(),
                "since_ms": s.since_unix_ms(),
                "last_error": s.last_error,
                // Each node has its own link to each endpoint.
                "node": state.node,
            });
            state.webhooks.emit("default", event, &payload.to_string());
        }
    }
}
