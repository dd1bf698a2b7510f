//! The terminal experience, through the real binary: `send` against a
//! listener of every built-in spec (each with another framing), its
//! repeat/reverse/omit/count/hex/json options; `simulate` with a rules file;
//! errors that say why; completions, man pages and an example in every
//! `--help`; a demo that leaves its directory as it found it.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{BIN, field, free_ports_config, spawn_run};
use serde_json::Value;

const PAN: &str = "4761739001010119";

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("terminal")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> (bool, String) {
    let (out, text) = common::switchyard(args, None);
    assert!(!text.contains(PAN), "full PAN printed by {args:?}: {text}");
    (out.status.success(), text)
}

fn json(args: &[&str]) -> Value {
    let (ok, text) = run(args);
    assert!(ok, "{args:?}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The default config's listeners (5001, 5002, 5003, 5005).
const DEFAULT_LISTENERS: usize = 4;

/// A running switch: its listeners' addresses by name, its log.
struct Running {
    child: Child,
    addrs: Vec<(String, String)>,
    log: mpsc::Receiver<String>,
}

impl Running {
    fn start(config: &Path, listeners: usize) -> Running {
        let (child, log) = spawn_run(config);
        let mut addrs = Vec::new();
        while addrs.len() < listeners {
            let line = log
                .recv_timeout(Duration::from_secs(120))
                .expect("the switch logs its listeners");
            if line.contains("serving") {
                addrs.push((
                    field(&line, "listener=").unwrap(),
                    field(&line, "addr=").unwrap(),
                ));
            }
        }
        Running { child, addrs, log }
    }

    fn port(&self, listener: &str) -> String {
        let addr = &self.addrs.iter().find(|(n, _)| n == listener).unwrap().1;
        addr.rsplit_once(':').unwrap().1.to_owned()
    }

    /// Log lines so far.
    fn lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (spec, framing) of the extra listeners: every built-in spec, each with
/// another framing.
const WIRES: &[(&str, &str)] = &[
    ("iso87-ascii", "4a"),
    ("iso87-ascii-hex", "2b+tpdu"),
    ("iso87-binary", "2bcd"),
    ("iso93-ascii", "3a+tpdu"),
    ("iso93-binary", "visa"),
    ("iso87-ebcdic", "2b+self"),
    ("iso87-ebcdic-1047", "4b+tpdu"),
];

/// Framings [`WIRES`] leaves out, each on a listener of its own (name,
/// framing, largest frame): `2a` carries at most 99 bytes, an 0800.
const MORE_FRAMINGS: &[(&str, &str, usize)] = &[("three-b", "3b", 999), ("two-a", "2a", 99)];

/// The default config on free ports plus one listener per entry of
/// [`WIRES`] and [`MORE_FRAMINGS`], each authorizing locally (port 5001's
/// branch).
fn every_spec_config(dir: &Path) -> PathBuf {
    let mut text = free_ports_config("127.0.0.1:0");
    let listeners = WIRES
        .iter()
        .map(|(spec, framing)| (*spec, *spec, *framing, 999))
        .chain(
            MORE_FRAMINGS
                .iter()
                .map(|(name, framing, max)| (*name, "iso87-ascii", *framing, *max)),
        );
    for (name, spec, framing, max) in listeners {
        text.push_str(&format!(
            "\n[[listener]]\nname = \"{name}\"\nport = 5001\nbind = \"127.0.0.1:0\"\n\
             pipeline = \"acquirer\"\nspec = \"{spec}\"\nframing = \"{framing}\"\nmax_frame = {max}\n"
        ));
    }
    let path = dir.join("switch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn send_speaks_every_built_in_spec_and_framing() {
    let dir = dir("every-spec");
    let sw = Running::start(
        &every_spec_config(&dir),
        DEFAULT_LISTENERS + WIRES.len() + MORE_FRAMINGS.len(),
    );
    // The framings of no spec of their own: an approval on 3b, an echo on 2a.
    let (ok, text) = run(&["send", "--port", &sw.port("three-b"), "--framing", "3b"]);
    assert!(ok && text.contains("rc 00: approved"), "{text}");
    let (ok, text) = run(&[
        "send",
        "--port",
        &sw.port("two-a"),
        "--framing",
        "2a",
        "--mti",
        "0800",
    ]);
    assert!(
        ok && text.contains("← 0810") && text.contains("rc 00"),
        "{text}"
    );
    for (spec, framing) in WIRES {
        let port = sw.port(spec);
        let wire = ["--port", &port, "--spec", spec, "--framing", framing];
        let iso93 = spec.starts_with("iso93");
        let rc = |amount: &str| {
            let doc = json(&[&["send", "--json", "--amount", amount][..], &wire].concat());
            let x = &doc["exchanges"][0];
            assert_eq!(doc["spec"], *spec);
            assert_eq!(x["request"]["fields"]["002"], "476173******0119", "{doc}");
            (
                x["rc"].as_str().unwrap().to_owned(),
                x["meaning"].as_str().unwrap_or("").to_owned(),
            )
        };
        let (approved, meaning) = rc("25.00");
        assert_eq!(approved, if iso93 { "000" } else { "00" }, "{spec}");
        assert_eq!(meaning, "approved");
        let (over, meaning) = rc("6000.00");
        assert_eq!(over, if iso93 { "121" } else { "61" }, "{spec}");
        assert_eq!(meaning, "exceeds withdrawal amount limit");

        // Text: fields by name, the meaning, and the frames in hex with the
        // card data masked.
        let (ok, text) = run(&[&["send", "--hex"][..], &wire].concat());
        assert!(ok, "{spec}: {text}");
        assert!(text.contains("Amount, Transaction"), "{spec}: {text}");
        assert!(
            text.contains(if iso93 {
                "rc 000: approved"
            } else {
                "rc 00: approved"
            }),
            "{spec}: {text}"
        );
        assert!(
            text.contains("** ** **"),
            "{spec}: no masked bytes in {text}"
        );
        assert!(!text.contains("37 33 39 30 30 31"), "{spec}: {text}");
    }
}

/// The default config on free ports, started.
fn default_switch(dir: &Path) -> Running {
    let path = dir.join("switch.toml");
    std::fs::write(&path, free_ports_config("127.0.0.1:0")).unwrap();
    Running::start(&path, DEFAULT_LISTENERS)
}

#[test]
fn send_repeats_reverses_omits_counts_and_explains() {
    let dir = dir("send");
    let sw = default_switch(&dir);
    let (local, switched) = (sw.port("local"), sw.port("switched"));

    // The original, its repeat (answered from the tranlog: the same
    // approval code), its reversal (00).
    let doc = json(&[
        "send",
        "--port",
        &switched,
        "--stan",
        "4101",
        "--repeat",
        "--reverse",
        "--json",
    ]);
    let x = doc["exchanges"].as_array().unwrap();
    let kinds: Vec<&str> = x.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["original", "repeat", "reversal"]);
    assert_eq!(x[1]["request"]["mti"], "0201");
    assert_eq!(x[2]["request"]["mti"], "0420");
    for e in x {
        assert_eq!(e["rc"], "00", "{e}");
    }
    assert_eq!(
        x[0]["response"]["fields"]["038"], x[1]["response"]["fields"]["038"],
        "the repeat gets the recorded response"
    );

    // --omit drops a default field: no DE41 → 30, with its meaning.
    let (ok, text) = run(&["send", "--port", &local, "--omit", "41"]);
    assert!(ok, "{text}");
    assert!(text.contains("rc 30: format error"), "{text}");
    assert!(!text.contains("DE041"), "{text}");
    let (_, text) = run(&["send", "--port", &local, "--amount", "6000.00"]);
    assert!(
        text.contains("rc 61: exceeds withdrawal amount limit"),
        "{text}"
    );
    assert!(text.contains("exp ****"), "expiry masked: {text}");

    // Many: a summary.
    let doc = json(&[
        "send",
        "--port",
        &switched,
        "--count",
        "40",
        "--concurrency",
        "4",
        "--amount",
        "1.51",
        "--stan",
        "200000",
        "--json",
    ]);
    assert_eq!(doc["transactions"], 40);
    assert_eq!(doc["codes"]["51"], 40, "{doc}");
    assert_eq!(doc["timeouts"], 0);
    assert!(doc["latency_ms"]["p99"].as_f64().unwrap() > 0.0, "{doc}");
    let (ok, text) = run(&[
        "send", "--port", &local, "--count", "10", "--stan", "300000",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("rc 00 approved") && text.contains("latency ms: p50"),
        "{text}"
    );

    // No answer (the simulator is silent for ...91): exit 1, saying so.
    let (ok, text) = run(&[
        "send",
        "--port",
        &switched,
        "--amount",
        "1.91",
        "--timeout-ms",
        "300",
    ]);
    assert!(!ok, "{text}");
    assert!(text.contains("← nothing: no response within"), "{text}");

    // A reader that goes away (`… | head`) is no panic.
    let mut child = Command::new(BIN)
        .args(["send", "--port", &local])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );

    // Mistakes say what and where.
    for (args, needle) in [
        (
            vec!["--framing", "5x"],
            "--framing \"5x\": unknown (known: 2b",
        ),
        (
            vec!["--spec", "martian"],
            "--spec: unknown spec \"martian\" (built in: iso87-ascii",
        ),
        (
            vec!["--tpdu", "60"],
            "--tpdu \"60\": expected 10 hex digits",
        ),
        (
            vec!["--listener", "pos"],
            "--listener \"pos\" needs --config FILE",
        ),
        (vec!["--field", "200=1"], "field 200"),
        (
            vec!["--hex", "--count", "2"],
            "--hex prints single exchanges",
        ),
    ] {
        let (ok, text) = run(&[&["send", "--port", &local][..], &args[..]].concat());
        assert!(!ok, "{args:?}: {text}");
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
}

#[test]
fn send_finds_a_listener_in_a_config() {
    let dir = dir("listener");
    let config = every_spec_config(&dir);
    let sw = Running::start(
        &config,
        DEFAULT_LISTENERS + WIRES.len() + MORE_FRAMINGS.len(),
    );
    // The config binds port 0, so --port names the bound one; spec and
    // framing come from the listener.
    let port = sw.port("iso87-binary");
    let doc = json(&[
        "send",
        "--config",
        config.to_str().unwrap(),
        "--listener",
        "iso87-binary",
        "--port",
        &port,
        "--json",
    ]);
    assert_eq!(doc["spec"], "iso87-binary");
    assert_eq!(doc["framing"], "2bcd");
    assert_eq!(doc["exchanges"][0]["rc"], "00", "{doc}");
    let (ok, text) = run(&[
        "send",
        "--config",
        config.to_str().unwrap(),
        "--listener",
        "iso87-binary",
    ]);
    assert!(!ok && text.contains("binds port 0"), "{text}");
    let (ok, text) = run(&[
        "send",
        "--config",
        config.to_str().unwrap(),
        "--listener",
        "pos",
    ]);
    assert!(
        !ok && text.contains("--listener \"pos\": no such listener (defined: local, switched, "),
        "{text}"
    );
}

/// `switchyard simulate ARGS` on a free port: the child and its address.
fn simulate(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("simulate")
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    for line in stderr.lines().map_while(Result::ok) {
        if line.contains("endpoint simulator listening") {
            addr = field(&line, "addr=");
            break;
        }
    }
    (child, addr.expect("the simulator logs its address"))
}

#[test]
fn simulate_answers_by_a_rules_file_in_any_spec_and_framing() {
    let dir = dir("simulate");
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "default_rc = \"05\"\nreversal_rc = \"96\"\n\
         [[rule]]\namount_suffix = \"42\"\nrc = \"00\"\n\
         [[rule]]\namount_suffix = \"33\"\nrc = \"61\"\ndelay_ms = 200\n\
         [[rule]]\namount_suffix = \"99\"\nsilence = true\n",
    )
    .unwrap();
    let wire = ["--spec", "iso87-binary", "--framing", "4a"];
    let (mut sim, addr) = simulate(&[&wire[..], &["--rules", rules.to_str().unwrap()]].concat());
    let port = addr.rsplit_once(':').unwrap().1.to_owned();
    let send =
        |extra: &[&str]| run(&[&["send", "--port", &port, "--json"][..], &wire, extra].concat());
    let rc = |amount: &str| -> (String, f64) {
        let (ok, text) = send(&["--amount", amount]);
        assert!(ok, "{text}");
        let doc: Value = serde_json::from_str(&text).unwrap();
        let x = &doc["exchanges"][0];
        (
            x["rc"].as_str().unwrap().to_owned(),
            x["ms"].as_f64().unwrap(),
        )
    };
    assert_eq!(rc("1.42").0, "00");
    let (code, ms) = rc("1.33");
    assert_eq!(code, "61");
    assert!(
        ms >= 200.0,
        "answered after {ms} ms, not after the rule's 200"
    );
    assert_eq!(rc("1.00").0, "05", "the default code");
    let (ok, text) = send(&["--amount", "1.99", "--timeout-ms", "300"]);
    assert!(!ok && text.contains("no response within"), "{text}");
    let (_, text) = send(&["--amount", "1.42", "--reverse"]);
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["exchanges"][1]["rc"], "96", "reversal_rc: {doc}");
    let _ = sim.kill();
    let _ = sim.wait();

    // The default contract in a 1993 spec with a TPDU: action codes.
    let (mut sim, addr) = simulate(&["--spec", "iso93-ascii", "--framing", "2b+tpdu"]);
    let port = addr.rsplit_once(':').unwrap().1.to_owned();
    let doc = json(&[
        "send",
        "--port",
        &port,
        "--spec",
        "iso93-ascii",
        "--framing",
        "2b+tpdu",
        "--amount",
        "1.51",
        "--json",
    ]);
    assert_eq!(doc["exchanges"][0]["rc"], "116");
    assert_eq!(doc["exchanges"][0]["meaning"], "not sufficient funds");
    let _ = sim.kill();
    let _ = sim.wait();

    // A bad rules file, an unknown endpoint: refused, saying where.
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[rule]]\namount_suffix = \"5x\"\nrc = \"51\"\n[[rule]]\namount_suffix = \"9\"\n",
    )
    .unwrap();
    let (ok, text) = run(&["simulate", "--rules", bad.to_str().unwrap()]);
    assert!(!ok, "{text}");
    for needle in [
        "rules file",
        "rule[0].amount_suffix: \"5x\" is not 1 to 12 digits",
        "rule[1]: give rc",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    let (ok, text) = run(&["simulate", "--endpoint", "zzz"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "--endpoint \"zzz\": no such endpoint in the default config (defined: xxx, yyy)"
        ),
        "{text}"
    );
}

#[test]
fn a_96_from_a_host_step_says_why_at_warn() {
    let dir = dir("busy");
    let sw = default_switch(&dir);
    let switched = sw.port("switched");
    // Two transactions with one endpoint key (response MTI, STAN,
    // terminal) but another DE7: the second finds the first waiting.
    let first = {
        let switched = switched.clone();
        std::thread::spawn(move || {
            run(&[
                "send",
                "--port",
                &switched,
                "--stan",
                "777",
                "--amount",
                "1.91",
                "--field",
                "7=1201000000",
            ])
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (_, text) = run(&[
        "send",
        "--port",
        &switched,
        "--stan",
        "777",
        "--field",
        "7=1201000001",
    ]);
    assert!(text.contains("rc 96: system malfunction"), "{text}");
    let _ = first.join();
    std::thread::sleep(Duration::from_millis(200));
    let lines = sw.lines();
    assert!(
        lines.iter().any(|l| l.contains("WARN")
            && l.contains("participant failed")
            && l.contains("query-xxx")
            && l.contains("is already waiting for its reply")),
        "no WARN with the reason in {lines:#?}"
    );
}

#[test]
fn plugin_test_builds_a_request_its_own_spec_accepts() {
    for spec in [
        "iso93-ascii",
        "iso93-binary",
        "iso87-ebcdic",
        "iso87-binary",
    ] {
        let (ok, text) = run(&["plugin", "test", "builtin:validate", "--spec", spec]);
        assert!(ok, "{spec}: {text}");
        assert!(text.contains("outcome    PREPARED"), "{spec}: {text}");
    }
}

#[test]
fn completions_man_pages_and_an_example_in_every_help() {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, text) = run(&["completions", shell]);
        assert!(
            ok && text.contains("switchyard") && text.contains("simulate"),
            "{shell}"
        );
    }
    let (ok, text) = run(&["man"]);
    assert!(ok && text.contains(".TH switchyard 1"), "{text}");
    let dir = dir("man");
    let (ok, text) = run(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(ok, "{text}");
    for page in [
        "switchyard.1",
        "switchyard-send.1",
        "switchyard-plugin-swap.1",
    ] {
        assert!(dir.join(page).exists(), "{page} not written");
    }
    for command in [
        vec!["run"],
        vec!["demo"],
        vec!["send"],
        vec!["simulate"],
        vec!["check"],
        vec!["plugin", "swap"],
        vec!["plugin", "list"],
        vec!["tranlog", "search"],
        vec!["saf", "retry"],
        vec!["keys", "rotate"],
        vec!["completions"],
        vec!["man"],
    ] {
        let (ok, text) = run(&[&command[..], &["--help"]].concat());
        assert!(ok && text.contains("Example"), "{command:?} --help: {text}");
    }
}

#[test]
fn the_demo_leaves_its_directory_as_it_found_it() {
    // A copy of the binary elsewhere: it needs nothing from the source tree.
    let dir = dir("demo");
    let (bin, cwd, cache) = (dir.join("bin"), dir.join("cwd"), dir.join("cache"));
    for d in [&bin, &cwd, &cache] {
        std::fs::create_dir_all(d).unwrap();
    }
    let copy = bin.join("switchyard");
    std::fs::copy(BIN, &copy).unwrap();
    let out = Command::new(&copy)
        .arg("demo")
        .current_dir(&cwd)
        .env("XDG_CACHE_HOME", &cache)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("Every transaction got the response code"));
    assert!(!stdout.contains(PAN));
    let state = stdout
        .lines()
        .find_map(|l| l.strip_prefix("state in "))
        .and_then(|l| l.split(" (removed at exit)").next())
        .expect("the demo says where its state is");
    assert!(!Path::new(state).exists(), "{state} left behind");
    assert!(
        stdout.contains(&format!(
            "compiled plugins cached in {}",
            cache.join("switchyard").display()
        )),
        "{stdout}"
    );
    let left: Vec<_> = std::fs::read_dir(&cwd).unwrap().collect();
    assert!(left.is_empty(), "the demo left {left:?} in its directory");

    // Interrupted once the switch is up: its state goes too.
    let mut child = Command::new(&copy)
        .arg("demo")
        .current_dir(&cwd)
        .env("XDG_CACHE_HOME", &cache)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let state = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("state in ")
        .and_then(|l| l.split(" (removed at exit)").next())
        .expect("the demo says where its state is")
        .to_owned();
    for line in lines.by_ref().map_while(Result::ok) {
        if line.contains("switch started") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in lines {}
    let _ = child.wait().unwrap();
    assert!(
        !Path::new(&state).exists(),
        "{state} left behind after SIGINT"
    );
    let left: Vec<_> = std::fs::read_dir(&cwd).unwrap().collect();
    assert!(left.is_empty(), "the interrupted demo left {left:?}");
}
