//! `switchyard loyalty credit|balance` and `switchyard coupons issue|list`
//! through the real binary: on a stopped switch's data directory, then on
//! the running switch (its admin API, found from the same config), which
//! sees the same data — card numbers masked in every output, never at rest
//! in clear, and the issued coupon numbers checked without being printed.

mod common;

#[path = "../../../tests/support/fake_endpoint.rs"]
mod fake_endpoint;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{field, spawn_run, switchyard};

/// A Luhn-valid card of the loyalty range.
const CARD: &str = "6006490000000004";
const MASKED: &str = "600649******0004";

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("internal-hosts")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `text` with every run of 12 to 19 digits masked (first 6, last 4), so
/// that no failure message shows a full card number.
fn masked(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if (12..=19).contains(&run.len()) {
            out.push_str(&run[..6]);
            out.push_str(&"*".repeat(run.len() - 10));
            out.push_str(&run[run.len() - 4..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn mask(number: &str) -> String {
    format!(
        "{}{}{}",
        &number[..6],
        "*".repeat(number.len() - 10),
        &number[number.len() - 4..]
    )
}

fn luhn_valid(number: &str) -> bool {
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            match (i % 2, d * 2) {
                (1, x) if x > 9 => x - 9,
                (1, x) => x,
                _ => d,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Runs the binary: its status and output, which never holds the loyalty
/// card in full.
fn run(args: &[&str]) -> (bool, String) {
    let (out, text) = switchyard(args, None);
    assert!(!text.contains(CARD), "full card number printed by {args:?}");
    (out.status.success(), text)
}

/// Runs the binary, which must succeed.
fn ok(args: &[&str]) -> String {
    let (success, text) = run(args);
    assert!(success, "{args:?} failed:\n{}", masked(&text));
    text
}

/// Runs the binary, which must fail saying `why`.
fn refused(args: &[&str], why: &str) {
    let (success, text) = run(args);
    assert!(
        !success && text.contains(why),
        "{args:?} should fail with {why:?}:\n{}",
        masked(&text)
    );
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {}", masked(text)))
}

/// A day well ahead.
fn later() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!("{}-06-30", 1970 + secs / 31_556_952 + 2)
}

/// A minimal switch: no plugin, one listener on a free port, the admin API
/// on `admin_bind`, state in `var` beside the config file (the commands
/// need only the store: the plugins' kv data is in it whether or not the
/// loyalty and coupon plugins are loaded).
fn config_text(admin_bind: &str) -> String {
    format!(
        "[switch]\ndata_dir = \"var\"\n\n\
         [admin]\nenabled = true\nbind = {admin_bind:?}\ntoken_file = \"admin.token\"\ndeploy_dir = \"\"\n\n\
         [[listener]]\nname = \"local\"\nport = 5001\nbind = \"127.0.0.1:0\"\npipeline = \"acquirer\"\n\n\
         [participants.close]\nstep = \"close\"\n\n[participants.send]\nstep = \"send\"\n\n\
         [pipelines.acquirer]\nparticipants = [\"close\", \"send\"]\n"
    )
}

/// A TCP port free right now, for the admin API (the CLI finds a running
/// switch from its config, so the port must be in it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running {
    child: Child,
    log: Receiver<String>,
    url: String,
    token: String,
    /// The admin API's log line (address, token file, certificate).
    admin_line: String,
}

/// `switchyard run`, once it serves (its admin API and its listener).
fn start(config: &Path) -> Running {
    let (child, log) = spawn_run(config);
    let (mut admin, mut serving) = (None, false);
    let until = Instant::now() + Duration::from_secs(120);
    while (admin.is_none() || !serving) && Instant::now() < until {
        let line = log
            .recv_timeout(Duration::from_secs(120))
            .expect("the switch logs");
        if line.contains("admin API listening") {
            admin = Some((
                field(&line, "addr=").unwrap(),
                field(&line, "token_file=").unwrap(),
                line.clone(),
            ));
        }
        serving |= line.contains("serving");
    }
    let (addr, token, admin_line) = admin.expect("the admin API within 120 s");
    assert!(serving, "the listener within 120 s");
    Running {
        child,
        url: format!("https://{addr}"),
        token,
        admin_line,
        log,
    }
}

impl Running {
    /// Waits for a log line holding every needle.
    fn logged(&self, needles: &[&str]) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) if needles.iter().all(|n| line.contains(n)) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// One request to the admin API (`/api` + `path`): status and body.
    fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        common::admin_call(&self.admin_line, method, path, body)
    }

    fn stop(mut self) {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        let log: Vec<String> = self.log.try_iter().collect();
        assert!(status.success(), "{status}:\n{}", masked(&log.join("\n")));
    }
}

/// Issues coupons; their numbers, checked (range, length, Luhn) but never
/// printed.
fn issue(args: &[&str]) -> Vec<String> {
    let issued = json(&ok(args));
    let numbers: Vec<String> = issued["coupons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["number"].as_str().unwrap().to_owned())
        .collect();
    for n in &numbers {
        assert!(
            n.len() == 16 && n.starts_with("600650") && n.bytes().all(|b| b.is_ascii_digit()),
            "not a 16-digit coupon number of 600650: {}",
            masked(n)
        );
        assert!(luhn_valid(n), "fails Luhn: {}", masked(n));
    }
    numbers
}

/// The coupons listed: (masked number, value, expiry, state).
fn coupons(args: &[&str]) -> Listed {
    let list = json(&ok(args));
    list["coupons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_owned();
            (s("number"), s("value"), s("expires"), s("state"))
        })
        .collect()
}

type Listed = Vec<(String, String, String, String)>;

/// `coupons issue --value VALUE --expires DAY` on the config's switch.
fn issuing<'a>(cfg: &'a str, value: &'a str, day: &'a str) -> [&'a str; 9] {
    [
        "coupons",
        "issue",
        "--config",
        cfg,
        "--json",
        "--value",
        value,
        "--expires",
        day,
    ]
}

/// On the stopped switch: credit → balance, refusals, two coupons issued
/// and listed masked. The coupon numbers, and the list as it should be.
fn on_the_stopped_switch(cfg: &str, expires: &str) -> (Vec<String>, Listed) {
    let credited = ok(&["loyalty", "credit", CARD, "1500", "--config", cfg]);
    let line = format!("card {MASKED}: credited 1500 points; balance 1500 points (15.00)");
    assert!(credited.contains(&line), "{credited}");
    let balance = json(&ok(&[
        "loyalty", "balance", CARD, "--config", cfg, "--json",
    ]));
    assert_eq!(
        (
            &balance["balance_points"],
            &balance["balance"],
            &balance["card"]
        ),
        (&1500.into(), &"15.00".into(), &MASKED.into())
    );
    let credit = |card: &'static str, points: &'static str| {
        ["loyalty", "credit", card, points, "--config", cfg]
    };
    refused(&credit("6006490000000009", "5"), "Luhn");
    refused(&credit("60064900", "5"), "12 to 19 digits");
    refused(&credit(CARD, "0"), "points: must be at least 1");
    refused(&credit(CARD, "1.5"), "points: a positive whole");

    let mut numbers = issue(&issuing(cfg, "25.00", expires));
    numbers.extend(issue(&issuing(cfg, "10.5", expires)));
    assert_eq!(numbers.len(), 2);
    assert_ne!(numbers[0], numbers[1]);
    refused(&issuing(cfg, "25.001", expires), "at most 2 decimals");
    refused(&issuing(cfg, "0", expires), "more than 0");
    refused(&issuing(cfg, "5", "2020-01-01"), "in the past");

    let text = ok(&["coupons", "list", "--config", cfg]);
    for n in &numbers {
        assert!(!text.contains(n.as_str()), "a full coupon number listed");
        assert!(text.contains(&mask(n)), "{text}");
    }
    assert!(
        text.contains("2 coupon(s) (tenant default, plugin coupon)"),
        "{text}"
    );
    let row = |n: &str, value: &str| (mask(n), value.into(), expires.to_owned(), "open".into());
    let mut expected = vec![row(&numbers[0], "25.00"), row(&numbers[1], "10.50")];
    expected.sort();
    assert_eq!(
        coupons(&["coupons", "list", "--config", cfg, "--json"]),
        expected
    );
    let other = coupons(&[
        "coupons", "list", "--tenant", "acme", "--config", cfg, "--json",
    ]);
    assert!(other.is_empty());
    // Another plugin's coupons are its own.
    let gifts = issue(&[&issuing(cfg, "3", expires)[..], &["--plugin", "gifts"]].concat());
    let listed = coupons(&[
        "coupons", "list", "--plugin", "gifts", "--config", cfg, "--json",
    ]);
    assert_eq!(listed, [row(&gifts[0], "3.00")]);
    assert_eq!(
        coupons(&["coupons", "list", "--config", cfg, "--json"]),
        expected
    );
    (numbers, expected)
}

/// On the running switch (found from the same config, or named by --url):
/// the same data, changed through its admin API. The new coupon's number.
fn on_the_running_switch(sw: &Running, cfg: &str, expires: &str, before: &Listed) -> String {
    let balance = ok(&["loyalty", "balance", CARD, "--config", cfg]);
    let line = format!("card {MASKED}: balance 1500 points (15.00)");
    assert!(balance.contains(&line), "{balance}");
    let credited = json(&ok(&[
        "loyalty", "credit", CARD, "250", "--config", cfg, "--json",
    ]));
    assert_eq!(
        (credited["credited"].as_i64(), credited["balance"].as_str()),
        (Some(250), Some("17.50"))
    );
    assert!(
        sw.logged(&["loyalty points credited", MASKED]),
        "the credit went through the running switch"
    );
    assert_eq!(
        &coupons(&["coupons", "list", "--config", cfg, "--json"]),
        before
    );
    let remote = ["--url", sw.url.as_str(), "--token-file", sw.token.as_str()];
    let issuing = [
        "coupons",
        "issue",
        "--json",
        "--value",
        "5",
        "--expires",
        expires,
    ];
    let new = issue(&[&issuing[..], &remote[..]].concat()).remove(0);
    let listed = coupons(&[&["coupons", "list", "--json"][..], &remote[..]].concat());
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().any(|c| c.0 == mask(&new) && c.1 == "5.00"));
    refused(
        &[
            "loyalty",
            "credit",
            "6006490000000009",
            "5",
            "--config",
            cfg,
        ],
        "Luhn",
    );
    new
}

