//! The simulator of endpoint `yyy`, an IBM-mainframe-style host: fixed-position EBCDIC
//! (code page 037) records of the copybook `YYY.CPY` (docs/mainframe.md), each behind an RDW
//! ([`Framing::Rdw`]: a 2-byte big-endian length counting the RDW's own 4 bytes, then 2 zero
//! bytes).
//!
//! It reads the records itself, from the copybook's offsets (it shares no code with the
//! formatter plugin `formatter-yyy`: the two must agree, and the tests hold them to it), and
//! answers with the rules of endpoint `xxx`'s simulator ([`Rules`], by default
//! [`Rules::contract`]) asked with `YYY-AMOUNT`'s twelve digits as DE4 would carry them:
//! - `AQ` (authorization) → `AR` with `YYY-RESPONSE-CODE` the rule's code (`51`, `05`, `00`;
//!   `91`: no reply; `77`: `00` after 250 ms) and, on `00`, `YYY-APPROVAL-CODE` `Ynnnnn`; a
//!   negative amount gets `13` (invalid amount) whatever the rules say;
//! - `RQ` (reversal) → `RR` and `CQ` (completion advice) → `CR`, with the rules' reversal
//!   code (`00`) whatever the amount.
//!
//! A reply is its request with the reply's record type, `YYY-PAN` spaces and `YYY-EXPIRY`
//! zeros (a reply never carries card data), the response and approval codes set; every other
//! field is echoed, so the formatter's key (record type, STAN, terminal, date-time) matches.
//! Several requests may be in flight on a connection; replies go out as they are decided
//! (a slow one does not hold back the others). A malformed record is logged (record type,
//! offset, reason; never its bytes) and not answered, and the connection goes on; a framing
//! error closes the connection.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::framing::Framing;
use crate::simulator::{Decision, Rules};

/// What the mainframe simulator serves.
#[derive(Clone)]
pub struct MainframeOptions {
    /// Address to bind (port 0 picks one).
    pub bind: SocketAddr,
    /// Length framing: [`Framing::Rdw`] for endpoint `yyy`.
    pub framing: Framing,
    /// Largest accepted record.
    pub max_frame: usize,
    /// How requests are answered.
    pub rules: Arc<Rules>,
}

/// The copybook's layout, as this simulator reads it: byte ranges of the record.
mod layout {
    use std::ops::Range;

    pub const RECORD_TYPE: Range<usize> = 0..2;
    pub const STAN: Range<usize> = 2..8;
    pub const DATE_TIME: Range<usize> = 8..18;
    pub const TERMINAL: Range<usize> = 18..26;
    pub const MERCHANT: Range<usize> = 26..41;
    pub const PAN: Range<usize> = 41..60;
    pub const EXPIRY: Range<usize> = 60..64;
    pub const AMOUNT: Range<usize> = 64..76;
    pub const CURRENCY: Range<usize> = 76..79;
    pub const RESPONSE_CODE: Range<usize> = 79..81;
    pub const APPROVAL_CODE: Range<usize> = 81..87;
    pub const REASON: Range<usize> = 87..89;
    pub const REPEAT: usize = 89;
    /// `AQ`, `AR`.
    pub const AUTH_LEN: usize = 87;
    /// `RQ`, `RR`, `CQ`, `CR`.
    pub const SAF_LEN: usize = 90;
}

/// EBCDIC (code page 037) bytes the simulator reads and writes.
mod ebcdic {
    pub const SPACE: u8 = 0x40;
    pub const ZERO: u8 = 0xF0;
    /// `Y` and `N` of `YYY-REPEAT`; `Y` starts an approval code.
    pub const Y: u8 = 0xE8;
    pub const N: u8 = 0xD5;
    /// The record types: `AQ`, `AR`, `RQ`, `RR`, `CQ`, `CR`.
    pub const AQ: [u8; 2] = [0xC1, 0xD8];
    pub const AR: [u8; 2] = [0xC1, 0xD9];
    pub const RQ: [u8; 2] = [0xD9, 0xD8];
    pub const RR: [u8; 2] = [0xD9, 0xD9];
    pub const CQ: [u8; 2] = [0xC3, 0xD8];
    pub const CR: [u8; 2] = [0xC3, 0xD9];

    pub fn is_digit(b: u8) -> bool {
        (0xF0..=0xF9).contains(&b)
    }

    /// Text without control characters (EBCDIC 00–3F) or EO (FF).
    pub fn is_text(b: u8) -> bool {
        (0x40..=0xFE).contains(&b)
    }

