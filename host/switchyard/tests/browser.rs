//! The operator pages in headless Chromium: users made with the CLI on a
//! fresh data directory (one of them with a password aged past
//! `password_max_age_days`), `switchyard run` with a small lockout limit,
//! a few real transactions over TCP, then `node tests/browser/pages.mjs`
//! (playwright-core driving Debian's /usr/bin/chromium) must exit 0: sign-in,
//! TOTP enrolment and sign-in, a reused code refused, lockout, the forced
//! change of an expired password, every page as an administrator (each
//! screenshotted, none with a console error, none with the full PAN), a
//! viewer's 403, tenant scoping and CSRF.
//!
//! Needs /usr/bin/chromium, node and `npm ci --prefix tests/browser`; when
//! one is missing the test says so and passes, unless
//! `SWITCHYARD_BROWSER_TESTS=required` (as `scripts/test` sets), when it
//! fails.

mod common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, RunLog, field, free_ports_config};

/// The test card `switchyard send` uses: never in the switch's log, never
/// in this test's output.
const PAN: &str = "4761739001010119";
const LAST4: &str = "0119";
/// The STAN of the one transaction the pages search for.
const STAN: &str = "123456";
/// `[admin] lockout_failures` of the switch under test.
const LOCKOUT: u32 = 3;
/// `[admin] password_max_age_days`.
const MAX_AGE_DAYS: i64 = 90;
/// How long `node pages.mjs` may take (it bounds itself to 110 s).
const NODE_LIMIT: Duration = Duration::from_secs(150);

fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// What the browser test needs and this machine lacks.
fn missing_tools(root: &Path) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/chromium").is_file() {
        missing.push("/usr/bin/chromium (apt-get install -y --no-install-recommends chromium)");
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        missing.push("node");
    }
    if !root
        .join("tests/browser/node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push("playwright-core (npm ci --prefix tests/browser)");
    }
    missing
}

