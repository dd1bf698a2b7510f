//! The endpoint simulator of the default wire contract, or of a user's rules.
//!
//! By default ([`Rules::contract`]) it answers each original request by the
//! last two digits of DE4: `51` → 51, `05` → 05, `91` → never answers, `77` →
//! approves after 250 ms, anything else → 00 with a DE38 authorization code.
//! Reversals and advices (0420, 0421, 0220, 0221) are acknowledged at once
//! with 00 (0430, 0230; no DE38) whatever the amount, so that the default
//! config's store-and-forward queue drains. Network management (08xx) → 00.
//! [`Rules`] replace the amount rules, the default code and the reversal
//! acknowledgement. A reply's MTI always ends in 0 (0421 → 0430). With a
//! TPDU, the reply's TPDU has source and destination swapped. With a spec
//! whose DE39 is three digits (ISO 8583:1993) a two-character code is sent
//! as its action code (00 → 000, 51 → 116, …).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use switchyard_engine::steps::complete_response;
use switchyard_iso8583::{Message, Mti, Spec};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::framing::Framing;
use crate::listener::action_code;

/// Length of a TPDU header.
pub const TPDU_LEN: usize = 5;

/// What the simulator serves.
#[derive(Clone)]
pub struct SimulatorOptions {
    /// Address to bind (port 0 picks one).
    pub bind: SocketAddr,
    /// Length framing.
    pub framing: Framing,
    /// Whether each message starts with a 5-byte TPDU.
    pub tpdu: bool,
    /// The message spec.
    pub spec: Arc<Spec>,
    /// Largest accepted frame.
    pub max_frame: usize,
    /// How requests are answered.
    pub rules: Arc<Rules>,
}

/// What the simulator decides for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer with this result code, after `after` when given.
    Answer {
        /// DE39.
        code: String,
        /// How long to wait first.
        after: Option<Duration>,
    },
    /// Never answer.
    Silence,
}

impl Decision {
    /// Answer at once with `code`.
    pub fn answer(code: &str) -> Decision {
        Decision::Answer {
            code: code.into(),
            after: None,
        }
    }
}

/// One rule: an original request whose DE4 ends in `amount_suffix` gets
/// `decision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The last digits of DE4 (1 to 12 digits).
    pub amount_suffix: String,
    /// What such a request gets.
    pub decision: Decision,
}

/// How the simulator answers: the first rule whose suffix DE4 ends in wins;
/// no match → `default_code`. Reversals and advices get `reversal_code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// In order; the first match wins.
    pub rules: Vec<Rule>,
    /// An original no rule matches.
    pub default_code: String,
    /// Every reversal and advice, whatever its amount.
    pub reversal_code: String,
}

impl Rules {
    /// The rules of the default wire contract: `51` → 51, `05` → 05, `91` →
    /// silence, `77` → 00 after `slow_delay`, else 00; reversals → 00.
    pub fn contract(slow_delay: Duration) -> Rules {
        let rule = |suffix: &str, decision| Rule {
            amount_suffix: suffix.into(),
            decision,
        };
        Rules {
            rules: vec![
                rule("51", Decision::answer("51")),
                rule("05", Decision::answer("05")),
                rule("91", Decision::Silence),
                rule(
                    "77",
                    Decision::Answer {
                        code: "00".into(),
                        after: Some(slow_delay),
                    },
                ),
            ],
            default_code: "00".into(),
            reversal_code: "00".into(),
        }
    }

    /// The decision for `request`: reversals and advices get the reversal
    /// code; originals the first rule their DE4 matches.
    pub fn decide(&self, request: &Message) -> Decision {
        self.decide_amount(
            request.get(4).unwrap_or_default(),
            is_reversal_or_advice(request.mti()),
        )
    }

    /// The decision for a request of any endpoint format, asked without a
    /// [`Message`]: `amount` is its amount written as DE4 is (ASCII digits
    /// in minor units, e.g. `000000001051`), `reversal_or_advice` whether it
    /// is a store-and-forward message (which gets the reversal code whatever
    /// its amount). The mainframe simulator asks this with the amount of its
    /// own records.
    pub fn decide_amount(&self, amount: &[u8], reversal_or_advice: bool) -> Decision {
        if reversal_or_advice {
            return Decision::answer(&self.reversal_code);
        }
        self.rules
            .iter()
            .find(|r| amount.ends_with(r.amount_suffix.as_bytes()))
            .map_or_else(
                || Decision::answer(&self.default_code),
                |r| r.decision.clone(),
            )
    }
}

