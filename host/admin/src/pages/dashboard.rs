//! `/`: the dashboard — transactions per second over the last minute and
//! the last 15 minutes, the approval rate, the count by response code,
//! the endpoints' links, the SAF depth and oldest age per endpoint, the
//! plugins' live generation. Reloads itself every 15 s (`/static/app.js`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use switchyard_engine::ports::TxRecord;

use super::layout::{esc, page};
use super::{Params, forbidden, now_ms};
use crate::views::EndpointList;
use crate::{AppState, Permission, Principal};

/// Most tranlog rows the dashboard reads (the last 15 minutes).
pub const MAX_ROWS: usize = 200_000;
const MINUTE_MS: i64 = 60_000;
const WINDOW_MS: i64 = 15 * MINUTE_MS;

/// The figures of the last 15 minutes.
#[derive(Debug, Default, PartialEq)]
pub struct Figures {
    /// Rows received in the last minute.
    pub last_minute: usize,
    /// Rows received in the last 15 minutes.
    pub last_15: usize,
    /// Answered financial/authorization rows (not 08xx).
    pub answered: usize,
    /// Of them approved (RC 00).
    pub approved: usize,
    /// Count by response code (`none` when unanswered).
    pub by_rc: BTreeMap<String, usize>,
}

impl Figures {
    /// The figures of `rows` at `now`.
    pub fn of(rows: &[TxRecord], now: i64) -> Figures {
        let mut f = Figures::default();
        for r in rows.iter().filter(|r| r.received_ms >= now - WINDOW_MS) {
            f.last_15 += 1;
            if r.received_ms >= now - MINUTE_MS {
                f.last_minute += 1;
            }
            let rc = r.rc.clone().unwrap_or_else(|| "none".into());
            *f.by_rc.entry(rc).or_default() += 1;
            if !r.mti.starts_with("08")
                && let Some(rc) = &r.rc
            {
                f.answered += 1;
                f.approved += usize::from(rc == "00");
            }
        }
        f
    }
}

fn card(label: &str, value: &str) -> String {
    format!(
        "<div class=\"card\"><div class=\"label\">{}</div><div class=\"value\">{}</div></div>",
        esc(label),
        esc(value)
    )
}

async fn rows(
    state: &AppState,
    who: &Principal,
    now: i64,
) -> Result<(Vec<TxRecord>, bool), String> {
    let Some(ops) = &state.ops else {
        return Ok((Vec::new(), false));
    };
    let Some(mut query) = crate::api::tx_query(who, &Params::new()).map_err(|e| e.1)? else {
        return Ok((Vec::new(), false));
    };
    query.from_ms = Some(now - WINDOW_MS);
    query.limit = MAX_ROWS;
    let rows = ops.tranlog.search(query).await.map_err(|e| e.to_string())?;
    let capped = rows.len() >= MAX_ROWS;
    Ok((rows, capped))
}

