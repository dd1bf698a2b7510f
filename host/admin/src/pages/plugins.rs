//! `/plugins`: each plugin's live version, SHA-256, roles, settings and
//! metrics (calls, failures, traps, deadlines, breaker), the live
//! generation, the swap history; for `plugins.swap`, a swap form (upload
//! of a `.wasm` component, `POST /plugins/{name}/swap?csrf=…`, multipart)
//! and a rollback button (`POST /plugins/{name}/rollback`). Both run on
//! the swap thread and are audited and announced as the API's are.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Response};

use super::layout::{esc, page};
use super::{Params, csrf_input, enc, forbidden, notice, redirect};
use crate::views::{PluginView, SwapEntry};
use crate::{AppState, Permission, Principal};

/// Swap history entries shown.
const HISTORY: usize = 50;

fn opt_num(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn plugin_html(p: &PluginView, controls: Option<&Principal>) -> String {
    let m = &p.metrics;
    let l = &p.limits;
    let mut out = format!(
        "<section class=\"plugin card\" id=\"plugin-{0}\"><h2>{0} <span class=\"badge\">{1}</span></h2>\
         <dl class=\"facts\"><dt>SHA-256</dt><dd class=\"mono\">{2}</dd><dt>Roles</dt><dd>{3}</dd>\
         <dt>Earlier versions</dt><dd class=\"mono\">{4}</dd><dt>Instances</dt><dd>{5}, max calls {6}, recycle at {7} bytes</dd>\
         <dt>Failure policy</dt><dd>{8}</dd><dt>Grants</dt><dd>{9}</dd>\
         <dt>Limits</dt><dd>memory {10} bytes, deadline {11} ms, fuel {12}, stack {13} bytes</dd></dl>",
        esc(&p.name),
        esc(&p.version),
        esc(&p.sha256),
        esc(&p.roles.join(", ")),
        esc(&if p.previous.is_empty() {
            "-".to_owned()
        } else {
            p.previous.join(", ")
        }),
        esc(&p.instances),
        opt_num(p.max_calls),
        opt_num(p.recycle_memory_bytes),
        esc(&p.failure),
        esc(&if p.grants.is_empty() {
            "-".to_owned()
        } else {
            p.grants.join(", ")
        }),
        l.memory_bytes,
        l.deadline_ms,
        opt_num(l.fuel),
        l.stack_bytes,
    );
    let _ = write!(
        out,
        "<table class=\"metrics\"><thead><tr><th class=\"num\">Calls</th><th class=\"num\">Failures</th><th class=\"num\">Traps</th>\
         <th class=\"num\">Deadlines</th><th class=\"num\">Memory cap</th><th class=\"num\">Fuel out</th><th class=\"num\">Breaker opens</th>\
         <th class=\"num\">Breaker refused</th><th class=\"num\">p50 µs</th><th class=\"num\">p99 µs</th><th class=\"num\">Peak memory</th></tr></thead>\
         <tbody><tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr></tbody></table>",
        m.calls,
        m.failures,
        m.traps,
        m.deadline_overruns,
        m.memory_cap_hits,
        m.fuel_exhausted,
        m.breaker_opens,
        m.breaker_refused,
        opt_num(m.latency_p50_us),
        opt_num(m.latency_p99_us),
        m.peak_memory_bytes
    );
    if let Some(who) = controls {
        let name = esc(&p.name);
        let _ = write!(
            out,
            "<div class=\"controls\"><form method=\"post\" enctype=\"multipart/form-data\" action=\"/plugins/{name}/swap?csrf={}\" class=\"filters swap\" \
             data-confirm=\"Swap {name} for the uploaded component?\"><label>New version (.wasm component)<input type=\"file\" name=\"component\" accept=\".wasm\" required></label>\
             <button type=\"submit\">Swap</button></form>",
            enc(who.csrf.as_deref().unwrap_or(""))
        );
        if !p.previous.is_empty() {
            let _ = write!(
                out,
                "<form method=\"post\" action=\"/plugins/{name}/rollback\" class=\"inline\" data-confirm=\"Roll {name} back to its previous version?\">{}\
                 <button type=\"submit\" class=\"secondary\">Roll back to {}</button></form>",
                csrf_input(who),
                esc(&p.previous[0])
            );
        }
        out.push_str("</div>");
    }
    out.push_str("</section>");
    out
}

fn history_html(entries: &[SwapEntry]) -> String {
    let mut out = String::from(
        "<h2>Swap history</h2><table id=\"history\"><thead><tr><th>When</th><th>Plugin</th><th>Action</th><th>From</th><th>To</th><th>By</th></tr></thead><tbody>",
    );
    for e in entries.iter().rev() {
        let _ = write!(
            out,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td></tr>",
            esc(&crate::ops::views::utc(e.at_ms)),
            esc(&e.plugin),
            esc(&e.action),
            esc(&e.old_sha256.chars().take(12).collect::<String>()),
            esc(&e.new_sha256.chars().take(12).collect::<String>()),
            esc(&e.actor)
        );
    }
    if entries.is_empty() {
        out.push_str(
            "<tr><td colspan=\"6\" class=\"muted\">No swaps since the switch started.</td></tr>",
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// `GET /plugins`.
pub async fn show(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Query(q): Query<Params>,
) -> Response {
    if !who.can(Permission::PluginsView) {
        return forbidden(&who, Permission::PluginsView);
    }
    let controls = (who.can(Permission::PluginsSwap) && who.tenant.is_none()).then_some(&who);
    let mut body = notice(&q);
    let _ = write!(
        body,
        "<p>Live generation <strong id=\"generation\">{}</strong> (one more with every swap or rollback).</p>",
        state.registry.current().number
    );
    for p in state.registry.list().iter().map(PluginView::from) {
        body.push_str(&plugin_html(&p, controls));
    }
    let history: Vec<SwapEntry> = state
        .registry
        .history(HISTORY)
        .iter()
        .map(SwapEntry::from)
        .collect();
    body.push_str(&history_html(&history));
    page("Plugins", Some(&who), &body).into_response()
}

/// Plugins serve every tenant: only a principal of none may change them.
fn may_swap(who: &Principal) -> Option<Response> {
    if !who.can(Permission::PluginsSwap) {
        return Some(forbidden(who, Permission::PluginsSwap));
    }
    who.tenant.as_ref().map(|t| {
        super::error_page(
            who,
            crate::api::ApiError(
                axum::http::StatusCode::FORBIDDEN,
                format!("plugins serve every tenant; a user of tenant {t} cannot swap them"),
            ),
        )
    })
}

fn back(result: Result<axum::Json<crate::views::SwapResult>, crate::api::ApiError>) -> Response {
    match result {
        Ok(axum::Json(r)) => redirect(&format!(
            "/plugins?msg={}",
            enc(&format!(
                "{} {}: {} → {} (generation {})",
                r.action, r.plugin, r.old_version, r.new_version, r.generation
            ))
        )),
        Err(crate::api::ApiError(_, e)) => redirect(&format!("/plugins?err={}", enc(&e))),
    }
}

/// The uploaded component: the form's `component` file.
async fn component(mut form: Multipart) -> Result<Vec<u8>, String> {
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| format!("reading the upload: {e}"))?
    {
        if field.name() == Some("component") {
            let bytes = field
                .bytes()
                .await
                .map_err(|e| format!("reading the upload: {e}"))?;
            return match bytes.is_empty() {
                true => Err("the uploaded file is empty".into()),
                false => Ok(bytes.to_vec()),
            };
        }
    }
    Err("choose the new version's .wasm component".into())
}

/// `POST /plugins/{name}/swap?csrf=…` (multipart: `component`).
pub async fn swap(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Path(name): Path<String>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    if let Some(refused) = may_swap(&who) {
        return refused;
    }
    let form = match form {
        Ok(f) => f,
        Err(e) => return redirect(&format!("/plugins?err={}", enc(&e.body_text()))),
    };
    let bytes = match component(form).await {
        Ok(b) => b,
        Err(e) => return redirect(&format!("/plugins?err={}", enc(&e))),
    };
    tracing::info!(plugin = %name, actor = %who.name, origin = %who.origin, bytes = bytes.len(), "admin page: swap asked");
    let (registry, plugin, actor) = (state.registry.clone(), name.clone(), who.name.clone());
    let result = state
        .swapper
        .run(move || registry.swap(&plugin, &bytes, &actor))
        .await;
    back(crate::api::swapped(
        &state,
        &who,
        "plugin.swap",
        &name,
        result,
    ))
}

/// `POST /plugins/{name}/rollback`.
pub async fn rollback(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Path(name): Path<String>,
) -> Response {
    if let Some(refused) = may_swap(&who) {
        return refused;
    }
    tracing::info!(plugin = %name, actor = %who.name, origin = %who.origin, "admin page: rollback asked");
    let (registry, plugin, actor) = (state.registry.clone(), name.clone(), who.name.clone());
    let result = state
        .swapper
        .run(move || registry.rollback(&plugin, &actor))
        .await;
    back(crate::api::swapped(
        &state,
        &who,
        "plugin.rollback",
        &name,
        result,
    ))
}
