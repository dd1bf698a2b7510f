//! Logs an operator can ship (issue 9, item 8): JSON lines when stderr is not a terminal, each
//! transaction line with its tenant and listener (two tenants here, split as the README says);
//! `--log-format text` without colour; the README's way of silencing the profiler keeps the
//! other INFO lines.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn config(name: &str, text: String) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("logs")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The default config on free ports, listener `switched` (5002) in tenant `acme`, one
/// profiler line per transaction.
fn two_tenants() -> String {
    let text = common::free_ports_config("127.0.0.1:0")
        .replace("every_transaction = false", "every_transaction = true");
    let at = text.find("name = \"switched\"").expect("listener switched");
    let (head, tail) = text.split_at(at);
    format!(
        "{head}{}",
        tail.replacen("tenant = \"default\"", "tenant = \"acme\"", 1)
    )
}

/// Reads log lines until `port`s serving lines are all there: their addresses by port.
fn serving(
    log: &mpsc::Receiver<String>,
    lines: &mut Vec<String>,
    ports: &[u16],
) -> BTreeMap<u16, String> {
    let mut found = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while found.len() < ports.len() && Instant::now() < deadline {
        let Ok(line) = log.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        lines.push(line.clone());
        if line.contains("serving")
            && let Some(port) = common::field(&line, "port=").and_then(|p| p.parse().ok())
            && ports.contains(&port)
        {
            found.insert(port, common::field(&line, "addr=").unwrap());
        }
    }
    assert_eq!(
        found.len(),
        ports.len(),
        "serving lines missing: {lines:#?}"
    );
    found
}

fn send(addr: &str, amount: &str) {
    let port = addr.rsplit_once(':').unwrap().1;
    let (out, text) = common::switchyard(&["send", "--port", port, "--amount", amount], None);
    assert!(out.status.success() && text.contains("rc 00"), "{text}");
}

fn stop(child: Child, log: &mpsc::Receiver<String>, lines: &mut Vec<String>) {
    common::stop_clean(child, log, lines);
}

/// The event's field `name` (top level, as `--log-format json` writes them).
fn text<'a>(doc: &'a Value, name: &str) -> Option<&'a str> {
    doc.get(name).and_then(Value::as_str)
}

#[test]
fn piped_stderr_is_json_lines_with_tenant_and_listener_on_every_transaction_line() {
    let config = config("json", two_tenants());
    let (child, log) = common::spawn_run_with(&config, &[("RUST_LOG", "info")], &[]);
    let mut lines = Vec::new();
    let addrs = serving(&log, &mut lines, &[5001, 5002]);
    for amount in ["10.00", "20.00", "30.00"] {
        send(&addrs[&5001], amount);
        send(&addrs[&5002], amount);
    }
    stop(child, &log, &mut lines);

    let mut per_tenant: BTreeMap<String, usize> = BTreeMap::new();
    let mut listeners = BTreeSet::new();
    let mut transaction_lines = 0;
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "ANSI escape in {line:?}");
        let doc: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(doc.get(key).is_some(), "no {key}: {line}");
        }
        // A transaction line: it names the request (STAN or MTI) or is the profiler's.
        let per_transaction = doc.get("stan").is_some()
            || doc.get("mti").is_some()
            || text(&doc, "target") == Some("switchyard::profiler");
        if !per_transaction {
            continue;
        }
        transaction_lines += 1;
        let tenant = text(&doc, "tenant").unwrap_or_else(|| panic!("no tenant: {line}"));
        let listener = text(&doc, "listener").unwrap_or_else(|| panic!("no listener: {line}"));
        *per_tenant.entry(tenant.to_owned()).or_default() += 1;
        listeners.insert((tenant.to_owned(), listener.to_owned()));
    }
    let profiler = |tenant: &str| {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|d| {
                text(d, "target") == Some("switchyard::profiler")
                    && text(d, "tenant") == Some(tenant)
            })
            .count()
    };
    println!(
        "{} lines, all JSON; {transaction_lines} transaction lines, by tenant {per_tenant:?}",
        lines.len()
    );
    assert_eq!(profiler("default"), 3, "{lines:#?}");
    assert_eq!(profiler("acme"), 3, "{lines:#?}");
    assert!(
        listeners.contains(&("default".into(), "local".into())),
        "{listeners:?}"
    );
    assert!(
        listeners.contains(&("acme".into(), "switched".into())),
        "{listeners:?}"
    );
}

#[test]
fn text_format_has_no_colour_when_stderr_is_not_a_terminal() {
    let text = common::free_ports_config("127.0.0.1:0")
        .replace("every_transaction = false", "every_transaction = true");
    let config = config("text", text);
    // No NO_COLOR: the pipe alone turns colour off.
    let mut child = Command::new(common::BIN)
        .args(["--log-format", "text", "run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("SWITCHYARD_LOG_FORMAT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, log) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let addrs = serving(&log, &mut lines, &[5001]);
    send(&addrs[&5001], "10.00");
    stop(child, &log, &mut lines);
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "ANSI escape in {line:?}");
        assert!(!line.starts_with('{'), "JSON in text mode: {line}");
    }
    let trace = lines
        .iter()
        .find(|l| l.contains("open ["))
        .expect("a profiler line");
    assert!(
        trace.contains("tenant=default") && trace.contains("listener=local"),
        "{trace}"
    );
}

#[test]
fn the_readme_way_to_silence_the_profiler_keeps_the_other_info_lines() {
    let readme = include_str!("../../../README.md");
    let filter = readme
        .split(['`', ' ', '\n'])
        .find(|w| w.starts_with("RUST_LOG=") && w.contains(",switchyard::profiler=off"))
        .expect("the README shows how to silence the profiler")
        .strip_prefix("RUST_LOG=")
        .unwrap()
        .to_owned();
    let config = config("profiler-off", common::free_ports_config("127.0.0.1:0"));
    let (child, log) = common::spawn_run_with(&config, &[("RUST_LOG", &filter)], &[]);
    let mut lines = Vec::new();
    let addrs = serving(&log, &mut lines, &[5001]);
    send(&addrs[&5001], "10.00");
    stop(child, &log, &mut lines);
    let docs: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        docs.iter()
            .all(|d| text(d, "target") != Some("switchyard::profiler"))
    );
    assert!(
        docs.iter().any(|d| text(d, "message") == Some("stopped")),
        "{lines:#?}"
    );
    assert!(docs.iter().all(|d| text(d, "level") != Some("DEBUG")));
    println!("RUST_LOG={filter}: {} lines, no profiler line", lines.len());
}
