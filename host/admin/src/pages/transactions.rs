//! `/transactions`: search the tranlog by STAN, RRN, terminal, merchant,
//! date range and the PAN's last four (masked PANs only);
//! `/transactions/{id}`: one transaction's life cycle (request and
//! response fields masked, linked repeats/reversals/completions, SAF
//! entries) and its profiler trace. Every detail view is audited.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

use super::layout::{esc, page};
use super::{Params, error_page, forbidden, local_value, ms_text, opt, param, parse_local};
use crate::ops::views::{FieldView, SafView, TxLife, TxView};
use crate::{AppState, Permission, Principal};

/// Rows a search shows by default, and at most.
const DEFAULT_ROWS: usize = 100;
const MAX_SHOWN: usize = 1000;

const FIELDS: &[(&str, &str, &str)] = &[
    ("stan", "STAN", "6"),
    ("rrn", "RRN", "12"),
    ("terminal", "Terminal", "8"),
    ("merchant", "Merchant", "15"),
    ("last4", "PAN last four", "4"),
];

fn form(q: &Params) -> String {
    let mut out = String::from(
        "<form method=\"get\" action=\"/transactions\" class=\"filters\" id=\"search\">",
    );
    for (name, label, size) in FIELDS {
        let _ = write!(
            out,
            "<label>{label}<input name=\"{name}\" size=\"{size}\" value=\"{}\"></label>",
            esc(&param(q, name).unwrap_or_default())
        );
    }
    for (name, label) in [("from", "From (UTC)"), ("to", "To (UTC)")] {
        let _ = write!(
            out,
            "<label>{label}<input type=\"datetime-local\" name=\"{name}\" value=\"{}\"></label>",
            esc(&param(q, name).unwrap_or_default())
        );
    }
    let _ = write!(
        out,
        "<label>Rows<input type=\"number\" name=\"limit\" min=\"1\" max=\"{MAX_SHOWN}\" value=\"{}\"></label>\
         <button type=\"submit\">Search</button><a href=\"/transactions\">Clear</a></form>",
        esc(&param(q, "limit").unwrap_or_else(|| DEFAULT_ROWS.to_string()))
    );
    out
}

/// The API's query parameters from the form's (`from`/`to` as ms).
fn api_params(q: &Params) -> Result<Params, String> {
    let mut out = Params::new();
    for (name, _, _) in FIELDS {
        if let Some(v) = param(q, name) {
            out.insert((*name).into(), v);
        }
    }
    for (name, key) in [("from", "from_ms"), ("to", "to_ms")] {
        if let Some(v) = param(q, name) {
            let ms =
                parse_local(&v).ok_or_else(|| format!("{name}: {v:?} is not a date and time"))?;
            out.insert(key.into(), ms.to_string());
        }
    }
    let limit = match param(q, "limit") {
        None => DEFAULT_ROWS,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("rows: {v:?} is not a number"))?
            .clamp(1, MAX_SHOWN),
    };
    out.insert("limit".into(), limit.to_string());
    Ok(out)
}

/// One row of a transaction table.
pub fn row(t: &TxView, link: bool) -> String {
    let id = if link {
        format!("<a href=\"/transactions/{0}\">{0}</a>", t.id)
    } else {
        t.id.to_string()
    };
    format!(
        "<tr><td class=\"mono\">{id}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td>\
         <td class=\"num\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td>{}</td></tr>",
        esc(&t.received),
        esc(&t.mti),
        esc(&t.kind),
        opt(&t.pan),
        amount(t),
        opt(&t.rc),
        esc(&t.listener),
        opt(&t.endpoint),
        ms_text(t.total_ms),
        ms_text(t.external_ms),
        esc(&t.state)
    )
}

fn amount(t: &TxView) -> String {
    match (&t.amount, &t.currency) {
        (Some(a), Some(c)) => format!("{} {}", esc(&decimal(a, minor_units(c))), esc(c)),
        (Some(a), None) => esc(a),
        _ => "-".into(),
    }
}

/// The ISO 4217 minor units of a numeric currency code (2 unless listed).
fn minor_units(currency: &str) -> usize {
    match currency {
        // BIF, CLP, DJF, GNF, ISK, JPY, KMF, KRW, PYG, RWF, UGX, VND, VUV, XAF, XOF, XPF
        "108" | "152" | "262" | "324" | "352" | "392" | "174" | "410" | "600" | "646" | "800"
        | "704" | "548" | "950" | "952" | "953" => 0,
        // BHD, IQD, JOD, KWD, LYD, OMR, TND
        "048" | "368" | "400" | "414" | "434" | "512" | "788" => 3,
        _ => 2,
    }
}

/// A DE4 amount (digits, in minor units) with its decimal point:
/// `000000001000` with 2 minor units is `10.00`; anything not all digits
/// is shown as it is.
fn decimal(raw: &str, minor: usize) -> String {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw.to_owned();
    }
    let digits = raw.trim_start_matches('0');
    let digits = format!("{digits:0>width$}", width = minor + 1);
    let (whole, frac) = digits.split_at(digits.len() - minor);
    if minor == 0 {
        whole.to_owned()
    } else {
        format!("{whole}.{frac}")
    }
}

