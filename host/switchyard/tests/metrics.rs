//! `/api/metrics` of a running switch after a known set of transactions:
//! scraped over HTTPS (the certificate pinned) with the CLI's bearer token
//! and parsed by an independent parser — PyPI prometheus_client's
//! OpenMetrics parser, in tests/metrics_parse.py, which also checks that
//! histogram buckets are cumulative, that `_count` is the `+Inf` bucket and
//! that no label looks like card data or a STAN. Then the families, labels
//! and counts are those the transactions made, and the Grafana dashboard
//! in docs/grafana/ refers only to families the switch exports.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{field, free_ports_config, spawn_run, stop_clean, switchyard};
use serde_json::Value;

const PAN: &str = "4761739001010119";
const PARSER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/metrics_parse.py");
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/grafana/switchyard.json"
);

fn python() -> String {
    std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| {
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python");
        if Path::new(venv).exists() {
            venv.into()
        } else {
            "python3".into()
        }
    })
}

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("metrics")
        .join(format!("{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `switchyard send ARGS`: its output, which must show `rc`.
fn send(args: &[&str], rc: &str) {
    let (out, text) = switchyard(&[&["send"][..], args].concat(), None);
    assert!(out.status.success(), "send {args:?} failed:\n{text}");
    assert!(
        text.contains(&format!("rc {rc}")),
        "send {args:?}: not rc {rc}:\n{text}"
    );
    assert!(!text.contains(PAN), "full PAN printed by send:\n{text}");
}

/// One scrape, parsed by metrics_parse.py: its JSON document (no problems).
fn scrape(url: &str, token: &Path, cert: &Path) -> Value {
    let out = Command::new(python())
        .arg(PARSER)
        .arg(url)
        .arg(token)
        .arg(cert)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "metrics_parse.py failed (needs prometheus_client in $SWITCHYARD_PYTHON):\n{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(PAN), "the PAN in the metrics");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["problems"], serde_json::json!([]), "{doc}");
    doc
}

/// The sum of the samples named `sample` whose labels include every pair
/// of `labels`; `None` when no sample matches.
fn value(doc: &Value, sample: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = doc["families"]
        .as_object()?
        .values()
        .filter_map(|f| f["samples"].as_array())
        .flatten()
        .filter(|s| s[0] == sample)
        .filter(|s| labels.iter().all(|(k, v)| s[1][*k] == *v))
        .filter_map(|s| s[2].as_f64())
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// Every sample name of the scrape.
fn sample_names(doc: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for family in doc["families"].as_object().unwrap().values() {
        for s in family["samples"].as_array().unwrap() {
            names.insert(s[0].as_str().unwrap().to_owned());
        }
    }
    names
}

/// The admin server's URL and certificate and the listeners' ports, from
/// the starting switch's log (at most 120 s).
fn started(
    log: &std::sync::mpsc::Receiver<String>,
    lines: &mut Vec<String>,
) -> (String, PathBuf, String, String) {
    let (mut admin, mut ports) = (None, Vec::new());
    let until = Instant::now() + Duration::from_secs(120);
    while (admin.is_none() || ports.len() < 2) && Instant::now() < until {
        let Ok(line) = log.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        lines.push(line.clone());
        if line.contains("admin API listening") {
            admin = Some((
                field(&line, "addr=").unwrap(),
                field(&line, "cert=").unwrap(),
            ));
        }
        if line.contains("serving")
            && let Some(port) = field(&line, "port=").filter(|p| p == "5001" || p == "5002")
        {
            let addr = field(&line, "addr=").unwrap();
            ports.push((port, addr.rsplit(':').next().unwrap().to_owned()));
        }
    }
    let (addr, cert) = admin.unwrap_or_else(|| panic!("no admin line; log: {lines:#?}"));
    let port = |p: &str| {
        let found = ports.iter().find(|(c, _)| c == p);
        found
            .unwrap_or_else(|| panic!("no listener {p}; log: {lines:#?}"))
            .1
            .clone()
    };
    let url = format!("https://{addr}/api/metrics");
    (url, PathBuf::from(cert), port("5001"), port("5002"))
}

#[test]
fn metrics_after_a_known_set_of_transactions_parse_and_match_the_dashboard() {
    let dir = dir();
    let config = dir.join("switch.toml");
    std::fs::write(&config, free_ports_config("127.0.0.1:0")).unwrap();
    let token = dir.join("var").join("admin.token");
    let (child, log) = spawn_run(&config);
    let mut lines = Vec::new();
    let (url, cert, p5001, p5002) = started(&log, &mut lines);

    // 5001 (local): three approvals and one over the limit (61); 5002
    // (endpoint xxx): an approval, a decline (51) and a timeout (91), whose
    // reversal the forwarder then delivers.
    for stan in ["100", "101", "102"] {
        send(&["--port", &p5001, "--stan", stan], "00");
    }
    send(
        &["--port", &p5001, "--stan", "103", "--amount", "6000.00"],
        "61",
    );
    send(&["--port", &p5002, "--stan", "110"], "00");
    send(
        &["--port", &p5002, "--stan", "111", "--amount", "100.51"],
        "51",
    );
    send(
        &["--port", &p5002, "--stan", "112", "--amount", "10.91"],
        "91",
    );

    let until = Instant::now() + Duration::from_secs(30);
    let doc = loop {
        let doc = scrape(&url, &token, &cert);
        let attempts = value(
            &doc,
            "switchyard_saf_attempts_total",
            &[("endpoint", "xxx")],
        );
        if attempts.unwrap_or(0.0) >= 1.0 || Instant::now() > until {
            break doc;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let ct = doc["content_type"].as_str().unwrap_or("");
    assert!(
        ct.starts_with("application/openmetrics-text"),
        "Content-Type {ct}"
    );
    every_family_has_its_type(&doc);
    transactions_and_durations_are_those_sent(&doc);
    links_saf_connections_plugins_and_logins(&doc);
    dashboard_refers_only_to(&sample_names(&doc));
    stop_clean(child, &log, &mut lines);
}

fn every_family_has_its_type(doc: &Value) {
    for (family, kind) in [
        ("switchyard_transactions", "counter"),
        ("switchyard_transaction_duration_seconds", "histogram"),
        ("switchyard_external_duration_seconds", "histogram"),
        ("switchyard_endpoint_up", "gauge"),
        ("switchyard_endpoint_connects", "counter"),
        ("switchyard_saf_pending", "gauge"),
        ("switchyard_saf_escalated", "gauge"),
        ("switchyard_saf_oldest_age_seconds", "gauge"),
        ("switchyard_saf_attempts", "counter"),
        ("switchyard_reversals_escalated", "counter"),
        ("switchyard_plugin_generation", "gauge"),
        ("switchyard_plugin_info", "gauge"),
        ("switchyard_plugin_calls", "counter"),
        ("switchyard_plugin_traps", "counter"),
        ("switchyard_plugin_deadline_overruns", "counter"),
        ("switchyard_plugin_breaker_state", "gauge"),
        ("switchyard_plugin_call_duration_seconds", "histogram"),
        ("switchyard_connections_open", "gauge"),
        ("switchyard_connections", "counter"),
        ("switchyard_admin_logins", "counter"),
        ("switchyard_listener_writes", "counter"),
        ("switchyard_listener_frames_written", "counter"),
    ] {
        assert_eq!(doc["families"][family]["type"], kind, "{family} in {doc}");
    }
}

fn transactions_and_durations_are_those_sent(doc: &Value) {
    let tx = "switchyard_transactions_total";
    let financial = |listener: &str, rc: &str| {
        value(
            doc,
            tx,
            &[
                ("listener", listener),
                ("mti_class", "financial"),
                ("rc", rc),
            ],
        )
    };
    assert_eq!(financial("local", "00"), Some(3.0), "{doc}");
    assert_eq!(financial("local", "61"), Some(1.0));
    assert_eq!(financial("switched", "00"), Some(1.0));
    assert_eq!(financial("switched", "51"), Some(1.0));
    assert_eq!(financial("switched", "91"), Some(1.0));
    assert_eq!(value(doc, tx, &[("listener", "local")]), Some(4.0));
    assert_eq!(value(doc, tx, &[("listener", "switched")]), Some(3.0));

    // One observation per transaction; three at endpoint xxx, of which the
    // timeout waited its full second there.
    let count = "switchyard_transaction_duration_seconds_count";
    assert_eq!(value(doc, count, &[("listener", "local")]), Some(4.0));
    assert_eq!(value(doc, count, &[("listener", "switched")]), Some(3.0));
    let xxx = [("endpoint", "xxx")];
    let external = value(doc, "switchyard_external_duration_seconds_count", &xxx);
    assert_eq!(external, Some(3.0));
    let under_half_a_second = value(
        doc,
        "switchyard_external_duration_seconds_bucket",
        &[("endpoint", "xxx"), ("le", "0.5")],
    );
    assert!(
        under_half_a_second.unwrap() <= 2.0,
        "{under_half_a_second:?}"
    );
}

fn links_saf_connections_plugins_and_logins(doc: &Value) {
    let xxx = [("endpoint", "xxx")];
    assert_eq!(value(doc, "switchyard_endpoint_up", &xxx), Some(1.0));
    assert!(value(doc, "switchyard_endpoint_connects_total", &xxx).unwrap() >= 1.0);
    assert!(value(doc, "switchyard_saf_attempts_total", &xxx).unwrap() >= 1.0);
    assert!(value(doc, "switchyard_saf_pending", &xxx).is_some());
    assert!(value(doc, "switchyard_saf_oldest_age_seconds", &xxx).is_some());
    assert_eq!(
        value(doc, "switchyard_reversals_escalated_total", &[]),
        Some(0.0)
    );
    let local = [("listener", "local")];
    assert_eq!(
        value(doc, "switchyard_connections_total", &local),
        Some(4.0)
    );
    let switched = [("listener", "switched")];
    assert_eq!(
        value(doc, "switchyard_connections_total", &switched),
        Some(3.0)
    );
    assert!(value(doc, "switchyard_connections_open", &local).unwrap() <= 4.0);
    assert_eq!(
        value(doc, "switchyard_listener_frames_written_total", &local),
        Some(4.0)
    );
    let local_auth = [("plugin", "local-auth")];
    assert!(value(doc, "switchyard_plugin_calls_total", &local_auth).unwrap() >= 4.0);
    // The runtime times one call in four.
    assert!(
        value(
            doc,
            "switchyard_plugin_call_duration_seconds_count",
            &local_auth
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(value(doc, "switchyard_plugin_generation", &[]), Some(1.0));
    for outcome in ["success", "failure", "locked"] {
        let logins = value(
            doc,
            "switchyard_admin_logins_total",
            &[("outcome", outcome)],
        );
        assert!(logins.is_some(), "admin logins {outcome}");
    }
}

/// docs/grafana/switchyard.json is JSON, importable (a `DS_PROMETHEUS`
/// input every panel uses), and every `switchyard_…` name in it is a
/// sample the scrape had.
fn dashboard_refers_only_to(exported: &BTreeSet<String>) {
    let text = std::fs::read_to_string(DASHBOARD).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dash["__inputs"][0]["name"], "DS_PROMETHEUS");
    let panels = dash["panels"].as_array().unwrap();
    let graphs: Vec<&Value> = panels.iter().filter(|p| p["type"] != "row").collect();
    assert!(graphs.len() >= 10, "{} panels", graphs.len());
    for p in &graphs {
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        assert!(
            !p["targets"].as_array().unwrap().is_empty(),
            "{}",
            p["title"]
        );
    }
    let mut used = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("switchyard_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        used.insert(name);
    }
    assert!(used.len() >= 15, "{used:?}");
    let unknown: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard uses {unknown:?}, not exported: {exported:?}"
    );
}
