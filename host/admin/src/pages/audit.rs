//! `/audit`: the audit trail, newest first, filtered by actor, event type
//! and date range; a principal bound to a tenant sees only its tenant's
//! rows ([`crate::audit::scoped`]).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};

use super::layout::{esc, page};
use super::{Params, error_page, forbidden, param, parse_local};
use crate::audit::{AuditFilter, AuditRow};
use crate::{AppState, Permission, Principal};

const DEFAULT_ROWS: usize = 200;

fn form(q: &Params) -> String {
    let v = |k: &str| esc(&param(q, k).unwrap_or_default());
    format!(
        "<form method=\"get\" action=\"/audit\" class=\"filters\" id=\"filter\">\
         <label>Actor<input name=\"actor\" value=\"{}\"></label>\
         <label>Event<input name=\"event\" value=\"{}\" placeholder=\"login.failed\"></label>\
         <label>From (UTC)<input type=\"datetime-local\" name=\"from\" value=\"{}\"></label>\
         <label>To (UTC)<input type=\"datetime-local\" name=\"to\" value=\"{}\"></label>\
         <label>Rows<input type=\"number\" name=\"limit\" min=\"1\" max=\"{}\" value=\"{}\"></label>\
         <button type=\"submit\">Show</button><a href=\"/audit\">Clear</a></form>",
        v("actor"),
        v("event"),
        v("from"),
        v("to"),
        crate::audit::MAX_LIST,
        esc(&param(q, "limit").unwrap_or_else(|| DEFAULT_ROWS.to_string()))
    )
}

fn filter(q: &Params) -> Result<AuditFilter, String> {
    let time = |k: &str| match param(q, k) {
        None => Ok(None),
        Some(v) => parse_local(&v)
            .map(Some)
            .ok_or_else(|| format!("{k}: {v:?} is not a date and time")),
    };
    let limit = match param(q, "limit") {
        None => DEFAULT_ROWS,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("rows: {v:?} is not a number"))?,
    };
    Ok(AuditFilter {
        tenant: None,
        actor: param(q, "actor"),
        event: param(q, "event"),
        from_ms: time("from")?,
        to_ms: time("to")?,
        limit: Some(limit.clamp(1, crate::audit::MAX_LIST)),
    })
}

fn table(rows: &[AuditRow]) -> String {
    let mut out = String::from(
        "<table id=\"trail\"><thead><tr><th class=\"num\">Seq</th><th>Time</th><th>Actor</th><th>Event</th><th>Outcome</th>\
         <th>Origin</th><th>Resource</th><th>Tenant</th><th>Detail</th></tr></thead><tbody>",
    );
    for r in rows {
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td class=\"mono\">{}</td><td>{} <span class=\"muted\">{}</span></td><td class=\"mono\">{}</td>\
             <td><span class=\"badge {}\">{}</span></td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.seq,
            esc(&crate::ops::views::utc(r.at_ms)),
            esc(&r.actor),
            esc(&r.actor_kind),
            esc(&r.event),
            esc(&r.outcome),
            esc(&r.outcome),
            super::opt(&r.origin),
            esc(&r.resource),
            super::opt(&r.tenant),
            esc(&r.detail)
        );
    }
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"9\" class=\"muted\">No audit rows match.</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// `GET /audit[?actor=&event=&from=&to=&limit=]`.
pub async fn show(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Query(q): Query<Params>,
) -> Response {
    if !who.can(Permission::AuditView) {
        return forbidden(&who, Permission::AuditView);
    }
    let mut body = form(&q);
    let f = match filter(&q) {
        Ok(f) => crate::audit::scoped(&who, f),
        Err(e) => {
            let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(&e));
            return page("Audit log", Some(&who), &body).into_response();
        }
    };
    let st = state.clone();
    let rows = match tokio::task::spawn_blocking(move || st.audit.list(&f)).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => {
            tracing::warn!(error = %format!("{e:#}"), "audit page: reading the trail failed");
            return error_page(
                &who,
                crate::api::ApiError(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "reading the audit trail failed".into(),
                ),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "audit page: the reading task failed");
            Vec::new()
        }
    };
    let _ = write!(
        body,
        "<p class=\"muted\" id=\"count\">{} row(s), newest first. Verify the chain with <code>switchyard admin audit verify</code>.</p>",
        rows.len()
    );
    body.push_str(&table(&rows));
    page("Audit log", Some(&who), &body).into_response()
}