/// The head of a transaction table.
pub const HEAD: &str = "<thead><tr><th>Id</th><th>Time</th><th>MTI</th><th>Kind</th><th>PAN</th>\
    <th class=\"num\">Amount</th><th>RC</th><th>Listener</th><th>Endpoint</th><th class=\"num\">Total ms</th>\
    <th class=\"num\">External ms</th><th>State</th></tr></thead>";

/// `GET /transactions`.
pub async fn search(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Query(q): Query<Params>,
) -> Response {
    if !who.can(Permission::TransactionsView) {
        return forbidden(&who, Permission::TransactionsView);
    }
    let mut body = form(&q);
    let Some(ops) = &state.ops else {
        body.push_str("<p class=\"notice\">This switch runs without a tranlog.</p>");
        return page("Transactions", Some(&who), &body).into_response();
    };
    let params = match api_params(&q) {
        Ok(p) => p,
        Err(e) => {
            let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(&e));
            return page("Transactions", Some(&who), &body).into_response();
        }
    };
    let rows = match crate::api::tx_query(&who, &params) {
        Err(e) => return error_page(&who, e),
        Ok(None) => Vec::new(),
        Ok(Some(query)) => match ops.search(query).await {
            Ok(rows) => rows,
            Err(e) => {
                let _ = write!(
                    body,
                    "<p class=\"error\">Searching failed: {}</p>",
                    esc(&format!("{e:#}"))
                );
                Vec::new()
            }
        },
    };
    let link = who.can(Permission::TransactionsDetail);
    let _ = write!(
        body,
        "<p class=\"muted\" id=\"count\">{} row(s), newest first.</p><table id=\"results\">{HEAD}<tbody>",
        rows.len()
    );
    for t in &rows {
        body.push_str(&row(t, link));
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"12\" class=\"muted\">No transactions match.</td></tr>");
    }
    body.push_str("</tbody></table>");
    page("Transactions", Some(&who), &body).into_response()
}

fn facts(t: &TxView) -> String {
    let mut out = String::from("<dl class=\"facts\" id=\"facts\">");
    let mut fact = |k: &str, v: String| {
        let _ = write!(out, "<dt>{k}</dt><dd>{v}</dd>");
    };
    fact("Received", esc(&t.received));
    fact("MTI / kind", format!("{} {}", esc(&t.mti), esc(&t.kind)));
    fact("Tenant", esc(&t.tenant));
    fact(
        "Listener / node",
        format!("{} / {}", esc(&t.listener), esc(&t.node)),
    );
    fact("PAN", opt(&t.pan));
    fact("Amount", amount(t));
    fact("Processing code", opt(&t.processing_code));
    fact("STAN / RRN", format!("{} / {}", opt(&t.stan), opt(&t.rrn)));
    fact(
        "Terminal / merchant",
        format!("{} / {}", opt(&t.terminal), opt(&t.merchant)),
    );
    fact("Acquirer", opt(&t.acquirer));
    fact("State", esc(&t.state));
    fact(
        "RC / approval",
        format!("{} / {}", opt(&t.rc), opt(&t.approval)),
    );
    fact(
        "Endpoint / upstream",
        format!("{} / {}", opt(&t.endpoint), opt(&t.upstream)),
    );
    fact(
        "Total / external",
        format!("{} ms / {} ms", ms_text(t.total_ms), ms_text(t.external_ms)),
    );
    if let Some(rc) = &t.late_rc {
        fact(
            "Late reply",
            format!(
                "rc {} at {} (not forwarded; reversed)",
                esc(rc),
                opt(&t.late_at)
            ),
        );
    }
    if !t.participants.is_empty() {
        fact("Committed by", esc(&t.participants.join(", ")));
    }
    for (k, v) in [
        ("Original", t.original),
        ("Reversal", t.reversal),
        ("Completion", t.completion),
    ] {
        if let Some(id) = v {
            fact(k, format!("<a href=\"/transactions/{id}\">{id}</a>"));
        }
    }
    out.push_str("</dl>");
    out
}

