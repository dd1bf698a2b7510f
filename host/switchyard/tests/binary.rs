//! The real `switchyard` binary: `run --config` serving over TCP until
//! SIGTERM (graceful, exit 0), `send` printing a masked response, `check`
//! rejecting a broken config with every problem named (the demo: in
//! `terminal.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use common::{BIN, free_ports_config, spawn_run};

fn state_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("binary-tests");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The default config with every address on a free port, one profiler
/// line per transaction.
fn config_file(name: &str) -> PathBuf {
    let text = free_ports_config("127.0.0.1:0")
        .replace("every_transaction = false", "every_transaction = true");
    let path = state_dir().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

struct Running {
    child: Child,
    addrs: Vec<(u16, String)>,
    log: mpsc::Receiver<String>,
}

fn start(config: &Path) -> Running {
    let (child, rx) = spawn_run(config);
    let mut addrs = Vec::new();
    while addrs.len() < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the switch logs its listeners");
        if line.contains("serving") {
            let port = field(&line, "port=").parse().unwrap();
            addrs.push((port, field(&line, "addr=")));
        }
    }
    Running {
        child,
        addrs,
        log: rx,
    }
}

fn field(line: &str, key: &str) -> String {
    common::field(line, key).unwrap()
}

fn send(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["send", "--port", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn run_serves_until_sigterm_and_send_prints_a_masked_response() {
    let mut sw = start(&config_file("run.toml"));
    let port_of = |configured: u16| -> u16 {
        let addr = &sw.addrs.iter().find(|(p, _)| *p == configured).unwrap().1;
        addr.rsplit_once(':').unwrap().1.parse().unwrap()
    };
    let (local, switched) = (port_of(5001), port_of(5002));

    let (ok, out) = send(local, &["--pan", "4761739001010119", "--amount", "25.00"]);
    assert!(ok, "{out}");
    assert!(out.contains("rc 00"), "{out}");
    assert!(out.contains("476173******0119"), "{out}");
    assert!(!out.contains("4761739001010119"), "full PAN printed: {out}");

    let (ok, out) = send(local, &["--amount", "6000.00"]);
    assert!(ok && out.contains("rc 61"), "{out}");
    let (ok, out) = send(switched, &["--amount", "100.51"]);
    assert!(ok && out.contains("rc 51"), "{out}");
    let (ok, out) = send(local, &["--mti", "0800"]);
    assert!(ok && out.contains("0810") && out.contains("rc 00"), "{out}");

    // SIGTERM: stop accepting, finish in flight, exit 0.
    let status = Command::new("kill")
        .args(["-TERM", &sw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = sw.child.wait().unwrap();
    assert!(code.success(), "exit status {code:?}");
    let log: Vec<String> = sw.log.try_iter().collect();
    assert!(
        log.iter().any(|l| l.contains("stopped")),
        "no shutdown line in {log:?}"
    );
    assert!(
        log.iter().all(|l| !l.contains("4761739001010119")),
        "full PAN in the log"
    );
    // The profiler trace of each transaction is in the log.
    assert!(
        log.iter()
            .any(|l| l.contains("open [0.000/0.000] parse-request [")),
        "no profiler trace in {log:?}"
    );
}

#[test]
fn check_reports_every_config_problem() {
    let path = state_dir().join("broken.toml");
    let text = switchyard::config::DEFAULT_CONFIG
        .replace(
            "pipeline = \"acquirer\"\nframing",
            "pipeline = \"nowhere\"\nframing",
        )
        .replace("plugin = \"local-auth\"", "plugin = \"local-auht\"")
        .replacen(
            "timeout_ms = 1000",
            "timeout_ms = 1000\ncolour = \"red\"",
            1,
        );
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "3 problem(s)",
        "listener[0].pipeline: pipeline \"nowhere\" is not defined",
        "participants.local-auth.plugin: plugin \"local-auht\" is not defined",
        "endpoints.xxx.colour: unknown key",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
}
