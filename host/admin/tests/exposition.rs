//! `/api/metrics` from hand-made inputs: every family of the exposition,
//! with its labels, cumulative buckets and the closing `# EOF` (the
//! end-to-end scrape, parsed by an independent parser, is
//! host/switchyard/tests/metrics.rs).

use std::sync::Arc;
use std::time::Duration;

use switchyard_admin::exposition::{CONTENT_TYPE, ScrapeInputs, render};
use switchyard_engine::ports::SafStats;
use switchyard_engine::{Context, Failure, FailureKind, Formatter, Outbound};
use switchyard_metrics::Metrics;
use switchyard_net::{Backoff, Endpoint, EndpointOptions, Framing, Links, ListenerStats};

/// A formatter that is never called (the endpoint is never used).
struct Unused;

impl Formatter for Unused {
    fn format_request(&self, _ctx: &mut Context) -> Result<Outbound, Failure> {
        Err(Failure::new(FailureKind::Rejected, "unused"))
    }

    fn reply_key(&self, _reply: &[u8]) -> Result<String, Failure> {
        Err(Failure::new(FailureKind::Rejected, "unused"))
    }

    fn parse_response(&self, _ctx: &mut Context, _reply: &[u8]) -> Result<(), Failure> {
        Err(Failure::new(FailureKind::Rejected, "unused"))
    }
}

fn endpoint(name: &str) -> Arc<Endpoint> {
    Arc::new(Endpoint::new(
        EndpointOptions {
            name: name.into(),
            address: "127.0.0.1:9".into(),
            timeout: Duration::from_secs(1),
            framing: Framing::default(),
            max_frame: 4096,
            tls: None,
            echo_interval: None,
            reconnect: Backoff::default(),
        },
        Arc::new(Unused),
        None,
        Links::default(),
    ))
}

fn sample(text: &str, prefix: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no sample {prefix} in\n{text}"));
    line[prefix.len() + 1..].trim().parse().unwrap()
}

#[test]
fn every_family_is_rendered_with_its_labels_and_ends_with_eof() {
    let metrics = Metrics::new();
    let listener = metrics.listener("acq-5001");
    let stats = Arc::new(ListenerStats::with_metrics(listener.clone()));
    for _ in 0..3 {
        listener.transaction("0200", Some("00"), Duration::from_micros(800));
    }
    listener.transaction("0200", Some("51"), Duration::from_millis(3));
    let conn = listener.connection_opened();
    let xxx = endpoint("xxx");
    xxx.attach_metrics(metrics.endpoint("xxx"));
    metrics.endpoint("xxx").external(Duration::from_millis(4));
    metrics.forwarder("xxx").attempt();
    metrics.admin_login("failure");
    let saf = [(
        "xxx".to_owned(),
        SafStats {
            pending: 2,
            escalated: 1,
            oldest_ms: Some(1_000_000),
        },
    )];
    let listeners = [("acq-5001".to_owned(), stats)];
    let text = render(&ScrapeInputs {
        metrics: &metrics,
        generation: 7,
        plugins: &[],
        saf: Some(&saf),
        endpoints: &[xxx, endpoint("yyy")],
        listeners: &listeners,
        now_ms: 1_012_500,
    });
    drop(conn);

    assert!(CONTENT_TYPE.starts_with("application/openmetrics-text"));
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    let tx = "switchyard_transactions_total{listener=\"acq-5001\",mti_class=\"financial\"";
    assert_eq!(sample(&text, &format!("{tx},rc=\"00\"}}")), 3.0);
    assert_eq!(sample(&text, &format!("{tx},rc=\"51\"}}")), 1.0);
    let d = "switchyard_transaction_duration_seconds";
    assert_eq!(
        sample(&text, &format!("{d}_count{{listener=\"acq-5001\"}}")),
        4.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("{d}_bucket{{le=\"0.001\",listener=\"acq-5001\"}}")
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("{d}_bucket{{le=\"+Inf\",listener=\"acq-5001\"}}")
        ),
        4.0
    );
    let e = "switchyard_external_duration_seconds";
    assert_eq!(
        sample(&text, &format!("{e}_count{{endpoint=\"xxx\"}}")),
        1.0
    );
    assert_eq!(
        sample(&text, "switchyard_endpoint_up{endpoint=\"xxx\"}"),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "switchyard_endpoint_connects_total{endpoint=\"xxx\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(&text, "switchyard_saf_pending{endpoint=\"xxx\"}"),
        2.0
    );
    assert_eq!(
        sample(&text, "switchyard_saf_escalated{endpoint=\"xxx\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "switchyard_saf_oldest_age_seconds{endpoint=\"xxx\"}"),
        12.5
    );
    // An endpoint with nothing pending is at zero.
    assert_eq!(
        sample(&text, "switchyard_saf_pending{endpoint=\"yyy\"}"),
        0.0
    );
    assert_eq!(
        sample(&text, "switchyard_endpoint_up{endpoint=\"yyy\"}"),
        0.0
    );
    assert_eq!(
        sample(&text, "switchyard_saf_attempts_total{endpoint=\"xxx\"}"),
        1.0
    );
    assert_eq!(sample(&text, "switchyard_reversals_escalated_total"), 0.0);
    assert_eq!(
        sample(&text, "switchyard_connections_open{listener=\"acq-5001\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "switchyard_connections_total{listener=\"acq-5001\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "switchyard_admin_logins_total{outcome=\"failure\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "switchyard_admin_logins_total{outcome=\"success\"}"),
        0.0
    );
    assert_eq!(sample(&text, "switchyard_plugin_generation"), 7.0);
    assert_eq!(
        sample(
            &text,
            "switchyard_listener_writes_total{listener=\"acq-5001\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "switchyard_listener_frames_written_total{listener=\"acq-5001\"}"
        ),
        0.0
    );
    // Every family described once.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert_eq!(text.matches(&format!("{line}\n")).count(), 1, "{line}");
    }
    independent_parse(&text);
}

/// With `SWITCHYARD_PYTHON` set (scripts/test sets it), the text parsed by
/// PyPI prometheus_client's OpenMetrics parser (metrics_parse.py) with no
/// problem found.
fn independent_parse(text: &str) {
    let Some(python) = std::env::var_os("SWITCHYARD_PYTHON") else {
        return;
    };
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("exposition.txt");
    std::fs::write(&file, text).unwrap();
    let parser = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../switchyard/tests/metrics_parse.py"
    );
    let out = std::process::Command::new(python)
        .arg(parser)
        .arg("--file")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["problems"], serde_json::json!([]), "{doc}");
    assert_eq!(
        doc["families"]["switchyard_transactions"]["type"],
        "counter"
    );
}

#[test]
fn without_a_store_there_are_no_saf_families() {
    let metrics = Metrics::new();
    let text = render(&ScrapeInputs {
        metrics: &metrics,
        generation: 1,
        plugins: &[],
        saf: None,
        endpoints: &[endpoint("xxx")],
        listeners: &[],
        now_ms: 0,
    });
    assert!(!text.contains("switchyard_saf_pending"), "{text}");
    assert!(
        text.contains("switchyard_endpoint_up{endpoint=\"xxx\"} 0"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}
