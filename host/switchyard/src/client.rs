//! A small acquirer client: builds a request, sends it over TCP with the
//! default framing and reads the response. Used by `switchyard send`, the
//! demo and the tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use switchyard_iso8583::tpdu::{LEN as TPDU_LEN, Tpdu};
use switchyard_iso8583::{Message, Mti, Spec, mask_pan};
use tokio::net::TcpStream;
use tokio_util::codec::{Encoder as _, Framed};

use switchyard_net::Framing;

pub use switchyard_iso8583::UtcTime;

/// What to put into a request.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// MTI, e.g. `0200`.
    pub mti: String,
    /// DE2.
    pub pan: Option<String>,
    /// DE4 in minor units.
    pub amount_minor: Option<u64>,
    /// DE11.
    pub stan: u32,
    /// DE14 (YYMM); `None` leaves it out.
    pub expiry: Option<String>,
    /// DE41.
    pub terminal: Option<String>,
    /// Extra or overriding fields.
    pub fields: Vec<(u16, String)>,
    /// Fields to leave out (after `fields` are applied).
    pub omit: Vec<u16>,
}

impl RequestSpec {
    /// A financial request with the usual fields.
    pub fn financial(mti: &str, pan: &str, amount_minor: u64, stan: u32) -> RequestSpec {
        RequestSpec {
            mti: mti.into(),
            pan: Some(pan.into()),
            amount_minor: Some(amount_minor),
            stan,
            expiry: Some(UtcTime::now().yymm_plus(24)),
            terminal: Some("TERM0001".into()),
            fields: Vec::new(),
            omit: Vec::new(),
        }
    }

    /// Builds the message with the ISO 8583:1987 layouts (the default spec).
    pub fn build(&self) -> anyhow::Result<Message> {
        self.build_with(false)
    }

    /// Builds the message with the field layouts of `spec`: where it is an
    /// ISO 8583:1993 table (DE12 n12), DE12 is the local date and time and
    /// DE22 the 12-character point-of-service data code; otherwise DE12 is
    /// hhmmss, DE13 MMDD and DE22 the entry mode `012`. Network management
    /// (x8xx) gets DE7, DE11 and DE70 = 301 (echo) unless `fields` says
    /// otherwise. `fields` are set last, then `omit` removed.
    pub fn build_for(&self, spec: &Spec) -> anyhow::Result<Message> {
        self.build_with(spec.field(12).is_some_and(|f| f.max_len() == 12))
    }

    /// Builds the message with the 1993 layouts of DE12 and DE22 when
    /// `iso93`, else the 1987 ones.
    fn build_with(&self, iso93: bool) -> anyhow::Result<Message> {
        let mti = Mti::new(&self.mti).map_err(|e| anyhow!("MTI {:?}: {e}", self.mti))?;
        let now = UtcTime::now();
        let mut m = Message::new(mti);
        let set = |m: &mut Message, f: u16, v: String| m.set(f, Bytes::from(v));
        set(&mut m, 7, now.de7());
        set(&mut m, 11, format!("{:06}", self.stan % 1_000_000));
        if self.mti.as_bytes()[1] == b'8' {
            set(&mut m, 70, "301".into());
        } else {
            if let Some(pan) = &self.pan {
                set(&mut m, 2, pan.clone());
            }
            set(&mut m, 3, "000000".into());
            if let Some(a) = self.amount_minor {
                if a > 999_999_999_999 {
                    bail!("amount {a} does not fit DE4 (12 digits)");
                }
                set(&mut m, 4, format!("{a:012}"));
            }
            if iso93 {
                set(&mut m, 12, now.de12_93());
                set(&mut m, 22, "510101511326".into());
            } else {
                set(&mut m, 12, now.de12());
                set(&mut m, 13, now.de13());
                set(&mut m, 22, "012".into());
            }
            if let Some(e) = &self.expiry {
                set(&mut m, 14, e.clone());
            }
            if let Some(t) = &self.terminal {
                set(&mut m, 41, t.clone());
            }
            set(&mut m, 42, "MERCHANT0000001".into());
            set(&mut m, 49, "840".into());
        }
        for (f, v) in &self.fields {
            m.try_set(*f, Bytes::from(v.clone()))
                .map_err(|e| anyhow!("field {f}: {e}"))?;
        }
        for f in &self.omit {
            m.remove(*f);
        }
        Ok(m)
    }
}