    /// A response code's character: a digit or an upper-case letter (code page 037 puts
    /// A–I at C1–C9, J–R at D1–D9, S–Z at E2–E9).
    pub fn of_code_char(c: u8) -> Option<u8> {
        Some(match c {
            b'0'..=b'9' => ZERO + (c - b'0'),
            b'A'..=b'I' => 0xC1 + (c - b'A'),
            b'J'..=b'R' => 0xD1 + (c - b'J'),
            b'S'..=b'Z' => 0xE2 + (c - b'S'),
            _ => return None,
        })
    }
}

/// What a request record asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `AQ`.
    Authorization,
    /// `RQ`.
    Reversal,
    /// `CQ`.
    Advice,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Authorization => "AQ",
            Kind::Reversal => "RQ",
            Kind::Advice => "CQ",
        }
    }

    fn reply_type(self) -> [u8; 2] {
        match self {
            Kind::Authorization => ebcdic::AR,
            Kind::Reversal => ebcdic::RR,
            Kind::Advice => ebcdic::CR,
        }
    }
}

/// A request record the simulator could not read: where and why (never its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Malformed {
    record_type: &'static str,
    offset: usize,
    reason: &'static str,
}

/// A request record, checked against the copybook.
#[derive(Debug)]
struct Request {
    kind: Kind,
    /// `YYY-AMOUNT`'s twelve digits in ASCII, as DE4 would carry them.
    amount: [u8; 12],
    negative: bool,
}

/// Reads a request record.
fn read(record: &[u8]) -> Result<Request, Malformed> {
    let malformed = |record_type, offset, reason| Malformed {
        record_type,
        offset,
        reason,
    };
    let Some(code) = record.get(layout::RECORD_TYPE) else {
        return Err(malformed("none", 0, "shorter than its record type"));
    };
    let (kind, len) = match [code[0], code[1]] {
        ebcdic::AQ => (Kind::Authorization, layout::AUTH_LEN),
        ebcdic::RQ => (Kind::Reversal, layout::SAF_LEN),
        ebcdic::CQ => (Kind::Advice, layout::SAF_LEN),
        ebcdic::AR => return Err(malformed("AR", 0, "a reply record type, not a request")),
        ebcdic::RR => return Err(malformed("RR", 0, "a reply record type, not a request")),
        ebcdic::CR => return Err(malformed("CR", 0, "a reply record type, not a request")),
        _ => return Err(malformed("unknown", 0, "not a record type of yyy")),
    };
    let name = kind.name();
    if record.len() != len {
        return Err(malformed(name, 0, "wrong length for its record type"));
    }
    let check = |range: Range<usize>, ok: fn(u8) -> bool, reason| match record[range.clone()]
        .iter()
        .position(|&b| !ok(b))
    {
        Some(i) => Err(malformed(name, range.start + i, reason)),
        None => Ok(()),
    };
    check(layout::STAN, ebcdic::is_digit, "YYY-STAN is not digits")?;
    check(
        layout::DATE_TIME,
        ebcdic::is_digit,
        "YYY-XMIT-DATE-TIME is not digits",
    )?;
    check(
        layout::TERMINAL,
        ebcdic::is_text,
        "YYY-TERMINAL-ID is not text",
    )?;
    check(
        layout::MERCHANT,
        ebcdic::is_text,
        "YYY-MERCHANT-ID is not text",
    )?;
    // YYY-PAN: digits, left-justified, then spaces; an authorization must have one.
    let pan = &record[layout::PAN];
    let pan_digits = pan.iter().take_while(|&&b| ebcdic::is_digit(b)).count();
    if let Some(i) = pan[pan_digits..].iter().position(|&b| b != ebcdic::SPACE) {
        return Err(malformed(
            name,
            layout::PAN.start + pan_digits + i,
            "YYY-PAN is not digits, left-justified and space-padded",
        ));
    }
    if pan_digits == 0 && kind == Kind::Authorization {
        return Err(malformed(name, layout::PAN.start, "YYY-PAN is blank"));
    }
    check(layout::EXPIRY, ebcdic::is_digit, "YYY-EXPIRY is not digits")?;
    check(
        layout::AMOUNT.start..layout::AMOUNT.end - 1,
        ebcdic::is_digit,
        "YYY-AMOUNT is not zoned digits",
    )?;
    // The sign is overpunched on the last digit: zone C or F positive, D negative.
    let amount = &record[layout::AMOUNT];
    let last = amount[amount.len() - 1];
    let (zone, last_digit) = (last >> 4, last & 0x0F);
    if last_digit > 9 || !matches!(zone, 0xC | 0xD | 0xF) {
        return Err(malformed(
            name,
            layout::AMOUNT.end - 1,
            "YYY-AMOUNT has no overpunch sign (zone C, D or F)",
        ));
    }
    let mut digits = [b'0'; 12];
    for (d, &b) in digits.iter_mut().zip(amount) {
        *d = b'0' + (b & 0x0F);
    }
    let negative = zone == 0xD;
    check(
        layout::CURRENCY,
        ebcdic::is_digit,
        "YYY-CURRENCY is not digits",
    )?;
    check(
        layout::RESPONSE_CODE,
        ebcdic::is_text,
        "YYY-RESPONSE-CODE is not text",
    )?;
    check(
        layout::APPROVAL_CODE,
        ebcdic::is_text,
        "YYY-APPROVAL-CODE is not text",
    )?;
    if kind != Kind::Authorization {
        check(layout::REASON, ebcdic::is_text, "YYY-REASON is not text")?;
        if !matches!(record[layout::REPEAT], ebcdic::Y | ebcdic::N) {
            return Err(malformed(
                name,
                layout::REPEAT,
                "YYY-REPEAT is neither Y nor N",
            ));
        }
    }
    Ok(Request {
        kind,
        amount: digits,
        negative,
    })
}

