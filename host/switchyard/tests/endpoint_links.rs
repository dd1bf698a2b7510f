//! Endpoint links through the real binary (issue 9, item 7): endpoint
//! `xxx` pointed at a host this test starts, stops, mutes and restarts.
//! The switch sends echoes (0800, DE70 301) at the configured interval on
//! an idle link; an endpoint that stops is seen down at once, one that
//! stops answering is declared down by the unanswered echo; meanwhile
//! transactions get RC 91 at once rather than each waiting on a connect;
//! the link comes back by itself (backoff) and approves again. The state
//! is read from the admin API's `GET /endpoints`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{RunLog, field, free_ports_config};
use switchyard::client::{Connection, RequestSpec};
use switchyard_iso8583::{Bytes, Message, Mti, Spec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc as tmpsc;
use tokio_util::sync::CancellationToken;

const VISA: &str = "4761739001010119";
const ECHO_MS: u64 = 300;

/// A stand-in for endpoint `xxx`: ISO 8583:1987 behind a 5-byte TPDU, a
/// 2-byte length header. Approves every 0100/0200 with DE38, answers 0800
/// with 0810 00, and tells the test of each echo. Muted: reads, answers
/// nothing.
struct Host {
    stop: CancellationToken,
    muted: Arc<AtomicBool>,
}

impl Host {
    async fn start(addr: SocketAddr, echoes: tmpsc::UnboundedSender<Instant>) -> Host {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        let listener = socket.listen(64).unwrap();
        let stop = CancellationToken::new();
        let muted = Arc::new(AtomicBool::new(false));
        let (s, m) = (stop.clone(), muted.clone());
        tokio::spawn(async move {
            loop {
                let (conn, _) = tokio::select! {
                    _ = s.cancelled() => return,
                    c = listener.accept() => c.unwrap(),
                };
                tokio::spawn(serve(conn, s.clone(), m.clone(), echoes.clone()));
            }
        });
        Host { stop, muted }
    }

    /// Closes the listener and every connection.
    fn stop(&self) {
        self.stop.cancel();
    }
}

async fn serve(
    mut conn: tokio::net::TcpStream,
    stop: CancellationToken,
    muted: Arc<AtomicBool>,
    echoes: tmpsc::UnboundedSender<Instant>,
) {
    let spec = Spec::iso87_ascii();
    loop {
        let mut len = [0u8; 2];
        let body = tokio::select! {
            _ = stop.cancelled() => return,
            r = async {
                conn.read_exact(&mut len).await?;
                let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
                conn.read_exact(&mut body).await?;
                Ok::<_, std::io::Error>(body)
            } => match r { Ok(b) => b, Err(_) => return },
        };
        if body.len() < 5 || muted.load(Ordering::Relaxed) {
            continue;
        }
        let (tpdu, message) = body.split_at(5);
        let request = spec.decode(Bytes::copy_from_slice(message)).unwrap();
        let mti = request.mti().as_str().to_owned();
        let mut reply = Message::new(Mti::new(&format!("{}{}", &mti[..2], "10")).unwrap());
        for f in [3, 4, 7, 11, 12, 13, 37, 41, 42, 49, 70] {
            if let Some(v) = request.get(f) {
                reply.set(f, v.to_vec());
            }
        }
        reply.set(39, &b"00"[..]);
        if mti == "0800" {
            assert_eq!(request.get_str(70), Some("301"), "an echo test");
            let _ = echoes.send(Instant::now());
        } else if mti == "0100" || mti == "0200" {
            reply.set(38, &b"XYZ123"[..]);
        }
        let mut out = vec![tpdu[0], tpdu[3], tpdu[4], tpdu[1], tpdu[2]];
        out.extend_from_slice(&spec.encode(&reply).unwrap());
        let mut frame = (out.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(&out);
        if conn.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// The switch under test (its log through [`RunLog`]).
struct Running {
    run: RunLog,
    switched: SocketAddr,
    /// The admin API's log line (its address, token file, certificate).
    admin: String,
}

impl std::ops::Deref for Running {
    type Target = RunLog;
    fn deref(&self) -> &RunLog {
        &self.run
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut RunLog {
        &mut self.run
    }
}

impl Running {
    /// Endpoint `xxx` as `GET /api/endpoints` shows it.
    fn xxx(&self) -> serde_json::Value {
        let (status, body) = common::admin_get(&self.admin, "/endpoints");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "xxx")
            .unwrap()
            .clone()
    }

    /// Waits (at most `limit`) for `xxx`'s status to be `status`: how long
    /// it took.
    async fn wait_status(&self, status: &str, limit: Duration) -> Duration {
        let t0 = Instant::now();
        loop {
            let s = self.xxx();
            if s["status"] == status {
                return t0.elapsed();
            }
            assert!(t0.elapsed() < limit, "not {status} after {limit:?}: {s}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An authorization through 5002 (to `xxx`): RC and time taken.
    async fn authorize(&self, stan: u32) -> (String, Duration) {
        let t0 = Instant::now();
        let mut c = Connection::connect(self.switched).await.unwrap();
        let m = RequestSpec::financial("0100", VISA, 1_000, stan)
            .build()
            .unwrap();
        let r = c.exchange(&m, Duration::from_secs(10)).await.unwrap();
        (r.get_str(39).unwrap_or("").to_owned(), t0.elapsed())
    }
}

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("links-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The default config on free ports with `xxx` at `host` (no in-process
/// simulator), echoes every [`ECHO_MS`], reconnects from 100 ms to 1 s.
fn start(dir: &Path, host: SocketAddr) -> Running {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = free.local_addr().unwrap().to_string();
    drop(free);
    let text = free_ports_config(&admin);
    let at = text.find("[endpoints.xxx]").unwrap();
    let (head, tail) = text.split_at(at);
    let tail = tail
        .replacen(
            "address = \"127.0.0.1:0\"",
            &format!(
                "address = \"{host}\"\necho_ms = {ECHO_MS}\nreconnect_ms = 100\nreconnect_max_ms = 1000"
            ),
            1,
        )
        .replacen(
            "simulator = true             # start the endpoint simulator on `address`, in-process",
            "simulator = false",
            1,
        );
    let text = format!("{head}{tail}");
    assert!(text.contains("simulator = false") && text.contains("echo_ms"));
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, text).unwrap();
    let mut run = RunLog::spawn(&path);
    let (mut switched, mut admin) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(90);
    while switched.is_none() || admin.is_none() {
        let line = run.next_line(deadline);
        if line.contains("admin API listening") {
            admin = Some(line.clone());
        }
        if line.contains("serving") && field(&line, "port=").as_deref() == Some("5002") {
            switched = field(&line, "addr=").map(|a| a.parse().unwrap());
        }
    }
    Running {
        run,
        switched: switched.unwrap(),
        admin: admin.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_echoes_goes_down_fails_fast_and_comes_back_by_itself() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let (echo_tx, mut echoes) = tmpsc::unbounded_channel();
    let host = Host::start(addr, echo_tx.clone()).await;
    let mut sw = start(&dir("cycle"), addr);

    // Lazy open: idle until the first transaction, then up.
    assert_eq!(sw.xxx()["status"], "idle");
    let (rc, _) = sw.authorize(1).await;
    assert_eq!(rc, "00");
    assert_eq!(sw.xxx()["status"], "up");

    // Echoes at the configured interval on the idle link.
    let t0 = Instant::now();
    let mut at = Vec::new();
    while at.len() < 4 && t0.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(t)) = tokio::time::timeout(Duration::from_secs(10), echoes.recv()).await {
            at.push(t);
        }
    }
    assert_eq!(at.len(), 4, "echoes seen");
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    println!("echo intervals (echo_ms {ECHO_MS}): {gaps:?}");
    for g in &gaps {
        assert!(*g >= Duration::from_millis(ECHO_MS - 50), "{gaps:?}");
        assert!(*g < Duration::from_millis(ECHO_MS * 5), "{gaps:?}");
    }
    let s = sw.xxx();
    assert!(s["echoes_answered"].as_u64().unwrap() >= 3, "{s}");

    // The endpoint stops: down at once; transactions get 91 without waiting.
    host.stop();
    let seen = sw.wait_status("down", Duration::from_secs(5)).await;
    println!("endpoint stopped: state down after {seen:?}");
    let mut figures = Vec::new();
    for stan in 10..15 {
        let (rc, took) = sw.authorize(stan).await;
        assert_eq!(rc, "91");
        figures.push(took);
    }
    println!("RC 91 while the endpoint is down (timeout 1000 ms): {figures:?}");
    assert!(
        figures.iter().all(|t| *t < Duration::from_millis(900)),
        "{figures:?}"
    );
    // Many reconnect attempts, one line.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = sw.xxx();
    assert!(s["failed_attempts"].as_u64().unwrap() >= 2, "{s}");
    assert!(s["last_error"].is_string(), "{s}");
    assert_eq!(sw.count("endpoint link down"), 1);

    // Restarted: up again by itself, and approving.
    let host = Host::start(addr, echo_tx.clone()).await;
    let back = sw.wait_status("up", Duration::from_secs(10)).await;
    println!("endpoint restarted: state up after {back:?}");
    let (rc, _) = sw.authorize(20).await;
    assert_eq!(rc, "00");
    assert_eq!(sw.count("endpoint link up again"), 1);

    // Muted (connected, silent): the unanswered echo declares it down.
    while echoes.try_recv().is_ok() {}
    host.muted.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    sw.wait_status("down", Duration::from_secs(10)).await;
    let seen = t0.elapsed();
    println!("endpoint muted: declared down after {seen:?} (echo {ECHO_MS} ms + timeout 1000 ms)");
    assert!(seen >= Duration::from_millis(900), "{seen:?}");
    assert_eq!(sw.count("the link is declared down"), 1);
    host.muted.store(false, Ordering::Relaxed);
    sw.wait_status("up", Duration::from_secs(10)).await;
    let (rc, _) = sw.authorize(30).await;
    assert_eq!(rc, "00");
    host.stop();
    assert!(
        sw.drain().iter().all(|l| !l.contains(VISA)),
        "a full PAN in the log"
    );
}
