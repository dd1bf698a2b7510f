//! The page frame every page shares: head, navigation, the signed-in
//! user, and HTML escaping.

use axum::response::Html;

use crate::Principal;

/// Escapes `s` for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One whole page: `body` is HTML already escaped; `who` (when signed in)
/// gets the navigation and the sign-out form.
pub fn page(title: &str, who: Option<&Principal>, body: &str) -> Html<String> {
    let nav = match who {
        Some(p) => format!(
            "<nav><a href=\"/\">Dashboard</a> <a href=\"/transactions\">Transactions</a> \
             <a href=\"/saf\">SAF</a> <a href=\"/plugins\">Plugins</a> <a href=\"/latency\">Latency</a> \
             <a href=\"/users\">Users</a> <a href=\"/audit\">Audit</a> \
             <span class=\"who\">{} ({})</span>\
             <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button>Sign out</button></form></nav>",
            esc(&p.name),
            esc(&p.role),
            esc(p.csrf.as_deref().unwrap_or("")),
        ),
        None => String::new(),
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{} · Switchyard</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head>\
         <body>{nav}<main><h1>{}</h1>{body}</main></body></html>",
        esc(title),
        esc(title)
    ))
}
