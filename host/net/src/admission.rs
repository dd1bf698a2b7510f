//! Admission control of a listener: the global and per-peer connection
//! limits, and the rate-limited log line of the connections refused.
//!
//! A connection over a limit is accepted and closed at once, so that a
//! client never waits silently in the backlog; the refusals are counted and
//! logged at most once per [`REFUSAL_LOG_INTERVAL`] per listener, with the
//! counts since the last line.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Shortest time between two "connections refused" lines of one listener.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_connections` connections are open.
    Full,
    /// Its peer address has `max_connections_per_peer` open.
    PeerLimit,
}

/// The open connections of a listener, in all and by peer address.
#[derive(Debug)]
pub(crate) struct Gate {
    max_connections: usize,
    /// 0: no per-peer limit.
    max_per_peer: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// An admitted connection's place; given back when dropped.
#[derive(Debug)]
pub(crate) struct Admitted {
    gate: Arc<Gate>,
    peer: IpAddr,
}

impl Gate {
    /// At most `max_connections` at once, and at most `max_per_peer` from
    /// one IP address (0: no per-peer limit).
    pub(crate) fn new(max_connections: usize, max_per_peer: usize) -> Arc<Gate> {
        Arc::new(Gate {
            max_connections,
            max_per_peer,
            open: Mutex::default(),
        })
    }

    /// Admits a connection from `peer`, or says why not.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refusal> {
        let mut open = self.open.lock();
        if open.total >= self.max_connections {
            return Err(Refusal::Full);
        }
        let of_peer = open.by_peer.entry(peer).or_default();
        if self.max_per_peer > 0 && *of_peer >= self.max_per_peer {
            return Err(Refusal::PeerLimit);
        }
        *of_peer += 1;
        open.total += 1;
        Ok(Admitted {
            gate: self.clone(),
            peer,
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.lock().total
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock();
        open.total -= 1;
        if let Some(n) = open.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.by_peer.remove(&self.peer);
            }
        }
    }
}

/// Counts refused connections and says when to log them.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    full: u64,
    per_peer: u64,
    last_line: Option<Instant>,
}

/// Counts to log, since the last line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefusalCounts {
    /// Refused at `max_connections`.
    pub(crate) full: u64,
    /// Refused at `max_connections_per_peer`.
    pub(crate) per_peer: u64,
}

impl Refusals {
    /// Counts a refusal at `now`; the counts to log when a line is due.
    pub(crate) fn refused(&mut self, why: Refusal, now: Instant) -> Option<RefusalCounts> {
        match why {
            Refusal::Full => self.full += 1,
            Refusal::PeerLimit => self.per_peer += 1,
        }
        match self.last_line {
            Some(at) if now < at + REFUSAL_LOG_INTERVAL => None,
            _ => self.take(now),
        }
    }

    /// When the counts not yet logged are due (`None`: nothing pending).
    pub(crate) fn due(&self) -> Option<Instant> {
        if self.full + self.per_peer == 0 {
            return None;
        }
        Some(
            self.last_line
                .map_or_else(Instant::now, |at| at + REFUSAL_LOG_INTERVAL),
        )
    }

    /// The pending counts, now logged (`None`: nothing pending).
    pub(crate) fn take(&mut self, now: Instant) -> Option<RefusalCounts> {
        if self.full + self.per_peer == 0 {
            return None;
        }
        let counts = RefusalCounts {
            full: std::mem::take(&mut self.full),
            per_peer: std::mem::take(&mut self.per_peer),
        };
        self.last_line = Some(now);
        Some(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn the_gate_refuses_over_each_limit_and_gives_places_back() {
        let gate = Gate::new(3, 2);
        let a1 = gate.admit(A).unwrap();
        let _a2 = gate.admit(A).unwrap();
        assert_eq!(gate.admit(A).unwrap_err(), Refusal::PeerLimit);
        let _b1 = gate.admit(B).unwrap();
        assert_eq!(gate.admit(B).unwrap_err(), Refusal::Full);
        assert_eq!(gate.open(), 3);
        drop(a1);
        assert_eq!(gate.open(), 2);
        let _a3 = gate.admit(A).unwrap();
        assert_eq!(gate.admit(A).unwrap_err(), Refusal::Full);
    }

    #[test]
    fn no_per_peer_limit_at_zero() {
        let gate = Gate::new(100, 0);
        let held: Vec<_> = (0..100).map(|_| gate.admit(A).unwrap()).collect();
        assert_eq!(gate.admit(A).unwrap_err(), Refusal::Full);
        drop(held);
        assert_eq!(gate.open(), 0);
        assert!(gate.open.lock().by_peer.is_empty());
    }

    #[test]
    fn refusals_are_logged_at_most_once_a_second_with_their_counts() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        assert_eq!(r.due(), None);
        assert_eq!(
            r.refused(Refusal::Full, t0),
            Some(RefusalCounts {
                full: 1,
                per_peer: 0
            })
        );
        let mut lines = 0;
        for i in 1..=1000u64 {
            let why = if i % 2 == 0 {
                Refusal::Full
            } else {
                Refusal::PeerLimit
            };
            lines += r
                .refused(why, t0 + Duration::from_micros(i * 1500))
                .is_some() as u32;
        }
        assert_eq!(lines, 1, "one line at t0 + 1 s, not one per refusal");
        assert!(r.due().unwrap() > t0 + REFUSAL_LOG_INTERVAL);
        let rest = r.take(t0 + Duration::from_secs(3)).unwrap();
        assert!(rest.full + rest.per_peer > 0);
        assert_eq!(r.due(), None);
    }
}
