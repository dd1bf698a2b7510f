//! A fake endpoint `xxx` written for the tests (not the simulator): NAC
//! framing, a 5-byte TPDU, ISO 8583:1987 ASCII — what `formatter-xxx`
//! speaks. Each test scripts how it answers and reads back everything it
//! received, with the time it arrived. Shared by the end-to-end tests and
//! the binary's crash tests (included by path).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use switchyard_engine::steps::complete_response;
use switchyard_iso8583::{Message, Spec};
use switchyard_net::Framing;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

/// How the fake answers one message.
#[derive(Debug, Clone)]
pub enum Reply {
    /// At once, with this response code (and DE38 on 00).
    Code(&'static str),
    /// After a delay, with this response code.
    Later(Duration, &'static str),
    /// Never.
    Silence,
    /// Close the connection (every request waiting on it gets no answer).
    Close,
}

/// Decides the reply to each received message (and how many of that MTI
/// class it has seen, starting at 1).
pub type Script = Box<dyn FnMut(&Message, usize) -> Reply + Send>;

/// A message the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// The message (TPDU removed).
    pub message: Message,
}

/// A fake endpoint on loopback.
pub struct FakeEndpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The approval code the fake puts in DE38.
pub const FAKE_APPROVAL: &str = "FAKE01";

impl FakeEndpoint {
    /// Starts the fake on `bind` (port 0: a free one), answering by `script`.
    pub async fn start_on(bind: SocketAddr, script: Script) -> FakeEndpoint {
        let listener = TcpListener::bind(bind)
            .await
            .expect("bind the fake endpoint");
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script = Arc::new(Mutex::new(script));
        let (r, s) = (received.clone(), script.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, r.clone(), s.clone()));
            }
        });
        FakeEndpoint {
            addr,
            received,
            script,
            task,
        }
    }

    /// Starts the fake on a free loopback port.
    pub async fn start(script: Script) -> FakeEndpoint {
        FakeEndpoint::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), script).await
    }

    /// Replaces the script.
    pub fn script(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// What was received with MTI `mti`.
    pub fn with_mti(&self, mti: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.message.mti().as_str() == mti)
            .collect()
    }

    /// Waits until `done` holds for what was received, at most `limit`.
    pub async fn wait_for(&self, limit: Duration, done: impl Fn(&[Received]) -> bool) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if done(&self.received()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        done(&self.received())
    }
}

fn class_count(received: &[Received], m: &Message) -> usize {
    let class = &m.mti_str()[..3];
    received
        .iter()
        .filter(|r| &r.message.mti_str()[..3] == class)
        .count()
}

async fn serve(
    stream: tokio::net::TcpStream,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
) {
    let spec = Spec::iso87_ascii();
    let (read, write) = stream.into_split();
    let mut frames = FramedRead::new(read, Framing::Nac.codec(8192));
    let mut sink = FramedWrite::new(write, Framing::Nac.codec(8192));
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let (close_tx, mut close_rx) = mpsc::unbounded_channel::<()>();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                f = rx.recv() => match f {
                    Some(f) => if sink.send(f).await.is_err() { return },
                    None => return,
                },
                _ = close_rx.recv() => return,
            }
        }
    });
    while let Some(Ok(frame)) = frames.next().await {
        if frame.len() < 5 {
            continue;
        }
        let frame = frame.freeze();
        let (tpdu, body) = (frame.slice(..5), frame.slice(5..));
        let Ok(message) = spec.decode(body) else {
            continue;
        };
        let reply = {
            let mut r = received.lock().unwrap();
            r.push(Received {
                at: Instant::now(),
                message: message.clone(),
            });
            let n = class_count(&r, &message);
            drop(r);
            (script.lock().unwrap())(&message, n)
        };
        let (code, delay) = match reply {
            Reply::Silence => continue,
            Reply::Close => {
                let _ = close_tx.send(());
                break;
            }
            Reply::Code(c) => (c, None),
            Reply::Later(d, c) => (c, Some(d)),
        };
        let mut response = Message::default();
        if code == "00" {
            response.set(38, Bytes::from_static(FAKE_APPROVAL.as_bytes()));
        }
        complete_response(&message, code, &mut response);
        let mut out = BytesMut::new();
        out.extend_from_slice(&switchyard_net::simulator::swap_tpdu(&tpdu));
        out.extend_from_slice(&spec.encode(&response).unwrap());
        let out = out.freeze();
        match delay {
            None => {
                let _ = tx.send(out);
            }
            Some(d) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = tx.send(out);
                });
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// The PIN block (DE52) the tests send: it must never rest anywhere.
pub const PIN_BLOCK: [u8; 8] = [0x9C, 0x3E, 0x71, 0xA5, 0x0D, 0xB2, 0x64, 0xF8];

/// Fails when a file under `dir` holds the test PAN or track-2 data in
/// ASCII, hex or packed BCD, or the tests' PIN block (raw or hex).
pub fn assert_no_card_data(dir: &std::path::Path, pan: &str) {
    let bcd: Vec<u8> = pan
        .as_bytes()
        .chunks(2)
        .map(|p| ((p[0] - b'0') << 4) | p.get(1).map_or(0xF, |d| d - b'0'))
        .collect();
    let hex_upper = hex_of(pan.as_bytes());
    let hex_lower = hex_upper.to_lowercase();
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("ASCII PAN", pan.as_bytes().to_vec()),
        ("hex PAN", hex_upper.into_bytes()),
        ("hex PAN", hex_lower.into_bytes()),
        ("packed BCD PAN", bcd),
        ("track 2", format!("{pan}=").into_bytes()),
        ("track 2", format!("{pan}D").into_bytes()),
        ("PIN block", PIN_BLOCK.to_vec()),
        ("hex PIN block", hex_of(&PIN_BLOCK).into_bytes()),
    ];
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "cache") {
                    continue; // compiled plugins
                }
                stack.push(path);
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for (what, needle) in &needles {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "{} holds the {what} in the clear",
                    path.display()
                );
            }
        }
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}