/// The decision for `request` under `rules`.
fn decide(rules: &Rules, request: &Request) -> Decision {
    if request.kind == Kind::Authorization && request.negative {
        return Decision::answer("13");
    }
    rules.decide_amount(&request.amount, request.kind != Kind::Authorization)
}

/// The reply to `record` (a request [`read`] accepted) with result code `code` (two digits or
/// upper-case letters) and, for an approved authorization, approval number `approval`.
fn reply(record: &[u8], kind: Kind, code: &str, approval: Option<u32>) -> Option<Vec<u8>> {
    let code: Vec<u8> = code
        .bytes()
        .map(ebcdic::of_code_char)
        .collect::<Option<_>>()?;
    if code.len() != layout::RESPONSE_CODE.len() {
        return None;
    }
    let mut out = record.to_vec();
    out[layout::RECORD_TYPE].copy_from_slice(&kind.reply_type());
    out[layout::PAN].fill(ebcdic::SPACE);
    out[layout::EXPIRY].fill(ebcdic::ZERO);
    out[layout::RESPONSE_CODE].copy_from_slice(&code);
    if kind == Kind::Authorization {
        let field = &mut out[layout::APPROVAL_CODE];
        match approval {
            Some(n) => {
                field[0] = ebcdic::Y;
                let mut n = n % 100_000;
                for b in field[1..].iter_mut().rev() {
                    *b = ebcdic::ZERO + (n % 10) as u8;
                    n /= 10;
                }
            }
            None => field.fill(ebcdic::SPACE),
        }
    }
    Some(out)
}

/// A bound mainframe simulator.
pub struct MainframeSimulator {
    options: Arc<MainframeOptions>,
    socket: TcpListener,
    approvals: Arc<AtomicU32>,
}

impl MainframeSimulator {
    /// Binds the simulator's address.
    pub async fn bind(options: MainframeOptions) -> std::io::Result<MainframeSimulator> {
        let socket = TcpListener::bind(options.bind).await?;
        Ok(MainframeSimulator {
            options: Arc::new(options),
            socket,
            approvals: Arc::default(),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Serves until `shutdown` is cancelled; returns once every connection is closed.
    pub async fn serve(self, shutdown: CancellationToken) {
        tracing::info!(addr = %self.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            framing = %self.options.framing, "mainframe simulator listening");
        let connections = TaskTracker::new();
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.socket.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "mainframe simulator accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            connections.spawn(connection(
                self.options.clone(),
                self.approvals.clone(),
                stream,
                peer,
                shutdown.clone(),
            ));
        }
        connections.close();
        connections.wait().await;
    }
}

