//! One connection of a load run: requests pipelined on one TCP connection,
//! responses matched to them by STAN (DE11), terminal (DE41) and MTI (the
//! request's + 10) in whatever order they come back.
//!
//! One task does everything for its connection without ever blocking on a
//! write: responses are read while requests wait in the write buffer, and
//! requests that become due together leave in one write.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::{Buf as _, BytesMut};
use futures::{FutureExt as _, StreamExt as _};
use switchyard_iso8583::Message;
use switchyard_net::framing::FrameCodec;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::codec::{Encoder as _, FramedRead};
use tokio_util::sync::CancellationToken;

use super::pace::Pacer;
use super::stats::Interval;
use super::{Mode, Plan};
use crate::send::MessageArgs;

/// How often outstanding requests are checked for a timeout.
const HOUSEKEEPING: Duration = Duration::from_millis(50);

/// What makes one connection's load its own.
pub(crate) struct Setup {
    /// 0-based.
    pub(crate) index: u32,
    /// Its request, with its own terminal id.
    pub(crate) message: MessageArgs,
    /// With `--count`: how many measured requests it sends.
    pub(crate) quota: Option<u64>,
}

/// A request awaiting its response.
struct Pending {
    /// When it was sent (closed loop) or due (open loop): latency is counted from here.
    at: Instant,
    measured: bool,
}

/// The request of the current second (DE7, DE12, DE13 from the clock).
struct Template {
    unix_second: u64,
    message: Message,
}

/// The state of one connection's load.
struct Load {
    plan: Arc<Plan>,
    setup: Setup,
    template: Option<Template>,
    /// The request's MTI and terminal, to match responses.
    mti: [u8; 4],
    terminal: Option<String>,
    /// Whether each request gets its own RRN (DE37): unless `--field 37` or
    /// `--omit 37` says otherwise, where the spec has a 12-character DE37.
    rrn: bool,
    codec: FrameCodec,
    out: BytesMut,
    outstanding: HashMap<u32, Pending>,
    last_stan: u32,
    /// Measured requests sent.
    measured_sent: u64,
    /// Open loop: the index of the next request on the timetable.
    next: u64,
    stopping: bool,
    interval: Interval,
    reports: mpsc::Sender<Interval>,
}

/// Drives connection `setup.index` until its share of the run is done, then
/// reports its last interval.
pub(crate) async fn run(
    plan: Arc<Plan>,
    setup: Setup,
    stream: TcpStream,
    reports: mpsc::Sender<Interval>,
    stop: CancellationToken,
) {
    let mut load = match Load::new(plan, setup, reports.clone()) {
        Ok(l) => l,
        Err(e) => {
            let mut i = Interval::new(0, 0);
            i.error = Some(format!("{e:#}"));
            i.counts.errors = 1;
            let _ = reports.send(i).await;
            return;
        }
    };
    if let Err(e) = load.drive(stream, stop).await {
        load.broken(&format!("{e:#}"));
    }
    let last = std::mem::replace(&mut load.interval, Interval::new(0, 0));
    let _ = load.reports.send(last).await;
}