/// Whether `mti` is a reversal or an advice (x42x, x22x): a
/// store-and-forward message, acknowledged whatever it carries.
pub fn is_reversal_or_advice(mti: Mti) -> bool {
    matches!(&mti.as_bytes()[1..3], b"42" | b"22")
}

/// The rule of the default wire contract for `request` (see [`Rules::contract`]).
pub fn decide(request: &Message, slow_delay: Duration) -> Decision {
    Rules::contract(slow_delay).decide(request)
}

/// A bound simulator.
pub struct Simulator {
    options: Arc<SimulatorOptions>,
    socket: TcpListener,
    approvals: Arc<AtomicU32>,
}

impl Simulator {
    /// Binds the simulator's address.
    pub async fn bind(options: SimulatorOptions) -> std::io::Result<Simulator> {
        let socket = TcpListener::bind(options.bind).await?;
        Ok(Simulator {
            options: Arc::new(options),
            socket,
            approvals: Arc::default(),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn serve(self, shutdown: CancellationToken) {
        tracing::info!(addr = %self.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            tpdu = self.options.tpdu, "endpoint simulator listening");
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.socket.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "simulator accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(
                self.options.clone(),
                self.approvals.clone(),
                stream,
                peer,
                shutdown.clone(),
            ));
        }
    }
}

async fn connection(
    opts: Arc<SimulatorOptions>,
    approvals: Arc<AtomicU32>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let (read, write) = stream.into_split();
    let mut frames = FramedRead::new(read, opts.framing.codec(opts.max_frame));
    let mut sink = FramedWrite::new(write, opts.framing.codec(opts.max_frame));
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.send(frame).await.is_err() {
                break;
            }
        }
    });
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => break,
            f = frames.next() => match f {
                Some(Ok(f)) => f.freeze(),
                Some(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "simulator framing error; closing");
                    break;
                }
                None => break,
            },
        };
        if frame.is_empty() {
            continue;
        }
        let (header, body) = if opts.tpdu {
            if frame.len() < TPDU_LEN {
                tracing::warn!(%peer, "simulator: frame shorter than its TPDU; dropped");
                continue;
            }
            (Some(frame.slice(..TPDU_LEN)), frame.slice(TPDU_LEN..))
        } else {
            (None, frame)
        };
        let request = match opts.spec.decode(body) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "simulator: undecodable request; dropped");
                continue;
            }
        };
        let decision = if request.mti().as_bytes()[1] == b'8' {
            Decision::answer("00")
        } else {
            opts.rules.decide(&request)
        };
        let (code, delay) = match decision {
            Decision::Silence => continue,
            Decision::Answer { code, after } => (code, after),
        };
        let approved = code == "00" || code == "000";
        let approval = (approved && request.contains(4) && !is_reversal_or_advice(request.mti()))
            .then(|| approvals.fetch_add(1, Ordering::Relaxed) % 100_000);
        let response = reply(&request, &code, approval);
        let response = action_code(&opts.spec, &response).unwrap_or(response);
        let encoded = match opts.spec.encode(&response) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "simulator: response does not encode; dropped");
                continue;
            }
        };
        let mut out = BytesMut::with_capacity(TPDU_LEN + encoded.len());
        if let Some(h) = header {
            out.extend_from_slice(&swap_tpdu(&h));
        }
        out.extend_from_slice(&encoded);
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

/// The reply to `request` with result code `code`: the response MTI
/// (origin digit 0: 0421 → 0430), the echoed fields, DE39, and DE38
/// `Snnnnn` from `approval` (approved originals only).
pub fn reply(request: &Message, code: &str, approval: Option<u32>) -> Message {
    let mut response = Message::default();
    if let Some(n) = approval {
        response.set(38, Bytes::from(format!("S{n:05}")));
    }
    complete_response(request, code, &mut response);
    let mut mti = *response.mti().as_bytes();
    mti[3] = b'0';
    response.set_mti(Mti::from_bytes(mti));
    response
}

