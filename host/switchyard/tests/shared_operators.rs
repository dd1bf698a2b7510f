//! The operator plane of several nodes on one PostgreSQL database (issue
//! 12, item 5), with the real binary: two `switchyard run` nodes (their
//! own data directories, only the KEK copied) share users, sessions, API
//! clients, the audit trail and the webhook outbox.
//!
//! - a user added through node A's API is listed by node B;
//! - a session signed in on node A is valid on node B (its cookie and
//!   CSRF token), and signing out on B ends it on A;
//! - failed sign-ins on both nodes count towards one lockout;
//! - that lockout's `user.locked_out` webhook reaches the receiver once,
//!   though both nodes run a dispatcher subscribed to it;
//! - the audit trail is one chain: node B lists node A's rows, and
//!   `admin audit verify` passes with either node's config;
//! - each node's CLI token still works (API clients `cli@node-a`,
//!   `cli@node-b`).
//!
//! Needs `SWITCHYARD_TEST_PG`; skipped without it unless
//! `SWITCHYARD_PG_TESTS=required`.

mod common;

#[path = "../../../tests/support/fake_endpoint.rs"]
mod fake_endpoint;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{RunLog, admin_call, https_call, private_dir, share_kek};
use fake_endpoint::{FakeEndpoint, Reply};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// One POST the receiver got: its `webhook-id` and its body.
type Got = (String, String);