fn traffic(f: &Figures, capped: bool) -> String {
    let rate = match f.answered {
        0 => "-".to_owned(),
        n => format!("{:.1} %", f.approved as f64 * 100.0 / n as f64),
    };
    let mut out = String::from("<div class=\"cards\">");
    out.push_str(&card(
        "Transactions/s, last minute",
        &format!("{:.2}", f.last_minute as f64 / 60.0),
    ));
    out.push_str(&card(
        "Transactions/s, last 15 min",
        &format!("{:.2}", f.last_15 as f64 / 900.0),
    ));
    out.push_str(&card("Approval rate, last 15 min", &rate));
    out.push_str(&card("Transactions, last 15 min", &f.last_15.to_string()));
    out.push_str("</div>");
    if capped {
        let _ = write!(
            out,
            "<p class=\"notice\">More than {MAX_ROWS} rows in the last 15 minutes: the figures count the newest {MAX_ROWS}.</p>"
        );
    }
    out.push_str("<h2>Response codes, last 15 min</h2><table class=\"narrow\" id=\"rcs\"><thead><tr><th>RC</th><th class=\"num\">Count</th><th>Share</th></tr></thead><tbody>");
    for (rc, n) in &f.by_rc {
        let share = *n as f64 * 100.0 / f.last_15.max(1) as f64;
        let _ = write!(
            out,
            "<tr><td class=\"mono\">{}</td><td class=\"num\">{n}</td><td><meter min=\"0\" max=\"100\" value=\"{share:.0}\"></meter> {share:.1} %</td></tr>",
            esc(rc)
        );
    }
    if f.by_rc.is_empty() {
        out.push_str("<tr><td colspan=\"3\" class=\"muted\">No transactions in the last 15 minutes.</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn endpoints(state: &AppState) -> String {
    let list = EndpointList::of(&state.endpoints);
    let mut out = String::from(
        "<h2>Endpoints</h2><table id=\"endpoints\"><thead><tr><th>Endpoint</th><th>Address</th><th>Link</th><th>Since</th><th class=\"num\">Connects</th><th>Last error</th></tr></thead><tbody>",
    );
    for e in &list.endpoints {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"mono\">{}</td><td><span class=\"badge {}\">{}</span></td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&e.name),
            esc(&e.address),
            esc(&e.status),
            esc(&e.status),
            if e.since_ms == 0 {
                "-".into()
            } else {
                crate::ops::views::utc(e.since_ms as i64)
            },
            e.connects,
            e.last_error.as_deref().map_or_else(|| "-".into(), esc)
        );
    }
    if list.endpoints.is_empty() {
        out.push_str("<tr><td colspan=\"6\" class=\"muted\">No endpoints configured.</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// Depth and oldest age per endpoint: the queues' totals for a principal
/// of every tenant, its own entries' for one bound to a tenant.
async fn saf(state: &AppState, who: &Principal) -> String {
    if !who.can(Permission::SafView) {
        return String::new();
    }
    let mut q = Params::new();
    q.insert("limit".into(), crate::ops::MAX_ROWS.to_string());
    let list = match crate::api::saf_for(state, who, &q).await {
        Ok(l) => l,
        Err(e) => {
            return format!(
                "<h2>Store and forward</h2><p class=\"error\">{}</p>",
                esc(&e.1)
            );
        }
    };
    let mut rows: BTreeMap<String, (u64, u64, Option<i64>)> = BTreeMap::new();
    if who.tenant.is_none() {
        for qv in &list.queues {
            rows.insert(
                qv.endpoint.clone(),
                (qv.pending, qv.escalated, qv.oldest_age_s),
            );
        }
    } else {
        for e in list.entries.iter().filter(|e| e.state == "pending") {
            let r = rows.entry(e.endpoint.clone()).or_default();
            r.0 += 1;
            r.1 += u64::from(e.escalated);
            r.2 = Some(r.2.map_or(e.age_s, |a| a.max(e.age_s)));
        }
    }
    let mut out = String::from(
        "<h2>Store and forward</h2><table id=\"saf\"><thead><tr><th>Endpoint</th><th class=\"num\">Pending</th><th class=\"num\">Escalated</th><th class=\"num\">Oldest age</th></tr></thead><tbody>",
    );
    for (endpoint, (pending, escalated, oldest)) in &rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{pending}</td><td class=\"num\">{escalated}</td><td class=\"num\">{}</td></tr>",
            esc(endpoint),
            oldest.map_or_else(|| "-".into(), |a| format!("{a} s"))
        );
    }
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"4\" class=\"muted\">Nothing pending.</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// `GET /`.
pub async fn show(State(state): State<Arc<AppState>>, who: Principal) -> Response {
    if !who.can(Permission::DashboardView) {
        return forbidden(&who, Permission::DashboardView);
    }
    let now = now_ms();
    let mut body = String::from("<meta name=\"refresh-seconds\" content=\"15\">");
    match rows(&state, &who, now).await {
        Ok((rows, capped)) => body.push_str(&traffic(&Figures::of(&rows, now), capped)),
        Err(e) => {
            let _ = write!(
                body,
                "<p class=\"error\">Reading the tranlog failed: {}</p>",
                esc(&e)
            );
        }
    }
    if state.ops.is_none() {
        body.push_str("<p class=\"notice\">This switch runs without a tranlog.</p>");
    }
    body.push_str("<div class=\"grid2\"><div>");
    body.push_str(&endpoints(&state));
    body.push_str("</div><div>");
    body.push_str(&saf(&state, &who).await);
    body.push_str("</div></div>");
    let plugins = state.registry.list();
    let _ = write!(
        body,
        "<h2>Plugins</h2><p>Live generation <strong id=\"generation\">{}</strong>, {} plugin(s): {}.</p>",
        state.registry.current().number,
        plugins.len(),
        plugins
            .iter()
            .map(|p| format!("{} {}", esc(&p.name), esc(&p.version)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    page("Dashboard", Some(&who), &body).into_response()
}