/// The reply's TPDU: the request's with source and destination swapped.
pub fn swap_tpdu(tpdu: &[u8]) -> [u8; TPDU_LEN] {
    [tpdu[0], tpdu[3], tpdu[4], tpdu[1], tpdu[2]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_amount(a: &str) -> Message {
        message("0200", a)
    }

    fn message(mti: &str, amount: &str) -> Message {
        let mut m = Message::new(Mti::new(mti).unwrap());
        m.set(4, Bytes::copy_from_slice(amount.as_bytes()));
        m.set(11, Bytes::from_static(b"000123"));
        m.set(41, Bytes::from_static(b"TERM0001"));
        m
    }

    #[test]
    fn reversals_and_advices_are_acknowledged_whatever_the_amount() {
        let d = Duration::from_millis(250);
        for mti in ["0420", "0421", "0220", "0221"] {
            for amount in [
                "000000001051",
                "000000001005",
                "000000001091",
                "000000001077",
            ] {
                assert_eq!(
                    decide(&message(mti, amount), d),
                    Decision::answer("00"),
                    "{mti} {amount}"
                );
            }
        }
        // Originals (and their repeats) keep the last-two-digit rules.
        for mti in ["0100", "0200", "0201"] {
            assert_eq!(
                decide(&message(mti, "000000001091"), d),
                Decision::Silence,
                "{mti}"
            );
            assert_eq!(
                decide(&message(mti, "000000001051"), d),
                Decision::answer("51"),
                "{mti}"
            );
        }
    }

    #[test]
    fn replies_end_in_0_and_only_approved_originals_get_de38() {
        for (mti, answer) in [
            ("0420", "0430"),
            ("0421", "0430"),
            ("0220", "0230"),
            ("0221", "0230"),
            ("0200", "0210"),
            ("0201", "0210"),
        ] {
            let request = message(mti, "000000001051");
            let r = reply(&request, "00", None);
            assert_eq!(r.mti().as_str(), answer, "{mti}");
            assert_eq!(r.get_str(39), Some("00"), "{mti}");
            assert_eq!(r.get_str(11), Some("000123"), "{mti}: STAN echoed");
            assert_eq!(r.get_str(41), Some("TERM0001"), "{mti}: terminal echoed");
            assert!(!r.contains(38), "{mti}");
        }
        let approved = reply(&message("0200", "000000001000"), "00", Some(7));
        assert_eq!(approved.get_str(38), Some("S00007"));
        let declined = reply(&message("0200", "000000001051"), "51", Some(7));
        assert!(!declined.contains(38));
    }

    #[test]
    fn decisions_follow_the_last_two_digits_of_de4() {
        let d = Duration::from_millis(250);
        assert_eq!(
            decide(&with_amount("000000001051"), d),
            Decision::answer("51")
        );
        assert_eq!(
            decide(&with_amount("000000001005"), d),
            Decision::answer("05")
        );
        assert_eq!(decide(&with_amount("000000001091"), d), Decision::Silence);
        assert_eq!(
            decide(&with_amount("000000001077"), d),
            Decision::Answer {
                code: "00".into(),
                after: Some(d)
            }
        );
        assert_eq!(
            decide(&with_amount("000000001000"), d),
            Decision::answer("00")
        );
    }

    #[test]
    fn the_first_matching_rule_wins_and_reversals_get_their_own_code() {
        let rules = Rules {
            rules: vec![
                Rule {
                    amount_suffix: "123".into(),
                    decision: Decision::answer("05"),
                },
                Rule {
                    amount_suffix: "23".into(),
                    decision: Decision::Silence,
                },
            ],
            default_code: "51".into(),
            reversal_code: "96".into(),
        };
        assert_eq!(
            rules.decide(&with_amount("000000000123")),
            Decision::answer("05")
        );
        assert_eq!(
            rules.decide(&with_amount("000000000023")),
            Decision::Silence
        );
        assert_eq!(
            rules.decide(&with_amount("000000000100")),
            Decision::answer("51")
        );
        assert_eq!(
            rules.decide(&message("0420", "000000000123")),
            Decision::answer("96")
        );
    }

    #[test]
    fn an_amount_is_decided_without_a_message_as_de4_would_be() {
        let rules = Rules::contract(Duration::from_millis(250));
        for amount in [
            "000000001051",
            "000000001005",
            "000000001091",
            "000000001077",
            "000000001000",
        ] {
            assert_eq!(
                rules.decide_amount(amount.as_bytes(), false),
                rules.decide(&with_amount(amount)),
                "{amount}"
            );
            assert_eq!(
                rules.decide_amount(amount.as_bytes(), true),
                Decision::answer("00"),
                "a reversal of {amount}"
            );
        }
        assert_eq!(rules.decide_amount(b"", false), Decision::answer("00"));
    }

    #[test]
    fn tpdu_swaps_source_and_destination() {
        assert_eq!(swap_tpdu(&[0x60, 0, 1, 0, 2]), [0x60, 0, 2, 0, 1]);
    }
}
