//! Helpers shared by the tests that drive the real `switchyard` binary:
//! a config on free ports, `run` with its log on a channel, one-shot
//! commands.

#![allow(dead_code)] // each test binary uses its own share of these

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// The default config with every listener and simulator on free ports,
/// the admin API on `admin_bind`, state in `var` beside the config file and
/// the plugin cache shared by the tests.
pub fn free_ports_config(admin_bind: &str) -> String {
    let cache = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    switchyard::config::DEFAULT_CONFIG
        .replace(
            "data_dir = \"var\"",
            &format!(
                "cache_dir = {:?}\ndata_dir = \"var\"",
                cache.display().to_string()
            ),
        )
        .replace("port = 5001 ", "port = 5001\nbind = \"127.0.0.1:0\" ")
        .replace("port = 5002\n", "port = 5002\nbind = \"127.0.0.1:0\"\n")
        .replace("port = 5003\n", "port = 5003\nbind = \"127.0.0.1:0\"\n")
        .replace("port = 5005\n", "port = 5005\nbind = \"127.0.0.1:0\"\n")
        .replace("address = \"127.0.0.1:7002\"", "address = \"127.0.0.1:0\"")
        .replace("address = \"127.0.0.1:7005\"", "address = \"127.0.0.1:0\"")
        .replace(
            "bind = \"127.0.0.1:5080\"",
            &format!("bind = {admin_bind:?}"),
        )
}

/// `switchyard run --config FILE` (log level info, text log lines as on a
/// terminal, no colour); its log lines, ANSI escapes removed, arrive on the
/// channel.
pub fn spawn_run(config: &Path) -> (Child, mpsc::Receiver<String>) {
    spawn_run_with(
        config,
        &[("RUST_LOG", "info"), ("SWITCHYARD_LOG_FORMAT", "text")],
        &[],
    )
}

/// `switchyard [ARGS] run --config FILE` with `env` set (and `NO_COLOR`);
/// with no `SWITCHYARD_LOG_FORMAT` in `env` its log is JSON lines, stderr
/// being a pipe. The lines arrive on the channel as [`spawn_run`]'s do.
pub fn spawn_run_with(
    config: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (Child, mpsc::Receiver<String>) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .args(["run", "--config"])
        .arg(config)
        .env_remove("SWITCHYARD_LOG_FORMAT")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(strip_ansi(&line)).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Stops a running switch with SIGTERM, asserts it exited 0, and keeps the
/// rest of its log in `lines` (until the log ends; at most 30 s).
pub fn stop_clean(mut child: Child, log: &mpsc::Receiver<String>, lines: &mut Vec<String>) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap();
    assert!(code.success(), "exit status {code:?}");
    // The reader thread ends at EOF; bounded in time all the same.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        match log.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(line) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
}

/// The addresses of the listeners configured on `ports` (in that order),
/// from the `serving … port=P … addr=A` lines of a starting switch's log;
/// every line read is kept in `lines`. Panics with the log after 120 s.
pub fn listener_addrs(
    log: &mpsc::Receiver<String>,
    lines: &mut Vec<String>,
    ports: &[u16],
) -> Vec<std::net::SocketAddr> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut found = vec![None; ports.len()];
    while std::time::Instant::now() < deadline && found.iter().any(Option::is_none) {
        let line = match log.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            // The switch exited: no listener will ever be logged.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        lines.push(line.clone());
        if !line.contains("serving") {
            continue;
        }
        let addr = field(&line, "addr=").and_then(|a| a.parse().ok());
        let port = field(&line, "port=").and_then(|p| p.parse::<u16>().ok());
        if let Some(i) = ports.iter().position(|p| Some(*p) == port) {
            found[i] = addr;
        }
    }
    match found.into_iter().collect::<Option<Vec<_>>>() {
        Some(addrs) => addrs,
        None => panic!("listeners {ports:?} never logged; log: {lines:#?}"),
    }
}

/// The value after `key` (e.g. `addr=`) in a log line, quotes trimmed; in a
/// JSON log line, the value of the field `key` names (`addr`), as text.
pub fn field(line: &str, key: &str) -> Option<String> {
    if line.starts_with('{')
        && let Ok(doc) = serde_json::from_str::<serde_json::Value>(line)
    {
        return json_field(&doc, key.trim_end_matches('='));
    }
    let start = line.find(key)? + key.len();
    Some(
        line[start..]
            .split_whitespace()
            .next()?
            .trim_matches('"')
            .to_owned(),
    )
}

