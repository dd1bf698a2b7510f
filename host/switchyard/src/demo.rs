//! `switchyard demo`: starts the switch, sends a scripted set of
//! transactions covering every path of the default wire contract, prints
//! each request (PAN masked), its response code and its profiler trace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use switchyard_net::{Completed, Observer};

use crate::client::{Connection, RequestSpec, UtcTime, summary};
use crate::config::Config;
use crate::switch::{StartOptions, Switch};
use switchyard_iso8583::{Message, Mti};

/// The published Visa test PAN (passes Luhn).
pub const TEST_PAN: &str = "4761739001010119";
/// The same PAN with its check digit broken.
pub const BAD_LUHN_PAN: &str = "4761739001010118";
/// A published Mastercard test PAN (routed to `yyy` on 5003).
pub const MASTERCARD_PAN: &str = "5413330089010509";
/// A published American Express test PAN: no BIN entry matches it on 5003.
pub const AMEX_PAN: &str = "378282246310005";
/// The card the velocity cases use (a published Visa test PAN).
pub const VELOCITY_PAN: &str = "4111111111111111";
/// The demo's loyalty card (range 600649, Luhn-valid), credited
/// [`LOYALTY_POINTS`] before the cases run.
pub const LOYALTY_PAN: &str = "6006490000000012";
/// Points credited to [`LOYALTY_PAN`] (100.00).
pub const LOYALTY_POINTS: i64 = 10_000;
/// The demo's coupon (range 600650, Luhn-valid), worth 20.00, issued before
/// the cases run.
pub const COUPON_PAN: &str = "6006500000000018";

/// One scripted transaction.
#[derive(Debug, Clone)]
pub struct Case {
    /// What it shows.
    pub title: &'static str,
    /// The listener port (5001 local, 5002 switched out, 5003 routed by
    /// card, 5005 the mainframe endpoint).
    pub port: u16,
    /// What to send.
    pub request: Script,
    /// The response code the contract promises.
    pub expect: &'static str,
}

/// What a case sends.
#[derive(Debug, Clone)]
pub enum Script {
    /// A well-formed message.
    Message(RequestSpec),
    /// A frame that does not decode but has a readable MTI and STAN.
    Malformed {
        /// Its STAN.
        stan: u32,
    },
    /// The very message of an earlier case again, with this MTI (`0201`:
    /// its repeat; `0200`: a duplicate).
    Resend {
        /// The earlier case (index in [`cases`]).
        of: usize,
        /// The MTI to send it with.
        mti: &'static str,
    },
    /// A reversal (0420) naming an earlier case's message in DE90.
    ReversalOf {
        /// The earlier case (index in [`cases`]).
        of: usize,
        /// The reversal's own STAN.
        stan: u32,
    },
}

impl Script {
    /// The message to send, given what the earlier cases sent (`None`: the
    /// malformed frame of [`malformed_frame`]).
    pub fn message(&self, sent: &[Option<Message>]) -> anyhow::Result<Option<Message>> {
        let earlier = |of: usize| {
            sent.get(of)
                .cloned()
                .flatten()
                .ok_or_else(|| anyhow::anyhow!("case {of} sent no message"))
        };
        Ok(match self {
            Script::Message(spec) => Some(spec.build()?),
            Script::Malformed { .. } => None,
            Script::Resend { of, mti } => {
                let mut m = earlier(*of)?;
                m.set_mti(Mti::new(mti)?);
                Some(m)
            }
            Script::ReversalOf { of, stan } => Some(crate::client::reversal_of(
                &earlier(*of)?,
                *stan,
                &switchyard_iso8583::Spec::iso87_ascii(),
            )?),
        })
    }
}

