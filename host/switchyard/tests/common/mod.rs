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
        let Ok(line) = log.recv_timeout(std::time::Duration::from_secs(1)) else {
            continue;
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