/// The repeat of `original`: the same message with the MTI's last digit
/// raised by one (0200 → 0201, 0420 → 0421), as an acquirer retransmits it.
pub fn repeat_of(original: &Message) -> anyhow::Result<Message> {
    let mut mti = *original.mti().as_bytes();
    if mti[3] != b'0' && mti[3] != b'2' {
        bail!(
            "MTI {} is not an original (its last digit is not 0 or 2), so it has no repeat",
            original.mti_str()
        );
    }
    mti[3] += 1;
    let mut m = original.clone();
    m.set_mti(Mti::from_bytes(mti));
    Ok(m)
}

/// The acquirer's reversal (x420) of `original`, which the switch answered.
/// It carries the original's card, amount, terminal, merchant, RRN and
/// currency; with a spec whose DE90 is the 42-digit original data elements
/// (1987) it gets its own STAN `stan` and DE90; otherwise (1993) it keeps the
/// original's STAN and names the original in DE56 where the spec defines it.
pub fn reversal_of(original: &Message, stan: u32, spec: &Spec) -> anyhow::Result<Message> {
    let version = original.mti().as_bytes()[0] as char;
    let mti = format!("{version}420");
    let mut m = Message::new(Mti::new(&mti).map_err(|e| anyhow!("MTI {mti}: {e}"))?);
    for f in [2, 3, 4, 12, 13, 14, 22, 32, 33, 37, 41, 42, 49] {
        if let Some(v) = original.get_bytes(f) {
            m.set(f, v.clone());
        }
    }
    let now = UtcTime::now();
    m.set(7, Bytes::from(now.de7()));
    let de = |f: u16, default: &'static str| original.get_str(f).unwrap_or(default).to_owned();
    if spec.field(90).is_some_and(|f| f.max_len() == 42) {
        m.set(11, Bytes::from(format!("{:06}", stan % 1_000_000)));
        m.set(
            90,
            Bytes::from(format!(
                "{}{}{}{:0>11}{:0>11}",
                original.mti_str(),
                de(11, "000000"),
                de(7, "0000000000"),
                de(32, ""),
                de(33, "")
            )),
        );
    } else {
        m.set(11, Bytes::from(de(11, "000000")));
        if spec.defines(56) {
            m.set(
                56,
                Bytes::from(format!(
                    "{}{}{:0>12}{}",
                    original.mti_str(),
                    de(11, "000000"),
                    de(12, ""),
                    de(32, "")
                )),
            );
        }
    }
    Ok(m)
}

/// Parses a decimal amount in major units ("100.00", "100", "0.51") into
/// minor units (two decimals).
pub fn parse_amount(text: &str) -> anyhow::Result<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
    {
        bail!("amount {text:?} is not a decimal with at most two decimals");
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse()? };
    let frac: u64 = format!("{frac:0<2}").parse()?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(|| anyhow!("amount {text:?} is too large"))
}

/// One line describing a message, PAN and expiry masked, no track or PIN data.
pub fn summary(m: &Message) -> String {
    let mut s = m.mti().as_str().to_string();
    if let Some(stan) = m.get_str(11) {
        s.push_str(&format!(" stan {stan}"));
    }
    if let Some(pan) = m.get_str(2) {
        s.push_str(&format!(" pan {}", mask_pan(pan)));
    }
    if let Some(a) = m.get_str(4) {
        s.push_str(&format!(" amount {a}"));
    }
    if m.contains(14) {
        // Masked, as the tranlog shows it.
        s.push_str(" exp ****");
    }
    if let Some(rc) = m.get_str(39) {
        s.push_str(&format!(" rc {rc}"));
    }
    if let Some(auth) = m.get_str(38) {
        s.push_str(&format!(" auth {auth}"));
    }
    s
}

/// Every field of a message, one per line, card data masked or redacted.
pub fn field_lines(m: &Message) -> Vec<String> {
    m.fields()
        .map(|(f, v)| format!("DE{f:03} {}", shown(f, v)))
        .collect()
}

/// Which fields are card data, and how much of them may be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardData {
    /// A PAN (DE2, DE34): its first 6 and last 4 digits.
    Pan,
    /// The expiry (DE14), track data (DE35, DE36, DE45), the PIN block
    /// (DE52), chip data (DE55): nothing.
    Secret,
}