/// The scripted cases of the demo.
pub fn cases() -> Vec<Case> {
    let now = UtcTime::now();
    let fin =
        |mti: &str, amount: u64, stan: u32| RequestSpec::financial(mti, TEST_PAN, amount, stan);
    let mut no_terminal = fin("0200", 10_000, 2);
    no_terminal.terminal = None;
    let mut bad_pan = fin("0200", 10_000, 3);
    bad_pan.pan = Some(BAD_LUHN_PAN.into());
    let mut expired = fin("0200", 10_000, 4);
    expired.expiry = Some(now.yymm_plus(-1));
    let echo = RequestSpec {
        mti: "0800".into(),
        pan: None,
        amount_minor: None,
        stan: 8,
        expiry: None,
        terminal: None,
        fields: Vec::new(),
        omit: Vec::new(),
    };
    let m = Script::Message;
    let mut cases = vec![
        Case {
            title: "purchase, authorized locally",
            port: 5001,
            request: m(fin("0200", 10_000, 1)),
            expect: "00",
        },
        Case {
            title: "authorization (0100), authorized locally",
            port: 5001,
            request: m(fin("0100", 2_500, 11)),
            expect: "00",
        },
        Case {
            title: "missing DE41 → format error",
            port: 5001,
            request: m(no_terminal),
            expect: "30",
        },
        Case {
            title: "PAN fails Luhn → invalid card",
            port: 5001,
            request: m(bad_pan),
            expect: "14",
        },
        Case {
            title: "card expired last month",
            port: 5001,
            request: m(expired),
            expect: "54",
        },
        Case {
            title: "zero amount → invalid amount",
            port: 5001,
            request: m(fin("0200", 0, 5)),
            expect: "13",
        },
        Case {
            title: "repeat (0201) of the purchase → its recorded answer, nothing run again",
            port: 5001,
            request: Script::Resend { of: 0, mti: "0201" },
            expect: "00",
        },
        Case {
            title: "the same purchase sent again (0200) → duplicate transmission",
            port: 5001,
            request: Script::Resend { of: 0, mti: "0200" },
            expect: "94",
        },
        Case {
            title: "reversal (0420) of the purchase, matched by DE90 → reversed",
            port: 5001,
            request: Script::ReversalOf { of: 0, stan: 6 },
            expect: "00",
        },
        Case {
            title: "reversal (0420) of a transaction the switch never saw",
            port: 5001,
            request: m(fin("0420", 10_000, 10)),
            expect: "25",
        },
        Case {
            title: "6,000.00 is over the 5,000.00 local limit",
            port: 5001,
            request: m(fin("0200", 600_000, 7)),
            expect: "61",
        },
        Case {
            title: "echo test (0800, DE70=301)",
            port: 5001,
            request: m(echo),
            expect: "00",
        },
        Case {
            title: "undecodable frame with readable MTI and STAN",
            port: 5001,
            request: Script::Malformed { stan: 9 },
            expect: "30",
        },
        Case {
            title: "switched out to xxx, approved",
            port: 5002,
            request: m(fin("0200", 12_300, 21)),
            expect: "00",
        },
        Case {
            title: "switched out, endpoint declines (…51)",
            port: 5002,
            request: m(fin("0200", 10_051, 22)),
            expect: "51",
        },
        Case {
            title: "switched out, endpoint says do not honour (…05)",
            port: 5002,
            request: m(fin("0200", 10_005, 23)),
            expect: "05",
        },
        Case {
            title: "switched out, endpoint answers after 250 ms (…77)",
            port: 5002,
            request: m(fin("0200", 10_077, 24)),
            expect: "00",
        },
        Case {
            title: "switched out, endpoint never answers (…91) → timeout; its reversal queued first",
            port: 5002,
            request: m(fin("0200", 10_091, 25)),
            expect: "91",
        },
        Case {
            title: "switched out, invalid card stops before the endpoint",
            port: 5002,
            request: m({
                let mut r = fin("0200", 10_000, 26);
                r.pan = Some(BAD_LUHN_PAN.into());
                r
            }),
            expect: "14",
        },
    ];
    cases.extend(issuer_cases());
    cases
}