/// A webhook receiver on loopback: answers 200 to every POST and keeps
/// each one's `webhook-id` and body, until dropped.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(one) = serve_one(stream) {
                            g.lock().unwrap().push(one);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Receiver {
            addr,
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (headers, then `content-length` bytes), answers 200.
fn serve_one(stream: std::net::TcpStream) -> Option<Got> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let (mut id, mut length) = (String::new(), 0usize);
    for _ in 0..100 {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "webhook-id" => id = value.trim().to_owned(),
                "content-length" => length = value.trim().parse().ok()?,
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .ok()?;
    Some((id, String::from_utf8_lossy(&body).into_owned()))
}

/// Node `node`'s config: state in `data`, the store on `db`, a webhook
/// subscription of `user.locked_out` to `receiver`.
fn node_config(
    data: &Path,
    endpoint: SocketAddr,
    node: &str,
    db: &str,
    receiver: SocketAddr,
) -> PathBuf {
    let node_id = format!("node_id = \"{node}\"");
    let store = format!("[store]\nurl = {db:?}\n");
    let path = common::fake_endpoint_config(
        data,
        endpoint,
        &[("node_id = \"node-1\"", &node_id), ("[store]\n", &store)],
    );
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[[admin.webhooks]]\nname = \"client\"\nurl = \"http://{receiver}/hook\"\nsecret = \"{SECRET}\"\nevents = [\"user.locked_out\"]\n"
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// A running node and its "admin API listening" log line.
struct Node {
    run: RunLog,
    admin: String,
}

fn start_node(config: &Path) -> Node {
    let (mut run, _) = RunLog::spawn_serving(config, 5002);
    let is_admin = |l: &String| l.contains("admin API listening");
    let logged = run.wait_log(Duration::from_secs(30), |ls| ls.iter().any(is_admin));
    assert!(logged, "no admin API line; log: {:#?}", run.drain());
    let admin = run.drain().iter().find(|l| is_admin(l)).unwrap().clone();
    Node { run, admin }
}

/// Signs in on `node` as `name`: the answer.
fn login(node: &Node, name: &str, password: &str) -> common::Answer {
    let body = format!(
        "name={name}&password={}&next=%2Fusers",
        password.replace(' ', "+")
    );
    https_call(&node.admin, "POST", "/login", &[FORM], &body)
}

/// `POST /api{path}` of JSON `body` with `node`'s CLI token.
fn post_json(node: &Node, path: &str, body: &serde_json::Value) -> common::Answer {
    let token_file = common::field(&node.admin, "token_file=").expect("token_file=");
    let token = std::fs::read_to_string(token_file).unwrap();
    let auth = format!("Bearer {}", token.trim());
    https_call(
        &node.admin,
        "POST",
        &format!("/api{path}"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        &body.to_string(),
    )
}

fn add_user(node: &Node, name: &str, password: &str) {
    let body = serde_json::json!({"name": name, "password": password, "role": "security"});
    let a = post_json(node, "/users", &body);
    assert!(
        (200..300).contains(&a.status),
        "adding {name}: {} {}",
        a.status,
        a.body
    );
}

fn user_names(node: &Node) -> Vec<String> {
    let (status, body) = admin_call(&node.admin, "GET", "/users", "");
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    doc["users"]
        .as_array()
        .unwrap_or_else(|| panic!("{doc}"))
        .iter()
        .filter_map(|u| u["name"].as_str().map(str::to_owned))
        .collect()
}

/// The session of a `303` sign-in: its cookie and CSRF token (read from
/// the page it leads to, on `node`).
fn session_of(signed_in: &common::Answer, node: &Node) -> (String, String) {
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let cookie = signed_in
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let page = https_call(&node.admin, "GET", "/users", &[("cookie", &cookie)], "");
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries the CSRF token")
        .to_owned();
    (cookie, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_sessions_audit_and_webhooks_work_from_either_node() {
    let Some(db) = common::fresh_pg_database("shared_operators") else {
        return;
    };
    let fake = FakeEndpoint::start(Box::new(|_, _| Reply::Code("00"))).await;
    let receiver = Receiver::start();
    let root = common::test_dir("shared-operators", "two-nodes");
    let (data_a, data_b) = (root.join("a"), root.join("b"));
    private_dir(&data_a);
    let cfg_a = node_config(&data_a, fake.addr, "node-a", &db, receiver.addr);
    let cfg_b = node_config(&data_b, fake.addr, "node-b", &db, receiver.addr);
    let mut a = start_node(&cfg_a);
    share_kek(&data_a, &data_b);
    let mut b = start_node(&cfg_b);

    // Users: added on A, listed by B; each node's CLI token works.
    add_user(&a, "dora", "dora's pass 2026");
    add_user(&b, "erin", "erin's pass 2026");
    for node in [&a, &b] {
        let names = user_names(node);
        assert!(
            names.contains(&"dora".into()) && names.contains(&"erin".into()),
            "{names:?}"
        );
    }

    // A session made on A is valid on B, with its CSRF token; signing out
    // on B ends it on A.
    let (cookie, csrf) = session_of(&login(&a, "dora", "dora's pass 2026"), &b);
    let on_a = https_call(&a.admin, "GET", "/users", &[("cookie", &cookie)], "");
    assert_eq!(on_a.status, 200, "{}", on_a.body);
    let out = https_call(
        &b.admin,
        "POST",
        "/logout",
        &[FORM, ("cookie", &cookie)],
        &format!("csrf={csrf}"),
    );
    assert!(
        out.status < 400,
        "sign-out on B: {} {}",
        out.status,
        out.body
    );
    let after = https_call(&a.admin, "GET", "/api/users", &[("cookie", &cookie)], "");
    assert_eq!(
        after.status, 401,
        "the session ended on every node: {}",
        after.body
    );

    // Ten failed sign-ins, alternating nodes, lock erin (the default
    // policy's limit), and the right password is refused then.
    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        let r = login(node, "erin", "wrong password 9");
        assert_eq!(r.status, 401, "attempt {i}: {}", r.body);
    }
    let locked = login(&a, "erin", "erin's pass 2026");
    assert_ne!(locked.status, 303, "erin is locked on every node");
    let locked = login(&b, "erin", "erin's pass 2026");
    assert_ne!(locked.status, 303, "erin is locked on every node");

    // The lockout's webhook: delivered once, though both nodes dispatch.
    let until = Instant::now() + Duration::from_secs(30);
    while receiver.got().is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Both dispatchers poll every second: three more rounds each.
    std::thread::sleep(Duration::from_secs(3));
    let got = receiver.got();
    assert_eq!(got.len(), 1, "one POST for one event: {got:?}");
    let body: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(body["type"], "user.locked_out");
    assert_eq!(body["data"]["user"], "erin");
    assert_eq!(body["data"]["failures"], 10);
    assert!(got[0].0.starts_with("msg_"), "{got:?}");
    let (status, deliveries) = admin_call(&b.admin, "GET", "/webhooks/deliveries", "");
    assert_eq!(status, 200, "{deliveries}");
    let deliveries: serde_json::Value = serde_json::from_str(&deliveries).unwrap();
    let rows = deliveries.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["state"], "delivered", "{rows:?}");

    // One audit chain: B lists what happened on A, and it verifies from
    // either node's config.
    let (status, audit) = admin_call(&b.admin, "GET", "/audit?limit=1000", "");
    assert_eq!(status, 200, "{audit}");
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let rows = audit.as_array().unwrap();
    let made = |user: &str, actor: &str| {
        rows.iter()
            .any(|r| r["event"] == "user.created" && r["resource"] == user && r["actor"] == actor)
    };
    assert!(
        made("dora", "cli@node-a") && made("erin", "cli@node-b"),
        "{rows:#?}"
    );
    assert!(
        rows.iter()
            .any(|r| r["event"] == "login" && r["actor"] == "dora"),
        "{rows:#?}"
    );
    for cfg in [&cfg_a, &cfg_b] {
        let (out, text) = common::switchyard(
            &[
                "admin",
                "audit",
                "verify",
                "--config",
                cfg.to_str().unwrap(),
            ],
            None,
        );
        assert!(out.status.success(), "audit verify: {text}");
    }

    a.run.terminate();
    b.run.terminate();
}
