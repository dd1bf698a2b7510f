//! Every built-in ISO 8583 spec answers every response path of the default
//! wire contract over a listener: one `switchyard run` with the default
//! config plus, per built-in spec, a listener that authorizes locally (port
//! 5001's branch) and one that switches out to endpoint `xxx` (port 5002's
//! branch, the simulator). Each spec's requests are built with the host's
//! own encoder for that spec and use the spec's own MTI version: 0xxx on the
//! 1987 specs, 1xxx on the 1993 specs (1100/1200, 1420, 1804 with DE24 =
//! 831). Every reply must decode with the same spec, carry the response MTI
//! (request + 10), and DE39 must be the 1987 response code on a 1987 spec
//! and the ISO 8583:1993 action code on a 1993 spec (000 approved, 400 a
//! reversal accepted, 800 an echo accepted, 904, 111, 101, 110, 902, 121,
//! 911, 116, 100, 913). Beyond the replies: the echo test on a switched
//! listener is answered by the switch itself (its trace has no
//! `query-xxx`), every reversal queued is acknowledged by `xxx`, and the
//! switch logs no error, no failed participant and no full PAN. A spec that
//! cannot answer one of the paths fails here, with every failing path of
//! every spec listed at once.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard::client::{Connection, RequestSpec, UtcTime, Wire, reversal_of};
use switchyard_iso8583::{Message, Spec};
use switchyard_net::framing::Framing;