/// The cases of 5003 (routing, velocity, the internal hosts) and 5005.
fn issuer_cases() -> Vec<Case> {
    let m = Script::Message;
    let fin = |pan: &str, amount: u64, stan: u32| RequestSpec::financial("0200", pan, amount, stan);
    let mut inquiry = fin(LOYALTY_PAN, 0, 70);
    inquiry.fields.push((3, "310000".into()));
    let case = |title, port, request, expect| Case {
        title,
        port,
        request,
        expect,
    };
    let mut cases = vec![
        case(
            "5003: Visa (BIN 4) → routed to xxx",
            5003,
            m(fin(TEST_PAN, 4_200, 40)),
            "00",
        ),
        case(
            "5003: Mastercard (BIN 51..55) → routed to yyy, the mainframe",
            5003,
            m(fin(MASTERCARD_PAN, 4_300, 41)),
            "00",
        ),
        case(
            "5003: no BIN entry matches (Amex) → no such issuer",
            5003,
            m(fin(AMEX_PAN, 4_400, 42)),
            "15",
        ),
    ];
    for n in 0..10 {
        cases.push(case(
            VELOCITY_TITLES[n as usize],
            5003,
            m(fin(VELOCITY_PAN, 100, 50 + n)),
            "00",
        ));
    }
    cases.extend([
        case(
            "5003: velocity — the 11th approval of the card in 24 h → exceeds frequency limit",
            5003,
            m(fin(VELOCITY_PAN, 100, 60)),
            "65",
        ),
        case(
            "5003: loyalty card, spend 25.00 of 100.00 in points",
            5003,
            m(fin(LOYALTY_PAN, 2_500, 71)),
            "00",
        ),
        case(
            "5003: loyalty card, spend 500.00 → not enough points",
            5003,
            m(fin(LOYALTY_PAN, 50_000, 72)),
            "51",
        ),
        case(
            "5003: loyalty balance inquiry (DE3 31) → balance in DE54",
            5003,
            m(inquiry),
            "00",
        ),
        case(
            "5003: coupon worth 20.00, redeem 15.00",
            5003,
            m(fin(COUPON_PAN, 1_500, 80)),
            "00",
        ),
        case(
            "5003: the same coupon again → redeemed once only",
            5003,
            m(fin(COUPON_PAN, 1_500, 81)),
            "05",
        ),
        case(
            "5005: mainframe endpoint yyy (EBCDIC records), approved",
            5005,
            m(fin(TEST_PAN, 12_300, 90)),
            "00",
        ),
        case(
            "5005: mainframe endpoint declines (…51)",
            5005,
            m(fin(TEST_PAN, 10_051, 91)),
            "51",
        ),
    ]);
    cases
}

const VELOCITY_TITLES: [&str; 10] = [
    "5003: velocity — approval 1 of the 10 a card may have in 24 h",
    "5003: velocity — approval 2",
    "5003: velocity — approval 3",
    "5003: velocity — approval 4",
    "5003: velocity — approval 5",
    "5003: velocity — approval 6",
    "5003: velocity — approval 7",
    "5003: velocity — approval 8",
    "5003: velocity — approval 9",
    "5003: velocity — approval 10",
];

/// Credits the demo's loyalty card and issues its coupon, in the switch's
/// store, as `switchyard loyalty credit` and `coupons issue` would.
pub fn seed_internal_hosts(switch: &Switch) -> anyhow::Result<()> {
    let store = &switch.store().kv;
    let expires = UtcTime::now().year + 1;
    store
        .kv_set(
            "default",
            "loyalty",
            &format!("points:{LOYALTY_PAN}"),
            LOYALTY_POINTS.to_string().as_bytes(),
        )
        .context("crediting the demo's loyalty card")?;
    store
        .kv_set(
            "default",
            "coupon",
            &format!("coupon:{COUPON_PAN}"),
            format!("v1 {COUPON_PAN} 2000 {expires}-12-31 open").as_bytes(),
        )
        .context("issuing the demo's coupon")?;
    Ok(())
}