/// Field `name` of a JSON log line: the event's own fields first, then its
/// span's; strings as they are, other values as JSON text.
pub fn json_field(doc: &serde_json::Value, name: &str) -> Option<String> {
    [&doc["fields"], doc, &doc["span"]]
        .into_iter()
        .find_map(|scope| scope.get(name))
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
}

/// Runs the binary with `args` (in `dir` if given, no colour): its status
/// and its stdout followed by its stderr.
pub fn switchyard(args: &[&str], dir: Option<&Path>) -> (Output, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("NO_COLOR", "1");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

/// A `switchyard run` child and the stderr lines it wrote so far (kept);
/// killed when dropped.
pub struct RunLog {
    child: Child,
    log: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl RunLog {
    /// `switchyard run --config config`.
    pub fn spawn(config: &Path) -> RunLog {
        let (child, log) = spawn_run(config);
        RunLog {
            child,
            log,
            lines: Vec::new(),
        }
    }

    /// The next line (kept too); panics when none comes by `deadline`.
    pub fn next_line(&mut self, deadline: std::time::Instant) -> String {
        let line = self
            .log
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the switch did not start");
        self.lines.push(line.clone());
        line
    }

    /// Every line so far.
    pub fn drain(&mut self) -> &[String] {
        self.lines.extend(self.log.try_iter());
        &self.lines
    }

    /// Waits (at most `limit`) until `done` holds for the lines so far.
    pub fn wait_log(
        &mut self,
        limit: std::time::Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if done(self.drain()) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Lines so far that contain `needle`.
    pub fn count(&mut self, needle: &str) -> usize {
        self.drain().iter().filter(|l| l.contains(needle)).count()
    }
}

impl Drop for RunLog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /api{path}` (HTTPS, the certificate pinned, the CLI's token) of
/// the switch whose "admin API listening" log line is `line`: the status
/// and the body.
pub fn admin_get(line: &str, path: &str) -> (u16, String) {
    admin_call(line, "GET", path, "")
}

/// `METHOD /api{path}` with `body` (HTTPS, the certificate pinned, the
/// CLI's token) of the switch whose "admin API listening" log line is
/// `line`: the status and the body.
pub fn admin_call(line: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let addr = field(line, "addr=").expect("addr= in the admin line");
    let token_file = field(line, "token_file=").expect("token_file= in the admin line");
    let cert = field(line, "cert=").expect("cert= in the admin line");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let client = switchyard::admin::client::AdminClient::new(
        &format!("https://{addr}"),
        token,
        token_file,
        Path::new(&cert),
    )
    .unwrap();
    let (path, body) = (path.to_owned(), bytes::Bytes::from(body.to_owned()));
    let method = hyper::Method::from_bytes(method.as_bytes()).unwrap();
    // On a thread of its own: callers may be inside a runtime already.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (status, body) = rt
            .block_on(client.request(method, &path, body, None))
            .unwrap();
        (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
    })
    .join()
    .unwrap()
}

// ── Shared by the kill tests (crash.rs, two_nodes.rs) ──────────────────────

/// The test PAN (never printed: assertions name what leaked, not the value).
pub const TEST_PAN: &str = "4761739001010119";

/// A fresh directory `CARGO_TARGET_TMPDIR/group/name-PID`.
pub fn test_dir(group: &str, name: &str) -> std::path::PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(group)
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The default config (listeners and admin on free ports) with every
/// endpoint at `endpoint` (no simulator) and state in `data`, then each
/// `(from, to)` of `edits` replaced in its text; written beside `data`
/// (`data.toml`), whose path it returns.
pub fn fake_endpoint_config(
    data: &Path,
    endpoint: std::net::SocketAddr,
    edits: &[(&str, &str)],
) -> std::path::PathBuf {
    let mut text = free_ports_config("127.0.0.1:0")
        .replace(
            "data_dir = \"var\"",
            &format!("data_dir = {:?}", data.display().to_string()),
        )
        .replace(
            "address = \"127.0.0.1:0\"",
            &format!("address = \"{endpoint}\""),
        )
        .replace("simulator = true", "simulator = false");
    for (from, to) in edits {
        assert!(text.contains(from), "the config has no {from:?}");
        text = text.replace(from, to);
    }
    let path = data.with_extension("toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A 0200 with the test PAN, STAN `stan`, amount 10.00 + `stan` minor
/// units and RRN `RRN` + `stan`.
pub fn fin(stan: u32) -> switchyard::client::RequestSpec {
    let mut r =
        switchyard::client::RequestSpec::financial("0200", TEST_PAN, 1_000 + u64::from(stan), stan);
    r.fields.push((37, format!("RRN{stan:09}")));
    r
}

/// Sends `originals` 0200s (STANs from `base`) over `connections`
/// connections, `originals / connections` each, connection `c` to
/// `addrs[c % addrs.len()]`, without waiting for their answers; returns
/// how many were written and the connections (kept open).
pub async fn send_originals(
    addrs: &[std::net::SocketAddr],
    base: u32,
    originals: u32,
    connections: u32,
) -> (u32, Vec<switchyard::client::Connection>) {
    let per = originals / connections;
    let mut conns = Vec::new();
    let mut sent = 0;
    for c in 0..connections {
        let addr = addrs[c as usize % addrs.len()];
        let mut conn = switchyard::client::Connection::connect(addr).await.unwrap();
        for i in 0..per {
            if conn
                .send(&fin(base + c * per + i).build().unwrap())
                .await
                .is_ok()
            {
                sent += 1;
            }
        }
        conns.push(conn);
    }
    (sent, conns)
}

/// `tranlog search --json --config CONFIG` (at most 10000 rows; on a
/// stopped switch's data directory): the originals' rows.
pub fn tranlog_originals(config: &Path) -> Vec<serde_json::Value> {
    let (out, text) = switchyard(
        &[
            "tranlog",
            "search",
            "--limit",
            "10000",
            "--json",
            "--config",
            config.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "tranlog search: {text}");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter()
        .filter(|r| r["kind"] == "original")
        .collect()
}

/// [`tranlog_originals`]: state by STAN.
pub fn states(config: &Path) -> std::collections::BTreeMap<String, String> {
    tranlog_originals(config)
        .iter()
        .map(|r| {
            (
                r["stan"].as_str().unwrap().to_owned(),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A message's STAN (DE11; empty when it has none).
pub fn stan(m: &switchyard_iso8583::Message) -> String {
    m.get_str(11).unwrap_or("").to_owned()
}

/// Whether a message is a reversal (04x0/04x1: MTI 042x).
pub fn is_reversal(m: &switchyard_iso8583::Message) -> bool {
    m.mti().as_str().starts_with("042")
}

/// SIGTERM (graceful stop) and wait for the exit (status 0; at most 30 s).
pub fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "graceful stop: {status}");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the switch did not stop within 30 s of SIGTERM");
}

impl RunLog {
    /// `switchyard run --config config` and the address of its listener
    /// on `port` (from its log; at most 120 s, else a panic with the log,
    /// the child killed).
    pub fn spawn_serving(config: &Path, port: u16) -> (RunLog, std::net::SocketAddr) {
        let mut run = RunLog::spawn(config);
        let addr = listener_addrs(&run.log, &mut run.lines, &[port])[0];
        (run, addr)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM: [`terminate`]; then the rest of its log (until it ends; at
    /// most 10 s).
    pub fn terminate(&mut self) {
        terminate(&mut self.child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            match self.log.recv_timeout(std::time::Duration::from_millis(200)) {
                Ok(line) => self.lines.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    /// Waits (at most `limit`) for the child to exit on its own: its
    /// status, its log read to the end; `None` when it still runs.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            self.drain();
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            match self.log.recv_timeout(std::time::Duration::from_millis(200)) {
                Ok(line) => self.lines.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        Some(status)
    }
}

// ── PostgreSQL (issue 12) ──────────────────────────────────────────────────

/// The server the PostgreSQL tests may create databases on
/// (`SWITCHYARD_TEST_PG`, e.g. `postgres://postgres@127.0.0.1:PORT/postgres`,
/// as `scripts/pg-server start` prints). Unset: `None`, after printing
/// "skipped: SWITCHYARD_TEST_PG not set" — unless
/// `SWITCHYARD_PG_TESTS=required` (as `scripts/test` sets), when it panics.
pub fn pg_base_url() -> Option<String> {
    match std::env::var("SWITCHYARD_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            if std::env::var("SWITCHYARD_PG_TESTS").as_deref() == Ok("required") {
                panic!(
                    "SWITCHYARD_PG_TESTS=required but SWITCHYARD_TEST_PG is not set: \
                     point it at a PostgreSQL server where tests may CREATE DATABASE \
                     (scripts/pg-server start DIR prints one's URL)"
                );
            }
            eprintln!("skipped: SWITCHYARD_TEST_PG not set");
            None
        }
    }
}

/// A new, empty database `sy_<name>_<pid>` on [`pg_base_url`]'s server
/// (dropped first if it exists; `name` lowercased, anything but letters,
/// digits and `_` made `_`), made with `psql`: its URL. `None` where
/// [`pg_base_url`] is.
pub fn fresh_pg_database(name: &str) -> Option<String> {
    let base = pg_base_url()?;
    let clean: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    let pid = std::process::id().to_string();
    // PostgreSQL truncates identifiers to 63 bytes: keep the pid.
    let room = 63 - "sy__".len() - pid.len();
    let db = format!("sy_{}_{pid}", &clean[..clean.len().min(room)]);
    let psql = if Path::new("/usr/bin/psql").exists() {
        "/usr/bin/psql"
    } else {
        "psql"
    };
    let out = Command::new(psql)
        .arg(&base)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
        .arg("-c")
        .arg(format!("CREATE DATABASE \"{db}\""))
        .output()
        .unwrap_or_else(|e| panic!("running {psql}: {e}"));
    assert!(
        out.status.success(),
        "{psql}: creating database {db} on SWITCHYARD_TEST_PG: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(with_database(&base, &db))
}

/// `url` (`postgres://…/DB[?…]`) naming database `db` instead.
fn with_database(url: &str, db: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let authority_at = main.find("://").map_or(0, |i| i + 3);
    let root = match main[authority_at..].find('/') {
        Some(i) => &main[..authority_at + i],
        None => main,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

/// `pg_dump` of database `url` (plain SQL, `bytea` as hex) into `file`,
/// for [`fake_endpoint::assert_no_card_data`]-style checks of what rests in
/// PostgreSQL.
pub fn pg_dump(url: &str, file: &Path) {
    let pg_dump = if Path::new("/usr/bin/pg_dump").exists() {
        "/usr/bin/pg_dump"
    } else {
        "pg_dump"
    };
    let out = Command::new(pg_dump)
        .args(["--no-owner", "--no-privileges", "--file"])
        .arg(file)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("running {pg_dump}: {e}"));
    assert!(
        out.status.success(),
        "{pg_dump}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ── Shared by the tests of several nodes on one database ──────────────────

/// A directory of mode 0700 (and its missing parents).
pub fn private_dir(dir: &Path) {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .unwrap();
}

/// Copies the first node's KEK into `to`'s data directory (`keys/` mode
/// 0700, the file 0600): every node on the database needs the same one.
pub fn share_kek(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    use std::time::{Duration, Instant};
    let src = from.join("keys").join("kek.key");
    let until = Instant::now() + Duration::from_secs(10);
    while !src.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(src.exists(), "{} was not created", src.display());
    let keys = to.join("keys");
    private_dir(&keys);
    let dst = keys.join("kek.key");
    std::fs::copy(&src, &dst).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// One answer of [`https_call`]: status, headers (names lower case), body.
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `METHOD path` with `headers` and `body` over HTTPS to the admin server
/// whose "admin API listening" log line is `line` (its certificate
/// pinned, no credentials but the headers given).
pub fn https_call(
    line: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    use http_body_util::BodyExt as _;
    let addr = field(line, "addr=").expect("addr= in the admin line");
    let cert = field(line, "cert=").expect("cert= in the admin line");
    let mut roots = rustls::RootCertStore::empty();
    for c in switchyard_admin::tls::read_certs(Path::new(&cert)).unwrap() {
        roots.add(c).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", &addr);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    let what = format!("{method} {path}");
    // On a thread of its own: callers may be inside a runtime already.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let exchange = async {
                let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
                let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                let tls = connector.connect(name, tcp).await.unwrap();
                let io = hyper_util::rt::TokioIo::new(tls);
                let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                let driver = tokio::spawn(conn);
                let res = sender.send_request(req).await.unwrap();
                let status = res.status().as_u16();
                let headers = res
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                driver.abort();
                Answer {
                    status,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                }
            };
            tokio::time::timeout(std::time::Duration::from_secs(60), exchange)
                .await
                .unwrap_or_else(|_| panic!("{what}: no answer in 60 s"))
        })
    })
    .join()
    .unwrap()
}
