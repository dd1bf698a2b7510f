//! Permissions and tenant boundaries of the operator plane over real HTTPS
//! (`switchyard run`, its certificate pinned): for every route of every
//! module (`switchyard_admin::all_routes()`), an API client whose role
//! lacks the route's permission gets 403 and one whose role has only that
//! permission does not; without credentials, 401 (API) or a redirect to
//! the sign-in page; a tenant-B client tried with tenant A's identifiers
//! gets nothing. One cookie session checks CSRF and sign-out.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::header::HeaderMap;
use hyper_util::rt::TokioIo;
use switchyard_admin::{Permission, RouteSpec, all_routes};
use tokio_rustls::TlsConnector;

use common::{RunLog, field, free_ports_config};

/// One answer: status, headers, body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

/// An HTTPS client of the switch's admin server (its certificate pinned).
struct Https {
    addr: String,
    tls: TlsConnector,
    rt: tokio::runtime::Runtime,
}

impl Https {
    fn new(addr: &str, cert: &Path) -> Https {
        let mut roots = rustls::RootCertStore::empty();
        for c in switchyard_admin::tls::read_certs(cert).unwrap() {
            roots.add(c).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Https {
            addr: addr.to_owned(),
            tls: TlsConnector::from(Arc::new(config)),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// `method path` with `headers` and `body`.
    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let req = {
            let mut b = Request::builder()
                .method(method)
                .uri(path)
                .header("host", &self.addr);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
        };
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let tls = self.tls.connect(name, tcp).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            let driver = tokio::spawn(conn);
            let res = sender.send_request(req).await.unwrap();
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            driver.abort();
            Answer {
                status,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            }
        };
        self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), exchange)
                .await
                .unwrap_or_else(|_| panic!("{method} {path}: no answer in 60 s"))
        })
    }

    fn bearer(&self, token: &str, method: &str, path: &str, body: &str) -> Answer {
        let auth = format!("Bearer {token}");
        let mut h = vec![("authorization", auth.as_str())];
        if !body.is_empty() {
            h.push(("content-type", "application/json"));
        }
        self.call(method, path, &h, body)
    }

    fn json(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let a = self.bearer(token, method, path, &body.to_string());
        assert!(
            (200..300).contains(&a.status),
            "{method} {path}: {} {}",
            a.status,
            a.body
        );
        serde_json::from_str(&a.body).unwrap()
    }
}

/// The running switch and a client of its admin server.
struct Switch {
    _run: RunLog,
    port_5001: String,
    https: Https,
    admin_token: String,
}

fn start(name: &str) -> Switch {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("switchyard.toml");
    std::fs::write(
        &config,
        free_ports_config("127.0.0.1:0").replace("deploy_dir = \"deploy\"", "deploy_dir = \"\""),
    )
    .unwrap();
    let mut run = RunLog::spawn(&config);
    let deadline = Instant::now() + Duration::from_secs(180);
    let (mut admin_line, mut port_5001) = (None, None);
    while admin_line.is_none() || port_5001.is_none() {
        let line = run.next_line(deadline);
        if line.contains("admin API listening") {
            admin_line = Some(line.clone());
        }
        if line.contains("serving") && line.contains("port=5001") {
            port_5001 = field(&line, "addr=").and_then(|a| Some(a.rsplit_once(':')?.1.to_owned()));
        }
    }
    let line = admin_line.unwrap();
    let addr = field(&line, "addr=").expect("addr=");
    let cert = field(&line, "cert=").expect("cert=");
    let token_file = field(&line, "token_file=")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("var").join("admin.token"));
    let admin_token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    Switch {
        _run: run,
        port_5001: port_5001.unwrap(),
        https: Https::new(&addr, Path::new(&cert)),
        admin_token,
    }
}