/// Masks anything in `s` that looks like a card number.
fn redact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if (13..=19).contains(&digits.len()) {
            out.push_str(&digits[..6]);
            out.push_str(&format!("…({} digits)", digits.len()));
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// `switchyard admin ARGS --config CONFIG` with `stdin`: success, output.
fn admin(config: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(BIN)
        .arg("admin")
        .args(args)
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .env("USER", "browser-test")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// One user of the test: its part, name, role, tenant, password.
struct User {
    part: &'static str,
    name: &'static str,
    role: &'static str,
    tenant: Option<&'static str>,
    password: &'static str,
}

const USERS: &[User] = &[
    User {
        part: "admin",
        name: "ada",
        role: "admin",
        tenant: None,
        password: "ada's admin pass 2026",
    },
    User {
        part: "viewer",
        name: "vic",
        role: "viewer",
        tenant: None,
        password: "vic views only 2026",
    },
    User {
        part: "totp",
        name: "tom",
        role: "viewer",
        tenant: None,
        password: "tom two factors 2026",
    },
    User {
        part: "lockout",
        name: "lou",
        role: "viewer",
        tenant: None,
        password: "lou gets locked 2026",
    },
    User {
        part: "expired",
        name: "exp",
        role: "viewer",
        tenant: None,
        password: "exp aged password 2025",
    },
    User {
        part: "other_tenant",
        name: "tina",
        role: "viewer",
        tenant: Some("acme"),
        password: "tina of acme 2026",
    },
    User {
        part: "same_tenant",
        name: "dora",
        role: "viewer",
        tenant: Some("default"),
        password: "dora of default 2026",
    },
];
const NEW_PASSWORD: &str = "exp fresh password 2027";

/// `switchyard send ARGS`: its output (checked to carry no full PAN).
fn send(args: &[&str]) -> String {
    let (out, text) = common::switchyard(&[&["send"], args].concat(), None);
    assert!(!text.contains(PAN), "send {args:?} printed the full PAN");
    assert!(out.status.success(), "send {args:?}: {}", redact(&text));
    text
}

/// Reads a child's pipe to the end on a thread.
fn drain(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

#[test]
fn the_operator_pages_in_headless_chromium() {
    let root = repo_root();
    let missing = missing_tools(&root);
    if !missing.is_empty() {
        let what = missing.join(", ");
        if std::env::var("SWITCHYARD_BROWSER_TESTS").as_deref() == Ok("required") {
            panic!("SWITCHYARD_BROWSER_TESTS=required but this machine lacks: {what}");
        }
        eprintln!(
            "skipping the browser tests: this machine lacks {what} \
             (SWITCHYARD_BROWSER_TESTS=required makes that a failure)"
        );
        return;
    }
    let begun = Instant::now();

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let shots = dir.join("screenshots");
    let config = dir.join("switchyard.toml");
    std::fs::write(
        &config,
        free_ports_config("127.0.0.1:0").replace(
            "deploy_dir = \"deploy\"",
            &format!(
                "deploy_dir = \"\"\nlockout_failures = {LOCKOUT}\nlockout_minutes = 30\n\
                 session_idle_minutes = 15\npassword_max_age_days = {MAX_AGE_DAYS}\nrequire_totp = false\n"
            ),
        ),
    )
    .unwrap();

    // The users, from the CLI, before any switch ran on the directory.
    for u in USERS {
        let mut args = vec!["user", "add", u.name, "--role", u.role, "--password-stdin"];
        if let Some(t) = u.tenant {
            args.extend(["--tenant", t]);
        }
        let (ok, text) = admin(&config, &args, &format!("{}\n", u.password));
        assert!(ok, "user add {}: {text}", u.name);
    }
    // The expired one: its password set a day more than the maximum age ago
    // (the only way short of waiting: no option or setting back-dates it).
    let db = dir.join("var").join("switchyard.db");
    let aged = switchyard_admin::accounts::now_ms() - (MAX_AGE_DAYS + 1) * 86_400_000;
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch(&format!(
        "UPDATE users SET password_changed_ms = {aged} WHERE name = 'exp';"
    ))
    .unwrap();
    drop(conn);
    let (ok, list) = admin(&config, &["user", "list", "--json"], "");
    assert!(ok, "{list}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    for u in list.as_array().unwrap() {
        assert_eq!(
            u["must_change"],
            u["name"] == "exp",
            "only exp's password is past its age: {u}"
        );
    }

    let mut run = RunLog::spawn(&config);
    let deadline = Instant::now() + Duration::from_secs(180);
    let (mut url, mut p5001, mut p5002) = (None, None, None);
    while url.is_none() || p5001.is_none() || p5002.is_none() {
        let line = run.next_line(deadline);
        if line.contains("admin API listening") {
            url = field(&line, "addr=").map(|a| format!("https://{a}"));
        }
        if line.contains("serving") {
            let port = field(&line, "addr=").and_then(|a| Some(a.rsplit_once(':')?.1.to_owned()));
            if line.contains("port=5001") {
                p5001 = port;
            } else if line.contains("port=5002") {
                p5002 = port;
            }
        }
    }
    let (url, p5001, p5002) = (url.unwrap(), p5001.unwrap(), p5002.unwrap());

    // Transactions: approvals authorized locally and at endpoint xxx, and
    // one the simulator never answers (RC 91, reversed through SAF).
    assert!(send(&["--port", &p5001, "--stan", STAN]).contains("rc 00"));
    send(&["--port", &p5001, "--stan", "123460", "--count", "3"]);
    assert!(send(&["--port", &p5002, "--stan", "223344"]).contains("rc 00"));
    assert!(send(&["--port", &p5002, "--stan", "223345", "--amount", "10.91"]).contains("rc 91"));

    let users: serde_json::Map<String, serde_json::Value> = USERS
        .iter()
        .map(|u| {
            (
                u.part.to_owned(),
                serde_json::json!({ "name": u.name, "password": u.password }),
            )
        })
        .collect();
    let script = root.join("tests/browser/pages.mjs");
    let mut node = Command::new("node")
        .arg(&script)
        .current_dir(root.join("tests/browser"))
        .env("SWITCHYARD_URL", &url)
        .env("SWITCHYARD_SHOT_DIR", &shots)
        .env(
            "SWITCHYARD_USERS",
            serde_json::Value::Object(users).to_string(),
        )
        .env("SWITCHYARD_NEW_PASSWORD", NEW_PASSWORD)
        .env("SWITCHYARD_LOCKOUT", LOCKOUT.to_string())
        .env("SWITCHYARD_STAN", STAN)
        .env("SWITCHYARD_LAST4", LAST4)
        .env("SWITCHYARD_ENDPOINT", "xxx")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let out = drain(node.stdout.take().unwrap());
    let err = drain(node.stderr.take().unwrap());
    let node_started = Instant::now();
    let status = loop {
        if let Some(s) = node.try_wait().unwrap() {
            break Some(s);
        }
        if node_started.elapsed() > NODE_LIMIT {
            let _ = node.kill();
            let _ = node.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let report = redact(&format!("{out}{err}"));
    println!("{report}");
    assert!(
        !out.contains(PAN) && !err.contains(PAN),
        "the browser test printed the full PAN"
    );
    let status =
        status.unwrap_or_else(|| panic!("node pages.mjs ran past {NODE_LIMIT:?}:\n{report}"));
    // (The report is printed above.)
    assert!(
        status.success(),
        "node pages.mjs: {status}; its report is above"
    );

    // The screenshots: each a non-empty PNG.
    let mut pngs = 0;
    for entry in std::fs::read_dir(&shots).unwrap() {
        let path = entry.unwrap().path();
        let mut head = [0u8; 8];
        std::fs::File::open(&path)
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        assert_eq!(&head, b"\x89PNG\r\n\x1a\n", "{}", path.display());
        assert!(
            std::fs::metadata(&path).unwrap().len() > 1000,
            "{}",
            path.display()
        );
        pngs += 1;
    }
    assert!(pngs >= 30, "{pngs} screenshots in {}", shots.display());

    // The switch logged no card number the whole time.
    let lines = run.drain();
    assert!(
        !lines.iter().any(|l| l.contains(PAN)),
        "the switch logged the full PAN"
    );
    println!(
        "browser test: {pngs} screenshots in {}, {:.1} s in all",
        shots.display(),
        begun.elapsed().as_secs_f64()
    );
}
