//! The mainframe simulator (endpoint `yyy`) over real TCP. The records are built here from the
//! copybook's byte layout (docs/mainframe.md), in code page 037, and framed with an RDW by
//! hand: neither the formatter plugin nor the host's framing code builds them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_net::simulator::Rules;
use switchyard_net::{Framing, MainframeOptions, MainframeSimulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const SLOW: Duration = Duration::from_millis(250);

/// Code page 037 of the characters the test writes.
fn cp037(text: &str) -> Vec<u8> {
    text.bytes()
        .map(|c| match c {
            b' ' => 0x40,
            b'0'..=b'9' => 0xF0 + (c - b'0'),
            b'A'..=b'I' => 0xC1 + (c - b'A'),
            b'J'..=b'R' => 0xD1 + (c - b'J'),
            b'S'..=b'Z' => 0xE2 + (c - b'S'),
            b'{' => 0xC0,
            b'}' => 0xD0,
            _ => panic!("no cp037 for {c:#04x} in this test"),
        })
        .collect()
}

/// The ASCII of a code page 037 record the test reads back.
fn ascii(record: &[u8]) -> String {
    record
        .iter()
        .map(|&b| match b {
            0x40 => ' ',
            0xF0..=0xF9 => char::from(b'0' + (b - 0xF0)),
            0xC1..=0xC9 => char::from(b'A' + (b - 0xC1)),
            0xD1..=0xD9 => char::from(b'J' + (b - 0xD1)),
            0xE2..=0xE9 => char::from(b'S' + (b - 0xE2)),
            0xC0 => '{',
            0xD0 => '}',
            _ => '?',
        })
        .collect()
}

/// A request record: `kind` `AQ`, `RQ` or `CQ`; `amount` the 12 overpunch characters of
/// `YYY-AMOUNT` as ASCII shows them (`00000000105A` is +10.51).
fn request(kind: &str, stan: u32, amount: &str) -> Vec<u8> {
    let mut text = String::new();
    text.push_str(kind); // 0   YYY-RECORD-TYPE  X(2)
    text.push_str(&format!("{stan:06}")); // 2   YYY-STAN  9(6)
    text.push_str("0615115959"); // 8   YYY-XMIT-DATE-TIME  9(10)
    text.push_str("TERM0001"); // 18  YYY-TERMINAL-ID  X(8)
    text.push_str("MERCHANT0000001"); // 26  YYY-MERCHANT-ID  X(15)
    text.push_str("4761739001010119   "); // 41  YYY-PAN  X(19)
    text.push_str("2712"); // 60  YYY-EXPIRY  9(4)
    text.push_str(amount); // 64  YYY-AMOUNT  S9(10)V99
    text.push_str("840"); // 76  YYY-CURRENCY  9(3)
    text.push_str("  "); // 79  YYY-RESPONSE-CODE  X(2)
    if kind == "AQ" {
        text.push_str("      "); // 81  YYY-APPROVAL-CODE  X(6)
        assert_eq!(text.len(), 87);
    } else {
        text.push_str("Y00042"); // 81  the original's approval code
        text.push_str("68"); // 87  YYY-REASON  X(2)
        text.push('N'); // 89  YYY-REPEAT  X(1)
        assert_eq!(text.len(), 90);
    }
    cp037(&text)
}

struct Sim {
    addr: SocketAddr,
    shutdown: CancellationToken,
    serving: JoinHandle<()>,
}

async fn start() -> Sim {
    let sim = MainframeSimulator::bind(MainframeOptions {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        framing: Framing::Rdw,
        max_frame: 1024,
        rules: Arc::new(Rules::contract(SLOW)),
    })
    .await
    .unwrap();
    let addr = sim.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(sim.serve(shutdown.clone()));
    Sim {
        addr,
        shutdown,
        serving,
    }
}

async fn connect(sim: &Sim) -> (OwnedReadHalf, OwnedWriteHalf) {
    TcpStream::connect(sim.addr).await.unwrap().into_split()
}

/// Writes `record` behind its RDW: the length counts the RDW's 4 bytes; 2 zero bytes.
async fn send(w: &mut OwnedWriteHalf, record: &[u8]) {
    let len = u16::try_from(record.len() + 4).unwrap();
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(record);
    w.write_all(&frame).await.unwrap();
}

/// Reads one record, or `None` when nothing comes within `within`.
async fn recv(r: &mut OwnedReadHalf, within: Duration) -> Option<Vec<u8>> {
    let mut rdw = [0u8; 4];
    match tokio::time::timeout(within, r.read_exact(&mut rdw)).await {
        Err(_) => return None,
        Ok(read) => read.expect("the simulator keeps the connection"),
    };
    assert_eq!(rdw[2..], [0, 0], "RDW reserved bytes");
    let len = usize::from(u16::from_be_bytes([rdw[0], rdw[1]]));
    let mut record = vec![0u8; len - 4];
    r.read_exact(&mut record).await.unwrap();
    Some(record)
}

const WAIT: Duration = Duration::from_secs(5);

/// The replies to `count` requests, by STAN.
async fn replies(r: &mut OwnedReadHalf, count: usize) -> BTreeMap<u32, String> {
    let mut by_stan = BTreeMap::new();
    for _ in 0..count {
        let reply = ascii(&recv(r, WAIT).await.expect("a reply"));
        let stan = reply[2..8].parse().unwrap();
        assert!(
            by_stan.insert(stan, reply).is_none(),
            "one reply per request"
        );
    }
    by_stan
}

#[tokio::test]
async fn authorizations_follow_the_last_two_digits_of_the_amount() {
    let sim = start().await;
    let (mut r, mut w) = connect(&sim).await;
    for (stan, amount) in [
        (1, "00000000100{"),
        (2, "00000000105A"),
        (3, "00000000100E"),
    ] {
        send(&mut w, &request("AQ", stan, amount)).await;
    }
    let got = replies(&mut r, 3).await;
    let approved = &got[&1];
    assert_eq!(approved.len(), 87);
    assert_eq!(&approved[..2], "AR");
    assert_eq!(&approved[79..81], "00");
    assert_eq!(&approved[81..82], "Y");
    assert!(
        approved[82..87].bytes().all(|b| b.is_ascii_digit()),
        "{approved}"
    );
    // Echoed: STAN, date-time, terminal, merchant, amount, currency; no card data back.
    let sent = ascii(&request("AQ", 1, "00000000100{"));
    assert_eq!(approved[2..41], sent[2..41]);
    assert_eq!(
        &approved[41..60],
        " ".repeat(19),
        "YYY-PAN blank in a reply"
    );
    assert_eq!(&approved[60..64], "0000", "YYY-EXPIRY zeros in a reply");
    assert_eq!(approved[64..79], sent[64..79]);
    assert_eq!(&got[&2][79..87], "51      ", "declined: no approval code");
    assert_eq!(&got[&3][79..87], "05      ");
    // The approval numbers count up.
    send(&mut w, &request("AQ", 4, "00000000200{")).await;
    let next = ascii(&recv(&mut r, WAIT).await.unwrap());
    assert_ne!(next[81..87], approved[81..87]);
    sim.shutdown.cancel();
}

#[tokio::test]
async fn a_77_is_slow_without_holding_back_others_and_a_91_is_never_answered() {
    let sim = start().await;
    let (mut r, mut w) = connect(&sim).await;
    let sent = Instant::now();
    send(&mut w, &request("AQ", 77, "00000000107G")).await;
    send(&mut w, &request("AQ", 91, "00000000109A")).await;
    send(&mut w, &request("AQ", 3, "00000000100{")).await;
    let first = ascii(&recv(&mut r, WAIT).await.unwrap());
    assert_eq!(&first[2..8], "000003", "the quick one first");
    let slow = ascii(&recv(&mut r, WAIT).await.unwrap());
    assert!(sent.elapsed() >= SLOW, "{:?}", sent.elapsed());
    assert_eq!((&slow[2..8], &slow[79..81]), ("000077", "00"));
    assert_eq!(
        recv(&mut r, Duration::from_millis(600)).await,
        None,
        "no reply to the 91"
    );
    sim.shutdown.cancel();
}

#[tokio::test]
async fn a_negative_authorization_gets_13() {
    let sim = start().await;
    let (mut r, mut w) = connect(&sim).await;
    send(&mut w, &request("AQ", 1, "00000000100}")).await;
    let reply = ascii(&recv(&mut r, WAIT).await.unwrap());
    assert_eq!(&reply[79..87], "13      ");
    sim.shutdown.cancel();
}

#[tokio::test]
async fn reversals_and_advices_are_acknowledged_at_once_whatever_the_amount() {
    let sim = start().await;
    let (mut r, mut w) = connect(&sim).await;
    let sent = Instant::now();
    let amounts = [
        "00000000109A",
        "00000000107G",
        "00000000105A",
        "00000000100E",
    ];
    for (i, amount) in amounts.iter().enumerate() {
        send(&mut w, &request("RQ", 10 + i as u32, amount)).await;
        send(&mut w, &request("CQ", 20 + i as u32, amount)).await;
    }
    let got = replies(&mut r, 8).await;
    assert!(sent.elapsed() < SLOW, "no rule delays an acknowledgement");
    for (stan, reply) in got {
        let kind = if stan < 20 { "RR" } else { "CR" };
        assert_eq!(reply.len(), 90);
        assert_eq!(&reply[..2], kind, "{stan}");
        assert_eq!(&reply[79..81], "00", "{stan}");
        assert_eq!(
            &reply[81..90],
            "Y0004268N",
            "approval, reason, repeat echoed"
        );
        assert_eq!(&reply[41..60], " ".repeat(19));
    }
    sim.shutdown.cancel();
}

#[tokio::test]
async fn malformed_records_are_not_answered_and_the_connection_survives() {
    let sim = start().await;
    let (mut r, mut w) = connect(&sim).await;
    let good = request("AQ", 1, "00000000100{");
    let mut malformed = vec![cp037("AQ000"), cp037("XQ"), good[..86].to_vec()];
    let mut bad_stan = good.clone();
    bad_stan[4] = 0x40;
    let mut bad_sign = good.clone();
    bad_sign[75] = 0x30;
    let mut bad_digit = good.clone();
    bad_digit[66] = 0xC1;
    let mut blank_pan = good.clone();
    blank_pan[41..60].fill(0x40);
    let mut control = good.clone();
    control[20] = 0x05;
    let mut reply_type = good.clone();
    reply_type[1] = 0xD9;
    let mut bad_repeat = request("RQ", 2, "00000000100{");
    bad_repeat[89] = 0xC1;
    let long = [good.clone(), vec![0x40]].concat();
    malformed.extend([
        bad_stan, bad_sign, bad_digit, blank_pan, control, reply_type, bad_repeat, long,
    ]);
    for record in &malformed {
        send(&mut w, record).await;
    }
    send(&mut w, &[]).await; // a keep-alive: an RDW of length 4
    send(&mut w, &request("AQ", 99, "00000000100{")).await;
    let reply = ascii(&recv(&mut r, WAIT).await.unwrap());
    assert_eq!(&reply[2..8], "000099", "only the good record is answered");
    assert_eq!(recv(&mut r, Duration::from_millis(300)).await, None);
    sim.shutdown.cancel();
}

#[tokio::test]
async fn a_bad_rdw_closes_only_its_connection() {
    let sim = start().await;
    let (mut r, mut w) = connect(&sim).await;
    w.write_all(&[0x00, 0x5B, 0x00, 0x01]).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(WAIT, r.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
    let (mut r, mut w) = connect(&sim).await;
    send(&mut w, &request("AQ", 5, "00000000100{")).await;
    assert!(recv(&mut r, WAIT).await.is_some());
    sim.shutdown.cancel();
}

#[tokio::test]
async fn many_requests_in_flight_on_one_connection() {
    let sim = start().await;
    let (mut r, mut w) = connect(&sim).await;
    let amounts = [
        "00000000100{",
        "00000000107G",
        "00000000105A",
        "00000000100E",
    ];
    let codes = ["00", "00", "51", "05"];
    for stan in 0..60u32 {
        send(&mut w, &request("AQ", stan, amounts[stan as usize % 4])).await;
    }
    let got = replies(&mut r, 60).await;
    assert_eq!(got.len(), 60);
    for (stan, reply) in got {
        assert_eq!(&reply[79..81], codes[stan as usize % 4], "{stan}");
    }
    sim.shutdown.cancel();
}

#[tokio::test]
async fn serve_ends_on_shutdown_with_connections_open() {
    let sim = start().await;
    let (mut r, mut w) = connect(&sim).await;
    send(&mut w, &request("AQ", 77, "00000000107G")).await; // a reply still waiting
    tokio::time::sleep(Duration::from_millis(50)).await;
    sim.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), sim.serving)
        .await
        .expect("serve returns")
        .unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(WAIT, r.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
    assert!(
        TcpStream::connect(sim.addr).await.is_err(),
        "no longer listening"
    );
}

/// The `AQ` record formatter-yyy writes for its test purchase (its golden, from Python's
/// `cp037` codec), and the `AR` this simulator answers to it: formatter-yyy's tests parse the
/// same `AR`. The two implementations agree through these bytes.
const FORMATTER_AQ: &str = "C1D8F0F0F0F1F2F3F0F6F1F5F1F1F5F9F5F9E3C5D9D4F0F0F0F1D4C5D9C3C8C1D5E3\
    F0F0F0F0F0F0F1F4F7F6F1F7F3F9F0F0F1F0F1F0F1F1F9404040F2F7F1F2F0F0F0F0F0F0F0F0F1F0F0C0F8F4F0\
    4040404040404040";
const SIMULATOR_AR: &str = "C1D9F0F0F0F1F2F3F0F6F1F5F1F1F5F9F5F9E3C5D9D4F0F0F0F1D4C5D9C3C8C1D5E3\
    F0F0F0F0F0F0F140404040404040404040404040404040404040F0F0F0F0F0F0F0F0F0F0F0F0F1F0F0C0F8F4F0\
    F0F0E8F0F0F0F0F0";

fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

#[tokio::test]
async fn the_formatters_record_gets_the_reply_the_formatter_reads() {
    let sim = start().await;
    let (mut r, mut w) = connect(&sim).await;
    send(&mut w, &unhex(FORMATTER_AQ)).await;
    let reply = recv(&mut r, WAIT).await.expect("an AR");
    assert_eq!(reply, unhex(SIMULATOR_AR), "{}", ascii(&reply));
    sim.shutdown.cancel();
}
