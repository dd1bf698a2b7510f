//! Roles as data: the built-in roles (seeded at every open, not
//! editable) and custom ones made of permissions.

use super::principal::Permission;

/// The built-in roles' names.
pub const BUILTIN: &[&str] = &["viewer", "operator", "security", "admin"];

/// The permissions of built-in role `name` (`None`: not a built-in).
pub fn builtin(name: &str) -> Option<Vec<Permission>> {
    use Permission::*;
    let viewer = vec![
        DashboardView,
        TransactionsView,
        TransactionsDetail,
        SafView,
        PluginsView,
        EndpointsView,
        MetricsView,
    ];
    match name {
        "viewer" => Some(viewer),
        "operator" => {
            let mut p = viewer;
            p.extend([SafRetry, PluginsSwap, ConfigReload, HostsManage]);
            Some(p)
        }
        "security" => Some(vec![
            DashboardView,
            UsersView,
            UsersManage,
            KeysView,
            KeysRotate,
            AuditView,
            WebhooksManage,
        ]),
        "admin" => Some(Permission::ALL.to_vec()),
        _ => None,
    }
}

/// The JSON a role's permissions are stored as.
pub fn to_json(permissions: &[Permission]) -> String {
    let names: Vec<&str> = permissions.iter().map(|p| p.name()).collect();
    serde_json::to_string(&names).expect("a list of strings serialises")
}

/// The permissions stored as `json` (unknown names are skipped).
pub fn from_json(json: &str) -> Vec<Permission> {
    let names: Vec<String> = serde_json::from_str(json).unwrap_or_default();
    names.iter().filter_map(|n| Permission::parse(n)).collect()
}

/// Parses permission names; the unknown ones are the error.
pub fn parse_names<S: AsRef<str>>(names: &[S]) -> Result<Vec<Permission>, Vec<String>> {
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for n in names {
        match Permission::parse(n.as_ref().trim()) {
            Some(p) if !out.contains(&p) => out.push(p),
            Some(_) => {}
            None => unknown.push(n.as_ref().to_owned()),
        }
    }
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(unknown)
    }
}

/// Whether a role name is well-formed: 1–64 of `[a-z0-9_.-]`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}