/// A role and an API client of that name with `perms` (and `tenant`): the
/// client's token.
fn client_with(s: &Switch, name: &str, perms: &[Permission], tenant: Option<&str>) -> String {
    let names: Vec<&str> = perms.iter().map(|p| p.name()).collect();
    s.https.json(
        &s.admin_token,
        "POST",
        "/api/roles",
        serde_json::json!({ "name": name, "permissions": names }),
    );
    let doc = s.https.json(
        &s.admin_token,
        "POST",
        "/api/clients",
        serde_json::json!({ "name": name, "role": name, "tenant": tenant }),
    );
    doc["token"].as_str().unwrap().to_owned()
}

/// `path` with its parameters filled in: `{name}` → `name`, others → `id`.
fn fill(path: &str, name: &str, id: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(if &rest[start..=end] == "{name}" {
            name
        } else {
            id
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The first `"id"` of a JSON document (a tranlog row's).
fn find_id(doc: &serde_json::Value) -> Option<String> {
    match doc {
        serde_json::Value::Object(m) => m
            .get("id")
            .filter(|v| v.is_number())
            .map(ToString::to_string)
            .or_else(|| m.values().find_map(find_id)),
        serde_json::Value::Array(a) => a.iter().find_map(find_id),
        _ => None,
    }
}

fn slug(p: Permission) -> String {
    p.name().replace('.', "-")
}

fn body_for(route: &RouteSpec) -> &'static str {
    if route.method == "GET" { "" } else { "{}" }
}

#[test]
fn every_route_checks_its_permission() {
    let s = start("admin-authz-perms");
    let routes = all_routes();
    assert!(routes.len() > 20, "{} routes", routes.len());
    let mut with = std::collections::HashMap::new();
    let mut without = std::collections::HashMap::new();
    for &p in Permission::ALL {
        let others: Vec<Permission> = Permission::ALL
            .iter()
            .copied()
            .filter(|x| *x != p)
            .collect();
        with.insert(p, client_with(&s, &format!("only-{}", slug(p)), &[p], None));
        without.insert(
            p,
            client_with(&s, &format!("not-{}", slug(p)), &others, None),
        );
    }
    let mut failures = Vec::new();
    for route in &routes {
        let Some(p) = route.permission else { continue };
        let path = fill(route.path, "nosuch", "999999");
        let body = body_for(route);
        let denied = s.https.bearer(&without[&p], route.method, &path, body);
        if denied.status != 403 {
            failures.push(format!(
                "{} {path} without {}: {} {}",
                route.method,
                p.name(),
                denied.status,
                denied.body.chars().take(120).collect::<String>()
            ));
        }
        let allowed = s.https.bearer(&with[&p], route.method, &path, body);
        if allowed.status == 403 || allowed.status == 401 {
            failures.push(format!(
                "{} {path} with {}: {} {}",
                route.method,
                p.name(),
                allowed.status,
                allowed.body.chars().take(120).collect::<String>()
            ));
        }
        // No credentials: 401 for the API, the sign-in page otherwise.
        let anon = s.https.call(route.method, &path, &[], "");
        let ok = if path.starts_with("/api/") {
            anon.status == 401
        } else {
            anon.status == 303
                && anon
                    .headers
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|l| l.starts_with("/login?next="))
        };
        if !ok {
            failures.push(format!(
                "{} {path} anonymous: {}",
                route.method, anon.status
            ));
        }
    }
    let bad = s.https.bearer("sy_not_a_token", "GET", "/api/users", "");
    assert_eq!(bad.status, 401, "{}", bad.body);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn tenant_b_gets_nothing_of_tenant_a() {
    let s = start("admin-authz-tenants");
    let admin = s.admin_token.clone();
    s.https.json(
        &admin,
        "POST",
        "/api/users",
        serde_json::json!({"name": "alice-a", "password": "tenant a user 1", "role": "viewer", "tenant": "acme"}),
    );
    s.https.json(
        &admin,
        "POST",
        "/api/clients",
        serde_json::json!({"name": "ci-a", "role": "viewer", "tenant": "acme"}),
    );
    let b = s.https.json(
        &admin,
        "POST",
        "/api/clients",
        serde_json::json!({"name": "b-admin", "role": "admin", "tenant": "beta"}),
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A transaction of the listener's tenant (A for the tranlog routes).
    let (out, text) = common::switchyard(&["send", "--port", &s.port_5001, "--stan", "1"], None);
    assert!(out.status.success(), "{text}");
    let rows = s
        .https
        .json(&admin, "GET", "/api/tranlog", serde_json::Value::Null);
    let id = find_id(&rows).unwrap_or_else(|| panic!("no tranlog id in {rows}"));
    assert!(
        rows.to_string().contains("\"tenant\":\"default\""),
        "the transaction is tenant default's: {rows}"
    );
    let mut failures = Vec::new();
    for route in all_routes().iter().filter(|r| r.tenant_scoped) {
        let name = if route.path.contains("client") {
            "ci-a"
        } else {
            "alice-a"
        };
        let path = fill(route.path, name, &id);
        let body = if route.method == "GET" {
            String::new()
        } else {
            serde_json::json!({"name": "new-b", "password": "tenant b try 12", "role": "viewer", "tenant": "acme"}).to_string()
        };
        let a = s.https.bearer(&b, route.method, &path, &body);
        // A read answers 404 or nothing of tenant A; a change is refused
        // (an error may echo the name asked for, nothing more).
        let refused = (400..500).contains(&a.status) && a.status != 401;
        let leaked = ["alice-a", "ci-a", "acme", "\"tenant\":\"default\""]
            .iter()
            .any(|n| a.body.contains(n));
        // A change named by an identifier of A is refused; one without
        // (e.g. a key rotation) acts on B's own tenant and shows nothing of A.
        let nothing = if route.method == "GET" {
            a.status == 404 || (a.status == 200 && !leaked)
        } else if route.path.contains('{') {
            refused
        } else {
            refused || ((200..300).contains(&a.status) && !leaked)
        };
        if !nothing {
            failures.push(format!(
                "{} {path}: {} {}",
                route.method,
                a.status,
                a.body.chars().take(160).collect::<String>()
            ));
        }
    }
    // Tenant A's rows are still there for an untenanted administrator.
    let users = s
        .https
        .json(&admin, "GET", "/api/users", serde_json::Value::Null);
    assert!(users.to_string().contains("alice-a"), "{users}");
    let clients = s
        .https
        .json(&admin, "GET", "/api/clients", serde_json::Value::Null);
    let ci = clients["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ci-a")
        .unwrap();
    assert_eq!(ci["revoked"], false, "tenant B revoked tenant A's client");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_cookie_session_needs_its_csrf_token_and_ends_at_sign_out() {
    let s = start("admin-authz-csrf");
    s.https.json(
        &s.admin_token,
        "POST",
        "/api/users",
        serde_json::json!({"name": "carol", "password": "carol's pass 2026", "role": "security"}),
    );
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let wrong = s.https.call(
        "POST",
        "/login",
        &form,
        "name=carol&password=nope+nope+1&next=%2Fusers",
    );
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.headers.get("set-cookie").is_none());
    let login = s.https.call(
        "POST",
        "/login",
        &form,
        "name=carol&password=carol%27s+pass+2026&next=%2Fusers",
    );
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.headers["location"], "/users");
    let set = login.headers["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = s.https.call("GET", "/users", &[("cookie", &cookie)], "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("carol"));
    let marker = "name=\"csrf\" value=\"";
    let at = page.body.find(marker).expect("a csrf field") + marker.len();
    let csrf = page.body[at..at + 64].to_owned();

    let with_cookie = |extra: &[(&str, &str)], body: &str, path: &str| {
        let mut h = vec![("cookie", cookie.as_str()), form[0]];
        h.extend_from_slice(extra);
        s.https.call("POST", path, &h, body)
    };
    let unlock = "/users/carol/unlock";
    assert_eq!(with_cookie(&[], "", unlock).status, 403, "no token");
    assert_eq!(
        with_cookie(&[], "csrf=0000", unlock).status,
        403,
        "a wrong token"
    );
    assert_eq!(
        with_cookie(&[("x-csrf-token", "bad")], "", unlock).status,
        403
    );
    assert_eq!(
        with_cookie(&[], &format!("csrf={csrf}"), unlock).status,
        303
    );
    assert_eq!(
        with_cookie(&[("x-csrf-token", &csrf)], "", unlock).status,
        303
    );
    // The JSON API with the cookie needs the header too.
    let api = s.https.call(
        "POST",
        "/api/users/carol/unlock",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        "",
    );
    assert_eq!(api.status, 200, "{}", api.body);
    let api = s.https.call(
        "POST",
        "/api/users/carol/unlock",
        &[("cookie", &cookie)],
        "",
    );
    assert_eq!(api.status, 403, "{}", api.body);

    let out = with_cookie(&[], &format!("csrf={csrf}"), "/logout");
    assert_eq!(out.status, 303);
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = s.https.call("GET", "/users", &[("cookie", &cookie)], "");
    assert_eq!(after.status, 303);
    assert_eq!(after.headers["location"], "/login?next=/users");
    let api = s
        .https
        .call("GET", "/api/users", &[("cookie", &cookie)], "");
    assert_eq!(api.status, 401, "{}", api.body);
}

#[test]
fn a_forced_password_change_comes_before_everything_else() {
    let s = start("admin-authz-gate");
    s.https.json(
        &s.admin_token,
        "POST",
        "/api/users",
        serde_json::json!({"name": "dave", "password": "temporary pass 1", "role": "viewer", "must_change": true}),
    );
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let login = s.https.call(
        "POST",
        "/login",
        &form,
        "name=dave&password=temporary+pass+1&next=%2Fusers",
    );
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.headers["location"], "/password");
    let cookie = login.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // Everything else is out of reach until the change.
    let page = s.https.call("GET", "/users", &[("cookie", &cookie)], "");
    assert_eq!(page.status, 303);
    assert_eq!(page.headers["location"], "/password");
    let api = s
        .https
        .call("GET", "/api/health", &[("cookie", &cookie)], "");
    assert_eq!(api.status, 401, "{}", api.body);
    let pw = s.https.call("GET", "/password", &[("cookie", &cookie)], "");
    assert_eq!(pw.status, 200, "{}", pw.body);
    let marker = "name=\"csrf\" value=\"";
    let at = pw.body.find(marker).expect("a csrf field") + marker.len();
    let csrf = pw.body[at..at + 64].to_owned();
    let h = [("cookie", cookie.as_str()), form[0]];
    let short = s.https.call(
        "POST",
        "/password",
        &h,
        &format!("csrf={csrf}&current=temporary+pass+1&new=short&repeat=short"),
    );
    assert_eq!(short.status, 400);
    assert!(
        short.body.contains("at least 12 characters"),
        "{}",
        short.body
    );
    let same = s.https.call(
        "POST",
        "/password",
        &h,
        &format!(
            "csrf={csrf}&current=temporary+pass+1&new=temporary+pass+1&repeat=temporary+pass+1"
        ),
    );
    assert_eq!(same.status, 400);
    assert!(same.body.contains("not one of the last 4"), "{}", same.body);
    let ok = s.https.call(
        "POST",
        "/password",
        &h,
        &format!("csrf={csrf}&current=temporary+pass+1&new=dave%27s+own+pass+9&repeat=dave%27s+own+pass+9"),
    );
    assert_eq!(ok.status, 303, "{}", ok.body);
    let api = s
        .https
        .call("GET", "/api/health", &[("cookie", &cookie)], "");
    assert_eq!(api.status, 200, "{}", api.body);
    // A viewer has no users.view: 403, not a redirect.
    let page = s.https.call("GET", "/users", &[("cookie", &cookie)], "");
    assert_eq!(page.status, 403);
}
