//! `/saf`: the store-and-forward queues (depth, escalated, oldest age per
//! endpoint) and their entries, with a Retry button on each pending one
//! (`POST /saf/{id}/retry`, audited; then back here with a message).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

use super::layout::{esc, page};
use super::transactions::saf_table;
use super::{Params, csrf_input, enc, error_page, forbidden, notice, param, redirect};
use crate::{AppState, Permission, Principal};

fn form(q: &Params) -> String {
    let all = param(q, "all").as_deref() == Some("true");
    format!(
        "<form method=\"get\" action=\"/saf\" class=\"filters\"><label>Endpoint<input name=\"endpoint\" value=\"{}\"></label>\
         <label>Show<select name=\"all\"><option value=\"\">pending only</option><option value=\"true\"{}>pending and done</option></select></label>\
         <button type=\"submit\">Show</button></form>",
        esc(&param(q, "endpoint").unwrap_or_default()),
        if all { " selected" } else { "" }
    )
}

/// `GET /saf[?endpoint=&all=true]`.
pub async fn show(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Query(q): Query<Params>,
) -> Response {
    if !who.can(Permission::SafView) {
        return forbidden(&who, Permission::SafView);
    }
    let list = match crate::api::saf_for(&state, &who, &q).await {
        Ok(l) => l,
        Err(e) => return error_page(&who, e),
    };
    let mut body = notice(&q);
    body.push_str(&form(&q));
    if who.tenant.is_none() {
        body.push_str("<h2>Queues</h2><table id=\"queues\"><thead><tr><th>Endpoint</th><th class=\"num\">Pending</th><th class=\"num\">Escalated</th><th class=\"num\">Oldest age</th></tr></thead><tbody>");
        for qv in &list.queues {
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&qv.endpoint),
                qv.pending,
                qv.escalated,
                qv.oldest_age_s
                    .map_or_else(|| "-".into(), |a| format!("{a} s"))
            );
        }
        if list.queues.is_empty() {
            body.push_str("<tr><td colspan=\"4\" class=\"muted\">No store-and-forward entries pending.</td></tr>");
        }
        body.push_str("</tbody></table>");
    }
    let retry = who.can(Permission::SafRetry).then(|| csrf_input(&who));
    let _ = write!(
        body,
        "<h2>Entries</h2><div id=\"entries\">{}</div>",
        saf_table(&list.entries, retry.as_deref())
    );
    page("Store and forward", Some(&who), &body).into_response()
}

/// `POST /saf/{id}/retry` (the CSRF layer checked the form's token).
pub async fn retry(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> Response {
    if !who.can(Permission::SafRetry) {
        return forbidden(&who, Permission::SafRetry);
    }
    match crate::api::retry(&state, &who, &id).await {
        Ok(r) if r.retried => redirect(&format!(
            "/saf?msg={}",
            enc(&format!("Entry {id} is due now: it is sent at once."))
        )),
        Ok(_) => redirect(&format!(
            "/saf?err={}",
            enc(&format!("Entry {id} is not pending: nothing to retry."))
        )),
        Err(e) => error_page(&who, e),
    }
}