/// The published Visa test card.
const PAN: &str = "4761739001010119";
/// The test card with its check digit changed: fails Luhn.
const BAD_LUHN_PAN: &str = "4761739001010118";
/// Longest wait for one reply: the endpoint timeout (1 s) and then some.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("specs-answer")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The default config on free ports plus, for every built-in spec, a
/// listener `local-SPEC` (port 5001's branch) and `switched-SPEC` (5002's).
fn config(dir: &Path) -> PathBuf {
    // One profiler line per transaction: the test reads approvals' traces.
    let mut text = common::free_ports_config("127.0.0.1:0")
        .replace("every_transaction = false", "every_transaction = true");
    for spec in Spec::builtin_names() {
        for (role, port) in [("local", 5001), ("switched", 5002)] {
            text.push_str(&format!(
                "\n[[listener]]\nname = \"{role}-{spec}\"\nport = {port}\n\
                 bind = \"127.0.0.1:0\"\npipeline = \"acquirer\"\nspec = \"{spec}\"\n"
            ));
        }
    }
    let path = dir.join("switch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running switch: the bound address of every listener, by name, and
/// every line it logged.
struct Running {
    child: std::process::Child,
    addrs: Vec<(String, SocketAddr)>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts the switch and waits until every listener of `wanted` serves.
    fn start(config: &Path, wanted: &[String]) -> Running {
        let (child, rx) = common::spawn_run(config);
        let mut running = Running {
            child,
            addrs: Vec::new(),
            log: Arc::default(),
        };
        let until = Instant::now() + Duration::from_secs(180);
        while !wanted
            .iter()
            .all(|w| running.addrs.iter().any(|(n, _)| n == w))
        {
            let left = until.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                panic!(
                    "the switch did not serve every listener; its log:\n{}",
                    running.log.lock().unwrap().join("\n")
                );
            };
            if line.contains("serving") {
                let name = common::field(&line, "listener=").unwrap();
                let addr = common::field(&line, "addr=").unwrap().parse().unwrap();
                running.addrs.push((name, addr));
            }
            running.log.lock().unwrap().push(line);
        }
        let log = running.log.clone();
        std::thread::spawn(move || {
            while let Ok(line) = rx.recv() {
                log.lock().unwrap().push(line);
            }
        });
        running
    }

    fn addr(&self, listener: &str) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(n, _)| n == listener)
            .unwrap_or_else(|| panic!("listener {listener} is not serving"))
            .1
    }

    /// The profiler line of the transaction `mti`/`stan` on `listener`,
    /// waiting up to 5 s for it to be logged.
    fn trace(&self, listener: &str, mti: &str, stan: &str) -> Option<String> {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| {
                    l.contains(&format!("listener={listener} "))
                        && l.contains(&format!("mti=\"{mti}\""))
                        && l.contains(&format!("stan=\"{stan}\""))
                        && l.contains(" end [")
                })
                .cloned();
            if found.is_some() || Instant::now() > until {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The store-and-forward entries queued and not acknowledged after
    /// waiting up to `wait` for them.
    fn unacknowledged_saf(&self, wait: Duration) -> Vec<String> {
        let until = Instant::now() + wait;
        loop {
            let log = self.log.lock().unwrap();
            let acknowledged: Vec<String> = log
                .iter()
                .filter(|l| l.contains("store-and-forward entry acknowledged"))
                .filter_map(|l| common::field(l, "saf="))
                .collect();
            let open: Vec<String> = log
                .iter()
                .filter(|l| l.contains(" queued saf="))
                .filter_map(|l| common::field(l, "saf="))
                .filter(|saf| !acknowledged.contains(saf))
                .collect();
            drop(log);
            if open.is_empty() || Instant::now() > until {
                return open;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// DE39 of one response path: the 1987 response code and the ISO 8583:1993
/// action code a 1993 listener answers with instead.
#[derive(Clone, Copy, Debug)]
struct Code {
    iso87: &'static str,
    iso93: &'static str,
}

const fn code(iso87: &'static str, iso93: &'static str) -> Code {
    Code { iso87, iso93 }
}

const APPROVED: Code = code("00", "000");
const FORMAT_ERROR: Code = code("30", "904");
const INVALID_CARD: Code = code("14", "111");
const EXPIRED: Code = code("54", "101");
const INVALID_AMOUNT: Code = code("13", "110");
const UNSUPPORTED: Code = code("12", "902");
const OVER_LIMIT: Code = code("61", "121");
const TIMEOUT: Code = code("91", "911");
const INSUFFICIENT_FUNDS: Code = code("51", "116");
const DO_NOT_HONOUR: Code = code("05", "100");
const DUPLICATE: Code = code("94", "913");
/// A network management request accepted (1993: 800).
const NETWORK_ACCEPTED: Code = code("00", "800");
/// A reversal accepted (1993: 400).
const REVERSAL_ACCEPTED: Code = code("00", "400");

/// One built-in spec's side of the test: its wire, its MTI version, the
/// STANs it may use (unique across specs: the tranlog is shared).
struct SpecRun {
    name: &'static str,
    wire: Arc<Wire>,
    iso93: bool,
    stan_base: u32,
}

impl SpecRun {
    fn new(index: usize, name: &'static str) -> SpecRun {
        let spec = Spec::builtin(name).unwrap();
        let iso93 = spec.field(39).is_some_and(|f| f.max_len() == 3);
        SpecRun {
            name,
            wire: Arc::new(Wire {
                spec,
                framing: Framing::Nac,
                ..Wire::default()
            }),
            iso93,
            stan_base: 100_000 + 1_000 * index as u32,
        }
    }

    /// `mti` ("x200") in this spec's version: 0200 or 1200.
    fn mti(&self, class_function_origin: &str) -> String {
        format!(
            "{}{}",
            if self.iso93 { 1 } else { 0 },
            &class_function_origin[1..]
        )
    }

    fn expected(&self, code: Code) -> &'static str {
        if self.iso93 { code.iso93 } else { code.iso87 }
    }

    /// A financial request (x200) for `amount_minor`, STAN `base + n`, from
    /// this spec's own terminal (a request without DE11 must not match
    /// another spec's as a duplicate).
    fn financial(&self, n: u32, amount_minor: u64) -> RequestSpec {
        let mut r =
            RequestSpec::financial(&self.mti("0200"), PAN, amount_minor, self.stan_base + n);
        r.terminal = Some(format!("SPEC{:04}", self.stan_base / 1_000));
        r
    }

    /// An echo test: 0800 with DE70 = 301, or 1804 with DE24 = 831.
    fn echo(&self, n: u32) -> RequestSpec {
        let mut r = RequestSpec::financial(&self.mti("0800"), PAN, 0, self.stan_base + n);
        if self.iso93 {
            r.mti = "1804".into();
            r.fields.push((24, "831".into()));
            r.omit.push(70);
        }
        r
    }

    /// The MTI of the echo test's response: 0810 or 1814.
    fn echo_response(&self) -> &'static str {
        if self.iso93 { "1814" } else { "0810" }
    }

    fn build(&self, r: &RequestSpec) -> Message {
        r.build_for(&self.wire.spec)
            .unwrap_or_else(|e| panic!("{}: building {}: {e}", self.name, r.mti))
    }
}

/// What one exchange must get back.
struct Expect {
    mti: String,
    code: &'static str,
    approval: bool,
}

/// Collects what went wrong, to report every failing path of every spec at
/// once.
#[derive(Default)]
struct Failures(Mutex<Vec<String>>);

impl Failures {
    fn push(&self, failure: String) {
        self.0.lock().unwrap().push(failure);
    }
}

/// Checks `reply` (to `request`) against `expect`; a failure names the
/// spec and the path.
fn check(
    run: &SpecRun,
    path: &str,
    request: &Message,
    reply: anyhow::Result<Message>,
    expect: &Expect,
    failures: &Failures,
) -> Option<Message> {
    let fail = |what: String| failures.push(format!("{}: {path}: {what}", run.name));
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            fail(format!("no decodable reply: {e:#}"));
            return None;
        }
    };
    if reply.mti_str() != expect.mti {
        fail(format!("MTI {} (expected {})", reply.mti_str(), expect.mti));
    }
    let de39 = reply.get_str(39).unwrap_or("<none>");
    if de39 != expect.code {
        fail(format!("DE39 {de39:?} (expected {:?})", expect.code));
    }
    match (expect.approval, reply.get_str(38)) {
        (true, Some(auth)) if auth.len() == 6 => {}
        (true, other) => fail(format!(
            "DE38 {other:?} on an approval (expected 6 characters)"
        )),
        (false, Some(_)) => fail("DE38 on a reply that is no approval".into()),
        (false, None) => {}
    }
    if request.get_bytes(11) != reply.get_bytes(11) {
        fail(format!(
            "DE11 {:?} (request {:?})",
            reply.get_str(11),
            request.get_str(11)
        ));
    }
    for f in [2, 35, 45, 52] {
        if reply.contains(f) {
            fail(format!("DE{f} in the reply"));
        }
    }
    Some(reply)
}

