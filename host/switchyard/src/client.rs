//! A small acquirer client: builds a request, sends it over TCP with the
//! default framing and reads the response. Used by `switchyard send`, the
//! demo and the tests.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use switchyard_iso8583::{Message, Mti, Spec, mask_pan};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use switchyard_net::Framing;

/// UTC calendar time, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Year, e.g. 2026.
    pub year: i64,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub minute: u32,
    /// 0..=59.
    pub second: u32,
}

impl UtcTime {
    /// Now.
    pub fn now() -> UtcTime {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        UtcTime::from_unix(secs)
    }

    /// From seconds since the Unix epoch (proleptic Gregorian calendar).
    pub fn from_unix(secs: i64) -> UtcTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil-from-days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        UtcTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
        }
    }

    /// DE7, transmission date and time: MMDDhhmmss.
    pub fn de7(&self) -> String {
        format!(
            "{:02}{:02}{:02}{:02}{:02}",
            self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// DE12, local time: hhmmss.
    pub fn de12(&self) -> String {
        format!("{:02}{:02}{:02}", self.hour, self.minute, self.second)
    }

    /// DE13, local date: MMDD.
    pub fn de13(&self) -> String {
        format!("{:02}{:02}", self.month, self.day)
    }

    /// YYMM, `months` months from now (negative: in the past).
    pub fn yymm_plus(&self, months: i64) -> String {
        let total = self.year * 12 + i64::from(self.month) - 1 + months;
        format!(
            "{:02}{:02}",
            total.div_euclid(12) % 100,
            total.rem_euclid(12) + 1
        )
    }
}

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
        }
    }

    /// Builds the message. Network management (08xx) gets DE7, DE11 and
    /// DE70 = 301 (echo) unless `fields` says otherwise.
    pub fn build(&self) -> anyhow::Result<Message> {
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
            set(&mut m, 12, now.de12());
            set(&mut m, 13, now.de13());
            if let Some(e) = &self.expiry {
                set(&mut m, 14, e.clone());
            }
            set(&mut m, 22, "012".into());
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
        Ok(m)
    }
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

/// One line describing a message, PAN masked, no track or PIN data.
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
    if let Some(e) = m.get_str(14) {
        s.push_str(&format!(" exp {e}"));
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
        .map(|(f, v)| {
            let shown = match f {
                2 => mask_pan(&String::from_utf8_lossy(v)),
                35 | 45 | 52 => "<redacted>".into(),
                _ if v.iter().all(|b| b.is_ascii_graphic() || *b == b' ') => {
                    String::from_utf8_lossy(v).into_owned()
                }
                _ => format!("0x{}", hex(v)),
            };
            format!("DE{f:03} {shown}")
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// An open connection to a listener (NAC framing).
pub struct Connection {
    framed: Framed<TcpStream, switchyard_net::framing::FrameCodec>,
    spec: Spec,
}

impl Connection {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            framed: Framed::new(stream, Framing::Nac.codec(65_535)),
            spec: Spec::iso87_ascii(),
        })
    }

    /// Sends a message.
    pub async fn send(&mut self, m: &Message) -> anyhow::Result<()> {
        let bytes = self.spec.encode(m).context("encoding the request")?;
        self.send_raw(bytes).await
    }

    /// Sends raw bytes as one frame.
    pub async fn send_raw(&mut self, frame: Bytes) -> anyhow::Result<()> {
        self.framed.send(frame).await.context("sending")?;
        Ok(())
    }

    /// Receives one message, waiting at most `timeout`.
    pub async fn receive(&mut self, timeout: Duration) -> anyhow::Result<Message> {
        receive_from(&mut self.framed, &self.spec, timeout).await
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
                spec: self.spec.clone(),
            },
            Responses {
                stream,
                spec: self.spec,
            },
        )
    }
}

type FramedStream = Framed<TcpStream, switchyard_net::framing::FrameCodec>;

/// The sending half of a [`Connection`].
pub struct Requests {
    sink: futures::stream::SplitSink<FramedStream, Bytes>,
    spec: Spec,
}

impl Requests {
    /// Sends a message.
    pub async fn send(&mut self, m: &Message) -> anyhow::Result<()> {
        let bytes = self.spec.encode(m).context("encoding the request")?;
        self.sink.send(bytes).await.context("sending")?;
        Ok(())
    }
}

/// The receiving half of a [`Connection`].
pub struct Responses {
    stream: futures::stream::SplitStream<FramedStream>,
    spec: Spec,
}

impl Responses {
    /// Receives one message, waiting at most `timeout`.
    pub async fn receive(&mut self, timeout: Duration) -> anyhow::Result<Message> {
        receive_from(&mut self.stream, &self.spec, timeout).await
    }
}

/// The next frame of `frames` decoded with `spec`, waiting at most `timeout`.
async fn receive_from<S, E>(
    frames: &mut S,
    spec: &Spec,
    timeout: Duration,
) -> anyhow::Result<Message>
where
    S: futures::Stream<Item = Result<bytes::BytesMut, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    let frame = tokio::time::timeout(timeout, frames.next())
        .await
        .map_err(|_| anyhow!("no response within {} ms", timeout.as_millis()))?
        .ok_or_else(|| anyhow!("the switch closed the connection"))?
        .context("reading the response")?;
    spec.decode(frame.freeze()).context("decoding the response")
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
