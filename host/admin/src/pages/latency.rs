//! `/latency`: per minute, the p50 and p99 of the time a transaction spent
//! in the switch (total) against the time at the endpoint (external), for
//! one endpoint or listener (or all) over a period (the last hour by
//! default) — an SVG line chart drawn on the server, and the same figures
//! as a table. Read from the tranlog rows of the period (at most
//! [`MAX_ROWS`], said on the page when capped).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use switchyard_engine::ports::TxRecord;

use super::chart::{Series, line_chart};
use super::layout::{esc, page};
use super::{Params, forbidden, local_value, param, period};
use crate::{AppState, Permission, Principal};

/// Most tranlog rows one chart reads.
pub const MAX_ROWS: usize = 200_000;
/// The longest period one chart covers.
pub const MAX_PERIOD_MS: i64 = 24 * 3_600_000;
const HOUR_MS: i64 = 3_600_000;

/// One minute's figures, ms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Minute {
    /// Rows with a total duration.
    pub count: usize,
    /// Total duration p50 and p99.
    pub total: Option<(f64, f64)>,
    /// External duration p50 and p99 (rows that went to an endpoint).
    pub external: Option<(f64, f64)>,
}

/// The `q` quantile (nearest rank) of sorted `v`.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn p50_p99(mut v: Vec<f64>) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some((quantile(&v, 0.5), quantile(&v, 0.99)))
}

/// Which rows a chart takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every row.
    All,
    /// Rows switched out to this endpoint.
    Endpoint(String),
    /// Rows received on this listener.
    Listener(String),
}

impl Scope {
    fn of(q: &Params) -> Scope {
        if let Some(by) = param(q, "by") {
            if let Some(e) = by.strip_prefix("endpoint:") {
                return Scope::Endpoint(e.to_owned());
            }
            if let Some(l) = by.strip_prefix("listener:") {
                return Scope::Listener(l.to_owned());
            }
        }
        match (param(q, "endpoint"), param(q, "listener")) {
            (Some(e), _) => Scope::Endpoint(e),
            (None, Some(l)) => Scope::Listener(l),
            (None, None) => Scope::All,
        }
    }

    fn value(&self) -> String {
        match self {
            Scope::All => String::new(),
            Scope::Endpoint(e) => format!("endpoint:{e}"),
            Scope::Listener(l) => format!("listener:{l}"),
        }
    }

    fn takes(&self, r: &TxRecord) -> bool {
        match self {
            Scope::All => true,
            Scope::Endpoint(e) => r.endpoint.as_deref() == Some(e),
            Scope::Listener(l) => r.listener == *l,
        }
    }
}

/// Per minute (its start, ms) from `from`, the figures of `rows` in scope.
pub fn minutes(rows: &[TxRecord], scope: &Scope, from: i64, to: i64) -> BTreeMap<i64, Minute> {
    let mut raw: BTreeMap<i64, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| scope.takes(r) && r.received_ms >= from && r.received_ms < to)
    {
        let Some(total) = r.total_us else { continue };
        let m = raw
            .entry(r.received_ms.div_euclid(60_000) * 60_000)
            .or_default();
        m.0.push(total as f64 / 1000.0);
        if let Some(ext) = r.external_us {
            m.1.push(ext as f64 / 1000.0);
        }
    }
    raw.into_iter()
        .map(|(m, (t, e))| {
            (
                m,
                Minute {
                    count: t.len(),
                    total: p50_p99(t),
                    external: p50_p99(e),
                },
            )
        })
        .collect()
}