/// A frame whose MTI, bitmap and STAN decode but whose DE14 (expiry, n4)
/// holds letters.
pub fn malformed_frame(stan: u32) -> Bytes {
    let mut f = Vec::new();
    f.extend_from_slice(b"0200");
    // Primary bitmap: fields 3, 4 (byte 0) and 11, 14 (byte 1).
    f.extend_from_slice(&[0x30, 0x24, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(b"000000");
    f.extend_from_slice(b"000000010000");
    f.extend_from_slice(format!("{stan:06}").as_bytes());
    f.extend_from_slice(b"12AB");
    Bytes::from(f)
}

/// Runs the demo on `config` (ports are picked free; `PORT` keeps the
/// configured value). Returns whether every case got its expected code.
pub async fn run(config: Config) -> anyhow::Result<bool> {
    let completed: Arc<Mutex<HashMap<(String, String), Completed>>> = Arc::default();
    let sink = completed.clone();
    let observer: Observer = Arc::new(move |c: Completed| {
        if let Some(stan) = &c.stan {
            sink.lock()
                .unwrap()
                .insert((c.listener.to_string(), stan.clone()), c);
        }
    });
    let started = Instant::now();
    let switch = Switch::start(
        config,
        StartOptions {
            ephemeral_ports: true,
            observer: Some(observer),
            ..StartOptions::default()
        },
    )
    .await
    .context("starting the switch")?;
    println!(
        "Switchyard demo — switch started in {} ms",
        started.elapsed().as_millis()
    );
    for (name, port, addr) in switch.listeners() {
        println!("  listener {name:<9} PORT={port} on {addr}");
    }
    for (name, addr) in switch.simulators() {
        println!("  endpoint {name:<9} simulator on {addr}");
    }
    println!();
    seed_internal_hosts(&switch)?;
    println!(
        "  loyalty card {} credited {LOYALTY_POINTS} points; coupon {} worth 20.00 issued\n",
        switchyard_iso8583::mask_pan(LOYALTY_PAN),
        switchyard_iso8583::mask_pan(COUPON_PAN),
    );

    let mut all_ok = true;
    let mut sent: Vec<Option<Message>> = Vec::new();
    for (i, case) in cases().into_iter().enumerate() {
        let Some(addr) = switch.addr_of_port(case.port) else {
            println!(
                "{:>2}. {} — no listener for port {}",
                i + 1,
                case.title,
                case.port
            );
            all_ok = false;
            continue;
        };
        let listener = switch
            .listeners()
            .iter()
            .find(|(_, p, _)| *p == case.port)
            .map(|(n, _, _)| n.clone())
            .unwrap_or_default();
        println!("{:>2}. {} [port {}]", i + 1, case.title, case.port);
        let mut conn = Connection::connect(addr).await?;
        let sent_at = Instant::now();
        let message = case.request.message(&sent)?;
        sent.push(message.clone());
        let (stan, outcome) = match (&case.request, message) {
            (_, Some(request)) => {
                println!("    → {}", summary(&request));
                let stan = request.get_str(11).unwrap_or_default().to_owned();
                (stan, conn.exchange(&request, Duration::from_secs(5)).await)
            }
            (Script::Malformed { stan }, None) => {
                println!("    → 0200 stan {stan:06} with DE14 = \"12AB\" (not numeric)");
                conn.send_raw(malformed_frame(*stan)).await?;
                (
                    format!("{stan:06}"),
                    conn.receive(Duration::from_secs(5)).await,
                )
            }
            (_, None) => unreachable!("only a malformed case sends no message"),
        };
        let elapsed = sent_at.elapsed();
        match outcome {
            Ok(response) => {
                let rc = response.get_str(39).unwrap_or("--").to_owned();
                let ok = rc == case.expect;
                all_ok &= ok;
                println!(
                    "    ← {}   ({:.1} ms) {}",
                    summary(&response),
                    elapsed.as_secs_f64() * 1000.0,
                    if ok {
                        "as expected".to_string()
                    } else {
                        format!("EXPECTED {}", case.expect)
                    }
                );
                if let Some(amounts) = response.get_str(54) {
                    println!("    DE54 additional amounts (balance): {amounts}");
                }
            }
            Err(e) => {
                all_ok = false;
                println!("    ← no response: {e:#} (expected {})", case.expect);
            }
        }
        // The trace is logged just after the response is written.
        let key = (listener, stan);
        let mut trace = None;
        for _ in 0..100 {
            if let Some(c) = completed.lock().unwrap().get(&key) {
                trace = Some(c.trace.clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        match trace {
            Some(t) => println!("    profiler: {t}"),
            None => println!("    profiler: (no pipeline ran: answered by the listener)"),
        }
        println!();
    }
    switch.shutdown().await?;
    println!(
        "{}",
        if all_ok {
            "Every transaction got the response code the contract promises."
        } else {
            "SOME TRANSACTIONS DID NOT GET THE EXPECTED RESPONSE CODE."
        }
    );
    Ok(all_ok)
}
