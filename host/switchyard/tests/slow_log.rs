//! Cheap default logging (issue 10, item 4): at the default INFO level the
//! profiler line is written for declines and slow transactions only, an
//! approved fast one logs nothing; `[log] every_transaction = true` logs every
//! one; every transaction's trace is in its tranlog row (`tranlog search` /
//! `tranlog show`), names and microseconds only; `switchyard check` refuses
//! an out-of-range `slow_ms`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The default config on free ports with `[log]` set to `log` (the lines
/// of the section), in a fresh directory.
fn config(name: &str, log: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("slow-log")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = common::free_ports_config("127.0.0.1:0").replace(
        "[log]\nslow_ms = 100                # a transaction this slow (ms) gets the line; 0: every one\nevery_transaction = false    # true: one line per transaction\n",
        &format!("[log]\n{log}\n"),
    );
    assert!(
        text.contains(log),
        "the default config has no [log] section to replace"
    );
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Reads log lines until every port in `ports` is serving: its address.
fn serving(log: &mpsc::Receiver<String>, lines: &mut Vec<String>, ports: &[u16]) -> Vec<String> {
    let mut found: Vec<Option<String>> = vec![None; ports.len()];
    let deadline = Instant::now() + Duration::from_secs(120);
    while found.iter().any(Option::is_none) && Instant::now() < deadline {
        let Ok(line) = log.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        lines.push(line.clone());
        if line.contains("serving")
            && let Some(port) = common::field(&line, "port=").and_then(|p| p.parse::<u16>().ok())
            && let Some(i) = ports.iter().position(|&p| p == port)
        {
            found[i] = common::field(&line, "addr=");
        }
    }
    found
        .into_iter()
        .map(|a| a.unwrap_or_else(|| panic!("serving lines missing: {lines:#?}")))
        .collect()
}

/// Sends one 0200 of `amount` with `stan` to `addr`; asserts the result code.
fn send(addr: &str, amount: &str, stan: &str, rc: &str) {
    let port = addr.rsplit_once(':').unwrap().1;
    let (out, text) = common::switchyard(
        &["send", "--port", port, "--amount", amount, "--stan", stan],
        None,
    );
    assert!(
        text.contains(&format!("rc {rc}")),
        "{amount}: expected rc {rc}: {text} ({:?})",
        out.status
    );
}

fn stop(child: Child, log: &mpsc::Receiver<String>, lines: &mut Vec<String>) {
    common::stop_clean(child, log, lines);
}

/// `GET /api/metrics` of the switch whose admin API line is among `lines`.
fn metrics(lines: &[String]) -> String {
    let line = lines
        .iter()
        .find(|l| l.contains("admin API listening"))
        .unwrap_or_else(|| panic!("no admin API line: {lines:#?}"));
    let (status, body) = common::admin_get(line, "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample `name{listener="local"}` in `metrics`.
fn local(metrics: &str, name: &str) -> u64 {
    let prefix = format!("{name}{{listener=\"local\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix}in {metrics}"))
        .parse()
        .unwrap()
}

/// The profiler lines (JSON) of the transaction with `stan`.
fn profiler_lines(lines: &[String], stan: &str) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|d| {
            d.get("target").and_then(Value::as_str) == Some("switchyard::profiler")
                && d.get("stan").and_then(Value::as_str) == Some(stan)
        })
        .collect()
}

/// `switchyard tranlog search --stan STAN --json` on the stopped switch's
/// data directory: its one row.
fn row(config: &Path, stan: &str) -> Value {
    let config = config.to_str().unwrap();
    let (out, text) = common::switchyard(
        &[
            "tranlog", "search", "--stan", stan, "--json", "--config", config,
        ],
        None,
    );
    assert!(out.status.success(), "{text}");
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 1, "{text}");
    rows.into_iter().next().unwrap()
}