async fn connection(
    opts: Arc<MainframeOptions>,
    approvals: Arc<AtomicU32>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let (read_half, write_half) = stream.into_split();
    let mut frames = FramedRead::new(read_half, opts.framing.codec(opts.max_frame));
    let mut sink = FramedWrite::new(write_half, opts.framing.codec(opts.max_frame));
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.send(frame).await.is_err() {
                break;
            }
        }
    });
    let delayed = TaskTracker::new();
    loop {
        let record = tokio::select! {
            _ = shutdown.cancelled() => break,
            f = frames.next() => match f {
                Some(Ok(f)) => f.freeze(),
                Some(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "mainframe simulator: framing error; closing");
                    break;
                }
                None => break,
            },
        };
        if record.is_empty() {
            continue; // a keep-alive
        }
        let request = match read(&record) {
            Ok(r) => r,
            Err(m) => {
                tracing::warn!(%peer, record_type = m.record_type, offset = m.offset,
                    reason = m.reason, "mainframe simulator: malformed record; not answered");
                continue;
            }
        };
        let (code, delay) = match decide(&opts.rules, &request) {
            Decision::Silence => continue,
            Decision::Answer { code, after } => (code, after),
        };
        let approval = (request.kind == Kind::Authorization && code == "00")
            .then(|| approvals.fetch_add(1, Ordering::Relaxed) % 100_000);
        let Some(out) = reply(&record, request.kind, &code, approval) else {
            tracing::warn!(%peer, record_type = request.kind.name(), code = %code,
                "mainframe simulator: the rules' code is not 2 digits or letters; not answered");
            continue;
        };
        let out = Bytes::from(out);
        match delay {
            None => {
                let _ = tx.send(out);
            }
            Some(d) => {
                let tx = tx.clone();
                delayed.spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = tx.send(out);
                });
            }
        }
    }
    // Replies still waiting for their delay go out, unless the simulator is shutting down.
    delayed.close();
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = delayed.wait() => {}
    }
    drop(tx);
    if shutdown.is_cancelled() {
        writer.abort();
    }
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ASCII text of a request, in code page 037 (digits, upper case, space, `{` `}`).
    fn ebcdic(text: &str) -> Vec<u8> {
        text.bytes()
            .map(|c| match c {
                b' ' => 0x40,
                b'{' => 0xC0,
                b'}' => 0xD0,
                c => ebcdic::of_code_char(c).unwrap(),
            })
            .collect()
    }

    fn aq(amount: &str) -> Vec<u8> {
        ebcdic(&format!(
            "AQ0001230615115959TERM0001MERCHANT00000014761739001010119   2712{amount}840        "
        ))
    }

    #[test]
    fn the_amount_is_read_as_de4_would_carry_it() {
        let r = read(&aq("00000000105A")).unwrap();
        assert_eq!((&r.amount, r.negative), (b"000000001051", false));
        let r = read(&aq("00000000105J")).unwrap();
        assert_eq!((&r.amount, r.negative), (b"000000001051", true));
        let rules = Rules::contract(Duration::from_millis(250));
        assert_eq!(decide(&rules, &r), Decision::answer("13"));
        let r = read(&aq("00000000109A")).unwrap();
        assert_eq!(decide(&rules, &r), Decision::Silence);
        // An unsigned last digit (zone F) is positive.
        let mut f = aq("000000001000");
        f[75] = 0xF0;
        assert!(!read(&f).unwrap().negative);
    }

    #[test]
    fn malformed_records_say_where() {
        let at = |bytes: &[u8]| read(bytes).map(|_| ()).unwrap_err();
        assert_eq!(at(&[0xC1]).reason, "shorter than its record type");
        assert_eq!(
            at(&aq("00000000100{")[..86]).reason,
            "wrong length for its record type"
        );
        let mut bad = aq("00000000100{");
        bad[5] = 0xC1;
        assert_eq!((at(&bad).record_type, at(&bad).offset), ("AQ", 5));
        let mut bad = aq("00000000100{");
        bad[75] = 0xB0;
        assert_eq!(at(&bad).offset, 75);
        let mut bad = aq("00000000100{");
        bad[58] = 0xF1; // a digit after the padding
        assert_eq!(at(&bad).offset, 58);
        let mut reply_type = aq("00000000100{");
        reply_type[1] = 0xD9;
        assert_eq!(at(&reply_type).record_type, "AR");
        let mut unknown = aq("00000000100{");
        unknown[0] = 0x00;
        assert_eq!(at(&unknown).record_type, "unknown");
    }

    #[test]
    fn a_reply_hides_the_card_and_numbers_the_approval() {
        let request = aq("00000000100{");
        let out = reply(&request, Kind::Authorization, "00", Some(123_456)).unwrap();
        assert_eq!(out[..2], ebcdic::AR);
        assert_eq!(out[41..60], [0x40; 19]);
        assert_eq!(out[60..64], [0xF0; 4]);
        assert_eq!(out[79..87], *ebcdic("00Y23456"));
        assert_eq!(out[2..41], request[2..41]);
        assert_eq!(out[64..79], request[64..79]);
        let declined = reply(&request, Kind::Authorization, "51", None).unwrap();
        assert_eq!(declined[79..87], *ebcdic("51      "));
        assert_eq!(reply(&request, Kind::Authorization, "000", None), None);
        assert_eq!(reply(&request, Kind::Authorization, "0a", None), None);
    }
}
