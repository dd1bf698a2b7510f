//! What an endpoint link is doing: its [`EndpointState`] (up, down,
//! connecting, since when, the last error, echoes), the [`Backoff`] it
//! reconnects with after a drop, and the network-management echo it sends
//! on an idle link ([`echo_request`]).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use switchyard_iso8583::{Message, Mti, UtcTime};

/// The state of an endpoint's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    /// Never opened: the link opens on first use.
    Idle,
    /// An attempt to connect is under way.
    Connecting,
    /// Connected: requests are written on it.
    Up,
    /// Dropped or unreachable: reconnecting in the background with backoff;
    /// requests fail at once as not sent (RC 91, no reversal).
    Down,
}

impl LinkStatus {
    /// `idle`, `connecting`, `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Idle => "idle",
            LinkStatus::Connecting => "connecting",
            LinkStatus::Up => "up",
            LinkStatus::Down => "down",
        }
    }
}

impl fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An endpoint link's state, as the admin API and metrics read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointState {
    /// Up, down, connecting or idle (never opened).
    pub status: LinkStatus,
    /// When the link last came up or went down (at start: when the endpoint
    /// was created), wall clock.
    pub since: SystemTime,
    /// Why the link last went down or an attempt to connect failed.
    pub last_error: Option<String>,
    /// Times the link came up.
    pub connects: u64,
    /// Failed attempts to connect since the link was last up.
    pub failed_attempts: u32,
    /// Echoes sent, on every link so far.
    pub echoes_sent: u64,
    /// Echoes answered.
    pub echoes_answered: u64,
}

impl EndpointState {
    pub(crate) fn new() -> EndpointState {
        EndpointState {
            status: LinkStatus::Idle,
            since: SystemTime::now(),
            last_error: None,
            connects: 0,
            failed_attempts: 0,
            echoes_sent: 0,
            echoes_answered: 0,
        }
    }

    /// `since` as milliseconds since the Unix epoch.
    pub fn since_unix_ms(&self) -> u64 {
        self.since
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// Exponential backoff with jitter: attempt `n` (0-based) waits
/// `initial · 2ⁿ`, capped at `max`, less up to a fifth at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first reconnect attempt (default 100 ms).
    pub initial: Duration,
    /// The longest wait (default 30 s).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` with no jitter.
    pub fn nominal(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The wait before attempt `attempt`, `jitter` in `[0, 1)` taking off
    /// up to a fifth of it: in `[0.8, 1] · nominal`.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        self.nominal(attempt)
            .mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0))
    }

    /// [`Backoff::delay`] with a random jitter.
    pub fn jittered(&self, attempt: u32) -> Duration {
        self.delay(attempt, random_unit())
    }
}

/// A number in `[0, 1)`, random enough to spread reconnects.
fn random_unit() -> f64 {
    let bits = RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// DE70 of an echo test (network management information code).
pub const ECHO_CODE: &str = "301";
/// DE41 of an echo: formats that match replies by terminal (`xxx`: response
/// MTI, STAN and terminal) need one; the endpoint echoes it back.
pub const ECHO_TERMINAL: &str = "ECHOTEST";

/// The echo request with STAN `stan` (1–999,999) sent at `now`: an 0800
/// with DE7 (`MMDDhhmmss`, UTC), DE11, DE41 [`ECHO_TERMINAL`] and DE70
/// [`ECHO_CODE`]. The endpoint's formatter turns it into the wire format;
/// one that cannot (a non-ISO endpoint) has no echo.
pub fn echo_request(stan: u32, now: SystemTime) -> Message {
    let mut m = Message::new(Mti::new("0800").expect("a valid MTI"));
    let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let de7 = UtcTime::from_unix(i64::try_from(seconds).unwrap_or(i64::MAX)).de7();
    m.set(7, Bytes::from(de7));
    m.set(11, Bytes::from(format!("{:06}", stan % 1_000_000)));
    m.set(41, Bytes::from_static(ECHO_TERMINAL.as_bytes()));
    m.set(70, Bytes::from_static(ECHO_CODE.as_bytes()));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_is_an_0800_with_de70_301_and_encodes_with_the_default_spec() {
        // 2026-12-02 05:10:54 UTC.
        let at = UNIX_EPOCH + Duration::from_secs(1_796_188_254);
        let m = echo_request(1_000_042, at);
        assert_eq!(m.mti().as_str(), "0800");
        assert_eq!(m.get_str(7), Some("1202051054"));
        assert_eq!(m.get_str(11), Some("000042"));
        assert_eq!(m.get_str(70), Some("301"));
        assert!(switchyard_iso8583::Spec::iso87_ascii().encode(&m).is_ok());
    }
}
