//! The page frame every page shares: head, navigation (only the links the
//! principal's permissions allow), the signed-in user, and HTML escaping.
//!
//! The server's CSP allows no inline script or style: the look is
//! `/static/style.css`, the behaviour `/static/*.js` ([`super::assets`]).

use axum::response::Html;

use crate::{Permission, Principal, PrincipalKind};

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

/// The navigation: label, path, the permission the link needs.
const NAV: &[(&str, &str, Permission)] = &[
    ("Dashboard", "/", Permission::DashboardView),
    (
        "Transactions",
        "/transactions",
        Permission::TransactionsView,
    ),
    ("SAF", "/saf", Permission::SafView),
    ("Plugins", "/plugins", Permission::PluginsView),
    ("Latency", "/latency", Permission::DashboardView),
    ("Users", "/users", Permission::UsersView),
    ("Roles", "/roles", Permission::UsersView),
    ("API clients", "/clients", Permission::UsersView),
    ("Webhooks", "/webhooks", Permission::WebhooksManage),
    ("Audit", "/audit", Permission::AuditView),
];

/// The navigation bar of `p`: the links it may follow, who it is, its
/// account pages and the sign-out form.
fn nav(p: &Principal) -> String {
    let links: String = NAV
        .iter()
        .filter(|(_, _, perm)| p.can(*perm))
        .map(|(label, href, _)| format!("<a href=\"{href}\">{label}</a>"))
        .collect();
    let tenant = p
        .tenant
        .as_deref()
        .map_or(String::new(), |t| format!(" · tenant {}", esc(t)));
    let account = match p.kind {
        PrincipalKind::User => {
            "<a href=\"/password\">Password</a><a href=\"/account/totp\">Two-factor</a>"
        }
        PrincipalKind::ApiClient => "",
    };
    format!(
        "<nav class=\"top\"><span class=\"brand\">Switchyard</span><span class=\"links\">{links}</span>\
         <span class=\"account\"><span class=\"who\">{} ({}{tenant})</span>{account}\
         <form method=\"post\" action=\"/logout\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Sign out</button></form>\
         </span></nav>",
        esc(&p.name),
        esc(&p.role),
        esc(p.csrf.as_deref().unwrap_or("")),
    )
}

/// One whole page: `body` is HTML already escaped; `who` (when signed in)
/// gets the navigation and the sign-out form.
pub fn page(title: &str, who: Option<&Principal>, body: &str) -> Html<String> {
    let nav = who.map_or_else(
        || "<nav class=\"top\"><span class=\"brand\">Switchyard</span></nav>".to_owned(),
        nav,
    );
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Switchyard</title><link rel=\"stylesheet\" href=\"/static/style.css\">\
         <link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\">\
         <script src=\"/static/app.js\" defer></script></head>\
         <body>{nav}<main><h1>{}</h1>{body}</main>\
         <footer>Switchyard operator plane · times in UTC</footer></body></html>",
        esc(title),
        esc(title)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(permissions: Vec<Permission>) -> Principal {
        Principal {
            name: "ann<".into(),
            kind: PrincipalKind::User,
            role: "viewer".into(),
            permissions,
            tenant: Some("acme".into()),
            origin: std::net::IpAddr::from([127, 0, 0, 1]),
            csrf: Some("tok".into()),
        }
    }

    #[test]
    fn the_navigation_shows_only_what_the_role_allows() {
        let html = page("T", Some(&who(vec![Permission::DashboardView])), "").0;
        assert!(html.contains("href=\"/latency\""), "{html}");
        assert!(!html.contains("href=\"/users\""), "{html}");
        assert!(!html.contains("href=\"/audit\""), "{html}");
        assert!(html.contains("ann&lt;"), "{html}");
        assert!(html.contains("tenant acme"), "{html}");
        assert!(html.contains("value=\"tok\""), "{html}");
        let all = page("T", Some(&who(Permission::ALL.to_vec())), "").0;
        for (_, href, _) in NAV {
            assert!(all.contains(&format!("href=\"{href}\"")), "{href}");
        }
    }

    #[test]
    fn no_inline_script_or_style() {
        let html = page("T", Some(&who(Permission::ALL.to_vec())), "").0;
        assert!(!html.contains("style="), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<style"), "{html}");
    }
}
