//! `switchyard load` against the real switch over TCP: closed and open
//! loop, `--json`, `--plot`, a listener of another spec and framing, and a
//! target that never answers or is not there.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, RunLog, field, free_ports_config};
use serde_json::Value;

/// A listener with another spec and framing than the default contract's.
const OTHER_LISTENER: &str = "\n[[listener]]\nname = \"binary-tpdu\"\nport = 5009\n\
bind = \"127.0.0.1:0\"\ntenant = \"default\"\npipeline = \"acquirer\"\n\
spec = \"iso87-binary\"\nframing = \"4a+tpdu\"\n";

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("load-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The default config on free ports plus [`OTHER_LISTENER`].
fn config(dir: &Path) -> PathBuf {
    let path = dir.join("switchyard.toml");
    let text = free_ports_config("127.0.0.1:0");
    let at = text
        .find("\n[[listener]]")
        .expect("the default config has listeners");
    let text = format!("{}{OTHER_LISTENER}{}", &text[..at], &text[at..]);
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts the switch; the port of every listener by name.
fn start(config: &Path) -> (RunLog, Vec<(String, u16)>) {
    let mut run = RunLog::spawn(config);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ports = Vec::new();
    while ports.len() < 5 {
        let line = run.next_line(deadline);
        if line.contains("serving")
            && let (Some(name), Some(addr)) = (field(&line, "listener="), field(&line, "addr="))
        {
            let port = addr.rsplit(':').next().unwrap().parse().unwrap();
            ports.push((name, port));
        }
    }
    (run, ports)
}

fn port(ports: &[(String, u16)], name: &str) -> String {
    ports
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no listener {name} in {ports:?}"))
        .1
        .to_string()
}

/// `switchyard load ARGS --json --quiet`: its exit status and the object.
fn load_json(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(BIN)
        .arg("load")
        .args(args)
        .args(["--json", "--quiet"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}\n{stderr}"));
    (out.status.success(), doc, stderr)
}

fn n(doc: &Value, key: &str) -> u64 {
    doc[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {doc}"))
}

/// Every key of the documented shape, and no other.
fn assert_shape(doc: &Value) {
    let keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = [
        "mode",
        "connections",
        "in_flight",
        "rate",
        "duration_s",
        "sent",
        "received",
        "throughput_per_s",
        "latency_us",
        "rc",
        "mismatches",
        "timeouts",
        "errors",
    ];
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted, expected, "{doc}");
    let l = &doc["latency_us"];
    let p: Vec<f64> = ["p50", "p90", "p99", "p99_9", "max"]
        .iter()
        .map(|k| {
            l[k].as_f64()
                .unwrap_or_else(|| panic!("latency_us.{k} in {doc}"))
        })
        .collect();
    assert!(
        p.windows(2).all(|w| w[0] <= w[1]),
        "percentiles out of order: {doc}"
    );
}

/// All answered, all approved, nothing lost.
fn assert_all_approved(doc: &Value, code: &str) {
    assert_shape(doc);
    assert_eq!(n(doc, "received"), n(doc, "sent"), "{doc}");
    assert_eq!(doc["rc"].as_object().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["rc"][code].as_u64(), Some(n(doc, "sent")), "{doc}");
    for k in ["mismatches", "timeouts", "errors"] {
        assert_eq!(n(doc, k), 0, "{k}: {doc}");
    }
    assert!(doc["latency_us"]["p50"].as_f64().unwrap() > 0.0, "{doc}");
}

#[test]
fn load_runs_closed_and_open_loop_against_the_switch() {
    let d = dir("switch");
    let (_run, ports) = start(&config(&d));
    let local = port(&ports, "local");

    // Closed loop, a fixed count.
    let (ok, doc, stderr) = load_json(&["--port", &local, "--count", "2000"]);
    assert!(ok, "{stderr}");
    assert_eq!(doc["mode"], "closed");
    assert_eq!((n(&doc, "connections"), n(&doc, "in_flight")), (8, 8));
    assert!(doc["rate"].is_null());
    assert_eq!(n(&doc, "sent"), 2000, "{doc}");
    assert_all_approved(&doc, "00");

    // Open loop at 500/s for 2 s after a warm-up: about 1,000 requests
    // (generous margin: the machine may be busy).
    let (ok, doc, stderr) = load_json(&[
        "--port",
        &local,
        "--rate",
        "500",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(doc["mode"], "open");
    assert_eq!(doc["rate"].as_u64(), Some(500));
    let sent = n(&doc, "sent");
    assert!((800..=1200).contains(&sent), "sent {sent}: {doc}");
    assert_all_approved(&doc, "00");

    // A chart of a short run: well-formed XML with the three lines.
    let svg = d.join("latency.svg");
    let (ok, doc, stderr) = load_json(&[
        "--port",
        &local,
        "--duration",
        "2s",
        "--connections",
        "2",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert_all_approved(&doc, "00");
    let text = std::fs::read_to_string(&svg).unwrap();
    check_xml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for class in ["p50", "p99", "max"] {
        let at = text
            .find(&format!("<polyline class=\"{class}\""))
            .unwrap_or_else(|| panic!("no {class} line: {text}"));
        let points = text[at..].split("points=\"").nth(1).unwrap();
        assert!(
            points.split('"').next().unwrap().contains(','),
            "{class} has no points"
        );
    }

    // For people: the report on stdout, a progress line a second on stderr
    // (plain lines, stderr being a pipe).
    let out = Command::new(BIN)
        .args([
            "load",
            "--port",
            &local,
            "--rate",
            "200",
            "--duration",
            "2s",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    for needle in [
        "open loop: 200/s",
        "from the scheduled send",
        "timetable:",
        "rc 00 approved",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in {stdout}");
    }
    let progress = stderr
        .lines()
        .filter(|l| l.starts_with('[') && l.contains("/s"))
        .count();
    assert!(progress >= 1, "no progress line: {stderr}");

    // Another listener, its spec and framing from the config.
    let cfg = d.join("switchyard.toml");
    let other = port(&ports, "binary-tpdu");
    let (ok, doc, stderr) = load_json(&[
        "--config",
        cfg.to_str().unwrap(),
        "--listener",
        "binary-tpdu",
        "--port",
        &other,
        "--count",
        "300",
        "--connections",
        "3",
        "--expect-rc",
        "00",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(n(&doc, "sent"), 300, "{doc}");
    assert_all_approved(&doc, "00");
}

/// Accepts connections and never answers (keeps them open until dropped).
fn silent_host() -> (u16, std::sync::mpsc::Sender<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while stopped.try_recv() == Err(std::sync::mpsc::TryRecvError::Empty) {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    (port, stop)
}

#[test]
fn a_silent_target_times_out_and_an_absent_one_is_an_error() {
    let (silent, stop) = silent_host();
    let (ok, doc, stderr) = load_json(&[
        "--port",
        &silent.to_string(),
        "--count",
        "6",
        "--connections",
        "2",
        "--in-flight",
        "3",
        "--timeout-ms",
        "300",
    ]);
    assert!(ok, "the run completed: {stderr}");
    assert_shape(&doc);
    assert_eq!((n(&doc, "sent"), n(&doc, "timeouts")), (6, 6), "{doc}");
    assert_eq!(n(&doc, "received"), 0, "{doc}");
    // --expect-rc makes the same run fail.
    let (ok, _, _) = load_json(&[
        "--port",
        &silent.to_string(),
        "--count",
        "2",
        "--connections",
        "1",
        "--timeout-ms",
        "100",
        "--expect-rc",
        "00",
    ]);
    assert!(!ok, "timeouts with --expect-rc 00 must fail the run");
    drop(stop);

    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let absent = free.local_addr().unwrap().port().to_string();
    drop(free);
    let out = Command::new(BIN)
        .args(["load", "--port", &absent, "--count", "10", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "no switch there, yet exit 0");
    assert!(out.stdout.is_empty(), "no figures without a connection");
    assert!(
        stderr.contains("connecting to") && stderr.contains("is a switch"),
        "{stderr}"
    );
}

/// A small well-formedness check: one root, tags nested and closed,
/// attributes quoted, no stray `<` or `&` in text.
fn check_xml(text: &str) -> Result<(), String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut rest = text.trim_start();
    if let Some(after) = rest.strip_prefix("<?xml") {
        rest = &after[after.find("?>").ok_or("unclosed XML declaration")? + 2..];
    }
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open])?;
        let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(top) if top == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name = body.split_whitespace().next().ok_or("empty tag")?;
        check_attributes(&body[name.len()..])?;
        if stack.is_empty() {
            roots += 1;
        }
        if !self_closing {
            stack.push(name);
        }
    }
    check_text(rest)?;
    match (stack.is_empty(), roots) {
        (true, 1) => Ok(()),
        (false, _) => Err(format!("unclosed: {stack:?}")),
        (_, r) => Err(format!("{r} root elements")),
    }
}

fn check_text(text: &str) -> Result<(), String> {
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
        if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity) {
            return Err(format!("bad entity {entity:?}"));
        }
    }
    Ok(())
}

fn check_attributes(mut attrs: &str) -> Result<(), String> {
    loop {
        attrs = attrs.trim_start();
        if attrs.is_empty() {
            return Ok(());
        }
        let eq = attrs
            .find('=')
            .ok_or(format!("attribute without value: {attrs}"))?;
        let name = attrs[..eq].trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("bad attribute name {name:?}"));
        }
        let value = attrs[eq + 1..].trim_start();
        let quote = value.chars().next().filter(|q| *q == '"' || *q == '\'');
        let quote = quote.ok_or(format!("unquoted attribute {name}"))?;
        let end = value[1..]
            .find(quote)
            .ok_or(format!("unclosed attribute {name}"))?;
        check_text(&value[1..end + 1])?;
        attrs = &value[end + 2..];
    }
}

#[test]
fn the_xml_check_can_fail() {
    assert!(check_xml("<a><b x=\"1\"/></a>").is_ok());
    assert!(check_xml("<a><b></a>").is_err());
    assert!(check_xml("<a x=1></a>").is_err());
    assert!(check_xml("<a>&</a>").is_err());
    assert!(check_xml("<a></a><b></b>").is_err());
}