/// The admin API refuses bad bodies naming the field, large bodies, other
/// methods; it lists coupons masked.
fn api_refusals(sw: &Running, numbers: &[String]) {
    let credit = r#"{"card": 6006490000000004, "points": 5}"#;
    let (status, body) = sw.http("POST", "/loyalty/credit", credit);
    assert!(
        status == 400 && body.contains("card: a string"),
        "{status} {}",
        masked(&body)
    );
    let balance = r#"{"card": "6006490000000004", "pan": "x"}"#;
    let (status, body) = sw.http("POST", "/loyalty/balance", balance);
    assert!(
        status == 400 && body.contains("pan: unknown field"),
        "{}",
        masked(&body)
    );
    assert!(!body.contains(CARD));
    let large = format!(r#"{{"pad": "{}"}}"#, "x".repeat(5000));
    let (status, body) = sw.http("POST", "/coupons/issue", &large);
    assert_eq!(status, 413, "{body}");
    assert_eq!(sw.http("GET", "/loyalty/credit", "").0, 405);
    let (status, body) = sw.http("GET", "/coupons?tenant=default&plugin=coupon", "");
    assert_eq!(status, 200);
    assert!(
        numbers.iter().all(|n| !body.contains(n.as_str())),
        "masked in the API"
    );
    assert!(
        numbers.iter().all(|n| body.contains(&mask(n))),
        "{}",
        masked(&body)
    );
}

#[test]
fn loyalty_and_coupons_on_a_stopped_data_directory_then_through_the_running_switch() {
    let dir = dir();
    let config = dir.join("switch.toml");
    let admin = format!("127.0.0.1:{}", free_port());
    std::fs::write(&config, config_text(&admin)).unwrap();
    let cfg = config.to_str().unwrap();
    let expires = later();
    // A first run creates the data directory (database, keys, token); its
    // API answers an empty list.
    let first = start(&config);
    let remote = [
        "--url",
        first.url.as_str(),
        "--token-file",
        first.token.as_str(),
    ];
    let empty = ok(&[&["coupons", "list"][..], &remote[..]].concat());
    assert!(
        empty.contains("no coupons (tenant default, plugin coupon)"),
        "{empty}"
    );
    first.stop();

    let (mut numbers, listed) = on_the_stopped_switch(cfg, &expires);
    let sw = start(&config);
    numbers.push(on_the_running_switch(&sw, cfg, &expires, &listed));
    api_refusals(&sw, &numbers);
    sw.stop();

    // Stopped again: what the running switch changed is on disk.
    let data_dir = dir.join("var");
    let data_dir = data_dir.to_str().unwrap();
    let balance = json(&ok(&[
        "loyalty",
        "balance",
        CARD,
        "--data-dir",
        data_dir,
        "--json",
    ]));
    assert_eq!(balance["balance_points"], 1750);
    assert_eq!(
        coupons(&["coupons", "list", "--config", cfg, "--json"]).len(),
        3
    );

    // Nothing of the cards in clear at rest (keys hashed, values encrypted).
    fake_endpoint::assert_no_card_data(&dir, CARD);
    for n in &numbers {
        fake_endpoint::assert_no_card_data(&dir, n);
    }
}
