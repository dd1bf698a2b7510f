//! The issuer paths of the default contract through the real binary over
//! TCP (issue 8): 5003 routes by card (BIN table, card-type rules, RC 15)
//! after velocity (count and amount limits, give-back on reversal, exact
//! under concurrency, durable across a SIGKILL), the loyalty and coupon
//! hosts (and their reversals), 5005 through the mainframe endpoint `yyy`,
//! and `check` refusing plugin settings that would fail every transaction.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{field, free_ports_config, spawn_run, switchyard};
use switchyard::client::{Connection, RequestSpec, reversal_of};
use switchyard_iso8583::{Message, Spec};

const VISA: &str = "4761739001010119";
const MASTERCARD: &str = "5413330089010509";
const MASTERCARD_2: &str = "2223000048410010";
const AMEX: &str = "378282246310005";
const VELOCITY_CARD: &str = "4111111111111111";
const AMOUNT_CARD: &str = "4012888888881881";
const RACE_CARD: &str = "4000056655665556";
const LOYALTY_CARD: &str = "6006490000000012";
const WAIT: Duration = Duration::from_secs(5);

struct Running {
    child: Child,
    ports: HashMap<u16, SocketAddr>,
    _log: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("issuer-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The default config on free ports, with `edit` applied, in `dir`.
fn config(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let path = dir.join("switchyard.toml");
    // The admin API on a port the CLI can find in the config.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = free.local_addr().unwrap().to_string();
    drop(free);
    std::fs::write(&path, edit(free_ports_config(&admin))).unwrap();
    path
}

/// `switchyard run`, once every listener is serving.
fn start(config: &Path) -> Running {
    let (child, log) = spawn_run(config);
    let mut ports = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ports.len() < 4 {
        let line = log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the switch did not start");
        if line.contains("serving")
            && let (Some(port), Some(addr)) = (field(&line, "port="), field(&line, "addr="))
        {
            ports.insert(port.parse().unwrap(), addr.parse().unwrap());
        }
    }
    Running {
        child,
        ports,
        _log: log,
    }
}

impl Running {
    async fn send(&self, port: u16, m: &Message) -> Message {
        let mut c = Connection::connect(self.ports[&port]).await.unwrap();
        c.exchange(m, WAIT).await.unwrap()
    }

    async fn rc(&self, port: u16, spec: &RequestSpec) -> (String, Message) {
        let m = spec.build().unwrap();
        let r = self.send(port, &m).await;
        (r.get_str(39).unwrap_or("").to_owned(), m)
    }
}

fn purchase(pan: &str, amount: u64, stan: u32) -> RequestSpec {
    RequestSpec::financial("0200", pan, amount, stan)
}

fn with_de3(mut r: RequestSpec, de3: &str) -> RequestSpec {
    r.fields.push((3, de3.into()));
    r
}

/// Sends `amount` on `pan` (STANs from `stan`) until it is approved, for at
/// most 5 s: whether it was.
async fn approved_within(sw: &Running, pan: &str, amount: u64, stan: u32) -> bool {
    let deadline = Instant::now() + WAIT;
    for i in 0..100 {
        let (rc, _) = sw.rc(5003, &purchase(pan, amount, stan + i)).await;
        if rc == "00" {
            return true;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn reverse(sw: &Running, port: u16, original: &Message, stan: u32) -> String {
    let rev = reversal_of(original, stan, &Spec::iso87_ascii()).unwrap();
    let r = sw.send(port, &rev).await;
    r.get_str(39).unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_5003_routes_by_card_most_specific_first_and_15_without_a_match() {
    let d = dir("routes");
    // One more specific entry inside the Mastercard range goes to xxx.
    let cfg = config(&d, |t| {
        t.replace(
            "\"bin 600649\" = \"loyalty\"",
            "\"bin 541333\" = \"visa\", \"bin 600649\" = \"loyalty\"",
        )
    });
    let sw = start(&cfg);
    let cases = [
        (VISA, 'S', "Visa → xxx"),
        (MASTERCARD_2, 'Y', "Mastercard 2221–2720 → yyy"),
        (MASTERCARD, 'S', "541333 beats 51..55"),
    ];
    for (i, (pan, by, what)) in cases.iter().enumerate() {
        let r = sw
            .send(5003, &purchase(pan, 1_000, 100 + i as u32).build().unwrap())
            .await;
        assert_eq!(r.get_str(39), Some("00"), "{what}");
        let de38 = r.get_str(38).unwrap_or("");
        assert!(de38.starts_with(*by), "{what}: DE38 {de38:?}");
    }
    let mc = purchase("5500005555555559", 1_000, 110).build().unwrap();
    let r = sw.send(5003, &mc).await;
    assert_eq!(r.get_str(39), Some("00"));
    assert!(r.get_str(38).unwrap_or("").starts_with('Y'), "51..55 → yyy");
    let (rc, _) = sw.rc(5003, &purchase(AMEX, 1_000, 111)).await;
    assert_eq!(rc, "15", "no BIN matches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn velocity_limits_give_back_on_reversal_race_exactly_and_survive_sigkill() {
    let d = dir("velocity");
    let cfg = config(&d, |t| t);
    let mut sw = start(&cfg);
    // Count: 10 approvals per card in 24 h; the 11th gets 65.
    let mut approved = Vec::new();
    for i in 0..10 {
        let (rc, m) = sw.rc(5003, &purchase(VELOCITY_CARD, 100, 200 + i)).await;
        assert_eq!(rc, "00", "approval {}", i + 1);
        approved.push(m);
    }
    let (rc, _) = sw.rc(5003, &purchase(VELOCITY_CARD, 100, 211)).await;
    assert_eq!(rc, "65", "the 11th approval");
    // A decline does not count, a reversal gives its count back.
    assert_eq!(reverse(&sw, 5003, &approved[0], 212).await, "00");
    // The give-back runs from the store-and-forward queue, just after the
    // reversal is answered: a decline in between counts nothing.
    assert!(
        approved_within(&sw, VELOCITY_CARD, 100, 1300).await,
        "the reversal gave one back"
    );
    let (rc, _) = sw.rc(5003, &purchase(VELOCITY_CARD, 100, 214)).await;
    assert_eq!(rc, "65");

    // Amount: 2,500.00 per card in 24 h → 61; a reversal gives it back.
    let (rc, big) = sw.rc(5003, &purchase(AMOUNT_CARD, 200_000, 220)).await;
    assert_eq!(rc, "00");
    let (rc, _) = sw.rc(5003, &purchase(AMOUNT_CARD, 60_000, 221)).await;
    assert_eq!(rc, "61", "2,000.00 + 600.00 is over 2,500.00");
    let (rc, _) = sw.rc(5003, &purchase(AMOUNT_CARD, 50_000, 222)).await;
    assert_eq!(rc, "00", "2,500.00 exactly is within the limit");
    assert_eq!(reverse(&sw, 5003, &big, 223).await, "00");
    assert!(
        approved_within(&sw, AMOUNT_CARD, 150_000, 1400).await,
        "the reversal gave 2,000.00 back"
    );

    // Concurrent approvals at the limit: 9 counted, then 6 at once → one passes.
    for i in 0..9 {
        let (rc, _) = sw.rc(5003, &purchase(RACE_CARD, 100, 230 + i)).await;
        assert_eq!(rc, "00");
    }
    let mut racing = Vec::new();
    for i in 0..6u32 {
        let m = purchase(RACE_CARD, 100, 240 + i).build().unwrap();
        let addr = sw.ports[&5003];
        racing.push(tokio::spawn(async move {
            let mut c = Connection::connect(addr).await.unwrap();
            let r = c.exchange(&m, WAIT).await.unwrap();
            r.get_str(39).unwrap_or("").to_owned()
        }));
    }
    let mut codes = Vec::new();
    for r in racing {
        codes.push(r.await.unwrap());
    }
    codes.sort();
    assert_eq!(
        codes,
        ["00", "65", "65", "65", "65", "65"],
        "exactly one passes"
    );

    // SIGKILL, restart: the counts are still there.
    sw.child.kill().unwrap();
    sw.child.wait().unwrap();
    drop(sw);
    let sw = start(&cfg);
    let (rc, _) = sw.rc(5003, &purchase(VELOCITY_CARD, 100, 250)).await;
    assert_eq!(rc, "65", "the count survived the kill");
    let (rc, _) = sw.rc(5003, &purchase(RACE_CARD, 100, 251)).await;
    assert_eq!(rc, "65", "so did the raced one");
    let (rc, _) = sw.rc(5003, &purchase(AMOUNT_CARD, 60_000, 252)).await;
    assert_eq!(rc, "61", "and the amount");
}

/// Stops the switch with SIGTERM and waits for it.
fn stop(mut sw: Running) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &sw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    sw.child.wait().unwrap();
}

/// A coupon written straight into the stopped switch's store (the CLI
/// refuses to issue one that is already expired).
fn plant_coupon(cfg: &Path, pan: &str, value_minor: u64, expires: &str) {
    let config = switchyard::config::Config::load(cfg).unwrap();
    let store = switchyard::state::open_store(&config).unwrap().kv;
    let value = format!("v1 {pan} {value_minor} {expires} open");
    store
        .kv_set(
            "default",
            "coupon",
            &format!("coupon:{pan}"),
            value.as_bytes(),
        )
        .unwrap();
}

/// `switchyard ARGS --config CFG`: its output; it must succeed.
fn cli(cfg: &Path, args: &[&str]) -> String {
    let mut all: Vec<&str> = args.to_vec();
    let cfg = cfg.display().to_string();
    all.extend(["--config", &cfg]);
    let (out, text) = switchyard(&all, None);
    assert!(out.status.success(), "switchyard {args:?}: {text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// DE54's first amount (points), signed.
fn balance(r: &Message) -> i64 {
    let de54 = r.get_str(54).expect("DE54");
    let amount: i64 = de54[8..20].parse().unwrap();
    if &de54[7..8] == "D" { -amount } else { amount }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loyalty_and_coupon_hosts_spend_redeem_once_and_undo_on_reversal() {
    let d = dir("hosts");
    let cfg = config(&d, |t| t);
    stop(start(&cfg)); // creates the data directory
    let out = cli(&cfg, &["loyalty", "credit", LOYALTY_CARD, "10000"]);
    assert!(out.contains("600649******0012"), "{out}");
    assert!(!out.contains(LOYALTY_CARD), "full PAN printed");
    let issued = cli(
        &cfg,
        &[
            "coupons",
            "issue",
            "--value",
            "20.00",
            "--expires",
            "2099-12-31",
            "--json",
        ],
    );
    let coupon: serde_json::Value = serde_json::from_str(&issued).unwrap();
    let coupon = coupon["coupons"][0]["number"]
        .as_str()
        .or_else(|| coupon["number"].as_str())
        .or_else(|| coupon[0]["number"].as_str())
        .expect("the issued number")
        .to_owned();
    assert!(coupon.starts_with("600650") && coupon.len() == 16);
    plant_coupon(&cfg, "6006500000000018", 5_000, "2020-01-31");
    let sw = start(&cfg);

    // Loyalty: spend, decline, balance, reversal restores, refund credits.
    let (rc, spend) = sw.rc(5003, &purchase(LOYALTY_CARD, 2_500, 300)).await;
    assert_eq!(rc, "00", "25.00 of 100.00 in points");
    let (rc, _) = sw.rc(5003, &purchase(LOYALTY_CARD, 8_000, 301)).await;
    assert_eq!(rc, "51", "80.00 is more than the 75.00 left");
    // A balance inquiry moves no money: DE4 is zero.
    let mut inquiry = with_de3(purchase(LOYALTY_CARD, 0, 302), "310000");
    let r = sw.send(5003, &inquiry.build().unwrap()).await;
    assert_eq!((r.get_str(39), balance(&r)), (Some("00"), 7_500));
    assert_eq!(reverse(&sw, 5003, &spend, 303).await, "00");
    let (rc, _) = sw
        .rc(
            5003,
            &with_de3(purchase(LOYALTY_CARD, 1_000, 304), "200000"),
        )
        .await;
    assert_eq!(rc, "00", "refund");
    let deadline = Instant::now() + WAIT;
    for stan in 305.. {
        inquiry.stan = stan;
        let r = sw.send(5003, &inquiry.build().unwrap()).await;
        if balance(&r) == 11_000 {
            break; // the reversal restored 2,500, the refund credited 1,000
        }
        assert!(Instant::now() < deadline, "balance {}", balance(&r));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Coupons: redeem once, 05 the second time, 54 expired, reversal un-redeems.
    let (rc, first) = sw.rc(5003, &purchase(&coupon, 1_500, 310)).await;
    assert_eq!(rc, "00");
    let (rc, _) = sw.rc(5003, &purchase(&coupon, 1_500, 311)).await;
    assert_eq!(rc, "05", "a coupon redeems once");
    let (rc, _) = sw.rc(5003, &purchase("6006500000000018", 1_000, 312)).await;
    assert_eq!(rc, "54", "expired");
    assert_eq!(reverse(&sw, 5003, &first, 313).await, "00");
    let mut again = false;
    for i in 0..60 {
        let (rc, _) = sw.rc(5003, &purchase(&coupon, 1_500, 314 + 100 * i)).await;
        if rc == "00" {
            again = true;
            break;
        }
        assert_eq!(rc, "05");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again, "the reversal un-redeemed it");
    let (rc, _) = sw.rc(5003, &purchase(&coupon, 2_500, 9_315)).await;
    assert_eq!(rc, "05");
    stop(sw);
    let listed = cli(&cfg, &["coupons", "list"]);
    assert!(listed.contains("600650******"), "{listed}");
    assert!(!listed.contains(&coupon), "full coupon number listed");
    let out = cli(&cfg, &["loyalty", "balance", LOYALTY_CARD]);
    assert!(out.contains("11000"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_5005_answers_every_path_through_the_mainframe_endpoint() {
    let d = dir("mainframe");
    let cfg = config(&d, |t| t);
    let sw = start(&cfg);
    let (rc, approved) = sw.rc(5005, &purchase(VISA, 12_300, 400)).await;
    assert_eq!(rc, "00");
    let r = sw
        .send(5005, &purchase(VISA, 12_300, 401).build().unwrap())
        .await;
    assert!(
        r.get_str(38).unwrap_or("").starts_with('Y'),
        "yyy's approval code"
    );
    for (amount, want, stan) in [
        (10_051, "51", 402),
        (10_005, "05", 403),
        (10_077, "00", 404),
    ] {
        let (rc, _) = sw.rc(5005, &purchase(VISA, amount, stan)).await;
        assert_eq!(rc, want, "amount {amount}");
    }
    let started = Instant::now();
    let (rc, _) = sw.rc(5005, &purchase(VISA, 10_091, 405)).await;
    assert_eq!(rc, "91", "yyy never answers …91");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let (rc, _) = sw
        .rc(5005, &purchase("4761739001010118", 10_000, 406))
        .await;
    assert_eq!(rc, "14", "validation before the endpoint");
    assert_eq!(reverse(&sw, 5005, &approved, 407).await, "00");
    // The reversals (of the timeout and of the approval) reach yyy: the
    // store-and-forward queue drains.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = cli(&cfg, &["saf", "list", "--endpoint", "yyy", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let pending = v["entries"].as_array().map_or(0, Vec::len);
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "yyy's SAF did not drain: {out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn check_refuses_plugin_settings_that_would_fail_every_transaction() {
    let d = dir("check");
    let cases = [
        (
            "\"limit = \\\"5000.00\\\"\"",
            "config = { limit = \"5000.00\" }",
            "config = { limit = \"5,000.00\" }",
            "participants.local-auth.config.limit",
        ),
        (
            "unknown route",
            "\"route coupon\" = \"coupon\"",
            "\"route coupons\" = \"coupon\"",
            "participants.by-card.config",
        ),
        (
            "bad TPDU",
            "tpdu_destination = \"0001\"",
            "tpdu_destination = \"00G1\"",
            "endpoints.xxx.formatter_config.tpdu_destination",
        ),
        (
            "overlap of equal specificity",
            "\"bin 600650\" = \"coupon\"",
            "\"bin 600650\" = \"coupon\", \"bin 600600..600699\" = \"visa\"",
            "participants.by-card.config",
        ),
        (
            "selector target that names nothing",
            "\"case 5001\" = \"local-auth close send\"",
            "\"case 5001\" = \"local-auth clsoe send\"",
            "participants.by-port.config",
        ),
    ];
    let ok = config(&d, |t| t);
    let (out, text) = switchyard(&["check", "--config", &ok.display().to_string()], None);
    assert!(out.status.success(), "the default config: {text}");
    for (what, from, to, path) in cases {
        let cfg = config(&d, |t| {
            assert!(t.contains(from), "{what}: {from} not in the config");
            t.replacen(from, to, 1)
        });
        let (out, text) = switchyard(&["check", "--config", &cfg.display().to_string()], None);
        assert!(!out.status.success(), "{what}: check passed");
        assert!(text.contains(path), "{what}: {path} not in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_endpoint_yyy_stands_in_for_the_mainframe_alone() {
    use std::io::{BufRead, BufReader};
    let mut sim = std::process::Command::new(common::BIN)
        .args(["simulate", "--endpoint", "yyy", "--bind", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(sim.stderr.take().unwrap());
    let mut addr = None;
    for line in stderr.lines().map_while(Result::ok) {
        if line.contains("mainframe simulator listening") {
            addr = field(&line, "addr=");
            break;
        }
    }
    let addr = addr.expect("the mainframe simulator logs its address");
    // The switch's yyy is that process, not its own simulator.
    let d = dir("simulate-yyy");
    let cfg = config(&d, |t| {
        t.replace(
            "framing = \"rdw\"              # IBM record descriptor word: 2-byte length counting itself, 2 zero bytes\nsimulator = true",
            "framing = \"rdw\"\nsimulator = false",
        )
    });
    let text = std::fs::read_to_string(&cfg).unwrap();
    let at = text.find("[endpoints.yyy]").unwrap();
    let (head, tail) = text.split_at(at);
    let tail = tail.replacen(
        "address = \"127.0.0.1:0\"",
        &format!("address = {addr:?}"),
        1,
    );
    std::fs::write(&cfg, format!("{head}{tail}")).unwrap();
    assert!(
        std::fs::read_to_string(&cfg)
            .unwrap()
            .contains("simulator = false")
    );
    let sw = start(&cfg);
    let r = sw
        .send(5005, &purchase(VISA, 12_300, 500).build().unwrap())
        .await;
    assert_eq!(r.get_str(39), Some("00"));
    assert!(
        r.get_str(38).unwrap_or("").starts_with('Y'),
        "the mainframe's code"
    );
    let (rc, _) = sw.rc(5005, &purchase(VISA, 10_051, 501)).await;
    assert_eq!(rc, "51");
    drop(sw);
    let _ = sim.kill();
    let _ = sim.wait();
}