impl Load {
    fn new(plan: Arc<Plan>, setup: Setup, reports: mpsc::Sender<Interval>) -> anyhow::Result<Load> {
        let first = setup.message.request_spec(1)?.build_for(&plan.wire.spec)?;
        let codec = plan.wire.framing.codec(plan.wire.max_frame);
        // STANs start from the clock, so that runs one after the other do
        // not repeat each other's (terminal, STAN, DE7).
        let last_stan = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            % 999_999) as u32;
        let spec = &plan.wire.spec;
        let rrn = spec.field(37).is_some_and(|f| f.max_len() == 12)
            && !setup.message.omit.contains(&37)
            && !setup.message.parsed_fields()?.iter().any(|(f, _)| *f == 37);
        Ok(Load {
            rrn,
            mti: *first.mti().as_bytes(),
            terminal: first.get_str(41).map(str::to_owned),
            plan,
            setup,
            template: None,
            codec,
            out: BytesMut::with_capacity(64 * 1024),
            outstanding: HashMap::new(),
            last_stan,
            measured_sent: 0,
            next: 0,
            stopping: false,
            interval: Interval::new(0, 1024),
            reports,
        })
    }

    /// The loop: send what is due, write what can be written, wait for a
    /// response, the writable socket, the timetable or the housekeeping.
    async fn drive(&mut self, stream: TcpStream, stop: CancellationToken) -> anyhow::Result<()> {
        let (read, write) = stream.into_split();
        let mut frames = FramedRead::new(read, self.codec.clone());
        let mut pacer = match self.plan.mode {
            Mode::Open { .. } => Some(Pacer::new().context("creating the timetable's timerfd")?),
            Mode::Closed { .. } => None,
        };
        let mut housekeeping = tokio::time::Instant::now() + HOUSEKEEPING;
        let hard_end = self
            .plan
            .end
            .map(|e| e + self.plan.timeout + Duration::from_secs(1));
        loop {
            let now = Instant::now();
            self.fill(now)?;
            self.write(&write)?;
            if self.finished() {
                return Ok(());
            }
            if hard_end.is_some_and(|h| now > h) {
                self.expire(Instant::now() + self.plan.timeout + Duration::from_secs(1));
                return Ok(());
            }
            if let (Some(p), Some(due)) = (pacer.as_mut(), self.due_to_wait_for()) {
                p.arm(due)?;
            }
            let armed = pacer.as_ref().is_some_and(Pacer::armed);
            tokio::select! {
                biased;
                () = stop.cancelled(), if !self.stopping => self.stopping = true,
                frame = frames.next() => {
                    self.on_frame(frame)?;
                    // Every response already read, before writing again.
                    while let Some(frame) = frames.next().now_or_never() {
                        self.on_frame(frame)?;
                    }
                }
                ready = write.writable(), if !self.out.is_empty() => ready.context("waiting to write")?,
                fired = async { pacer.as_mut().expect("armed").fired().await }, if armed => {
                    fired.context("the timetable's timer")?;
                }
                () = tokio::time::sleep_until(housekeeping) => {
                    housekeeping += HOUSEKEEPING;
                    self.expire(Instant::now());
                }
            }
            self.roll(Instant::now()).await;
        }
    }

    /// Whether a request may go at `at`: not stopped, before the end, and
    /// within the quota.
    fn may_send(&self, at: Instant) -> bool {
        !self.stopping
            && self.plan.end.is_none_or(|e| at < e)
            && (at < self.plan.measure_from
                || self.setup.quota.is_none_or(|q| self.measured_sent < q))
    }

    /// Open loop: when request `k` of this connection is due.
    fn due(&self, k: u64, rate: u64) -> Instant {
        let slot = k * u64::from(self.plan.connections) + u64::from(self.setup.index);
        self.plan.start + Duration::from_secs_f64(slot as f64 / rate as f64)
    }

    /// Open loop: the next due request, if it may be sent and a slot is free.
    fn due_to_wait_for(&self) -> Option<Instant> {
        match self.plan.mode {
            Mode::Open { rate, cap } => {
                let due = self.due(self.next, rate);
                (self.outstanding.len() < cap as usize && self.may_send(due)).then_some(due)
            }
            Mode::Closed { .. } => None,
        }
    }

    /// Queues every request that may go now.
    fn fill(&mut self, now: Instant) -> anyhow::Result<()> {
        match self.plan.mode {
            Mode::Closed { in_flight } => {
                while self.outstanding.len() < in_flight as usize && self.may_send(now) {
                    self.queue(now)?;
                }
            }
            Mode::Open { rate, cap } => {
                while self.outstanding.len() < cap as usize {
                    let due = self.due(self.next, rate);
                    if due > now || !self.may_send(due) {
                        break;
                    }
                    self.queue(due)?;
                    self.next += 1;
                }
            }
        }
        Ok(())
    }

    /// Whether nothing more will be sent or awaited.
    fn finished(&self) -> bool {
        let more = match self.plan.mode {
            Mode::Closed { .. } => self.may_send(Instant::now()),
            Mode::Open { rate, .. } => self.may_send(self.due(self.next, rate)),
        };
        !more && self.outstanding.is_empty() && self.out.is_empty()
    }

    /// The next STAN (1..=999999, cycling) not outstanding.
    fn next_stan(&mut self) -> u32 {
        loop {
            self.last_stan = if self.last_stan >= 999_999 {
                1
            } else {
                self.last_stan + 1
            };
            if !self.outstanding.contains_key(&self.last_stan) {
                return self.last_stan;
            }
        }
    }

    /// Encodes one request into the write buffer; latency counts from `at`.
    fn queue(&mut self, at: Instant) -> anyhow::Result<()> {
        let stan = self.next_stan();
        let mut m = self.template()?.clone();
        m.set(11, format!("{stan:06}"));
        if self.rrn {
            m.set(37, format!("{:06}{stan:06}", self.plan.run_tag));
        }
        let body = self.plan.wire.body(&m)?;
        self.codec
            .encode(body, &mut self.out)
            .context("framing a request")?;
        let measured = at >= self.plan.measure_from;
        self.outstanding.insert(stan, Pending { at, measured });
        if measured {
            self.measured_sent += 1;
            self.interval.counts.sent += 1;
            if let Mode::Open { .. } = self.plan.mode {
                let late = Instant::now().saturating_duration_since(at).as_nanos();
                let late = u64::try_from(late).unwrap_or(u64::MAX).max(1);
                self.interval.lag.push(late);
            }
        }
        Ok(())
    }

    /// The request of this second: rebuilt when the clock's second changes,
    /// so that DE7 (part of the duplicate-detection key) moves on.
    fn template(&mut self) -> anyhow::Result<&Message> {
        let unix_second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self
            .template
            .as_ref()
            .is_none_or(|t| t.unix_second != unix_second)
        {
            let message = self
                .setup
                .message
                .request_spec(0)?
                .build_for(&self.plan.wire.spec)?;
            self.template = Some(Template {
                unix_second,
                message,
            });
        }
        Ok(&self.template.as_ref().expect("just built").message)
    }

    /// Writes as much of the buffer as the socket takes now.
    fn write(&mut self, write: &OwnedWriteHalf) -> anyhow::Result<()> {
        while !self.out.is_empty() {
            match write.try_write(&self.out) {
                Ok(0) => anyhow::bail!("the peer closed the connection"),
                Ok(n) => self.out.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("sending"),
            }
        }
        Ok(())
    }

    /// One frame read (or the end of the stream).
    fn on_frame<E: std::error::Error + Send + Sync + 'static>(
        &mut self,
        frame: Option<Result<BytesMut, E>>,
    ) -> anyhow::Result<()> {
        let frame = frame
            .context("the peer closed the connection")?
            .context("reading a response")?;
        let now = Instant::now();
        let Ok(response) = self.plan.wire.open(frame.freeze()) else {
            self.interval.counts.mismatches += 1;
            return Ok(());
        };
        let stan = response.get_str(11).and_then(|s| s.parse::<u32>().ok());
        let pending = stan
            .filter(|_| self.answers(&response))
            .and_then(|s| self.outstanding.remove(&s));
        let Some(pending) = pending else {
            self.interval.counts.mismatches += 1;
            return Ok(());
        };
        self.interval.last_event = Some(now);
        if !pending.measured {
            self.interval.warm += 1;
            return Ok(());
        }
        let c = &mut self.interval.counts;
        c.received += 1;
        let code = response.get_str(39).unwrap_or("none");
        match c.rc.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                c.rc.insert(code.to_owned(), 1);
            }
        }
        let ns = now.saturating_duration_since(pending.at).as_nanos();
        self.interval
            .latency
            .push(u64::try_from(ns).unwrap_or(u64::MAX).max(1));
        Ok(())
    }

    /// Whether `response` is of the request's kind: MTI + 10, same terminal.
    fn answers(&self, response: &Message) -> bool {
        let (q, r) = (self.mti, *response.mti().as_bytes());
        q[..2] == r[..2]
            && r[2] == q[2] + 1
            && self
                .terminal
                .as_deref()
                .is_none_or(|t| response.get_str(41).is_none_or(|r| r == t))
    }

    /// Counts every request outstanding since before `now - timeout` as a
    /// timeout.
    fn expire(&mut self, now: Instant) {
        let timeout = self.plan.timeout;
        let mut timeouts = 0;
        self.outstanding.retain(|_, p| {
            let live = now.saturating_duration_since(p.at) < timeout;
            if !live && p.measured {
                timeouts += 1;
            }
            live
        });
        if timeouts > 0 {
            self.interval.counts.timeouts += timeouts;
            self.interval.last_event = Some(now);
        }
    }

    /// The connection broke: what was outstanding is lost.
    fn broken(&mut self, why: &str) {
        let lost = self.outstanding.values().filter(|p| p.measured).count() as u64;
        self.outstanding.clear();
        self.interval.counts.errors += lost.max(1);
        self.interval.last_event = Some(Instant::now());
        self.interval.error = Some(format!(
            "connection {} ({}): {why}",
            self.setup.index + 1,
            self.terminal.as_deref().unwrap_or("no terminal")
        ));
    }

    /// Reports the interval when its second is over.
    async fn roll(&mut self, now: Instant) {
        let second = now.saturating_duration_since(self.plan.start).as_secs();
        if second == self.interval.second {
            return;
        }
        let room = self.interval.latency.len();
        let done = std::mem::replace(&mut self.interval, Interval::new(second, room));
        if !done.is_empty() {
            let _ = self.reports.send(done).await;
        }
    }
}