/// Whether field `f` is card data (see [`CardData`]).
pub fn card_data(f: u16) -> Option<CardData> {
    match f {
        2 | 34 => Some(CardData::Pan),
        14 | 35 | 36 | 45 | 52 | 55 => Some(CardData::Secret),
        _ => None,
    }
}

/// A field's value as people may see it: a PAN masked, the expiry as
/// `****`, other card data `<redacted>`, printable text as it is, anything
/// else in hex.
pub fn shown(f: u16, v: &[u8]) -> String {
    match card_data(f) {
        Some(CardData::Pan) => mask_pan(&String::from_utf8_lossy(v)),
        Some(CardData::Secret) if f == 14 => "****".into(),
        Some(CardData::Secret) => "<redacted>".into(),
        None if v.iter().all(|b| b.is_ascii_graphic() || *b == b' ') => {
            String::from_utf8_lossy(v).into_owned()
        }
        None => format!("0x{}", hex::encode_upper(v)),
    }
}

/// How a connection speaks: the message spec, the length framing (with or
/// without a TPDU after the header) and the TPDU each request carries.
#[derive(Debug, Clone)]
pub struct Wire {
    /// The message spec.
    pub spec: Spec,
    /// The length framing; with `+tpdu` every message starts with a TPDU.
    pub framing: Framing,
    /// The TPDU of each request when `framing` has `+tpdu`.
    pub tpdu: Tpdu,
    /// Largest frame accepted.
    pub max_frame: usize,
}

impl Default for Wire {
    /// The default wire contract: ISO 8583:1987 ASCII, NAC framing, no TPDU.
    fn default() -> Wire {
        Wire {
            spec: Spec::iso87_ascii(),
            framing: Framing::Nac,
            tpdu: Tpdu([0x60, 0x00, 0x01, 0x00, 0x00]),
            max_frame: 65_535,
        }
    }
}

impl Wire {
    /// The frame body of `m`: its TPDU (with `+tpdu`), then the encoded message.
    pub fn body(&self, m: &Message) -> anyhow::Result<Bytes> {
        let encoded = self.spec.encode(m).with_context(|| {
            format!("the request does not encode with spec {}", self.spec.name())
        })?;
        if !self.framing.tpdu() {
            return Ok(encoded);
        }
        let mut body = BytesMut::with_capacity(TPDU_LEN + encoded.len());
        body.extend_from_slice(self.tpdu.as_bytes());
        body.extend_from_slice(&encoded);
        Ok(body.freeze())
    }

    /// The bytes on the wire for `body`: the length header, then the body.
    pub fn on_the_wire(&self, body: &Bytes) -> anyhow::Result<BytesMut> {
        let mut out = BytesMut::new();
        self.framing
            .codec(self.max_frame)
            .encode(body.clone(), &mut out)
            .context("framing")?;
        Ok(out)
    }

    /// How many bytes precede the message in a frame: the length header and
    /// the TPDU.
    pub fn preamble_len(&self) -> usize {
        self.framing.header().len() + if self.framing.tpdu() { TPDU_LEN } else { 0 }
    }

    /// The message in a received frame body (its TPDU, if any, skipped).
    pub fn open(&self, body: Bytes) -> anyhow::Result<Message> {
        let message = if self.framing.tpdu() {
            Tpdu::split(body)
                .map_err(|e| anyhow!("the response has no TPDU: {e}"))?
                .1
        } else {
            body
        };
        self.spec
            .decode(message)
            .with_context(|| format!("decoding the response with spec {}", self.spec.name()))
    }
}

type FramedStream = Framed<TcpStream, switchyard_net::framing::FrameCodec>;

/// An open connection to a listener.
pub struct Connection {
    framed: FramedStream,
    wire: Arc<Wire>,
}