/// Sends `request` on `conn` and checks the reply.
async fn exchange(
    conn: &mut Connection,
    run: &SpecRun,
    path: &str,
    request: &Message,
    expect: Expect,
    failures: &Failures,
) -> Option<Message> {
    let reply = conn.exchange(request, REPLY_TIMEOUT).await;
    check(run, path, request, reply, &expect, failures)
}

fn expect(mti: &str, code: &'static str, approval: bool) -> Expect {
    Expect {
        mti: mti.to_owned(),
        code,
        approval,
    }
}

/// Every path of port 5001's branch: local authorization.
async fn local_paths(run: &SpecRun, addr: SocketAddr, failures: &Failures) {
    let mut conn = match Connection::connect_with(addr, run.wire.clone()).await {
        Ok(c) => c,
        Err(e) => return failures.push(format!("{}: local: {e:#}", run.name)),
    };
    let response = run.mti("0210");
    let now = UtcTime::now();
    let cases: [(&str, RequestSpec, Code); 7] = [
        ("approved", run.financial(1, 2_500), APPROVED),
        (
            "missing DE11",
            RequestSpec {
                omit: vec![11],
                ..run.financial(2, 2_500)
            },
            FORMAT_ERROR,
        ),
        (
            "bad PAN",
            RequestSpec {
                pan: Some(BAD_LUHN_PAN.into()),
                ..run.financial(3, 2_500)
            },
            INVALID_CARD,
        ),
        (
            "expired",
            RequestSpec {
                expiry: Some(now.yymm_plus(-1)),
                ..run.financial(4, 2_500)
            },
            EXPIRED,
        ),
        ("zero amount", run.financial(5, 0), INVALID_AMOUNT),
        ("over the limit", run.financial(6, 600_000), OVER_LIMIT),
        (
            "unsupported MTI",
            RequestSpec {
                mti: run.mti("0300"),
                ..run.financial(7, 2_500)
            },
            UNSUPPORTED,
        ),
    ];
    for (path, request, code) in cases {
        let mti = if path == "unsupported MTI" {
            run.mti("0310")
        } else {
            response.clone()
        };
        let m = run.build(&request);
        let approval = code.iso87 == "00";
        exchange(
            &mut conn,
            run,
            path,
            &m,
            expect(&mti, run.expected(code), approval),
            failures,
        )
        .await;
    }

    // An undecodable frame whose MTI and STAN can be read: 30. The last
    // field (DE49) is cut short.
    let m = run.build(&run.financial(8, 2_500));
    match run.wire.spec.encode(&m) {
        Ok(encoded) => {
            let cut = encoded.slice(..encoded.len() - 2);
            let reply = match conn.send_raw(cut).await {
                Ok(()) => conn.receive(REPLY_TIMEOUT).await,
                Err(e) => Err(e),
            };
            check(
                run,
                "undecodable frame",
                &m,
                reply,
                &expect(&response, run.expected(FORMAT_ERROR), false),
                failures,
            );
        }
        Err(e) => failures.push(format!("{}: encoding a request: {e}", run.name)),
    }

    let echo = run.build(&run.echo(9));
    exchange(
        &mut conn,
        run,
        "echo test",
        &echo,
        expect(run.echo_response(), run.expected(NETWORK_ACCEPTED), false),
        failures,
    )
    .await;

    // An approved original, the same original again (94), its reversal.
    let original = run.build(&run.financial(10, 1_000));
    let approved = exchange(
        &mut conn,
        run,
        "original",
        &original,
        expect(&response, run.expected(APPROVED), true),
        failures,
    )
    .await;
    exchange(
        &mut conn,
        run,
        "duplicate",
        &original,
        expect(&response, run.expected(DUPLICATE), false),
        failures,
    )
    .await;
    if approved.is_some() {
        reverse(&mut conn, run, "local", &original, 11, failures).await;
    }
}

