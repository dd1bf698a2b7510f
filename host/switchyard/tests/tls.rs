//! TLS and mutual TLS on listeners and endpoint links (issue 9, item 1),
//! against the real binary and an independent TLS implementation: Python's
//! `ssl` (OpenSSL) as the acquirer and as a TLS-terminating endpoint in front
//! of `switchyard simulate`. Certificates are made at test time with rcgen:
//! a CA, server certificates for 127.0.0.1/localhost, a client certificate,
//! an expired server certificate and certificates of another CA.
//!
//! One `switchyard run` serves: listener `local` (5001) with mutual TLS,
//! listener `switched` (5002) with TLS and endpoint `xxx` over TLS (CA
//! pinned) through the Python proxy. Checked: a real authorization answered
//! over TLS; mutual TLS refuses no certificate and another CA's, serves the
//! right one, and a `case-switch` on `TLS_CLIENT_SUBJECT` routes terminal-17
//! to local authorization and another terminal to `xxx`; a TLS 1.1 client is
//! refused; the endpoint presenting an
//! expired certificate or one of an unpinned CA gets RC 91 with the TLS
//! reason in the log, then approves once it presents the right one; SIGHUP
//! and `POST /tls/reload` rotate the certificate for new connections while
//! a connection opened before goes on being served; a bad reload keeps the
//! old certificate. `switchyard check` reports TLS problems with their path.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};
use serde_json::Value;
use switchyard::client::RequestSpec;
use switchyard_iso8583::Spec;

const PAN: &str = "4761739001010119";
const WAIT: Duration = Duration::from_secs(30);

