//! The operator tools through the real binary: `tranlog search|show`,
//! `saf list|retry`, `keys status|rotate`, first asking a running switch
//! (its admin API), then on the data directory of the stopped switch —
//! with card data masked throughout and nothing of it at rest.

mod common;

#[path = "../../../tests/support/fake_endpoint.rs"]
mod fake_endpoint;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{field, free_ports_config, spawn_run, switchyard};

const PAN: &str = "4761739001010119";

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("operate")
        .join(format!("{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the binary; its status and stdout + stderr, which never show the
/// full PAN.
fn run(args: &[&str]) -> (bool, String) {
    let (out, text) = switchyard(args, None);
    assert!(!text.contains(PAN), "full PAN printed by {args:?}:\n{text}");
    (out.status.success(), text)
}

fn ok(args: &[&str]) -> String {
    let (success, text) = run(args);
    assert!(success, "{args:?} failed:\n{text}");
    text
}

struct Running {
    child: std::process::Child,
    ports: Vec<(u16, String)>,
    url: String,
    token: String,
    /// Kept: the switch's log is read until it stops (a full pipe would
    /// block it).
    _log: std::sync::mpsc::Receiver<String>,
}

fn start(config: &Path) -> Running {
    let (child, log) = spawn_run(config);
    let (mut ports, mut url, mut token) = (Vec::new(), None, None);
    let until = Instant::now() + Duration::from_secs(120);
    while (ports.len() < 2 || url.is_none()) && Instant::now() < until {
        let line = log
            .recv_timeout(Duration::from_secs(120))
            .expect("the switch logs");
        if line.contains("admin API listening") {
            url = Some(format!("https://{}", field(&line, "addr=").unwrap()));
            token = field(&line, "token_file=");
        }
        if line.contains("serving") {
            let port: u16 = field(&line, "port=").unwrap().parse().unwrap();
            ports.push((port, field(&line, "addr=").unwrap()));
        }
    }
    Running {
        child,
        ports,
        url: url.expect("admin API address"),
        token: token.expect("token file"),
        _log: log,
    }
}

impl Running {
    fn port(&self, port: u16) -> String {
        let addr = &self.ports.iter().find(|(p, _)| *p == port).unwrap().1;
        addr.rsplit(':').next().unwrap().to_owned()
    }

    fn remote<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = args.to_vec();
        v.extend(["--url", &self.url, "--token-file", &self.token]);
        v
    }

    fn stop(mut self) {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(self.child.wait().unwrap().success());
    }
}

#[test]
fn tranlog_saf_and_keys_on_a_running_switch_and_on_its_stopped_data_directory() {
    let dir = dir();
    let config = dir.join("switch.toml");
    std::fs::write(&config, free_ports_config("127.0.0.1:0")).unwrap();
    let cfg = config.to_str().unwrap();
    let sw = start(&config);
    let (p5001, p5002) = (sw.port(5001), sw.port(5002));

    // An approval, and a timeout (the simulator never answers ...91).
    let approved = ok(&["send", "--port", &p5001, "--stan", "902"]);
    assert!(approved.contains("rc 00"), "{approved}");
    let timed_out = ok(&[
        "send", "--port", &p5002, "--stan", "901", "--amount", "10.91",
    ]);
    assert!(timed_out.contains("rc 91"), "{timed_out}");

    // The reversal is acknowledged by the simulator soon after.
    let until = Instant::now() + Duration::from_secs(20);
    let row = loop {
        let json = ok(&sw.remote(&["tranlog", "search", "--stan", "000901", "--json"]));
        let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
        if rows[0]["state"] == "reversed" || Instant::now() > until {
            break rows[0].clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(row["state"], "reversed", "{row}");
    assert_eq!(row["rc"], "91");
    assert_eq!(row["pan"], "476173******0119");
    assert_eq!(row["upstream"], "timeout");
    let id = row["id"].as_i64().unwrap().to_string();

    let table = ok(&sw.remote(&["tranlog", "search", "--last4", "0119"]));
    assert!(
        table.contains("476173******0119") && table.contains("2 row(s)"),
        "{table}"
    );
    let life = ok(&sw.remote(&["tranlog", "show", &id]));
    for needle in [
        "state reversed",
        "endpoint xxx  upstream timeout",
        "DE002 476173******0119",
        "DE014 ****",
        "saf ",
        "reversal to xxx  done",
    ] {
        assert!(life.contains(needle), "{needle:?} missing:\n{life}");
    }
    let list = ok(&sw.remote(&["saf", "list", "--all", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let entry = &list["entries"][0];
    assert_eq!(entry["state"], "done");
    assert_eq!(entry["attempts"], 1);
    let saf_id = entry["id"].as_i64().unwrap().to_string();
    let (retried, text) = run(&sw.remote(&["saf", "retry", &saf_id]));
    assert!(!retried && text.contains("already acknowledged"), "{text}");

    let keys = ok(&sw.remote(&["keys", "status"]));
    assert!(
        keys.contains("key-encryption key") && keys.contains("active"),
        "{keys}"
    );
    let rotated = ok(&sw.remote(&["keys", "rotate"]));
    assert!(rotated.contains("new data key(s)"), "{rotated}");
    // The rows go on decrypting under the new key.
    assert!(ok(&sw.remote(&["tranlog", "show", &id])).contains("DE002 476173******0119"));
    sw.stop();

    // The stopped switch's data directory, directly.
    let direct = ok(&["tranlog", "search", "--stan", "000902", "--config", cfg]);
    assert!(
        direct.contains("000902") && direct.contains("answered"),
        "{direct}"
    );
    let kek = ok(&["keys", "rotate", "--kek", "--config", cfg]);
    assert!(kek.contains("new key-encryption key"), "{kek}");
    let fingerprint = kek.split_whitespace().nth(3).unwrap().trim_end_matches(';');
    let status = ok(&["keys", "status", "--config", cfg, "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["kek"], fingerprint);
    let keys = status["data_keys"].as_array().unwrap();
    assert!(
        keys.iter()
            .filter(|k| k["state"] != "destroyed")
            .all(|k| k["kek"] == fingerprint),
        "every data key re-wrapped: {status}"
    );
    assert!(
        keys.iter().any(|k| k["state"] == "destroyed"),
        "the rotated-out key, re-encrypted away, is destroyed: {status}"
    );
    assert!(keys.iter().any(|k| k["state"] == "active"), "{status}");
    assert!(ok(&["tranlog", "show", &id, "--config", cfg]).contains("reversal to xxx  done"));
    let saf = ok(&["saf", "list", "--config", cfg]);
    assert!(
        saf.contains("no store-and-forward entries pending"),
        "{saf}"
    );

    // Nothing of the card at rest.
    fake_endpoint::assert_no_card_data(&dir, PAN);
}