impl Connection {
    /// Connects to `addr` with the default wire contract.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Connection> {
        Connection::connect_with(addr, Arc::new(Wire::default())).await
    }

    /// Connects to `addr`, speaking `wire`.
    pub async fn connect_with(addr: SocketAddr, wire: Arc<Wire>) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            framed: Framed::new(stream, wire.framing.codec(wire.max_frame)),
            wire,
        })
    }

    /// Sends a message; returns the frame body sent (TPDU and message).
    pub async fn send(&mut self, m: &Message) -> anyhow::Result<Bytes> {
        let body = self.wire.body(m)?;
        self.send_raw(body.clone()).await?;
        Ok(body)
    }

    /// Sends raw bytes as one frame.
    pub async fn send_raw(&mut self, frame: Bytes) -> anyhow::Result<()> {
        self.framed.send(frame).await.context("sending")?;
        Ok(())
    }

    /// Receives one message, waiting at most `timeout`.
    pub async fn receive(&mut self, timeout: Duration) -> anyhow::Result<Message> {
        Ok(self.receive_frame(timeout).await?.1)
    }

    /// Receives one frame, waiting at most `timeout`: its body (TPDU and
    /// message) and the message.
    pub async fn receive_frame(&mut self, timeout: Duration) -> anyhow::Result<(Bytes, Message)> {
        receive_from(&mut self.framed, &self.wire, timeout).await
    }

    /// Sends `m` and waits for one response.
    pub async fn exchange(&mut self, m: &Message, timeout: Duration) -> anyhow::Result<Message> {
        self.send(m).await?;
        self.receive(timeout).await
    }

    /// The sending and the receiving half, to keep requests in flight from
    /// one task while another reads the responses (load tests, benches).
    pub fn split(self) -> (Requests, Responses) {
        let (sink, stream) = self.framed.split();
        (
            Requests {
                sink,
                wire: self.wire.clone(),
            },
            Responses {
                stream,
                wire: self.wire,
            },
        )
    }
}

/// The sending half of a [`Connection`].
pub struct Requests {
    sink: futures::stream::SplitSink<FramedStream, Bytes>,
    wire: Arc<Wire>,
}

impl Requests {
    /// Sends a message.
    pub async fn send(&mut self, m: &Message) -> anyhow::Result<()> {
        let body = self.wire.body(m)?;
        self.sink.send(body).await.context("sending")?;
        Ok(())
    }
}

/// The receiving half of a [`Connection`].
pub struct Responses {
    stream: futures::stream::SplitStream<FramedStream>,
    wire: Arc<Wire>,
}

impl Responses {
    /// Receives one message, waiting at most `timeout`.
    pub async fn receive(&mut self, timeout: Duration) -> anyhow::Result<Message> {
        Ok(receive_from(&mut self.stream, &self.wire, timeout).await?.1)
    }
}

/// The next frame of `frames` opened with `wire`, waiting at most `timeout`.
async fn receive_from<S, E>(
    frames: &mut S,
    wire: &Wire,
    timeout: Duration,
) -> anyhow::Result<(Bytes, Message)>
where
    S: futures::Stream<Item = Result<bytes::BytesMut, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    let frame = tokio::time::timeout(timeout, frames.next())
        .await
        .map_err(|_| anyhow!("no response within {} ms", timeout.as_millis()))?
        .ok_or_else(|| anyhow!("the peer closed the connection"))?
        .context("reading the response")?
        .freeze();
    let message = wire.open(frame.clone())?;
    Ok((frame, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_calendar() {
        let t = UtcTime::from_unix(1_795_420_800); // 2026-11-23T08:00:00Z
        assert_eq!((t.year, t.month, t.day, t.hour), (2026, 11, 23, 8));
        assert_eq!(t.de13(), "1123");
        assert_eq!(t.yymm_plus(2), "2701");
        assert_eq!(t.yymm_plus(-11), "2512");
        let leap = UtcTime::from_unix(951_782_400); // 2000-02-29
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("100.00").unwrap(), 10_000);
        assert_eq!(parse_amount("100").unwrap(), 10_000);
        assert_eq!(parse_amount("0.5").unwrap(), 50);
        assert_eq!(parse_amount(".51").unwrap(), 51);
        assert!(parse_amount("1.234").is_err());
        assert!(parse_amount("abc").is_err());
        assert!(parse_amount("").is_err());
    }

    #[test]
    fn summary_masks_the_pan() {
        let m = RequestSpec::financial("0200", "4761739001010119", 100, 7)
            .build()
            .unwrap();
        let s = summary(&m);
        assert!(s.contains("476173******0119"), "{s}");
        assert!(!s.contains("4761739001010119"));
        assert!(
            field_lines(&m)
                .iter()
                .all(|l| !l.contains("4761739001010119"))
        );
    }
}