type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// Writes `NAME.pem` and `NAME.key`: a certificate for 127.0.0.1 and
/// localhost with subject `CN=cn, O=Acme`, signed by `ca`.
fn leaf(dir: &Path, name: &str, ca: &Ca, cn: &str, expired: bool) -> (PathBuf, PathBuf) {
    let mut p =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name.push(DnType::OrganizationName, "Acme");
    if expired {
        p.not_before = date_time_ymd(2020, 1, 1);
        p.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, ca).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

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

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls_peer.py");

/// A Python process speaking JSON lines on stdout.
struct Py {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
}

impl Py {
    fn spawn(args: &[&str]) -> Py {
        let mut child = Command::new(python())
            .arg(PEER)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Py {
            child,
            stdin,
            lines,
        }
    }

    fn next(&self) -> Value {
        self.lines.recv_timeout(WAIT).unwrap_or(Value::Null)
    }

    /// The next line that has `key`, skipping others (bounded by [`WAIT`]).
    fn next_with(&self, key: &str) -> Value {
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            let v = self.next();
            if v.is_null() || v.get(key).is_some() {
                return v;
            }
        }
        Value::Null
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An acquirer over TLS (Python `ssl`).
struct Acquirer(Py);

impl Acquirer {
    /// Connects to `port`, trusting `ca`, presenting `cert` if given.
    /// `Err`: the handshake failed (its reason).
    fn connect(
        port: u16,
        ca: &Path,
        cert: Option<&(PathBuf, PathBuf)>,
        tls11: bool,
    ) -> Result<(Acquirer, String), String> {
        let port = port.to_string();
        let mut args = vec!["client", "--port", &port, "--ca", ca.to_str().unwrap()];
        if let Some((c, k)) = cert {
            args.extend(["--cert", c.to_str().unwrap(), "--key", k.to_str().unwrap()]);
        }
        if tls11 {
            args.push("--tls11");
        }
        let py = Py::spawn(&args);
        let first = py.next();
        match first.get("server_cn").and_then(Value::as_str) {
            Some(cn) => {
                let cn = cn.to_owned();
                Ok((Acquirer(py), cn))
            }
            None => Err(first.to_string()),
        }
    }

    /// Sends an authorization with `stan`; its DE39, or the error.
    fn authorize(&mut self, stan: u32) -> Result<String, String> {
        let spec = Spec::builtin("iso87-ascii").unwrap();
        let request = RequestSpec::financial("0100", PAN, 1000, stan)
            .build_for(&spec)
            .unwrap();
        self.0.say(&hex::encode(spec.encode(&request).unwrap()));
        let answer = self.0.next();
        let Some(reply) = answer.get("reply").and_then(Value::as_str) else {
            return Err(answer.to_string());
        };
        let reply = spec
            .decode(Bytes::from(hex::decode(reply).unwrap()))
            .map_err(|e| e.to_string())?;
        assert_eq!(reply.mti_str(), "0110");
        assert!(!reply.contains(2) && !reply.contains(35));
        Ok(reply.get_str(39).unwrap_or("").to_owned())
    }
}

/// The switch's log, collected.
struct Log {
    rx: mpsc::Receiver<String>,
    all: Vec<String>,
}

impl Log {
    fn wait(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.all.iter().find(|l| pred(l)) {
            return l.clone();
        }
        let until = Instant::now() + WAIT;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.all.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no log line {what}; log:\n{}", self.all.join("\n"));
    }

    fn drain(&mut self) {
        while let Ok(line) = self.rx.try_recv() {
            self.all.push(line);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The default config, free ports, with TLS on `local` (mutual) and
/// `switched`, and endpoint `xxx` at `endpoint` over TLS pinned to `ca.pem`.
fn config(dir: &Path, endpoint: u16) -> PathBuf {
    let listener_tls = |mutual: bool| {
        format!(
            "[listener.tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n{}\n",
            if mutual {
                "client_ca = \"ca.pem\"\n"
            } else {
                ""
            }
        )
    };
    // One profiler line per transaction: the test reads the route taken.
    let text = common::free_ports_config("127.0.0.1:0")
        .replace("every_transaction = false", "every_transaction = true")
        .replacen(
            "address = \"127.0.0.1:0\"",
            &format!("address = \"127.0.0.1:{endpoint}\""),
            1,
        )
        .replacen("simulator = true ", "simulator = false #", 1)
        .replacen(
            "\n[endpoints.yyy]",
            "reconnect_ms = 20\nreconnect_max_ms = 100\n[endpoints.xxx.tls]\nca = \"ca.pem\"\n\n[endpoints.yyy]",
            1,
        )
        .replacen(
            "\n[[listener]]\nname = \"switched\"",
            &format!("{}\n[[listener]]\nname = \"switched\"", listener_tls(true)),
            1,
        )
        .replacen(
            "\n[[listener]]\nname = \"routed\"",
            &format!("{}\n[[listener]]\nname = \"routed\"", listener_tls(false)),
            1,
        );
    // Listener `local` routes on the verified subject: terminal-17
    // authorizes locally, any other terminal is switched out to `xxx`.
    let routed = "\"case 5001\" = \"by-terminal\"";
    let text = text.replacen("\"case 5001\" = \"local-auth close send\"", routed, 1)
        + "\n[participants.by-terminal]\nplugin = \"case-switch\"\n\
           config = { switch = \"TLS_CLIENT_SUBJECT\", \"case CN=terminal-17, O=Acme\" = \"local-auth close send\", \
           default = \"query-xxx close send\" }\n";
    assert!(text.contains(routed));
    assert!(text.contains("[endpoints.xxx.tls]") && text.matches("[listener.tls]").count() == 2);
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn admin_reload(log: &mut Log, _dir: &Path) -> (u16, String) {
    let line = log.wait("admin API listening", |l| l.contains("admin API listening"));
    common::admin_call(&line, "POST", "/tls/reload", "")
}

#[test]
fn tls_and_mutual_tls_interoperate_with_python_ssl() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ours = ca("Switchyard Test CA");
    let other = ca("Another CA");
    std::fs::write(dir.join("ca.pem"), ours.pem()).unwrap();
    leaf(dir, "server", &ours, "switch-1", false);
    let client_cert = leaf(dir, "terminal", &ours, "terminal-17", false);
    let foreign_client = leaf(dir, "foreign", &other, "terminal-17", false);
    let terminal_99 = leaf(dir, "terminal-99", &ours, "terminal-99", false);
    let endpoint_expired = leaf(dir, "ep-expired", &ours, "endpoint", true);
    let endpoint_foreign = leaf(dir, "ep-foreign", &other, "endpoint", false);
    let endpoint_good = leaf(dir, "ep-good", &ours, "endpoint", false);

    // The endpoint: `switchyard simulate` (plaintext) behind Python's TLS.
    let sim_port = free_port();
    let sim = Killed(
        Command::new(common::BIN)
            .args(["simulate", "--bind", &format!("127.0.0.1:{sim_port}")])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut proxy = Py::spawn(&[
        "proxy",
        "--cert",
        endpoint_expired.0.to_str().unwrap(),
        "--key",
        endpoint_expired.1.to_str().unwrap(),
        "--upstream",
        &format!("127.0.0.1:{sim_port}"),
    ]);
    let proxy_port = proxy.next()["port"].as_u64().expect("proxy port") as u16;

    let (child, rx) = common::spawn_run_with(
        &config(dir, proxy_port),
        &[
            (
                "RUST_LOG",
                "info,switchyard_net::listener=debug,switchyard_net::endpoint=debug",
            ),
            ("SWITCHYARD_LOG_FORMAT", "text"),
        ],
        &[],
    );
    let run = Killed(child);
    let mut log = Log {
        rx,
        all: Vec::new(),
    };
    let port_of = |log: &mut Log, name: &str| -> u16 {
        let line = log.wait(&format!("serving {name}"), |l| {
            l.contains("serving") && l.contains(&format!("listener={name} "))
        });
        common::field(&line, "addr=")
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let mtls = port_of(&mut log, "local");
    let switched = port_of(&mut log, "switched");
    let ca_pem = dir.join("ca.pem");
    let mut stan = 100;
    let mut next = || {
        stan += 1;
        stan
    };

    // TLS listener, switched out to the endpoint over TLS: expired → 91.
    let (mut acq, cn) = Acquirer::connect(switched, &ca_pem, None, false).unwrap();
    assert_eq!(cn, "switch-1");
    assert_eq!(
        acq.authorize(next()).unwrap(),
        "91",
        "expired endpoint certificate"
    );
    log.wait("the TLS reason (expired)", |l| {
        l.contains("xxx") && l.to_lowercase().contains("expired")
    });
    // Another CA → 91.
    proxy.say(&format!(
        "use {} {}",
        endpoint_foreign.0.display(),
        endpoint_foreign.1.display()
    ));
    assert!(proxy.next_with("using").get("using").is_some());
    // The link reconnects in the background: the 91s name the last
    // attempt's reason, which turns to the unknown issuer.
    let unknown_issuer =
        |l: &str| l.contains("UnknownIssuer") || l.to_lowercase().contains("unknown issuer");
    let mut named = false;
    for _ in 0..25 {
        assert_eq!(acq.authorize(next()).unwrap(), "91", "unpinned endpoint CA");
        log.drain();
        if log
            .all
            .iter()
            .any(|l| l.contains("no answer from the endpoint: 91") && unknown_issuer(l))
        {
            named = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        named,
        "no 91 naming the unknown issuer:\n{}",
        log.all.join("\n")
    );
    // The right certificate → approved (the link reconnects with backoff).
    proxy.say(&format!(
        "use {} {}",
        endpoint_good.0.display(),
        endpoint_good.1.display()
    ));
    assert!(proxy.next_with("using").get("using").is_some());
    let mut approved = false;
    for _ in 0..20 {
        if acq.authorize(next()).unwrap() == "00" {
            approved = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(approved, "no approval through the TLS endpoint");

    // Mutual TLS: no certificate, another CA's → refused; ours → served.
    for (what, cert) in [
        ("no client certificate", None),
        ("another CA", Some(&foreign_client)),
    ] {
        match Acquirer::connect(mtls, &ca_pem, cert, false) {
            Err(_) => {}
            Ok((mut a, _)) => assert!(a.authorize(next()).is_err(), "{what}: served"),
        }
    }
    log.wait("a failed handshake", |l| l.contains("TLS handshake failed"));
    let (mut held, cn) = Acquirer::connect(mtls, &ca_pem, Some(&client_cert), false).unwrap();
    assert_eq!(cn, "switch-1");
    let stan = next();
    assert_eq!(held.authorize(stan).unwrap(), "00");
    log.wait("the verified subject", |l| {
        l.contains("subject=CN=terminal-17, O=Acme")
            || l.contains("subject=\"CN=terminal-17, O=Acme\"")
    });
    // A plugin routes on TLS_CLIENT_SUBJECT: terminal-17 authorizes locally…
    let trace = |log: &mut Log, stan: u32| {
        log.wait("the transaction's trace", |l| {
            l.contains("listener=local") && l.contains(&format!("stan=\"{stan:06}\""))
        })
    };
    let line = trace(&mut log, stan);
    assert!(
        line.contains("local-auth") && !line.contains("query-xxx"),
        "{line}"
    );
    // … another terminal of the same CA is switched out.
    let (mut other_terminal, _) =
        Acquirer::connect(mtls, &ca_pem, Some(&terminal_99), false).unwrap();
    let stan = next();
    assert_eq!(other_terminal.authorize(stan).unwrap(), "00");
    let line = trace(&mut log, stan);
    assert!(
        line.contains("query-xxx") && !line.contains("local-auth"),
        "{line}"
    );
    drop(other_terminal);

    // TLS 1.1 is refused by the switch (the alert comes from the server).
    let e = Acquirer::connect(mtls, &ca_pem, Some(&client_cert), true)
        .err()
        .expect("TLS 1.1 served");
    eprintln!("TLS 1.1 client: {e}");
    assert!(
        !e.contains("NO_PROTOCOLS_AVAILABLE"),
        "the client never offered TLS 1.1: {e}"
    );
    assert!(
        e.to_uppercase().contains("VERSION") || e.to_uppercase().contains("ALERT"),
        "{e}"
    );

    // Rotation on SIGHUP: new connections get the new certificate, the
    // connection opened before is still served.
    leaf(dir, "server", &ours, "switch-2", false);
    let pid = run.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    log.wait("the reload", |l| {
        l.contains("TLS reloaded") && l.contains("local")
    });
    let (mut fresh, cn) = Acquirer::connect(mtls, &ca_pem, Some(&client_cert), false).unwrap();
    assert_eq!(cn, "switch-2");
    assert_eq!(fresh.authorize(next()).unwrap(), "00");
    assert_eq!(
        held.authorize(next()).unwrap(),
        "00",
        "the connection opened before the reload"
    );

    // The admin route: a good reload answers 200, a bad one 422 and the
    // certificate served stays.
    let (status, body) = admin_reload(&mut log, dir);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"local\"") && body.contains("switch-2"),
        "{body}"
    );
    std::fs::write(dir.join("server.pem"), "not a certificate").unwrap();
    let (status, body) = admin_reload(&mut log, dir);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("server.pem"), "{body}");
    let (mut after, cn) = Acquirer::connect(mtls, &ca_pem, Some(&client_cert), false).unwrap();
    assert_eq!(cn, "switch-2");
    assert_eq!(after.authorize(next()).unwrap(), "00");

    drop((acq, held, fresh, after, proxy, sim));
    drop(run);
    log.drain();
    let text = log.all.join("\n");
    assert!(!text.contains(PAN), "a full PAN in the log");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn check_reports_tls_problems_with_their_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ours = ca("Switchyard Test CA");
    std::fs::write(dir.join("ca.pem"), ours.pem()).unwrap();
    leaf(dir, "server", &ours, "switch-1", false);
    let text = common::free_ports_config("127.0.0.1:0")
        // listener[0]: not loopback, no TLS, no plaintext.
        .replacen(
            "port = 5001\nbind = \"127.0.0.1:0\"",
            "port = 5001\nbind = \"0.0.0.0:0\"",
            1,
        )
        .replacen(
            "\n[[listener]]\nname = \"routed\"",
            "[listener.tls]\ncert = \"missing.pem\"\nkey = \"server.key\"\n\n[[listener]]\nname = \"routed\"",
            1,
        )
        .replacen(
            "\n[endpoints.yyy]",
            "[endpoints.xxx.tls]\nca = \"ca.pem\"\nkey = \"server.key\"\n\n[endpoints.yyy]",
            1,
        );
    std::fs::write(dir.join("switchyard.toml"), &text).unwrap();
    let (out, text) = common::switchyard(
        &[
            "check",
            "--config",
            dir.join("switchyard.toml").to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("listener[0].plaintext"), "{text}");
    assert!(
        text.contains("listener[1].tls.cert") && text.contains("cannot read"),
        "{text}"
    );
    assert!(text.contains("endpoints.xxx.tls.cert"), "{text}");
}
