//! PostgreSQL: every node follows the plugin swaps and rollbacks made on
//! the others. A swap is recorded in the shared history with its node and
//! the component kept by SHA-256 (`plugin_versions`); each node looks for
//! new rows every [`FOLLOW_EVERY`] and makes the same version live (checked
//! and compiled as a swap of its own, recorded in its own history only),
//! so that every node runs it within about one interval plus the compile
//! (bounded at 2 s). Transactions stay pinned to the version live when
//! they started. A node starting later first catches up with the latest
//! version of each plugin, before it serves.

use std::sync::Arc;
use std::time::Duration;

use switchyard_runtime::Registry;
use switchyard_store::{PgStore, SharedSwap};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often a node looks for swaps made on the others.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Makes the latest version of each plugin live (at start, before
/// serving); returns the history's last id.
pub async fn catch_up(store: &Arc<PgStore>, registry: &Arc<Registry>) -> anyhow::Result<i64> {
    let (last, latest) = store.latest_swaps().await?;
    for swap in latest {
        apply(store, registry, swap).await;
    }
    Ok(last)
}

/// Follows the other nodes' swaps until `token` is cancelled.
pub fn start(
    store: Arc<PgStore>,
    registry: Arc<Registry>,
    mut last: i64,
    token: CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
            let swaps = match store.swaps_after(last).await {
                Ok(swaps) => swaps,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the shared swap history failed; retrying");
                    continue;
                }
            };
            for swap in swaps {
                last = last.max(swap.id);
                if swap.node != store.node() {
                    apply(&store, &registry, swap).await;
                }
            }
        }
    });
}

/// Makes `swap`'s version live here unless it already is.
async fn apply(store: &Arc<PgStore>, registry: &Arc<Registry>, swap: SharedSwap) {
    let live = registry.live_digest(&swap.plugin);
    if swap.action.ends_with("(unchanged)")
        || live.is_none()
        || live.as_deref() == Some(swap.new_hash.as_str())
    {
        return;
    }
    let wasm = match store.plugin_version(&swap.new_hash).await {
        Ok(Some(wasm)) => wasm,
        Ok(None) => {
            tracing::error!(plugin = %swap.plugin, version = %swap.new_hash, node = %swap.node,
                "a swap made on another node names a version the store does not keep: not followed");
            return;
        }
        Err(e) => {
            tracing::error!(plugin = %swap.plugin, error = %e, "reading a plugin version failed");
            return;
        }
    };
    let registry = registry.clone();
    let actor = format!("{} on {}", swap.actor, swap.node);
    let (plugin, node, action) = (swap.plugin.clone(), swap.node.clone(), swap.action.clone());
    let followed =
        tokio::task::spawn_blocking(move || registry.follow(&swap.plugin, &wasm, &actor)).await;
    match followed {
        Ok(Ok(_)) => tracing::info!(plugin = %plugin, node = %node, action = %action,
            "followed a plugin swap made on another node"),
        Ok(Err(e)) => tracing::error!(plugin = %plugin, node = %node, error = %e,
            "a version swapped in on another node does not load here: not followed"),
        Err(e) => tracing::error!(plugin = %plugin, error = %e, "following a swap panicked"),
    }
}