/// The compact trace of a row: steps and participants with µs.
fn trace(row: &Value) -> String {
    let trace = row["trace"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace: {row}"));
    for pair in trace.split(' ') {
        let (name, us) = pair
            .split_once('=')
            .unwrap_or_else(|| panic!("not name=µs: {pair:?} in {trace}"));
        assert!(!name.is_empty() && us.parse::<u64>().is_ok(), "{trace}");
    }
    assert!(trace.starts_with("parse-request="), "{trace}");
    assert!(trace.contains(" end="), "{trace}");
    // Names and numbers only: no card data.
    assert!(
        !trace.contains("4761739001010119") && !trace.contains("476173"),
        "{trace}"
    );
    trace.to_owned()
}

#[test]
fn by_default_only_declines_and_slow_transactions_log_and_every_row_keeps_its_trace() {
    // 200 ms: an approval that waits 250 ms at the endpoint (amount …77) is slow, a local
    // approval is not, even on a busy machine.
    let config = config("default", "slow_ms = 200\nevery_transaction = false");
    let (child, log) = common::spawn_run_with(&config, &[("RUST_LOG", "info")], &[]);
    let mut lines = Vec::new();
    let addrs = serving(&log, &mut lines, &[5001, 5002]);
    send(&addrs[0], "10.00", "100100", "00"); // warm-up, not asserted
    send(&addrs[0], "10.00", "100101", "00");
    send(&addrs[0], "6000.00", "100102", "61"); // over the local-auth limit
    send(&addrs[1], "10.77", "100103", "00"); // the simulator answers after 250 ms
    // The listener's write counters: 3 responses on 5001, one write each (one
    // connection per `send`, one request in flight).
    let m = metrics(&lines);
    assert_eq!(
        local(&m, "switchyard_listener_frames_written_total"),
        3,
        "{m}"
    );
    assert_eq!(local(&m, "switchyard_listener_writes_total"), 3, "{m}");
    assert!(
        m.contains("# TYPE switchyard_listener_writes counter"),
        "{m}"
    );
    stop(child, &log, &mut lines);

    assert!(
        profiler_lines(&lines, "100101").is_empty(),
        "an approved fast transaction logged a profiler line: {lines:#?}"
    );
    let declined = profiler_lines(&lines, "100102");
    assert_eq!(declined.len(), 1, "{lines:#?}");
    assert_eq!(declined[0]["rc"], "61");
    let message = declined[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("open [0.000/0.000] parse-request [") && message.contains(" end ["),
        "{message}"
    );
    let slow = profiler_lines(&lines, "100103");
    assert_eq!(slow.len(), 1, "{lines:#?}");
    assert_eq!(slow[0]["rc"], "00");
    assert!(slow[0]["message"].as_str().unwrap().contains(" external ["));

    // The tranlog keeps every trace, the unlogged approval's too.
    let approved = trace(&row(&config, "100101"));
    assert!(approved.contains(" local-auth="), "{approved}");
    assert!(!approved.contains("external="), "{approved}");
    let declined = trace(&row(&config, "100102"));
    assert!(declined.contains(" local-auth="), "{declined}");
    let switched = row(&config, "100103");
    let slow = trace(&switched);
    let external: u64 = slow
        .rsplit_once(" external=")
        .map(|(_, us)| us.parse().unwrap())
        .unwrap_or_else(|| panic!("no external time: {slow}"));
    assert!(external >= 250_000, "{slow}");
    // `tranlog show` prints it.
    let id = switched["id"].as_i64().unwrap().to_string();
    let config = config.to_str().unwrap();
    let (out, text) = common::switchyard(&["tranlog", "show", &id, "--config", config], None);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("trace (µs) {slow}")), "{text}");
}

#[test]
fn every_transaction_logs_each_one_and_check_bounds_slow_ms() {
    let config = config("every", "slow_ms = 100\nevery_transaction = true");
    let (child, log) = common::spawn_run_with(&config, &[("RUST_LOG", "info")], &[]);
    let mut lines = Vec::new();
    let addrs = serving(&log, &mut lines, &[5001]);
    send(&addrs[0], "10.00", "100201", "00");
    send(&addrs[0], "6000.00", "100202", "61");
    stop(child, &log, &mut lines);
    for stan in ["100201", "100202"] {
        assert_eq!(profiler_lines(&lines, stan).len(), 1, "{stan}: {lines:#?}");
    }

    let bad = config.with_file_name("bad.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("slow_ms = 100", "slow_ms = 3600001");
    std::fs::write(&bad, text).unwrap();
    let (out, text) = common::switchyard(&["check", "--config", bad.to_str().unwrap()], None);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("log.slow_ms"), "{text}");
}