/// The four series of the chart, one point per minute of the period.
pub fn series(figures: &BTreeMap<i64, Minute>, from: i64, to: i64) -> Vec<Series> {
    let first = from.div_euclid(60_000) * 60_000;
    let mut starts = Vec::new();
    let mut m = first;
    while m < to {
        starts.push(m);
        m += 60_000;
    }
    type Pick = fn(&Minute) -> Option<f64>;
    let picks: [(&str, &'static str, Pick); 4] = [
        ("total p50", "total-p50", |m| m.total.map(|t| t.0)),
        ("total p99", "total-p99", |m| m.total.map(|t| t.1)),
        ("external p50", "external-p50", |m| m.external.map(|t| t.0)),
        ("external p99", "external-p99", |m| m.external.map(|t| t.1)),
    ];
    picks
        .iter()
        .map(|(label, class, pick)| Series {
            label: (*label).into(),
            class,
            // A point sits in the middle of its minute.
            points: starts
                .iter()
                .map(|s| (s + 30_000, figures.get(s).and_then(pick)))
                .collect(),
        })
        .collect()
}

fn form(state: &AppState, scope: &Scope, from: i64, to: i64) -> String {
    let mut options = String::from("<option value=\"\">every endpoint and listener</option>");
    let chosen = scope.value();
    let mut opt = |value: String, label: String| {
        let sel = if value == chosen { " selected" } else { "" };
        let _ = write!(
            options,
            "<option value=\"{}\"{sel}>{}</option>",
            esc(&value),
            esc(&label)
        );
    };
    for e in &state.endpoints {
        opt(
            format!("endpoint:{}", e.name()),
            format!("endpoint {}", e.name()),
        );
    }
    for (l, _) in &state.listeners {
        opt(format!("listener:{l}"), format!("listener {l}"));
    }
    format!(
        "<form method=\"get\" action=\"/latency\" class=\"filters\" id=\"period\"><label>Of<select name=\"by\">{options}</select></label>\
         <label>From (UTC)<input type=\"datetime-local\" name=\"from\" value=\"{}\"></label>\
         <label>To (UTC)<input type=\"datetime-local\" name=\"to\" value=\"{}\"></label>\
         <button type=\"submit\">Show</button><a href=\"/latency\">Last hour</a></form>",
        local_value(from),
        // Rounded up to the next whole minute: submitting the form as
        // shown keeps the current minute in the period.
        local_value(
            to.div_euclid(60_000) * 60_000
                + if to.rem_euclid(60_000) == 0 {
                    0
                } else {
                    60_000
                }
        )
    )
}

fn table(figures: &BTreeMap<i64, Minute>) -> String {
    let pair = |p: Option<(f64, f64)>| match p {
        Some((a, b)) => format!("<td class=\"num\">{a:.1}</td><td class=\"num\">{b:.1}</td>"),
        None => "<td class=\"num\">-</td><td class=\"num\">-</td>".into(),
    };
    let mut out = String::from(
        "<table id=\"minutes\"><thead><tr><th>Minute (UTC)</th><th class=\"num\">Transactions</th>\
         <th class=\"num\">Total p50 ms</th><th class=\"num\">Total p99 ms</th><th class=\"num\">External p50 ms</th>\
         <th class=\"num\">External p99 ms</th></tr></thead><tbody>",
    );
    for (m, f) in figures.iter().rev() {
        let _ = write!(
            out,
            "<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td>{}{}</tr>",
            esc(&local_value(*m).replace('T', " ")),
            f.count,
            pair(f.total),
            pair(f.external)
        );
    }
    if figures.is_empty() {
        out.push_str(
            "<tr><td colspan=\"6\" class=\"muted\">No transactions in this period.</td></tr>",
        );
    }
    out.push_str("</tbody></table>");
    out
}

async fn rows(
    state: &AppState,
    who: &Principal,
    from: i64,
    to: i64,
) -> Result<Vec<TxRecord>, String> {
    let Some(ops) = &state.ops else {
        return Err("this switch runs without a tranlog".into());
    };
    let Some(mut query) = crate::api::tx_query(who, &Params::new()).map_err(|e| e.1)? else {
        return Ok(Vec::new());
    };
    query.from_ms = Some(from);
    query.to_ms = Some(to);
    query.limit = MAX_ROWS;
    ops.tranlog.search(query).await.map_err(|e| e.to_string())
}

/// `GET /latency[?by=endpoint:NAME|listener:NAME][&from=&to=]`.
pub async fn show(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Query(q): Query<Params>,
) -> Response {
    if !who.can(Permission::DashboardView) {
        return forbidden(&who, Permission::DashboardView);
    }
    let scope = Scope::of(&q);
    let (from, to, mut body) = match period(&q, HOUR_MS) {
        Ok((from, to)) if to - from > MAX_PERIOD_MS => (
            to - MAX_PERIOD_MS,
            to,
            "<p class=\"notice\">A chart covers at most 24 hours: showing the last 24 hours of the period.</p>".to_owned(),
        ),
        Ok((from, to)) => (from, to, String::new()),
        Err(e) => {
            let to = super::now_ms();
            (to - HOUR_MS, to, format!("<p class=\"error\" role=\"alert\">{}</p>", esc(&e)))
        }
    };
    body.insert_str(0, &form(&state, &scope, from, to));
    let rows = match rows(&state, &who, from, to).await {
        Ok(r) => r,
        Err(e) => {
            let _ = write!(body, "<p class=\"error\">{}</p>", esc(&e));
            Vec::new()
        }
    };
    if rows.len() >= MAX_ROWS {
        let _ = write!(
            body,
            "<p class=\"notice\" id=\"capped\">More than {MAX_ROWS} transactions in this period: the chart shows the newest {MAX_ROWS}. Choose a shorter period for all of them.</p>"
        );
    }
    let figures = minutes(&rows, &scope, from, to);
    let title = match &scope {
        Scope::All => "Every endpoint and listener".to_owned(),
        Scope::Endpoint(e) => format!("Endpoint {e}"),
        Scope::Listener(l) => format!("Listener {l}"),
    };
    let _ = write!(
        body,
        "<div class=\"chart\" id=\"chart\">{}</div><p class=\"muted\">Total: time in the switch, received to answered. \
         External: time at the endpoint. Percentiles per minute (nearest rank); dashed lines are p99.</p><h2>Per minute</h2>{}",
        line_chart(
            &format!("{title}: duration per minute, ms"),
            from,
            to,
            &series(&figures, from, to)
        ),
        table(&figures)
    );
    page("Latency", Some(&who), &body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert_eq!(p50_p99(vec![3.0, 1.0, 2.0]), Some((2.0, 3.0)));
    }

    #[test]
    fn the_scope_comes_from_the_form() {
        let mut q = Params::new();
        q.insert("by".into(), "endpoint:visa".into());
        assert_eq!(Scope::of(&q), Scope::Endpoint("visa".into()));
        q.insert("by".into(), "listener:pos".into());
        assert_eq!(Scope::of(&q), Scope::Listener("pos".into()));
        assert_eq!(Scope::of(&Params::new()), Scope::All);
    }
}