fn fields_table(id: &str, title: &str, fields: &[FieldView]) -> String {
    let mut out = format!(
        "<div><h2>{}</h2><table id=\"{id}\"><thead><tr><th>DE</th><th>Value</th></tr></thead><tbody>",
        esc(title)
    );
    for f in fields {
        let _ = write!(
            out,
            "<tr><td class=\"mono\">{:03}</td><td class=\"mono\">{}</td></tr>",
            f.field,
            esc(&f.value)
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// The profiler trace (`step=µs …`) as a list of bars, widths relative to
/// the longest step.
pub fn trace(t: &str) -> String {
    let steps: Vec<(&str, f64)> = t
        .split_whitespace()
        .filter_map(|s| s.split_once('='))
        .filter_map(|(k, v)| v.parse::<f64>().ok().map(|v| (k, v)))
        .collect();
    let max = steps.iter().map(|(_, v)| *v).fold(1.0, f64::max);
    let mut out = String::from("<div class=\"trace\" id=\"trace\">");
    for (k, v) in &steps {
        let _ = write!(
            out,
            "<div class=\"step\"><span class=\"mono\">{}</span><progress max=\"{max}\" value=\"{v}\"></progress><span class=\"num mono\">{v} µs</span></div>",
            esc(k)
        );
    }
    if steps.is_empty() {
        let _ = write!(out, "<code>{}</code>", esc(t));
    }
    out.push_str("</div>");
    out
}

/// SAF entries as a table (the SAF page and the detail page).
pub fn saf_table(entries: &[SafView], retry: Option<&str>) -> String {
    let mut out = String::from(
        "<table class=\"saf\"><thead><tr><th>Id</th><th>Kind</th><th>Endpoint</th><th>Original</th><th>Reason</th>\
         <th>State</th><th class=\"num\">Attempts</th><th>Queued</th><th class=\"num\">Age</th><th>Next attempt</th>\
         <th>Last result</th><th></th></tr></thead><tbody>",
    );
    for e in entries {
        let state = if e.escalated {
            "escalated"
        } else {
            e.state.as_str()
        };
        let action = match retry {
            Some(csrf) if e.state == "pending" => format!(
                "<form method=\"post\" action=\"/saf/{}/retry\" class=\"inline\">{csrf}<button type=\"submit\">Retry now</button></form>",
                e.id
            ),
            _ => String::new(),
        };
        let _ = write!(
            out,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td class=\"mono\"><a href=\"/transactions/{}\">{}</a></td>\
             <td class=\"mono\">{}</td><td><span class=\"badge {}\">{}</span></td><td class=\"num\">{}</td><td class=\"mono\">{}</td>\
             <td class=\"num\">{} s</td><td class=\"mono\">{}</td><td>{}</td><td>{action}</td></tr>",
            e.id,
            esc(&e.kind),
            esc(&e.endpoint),
            e.original,
            e.original,
            esc(&e.reason),
            esc(state),
            esc(state),
            e.attempts,
            esc(&e.queued),
            e.age_s,
            opt(&e.next_attempt),
            opt(&e.last_result),
        );
    }
    if entries.is_empty() {
        out.push_str("<tr><td colspan=\"12\" class=\"muted\">No entries.</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn life_html(l: &TxLife) -> String {
    let t = &l.transaction;
    let mut body = facts(t);
    body.push_str("<h2>Profiler trace (µs)</h2>");
    match &t.trace {
        Some(tr) => body.push_str(&trace(tr)),
        None => body.push_str("<p class=\"muted\">No trace recorded.</p>"),
    }
    body.push_str("<div class=\"grid2\">");
    body.push_str(&fields_table(
        "request",
        &format!("Request {}", l.request_mti),
        &l.request,
    ));
    match &l.response {
        Some(r) => body.push_str(&fields_table("response", "Response", r)),
        None => body.push_str("<div><h2>Response</h2><p class=\"muted\">Not answered.</p></div>"),
    }
    body.push_str("</div><h2>Linked messages</h2>");
    if l.linked.is_empty() {
        body.push_str("<p class=\"muted\">No repeats, reversals or completions.</p>");
    } else {
        let _ = write!(body, "<table id=\"linked\">{HEAD}<tbody>");
        for r in &l.linked {
            body.push_str(&row(r, true));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("<h2>Store and forward</h2>");
    body.push_str(&saf_table(&l.saf, None));
    body
}

/// `GET /transactions/{id}` (audited).
pub async fn detail(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> Response {
    if !who.can(Permission::TransactionsDetail) {
        return forbidden(&who, Permission::TransactionsDetail);
    }
    match crate::api::transaction(&state, &who, &id).await {
        Ok(life) => {
            let title = format!("Transaction {}", life.transaction.id);
            let mut body = format!(
                "<p><a href=\"/transactions?from={}\">← Transactions</a></p>",
                esc(&local_value(life.transaction.received_ms - 60_000))
            );
            body.push_str(&life_html(&life));
            page(&title, Some(&who), &body).into_response()
        }
        Err(e) => error_page(&who, e),
    }
}

#[cfg(test)]
mod amount_tests {
    #[test]
    fn amounts_show_their_minor_units() {
        assert_eq!(super::decimal("000000001000", 2), "10.00");
        assert_eq!(super::decimal("000000000005", 2), "0.05");
        assert_eq!(super::decimal("000000001000", 0), "1000");
        assert_eq!(super::decimal("000000001234", 3), "1.234");
        assert_eq!(super::decimal("12a", 2), "12a");
        assert_eq!(super::minor_units("840"), 2);
        assert_eq!(super::minor_units("392"), 0);
    }
}