/// Reverses `original` (x420, its own STAN `base + n` on 1987) → x430.
async fn reverse(
    conn: &mut Connection,
    run: &SpecRun,
    branch: &str,
    original: &Message,
    n: u32,
    failures: &Failures,
) {
    let reversal = match reversal_of(original, run.stan_base + n, &run.wire.spec) {
        Ok(r) => r,
        Err(e) => return failures.push(format!("{}: {branch}: reversal: {e:#}", run.name)),
    };
    exchange(
        conn,
        run,
        &format!("{branch} reversal"),
        &reversal,
        expect(&run.mti("0430"), run.expected(REVERSAL_ACCEPTED), false),
        failures,
    )
    .await;
}

/// Every path of port 5002's branch: switched out to endpoint `xxx`.
async fn switched_paths(run: &SpecRun, addr: SocketAddr, failures: &Failures) {
    let mut conn = match Connection::connect_with(addr, run.wire.clone()).await {
        Ok(c) => c,
        Err(e) => return failures.push(format!("{}: switched: {e:#}", run.name)),
    };
    let response = run.mti("0210");
    let mut approved = None;
    for (n, path, amount, code) in [
        (21, "endpoint approves", 1_000, APPROVED),
        (22, "endpoint declines 51", 151, INSUFFICIENT_FUNDS),
        (23, "endpoint declines 05", 105, DO_NOT_HONOUR),
        (24, "endpoint silent", 191, TIMEOUT),
    ] {
        let m = run.build(&run.financial(n, amount));
        let approval = code.iso87 == "00";
        let reply = exchange(
            &mut conn,
            run,
            path,
            &m,
            expect(&response, run.expected(code), approval),
            failures,
        )
        .await;
        if approval && reply.is_some() {
            approved = Some(m);
        }
    }
    let echo = run.build(&run.echo(25));
    exchange(
        &mut conn,
        run,
        "switched echo test",
        &echo,
        expect(run.echo_response(), run.expected(NETWORK_ACCEPTED), false),
        failures,
    )
    .await;
    if let Some(original) = approved {
        reverse(&mut conn, run, "switched", &original, 26, failures).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_built_in_spec_answers_every_response_path() {
    let dir = dir("every-path");
    let names = Spec::builtin_names();
    let listeners: Vec<String> = names
        .iter()
        .flat_map(|n| [format!("local-{n}"), format!("switched-{n}")])
        .collect();
    let switch = Running::start(&config(&dir), &listeners);
    let failures = Arc::new(Failures::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let run = Arc::new(SpecRun::new(i, name));
        for local in [true, false] {
            let role = if local { "local" } else { "switched" };
            let addr = switch.addr(&format!("{role}-{name}"));
            let (run, failures) = (run.clone(), failures.clone());
            tasks.push(tokio::spawn(async move {
                if local {
                    local_paths(&run, addr, &failures).await;
                } else {
                    switched_paths(&run, addr, &failures).await;
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    // Network management is answered by the switch itself, on every
    // listener: the echo on a switched listener never goes to `xxx`, while
    // its approvals do.
    for (i, name) in names.iter().enumerate() {
        let run = SpecRun::new(i, name);
        let listener = format!("switched-{name}");
        let stan = |n: u32| format!("{:06}", run.stan_base + n);
        let echo_mti = run.echo(25).mti;
        match switch.trace(&listener, &echo_mti, &stan(25)) {
            Some(t) if t.contains("query-xxx") => failures.push(format!(
                "{name}: switched echo test went to the endpoint: {t}"
            )),
            Some(_) => {}
            None => failures.push(format!(
                "{name}: no profiler line of the switched echo test"
            )),
        }
        match switch.trace(&listener, &run.mti("0200"), &stan(21)) {
            Some(t) if t.contains("query-xxx") => {}
            other => failures.push(format!(
                "{name}: the switched approval did not go to the endpoint: {other:?}"
            )),
        }
    }
    // Every reversal queued (of the timed-out originals, of the reversed
    // ones) reaches its endpoint and is acknowledged: the 1993 originals'
    // too.
    for saf in switch.unacknowledged_saf(Duration::from_secs(10)) {
        failures.push(format!("store-and-forward entry {saf} never acknowledged"));
    }
    let log = switch.log.lock().unwrap().join("\n");
    assert!(!log.contains(PAN), "a full PAN in the switch's log");
    for line in log.lines() {
        if line.contains(" ERROR ") || line.contains("participant failed") {
            failures.push(format!("the switch logged: {line}"));
        }
    }
    let failures = failures.0.lock().unwrap();
    assert!(
        !failures.iter().any(|f| f.contains(PAN)),
        "a full PAN in a failure"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every spec's paths ran at once: the endpoint timeout (1 s) is paid
    // about once, not once per spec.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}
