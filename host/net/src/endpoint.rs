//! Endpoint links and the `query-endpoint` step.
//!
//! One multiplexed TCP (or TLS) connection per endpoint, opened on first
//! use. Requests are written as they come; replies are matched to their
//! requests by the key the endpoint's formatter gives both (the response
//! MTI, STAN and terminal for `xxx`), so many transactions — and the
//! store-and-forward forwarder's reversals — share the link.
//!
//! After the link drops it is reopened in the background with exponential
//! backoff ([`Backoff`]); while it is down, requests fail at once as not
//! sent (RC 91, nothing to reverse) instead of each waiting on a connect.
//! On an idle link a network-management echo (0800, DE70 = 301, built by
//! the endpoint's formatter) goes out every `echo_interval`; one not
//! answered within the endpoint timeout declares the link down. A
//! formatter that builds no 0800 (a non-ISO endpoint such as `yyy`) has no
//! echo. [`Endpoint::state`] says where the link stands ([`EndpointState`]).
//!
//! What becomes of a request is recorded in its context
//! ([`switchyard_engine::UpstreamLeg`]): answered; not sent (the endpoint
//! could not be reached: nothing was written); or possibly sent without an
//! answer (timeout, link dropped while it waited, a reply its formatter
//! cannot read). The last three abort with RC 91 and make the life cycle
//! queue a reversal before the 91 is written. The time spent waiting is
//! the transaction's *external* time. A reply that arrives after its
//! request timed out is recorded on the transaction (never forwarded).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use switchyard_engine::ports::{Tranlog, TxId, Upstream};
use switchyard_engine::{
    AsyncParticipant, Context, Failure, FailureKind, Formatter, Lifecycle, Outbound, Outcome,
    UpstreamLeg, rc,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::framing::Framing;
use crate::link::echo_request;
use crate::link::{Backoff, EndpointState, LinkStatus};

/// How long a timed-out request's key is kept to recognise its late reply:
/// this many endpoint timeouts, and at least [`LATE_MIN`].
const LATE_TIMEOUTS: u32 = 10;
const LATE_MIN: Duration = Duration::from_secs(60);

/// Longest a background reconnect attempt may take (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach an endpoint.
#[derive(Debug, Clone)]
pub struct EndpointOptions {
    /// The endpoint's name (`xxx`).
    pub name: Arc<str>,
    /// `host:port`.
    pub address: String,
    /// Longest wait for a reply (default 1,000 ms).
    pub timeout: Duration,
    /// Length framing on the link.
    pub framing: Framing,
    /// Largest accepted reply frame.
    pub max_frame: usize,
    /// TLS on the link (pinned CA, optional client certificate); `None`:
    /// plain TCP. Shared with the reload (SIGHUP, `POST /tls/reload`).
    pub tls: Option<Arc<crate::tls::ClientTls>>,
    /// An echo (0800, DE70 = 301) after this long without a frame from
    /// the endpoint; `None`: no echo.
    pub echo_interval: Option<Duration>,
    /// How the link is reopened after it drops.
    pub reconnect: Backoff,
}

/// Why an exchange got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// A request with the same key already waits for its reply.
    #[error("a request with key {0} is already waiting for its reply")]
    Busy(String),
    /// The endpoint could not be reached: nothing was written.
    #[error("unreachable: {0}")]
    NotSent(String),
    /// Written (possibly), no reply in time.
    #[error("no reply within {0} ms")]
    Timeout(u128),
    /// The link dropped while the request waited.
    #[error("the link dropped while the request waited for its reply")]
    LinkDropped,
}

impl ExchangeError {
    /// What this means for the transaction's upstream leg.
    pub fn upstream(&self) -> Upstream {
        match self {
            ExchangeError::Busy(_) | ExchangeError::NotSent(_) => Upstream::NotSent,
            ExchangeError::Timeout(_) => Upstream::Timeout,
            ExchangeError::LinkDropped => Upstream::LinkDropped,
        }
    }
}

type Waiters = Mutex<HashMap<String, oneshot::Sender<Bytes>>>;

/// Keys of requests that timed out, with their transaction, until when a
/// late reply is still expected.
type Late = Mutex<HashMap<String, (TxId, Instant)>>;

/// Where an endpoint's link tasks run, and what stops them.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// The tasks reading and writing links (and recording late replies).
    pub tasks: TaskTracker,
    /// Cancelled at shutdown: the links close.
    pub shutdown: CancellationToken,
}

/// An endpoint: its formatter and its link.
pub struct Endpoint {
    inner: Arc<Inner>,
}

/// What an endpoint and its link tasks share.
struct Inner {
    options: EndpointOptions,
    formatter: Arc<dyn Formatter>,
    waiters: Arc<Waiters>,
    late: Arc<Late>,
    tranlog: Option<Arc<dyn Tranlog>>,
    links: Links,
    /// The open link; `None` before the first use and while down.
    link: Mutex<Option<Link>>,
    state: Mutex<EndpointState>,
    /// Told when the link comes up or goes down (the first open's waiters).
    changed: Notify,
    /// Numbers the links, so that a late word about an old one is ignored.
    generations: AtomicU64,
    /// The formatter built no echo once: none on later links either.
    no_echo: AtomicBool,
    echo_stan: AtomicU32,
    /// The endpoint's Prometheus handles (external duration), once attached.
    metrics: OnceLock<switchyard_metrics::EndpointMetrics>,
}

/// One open link.
struct Link {
    generation: u64,
    tx: mpsc::UnboundedSender<Bytes>,
    closed: CancellationToken,
}

/// When the link last received a frame.
type Activity = Mutex<tokio::time::Instant>;

/// Whether a request waits for a link that is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// A transaction: fails at once (RC 91, not sent).
    FailFast,
    /// A store-and-forward delivery: waits, within its timeout.
    ForTheLink,
}

/// A request's place among the link's waiters, held from before it is
/// sent until its reply (or its end).
struct Reservation {
    key: String,
    reply: oneshot::Receiver<Bytes>,
}

impl Endpoint {
    /// An endpoint reached per `options`, speaking `formatter`'s format.
    /// Late replies are recorded in `tranlog`; the link's tasks run on
    /// `links`.
    pub fn new(
        options: EndpointOptions,
        formatter: Arc<dyn Formatter>,
        tranlog: Option<Arc<dyn Tranlog>>,
        links: Links,
    ) -> Endpoint {
        Endpoint {
            inner: Arc::new(Inner {
                options,
                formatter,
                waiters: Arc::default(),
                late: Arc::default(),
                tranlog,
                links,
                link: Mutex::new(None),
                state: Mutex::new(EndpointState::new()),
                changed: Notify::new(),
                generations: AtomicU64::new(0),
                no_echo: AtomicBool::new(false),
                echo_stan: AtomicU32::new(0),
                metrics: OnceLock::new(),
            }),
        }
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.inner.options.name
    }

    /// Its options.
    pub fn options(&self) -> &EndpointOptions {
        &self.inner.options
    }

    /// Records each transaction's external duration in `metrics` (the
    /// endpoint's handles of the switch's one `Metrics`); a second call
    /// changes nothing.
    pub fn attach_metrics(&self, metrics: switchyard_metrics::EndpointMetrics) {
        let _ = self.inner.metrics.set(metrics);
    }

    /// Its formatter.
    pub fn formatter(&self) -> &Arc<dyn Formatter> {
        &self.inner.formatter
    }

    /// Where its link stands now.
    pub fn state(&self) -> EndpointState {
        self.inner.state.lock().clone()
    }

    /// Sends `outbound` and waits for the reply with its key, at most the
    /// endpoint's timeout. Unlike a transaction's [`Endpoint::query`], a
    /// link that is down is waited for (within that timeout): a reversal
    /// or advice never sent is not counted as transmitted.
    pub async fn exchange(&self, outbound: Outbound) -> Result<Bytes, ExchangeError> {
        let inner = &self.inner;
        let reservation = inner.reserve(&outbound.key)?;
        let deadline = tokio::time::Instant::now() + inner.options.timeout;
        inner
            .send(reservation, outbound.payload, deadline, Wait::ForTheLink)
            .await
    }

    /// Sends the transaction to the endpoint and reads the reply into it,
    /// recording the upstream leg. `Ok(false)`: no usable answer (RC 91).
    pub async fn query(
        &self,
        ctx: &mut Context,
        lifecycle: Option<&Lifecycle>,
    ) -> Result<bool, Failure> {
        self.inner.query(ctx, lifecycle).await
    }
}

impl Inner {
    /// The open link's sender, if it is up.
    fn live_sender(&self) -> Option<mpsc::UnboundedSender<Bytes>> {
        let link = self.link.lock();
        link.as_ref()
            .filter(|l| !l.tx.is_closed())
            .map(|l| l.tx.clone())
    }

    /// The link's sender. The first use opens the link (and waits for it);
    /// a link that is down fails at once (it reconnects in the background)
    /// unless `wait` says to wait for it.
    async fn sender(self: &Arc<Self>, wait: Wait) -> std::io::Result<mpsc::UnboundedSender<Bytes>> {
        loop {
            let changed = self.changed.notified();
            if let Some(tx) = self.live_sender() {
                return Ok(tx);
            }
            {
                let mut state = self.state.lock();
                match state.status {
                    LinkStatus::Idle => {
                        state.status = LinkStatus::Connecting;
                        self.links.tasks.spawn(connect(self.clone(), 0));
                    }
                    LinkStatus::Connecting if state.connects == 0 && state.failed_attempts == 0 => {
                    }
                    _ if wait == Wait::ForTheLink => {}
                    _ => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::NotConnected,
                            format!(
                                "the link is {} ({}); reconnecting in the background",
                                state.status,
                                state.last_error.as_deref().unwrap_or("closed")
                            ),
                        ));
                    }
                }
            }
            changed.await;
        }
    }

    /// Starts the tasks of a link just connected and marks it up.
    fn install(self: &Arc<Self>, read: crate::tls::LinkRead, write: crate::tls::LinkWrite) {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let o = &self.options;
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let closed = self.links.shutdown.child_token();
        let sink = FramedWrite::new(write, o.framing.codec(o.max_frame));
        let frames = FramedRead::new(read, o.framing.codec(o.max_frame));
        let activity = Arc::new(Mutex::new(tokio::time::Instant::now()));
        let tasks = &self.links.tasks;
        tasks.spawn(write_link(
            self.clone(),
            generation,
            sink,
            rx,
            closed.clone(),
        ));
        tasks.spawn(read_link(
            self.clone(),
            generation,
            frames,
            closed.clone(),
            activity.clone(),
        ));
        if let Some(every) = o.echo_interval
            && !self.no_echo.load(Ordering::Relaxed)
        {
            let echo = Echo {
                inner: self.clone(),
                generation,
                tx: tx.clone(),
                closed: closed.clone(),
                activity,
                every,
            };
            tasks.spawn(echo.run());
        }
        *self.link.lock() = Some(Link {
            generation,
            tx,
            closed,
        });
        let mut state = self.state.lock();
        let (was, attempts) = (state.status, state.failed_attempts);
        let down_for = state.since.elapsed().unwrap_or_default();
        state.status = LinkStatus::Up;
        state.since = SystemTime::now();
        state.connects += 1;
        state.failed_attempts = 0;
        if state.connects == 1 && attempts == 0 {
            tracing::info!(endpoint = %o.name, address = %o.address, "endpoint link connected");
        } else {
            tracing::info!(endpoint = %o.name, address = %o.address, was = %was, attempts = attempts + 1,
                down_ms = down_for.as_millis() as u64, "endpoint link up again");
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// The link `generation` is gone (`why`): marks it down and starts
    /// reconnecting. Said once per link; nothing at shutdown.
    fn link_lost(self: &Arc<Self>, generation: u64, why: &str) {
        {
            let mut link = self.link.lock();
            match link.as_ref() {
                Some(l) if l.generation == generation => {
                    l.closed.cancel();
                    *link = None;
                }
                _ => return,
            }
        }
        if self.links.shutdown.is_cancelled() {
            return;
        }
        let mut state = self.state.lock();
        state.status = LinkStatus::Down;
        state.since = SystemTime::now();
        state.last_error = Some(why.to_owned());
        drop(state);
        tracing::warn!(endpoint = %self.options.name, address = %self.options.address, reason = why,
            "endpoint link down; requests fail at once (RC 91) while it reconnects in the background");
        self.links.tasks.spawn(connect(self.clone(), 1));
        self.changed.notify_waiters();
    }

    /// An attempt to connect failed: down until the next one.
    fn attempt_failed(&self, why: String) {
        let mut state = self.state.lock();
        let first_open = state.connects == 0 && state.failed_attempts == 0;
        state.status = LinkStatus::Down;
        state.failed_attempts += 1;
        if first_open {
            state.since = SystemTime::now();
            tracing::warn!(endpoint = %self.options.name, address = %self.options.address, error = %why,
                "endpoint unreachable; requests fail at once (RC 91) while it reconnects in the background");
        } else {
            tracing::debug!(endpoint = %self.options.name, attempt = state.failed_attempts, error = %why,
                "endpoint reconnect attempt failed");
        }
        state.last_error = Some(why);
        drop(state);
        self.changed.notify_waiters();
    }

    fn reader(&self) -> LinkReader {
        LinkReader {
            name: self.options.name.clone(),
            formatter: self.formatter.clone(),
            waiters: self.waiters.clone(),
            late: self.late.clone(),
            tranlog: self.tranlog.clone(),
            tasks: self.links.tasks.clone(),
        }
    }

    fn reserve(&self, key: &str) -> Result<Reservation, ExchangeError> {
        let mut waiters = self.waiters.lock();
        if waiters.contains_key(key) {
            return Err(ExchangeError::Busy(key.to_owned()));
        }
        let (tx, rx) = oneshot::channel();
        waiters.insert(key.to_owned(), tx);
        Ok(Reservation {
            key: key.to_owned(),
            reply: rx,
        })
    }

    /// Sends a reserved request and waits for its reply until `deadline`.
    async fn send(
        self: &Arc<Self>,
        reservation: Reservation,
        payload: Vec<u8>,
        deadline: tokio::time::Instant,
        wait: Wait,
    ) -> Result<Bytes, ExchangeError> {
        let sent = tokio::time::timeout_at(deadline, async {
            let link = self.sender(wait).await?;
            link.send(Bytes::from(payload)).map_err(|_| {
                std::io::Error::other("the link closed before the request was written")
            })
        })
        .await;
        let result = match sent {
            Ok(Ok(())) => match tokio::time::timeout_at(deadline, reservation.reply).await {
                Ok(Ok(frame)) => Ok(frame),
                Ok(Err(_)) => Err(ExchangeError::LinkDropped),
                Err(_) => Err(ExchangeError::Timeout(self.options.timeout.as_millis())),
            },
            Ok(Err(e)) => Err(ExchangeError::NotSent(e.to_string())),
            Err(_) => Err(ExchangeError::NotSent(format!(
                "no connection within {} ms",
                self.options.timeout.as_millis()
            ))),
        };
        if result.is_err() {
            self.waiters.lock().remove(&reservation.key);
        }
        result
    }

    /// Remembers that the request `key` of transaction `id` got no answer,
    /// so that its late reply is recognised and recorded.
    fn expect_late(&self, key: String, id: TxId) {
        let keep = (self.options.timeout * LATE_TIMEOUTS).max(LATE_MIN);
        let now = Instant::now();
        let mut late = self.late.lock();
        if late.len() >= 1024 {
            late.retain(|_, (_, until)| *until > now);
        }
        late.insert(key, (id, now + keep));
    }

    /// Sends the transaction to the endpoint and reads the reply into it,
    /// recording the upstream leg. `Ok(false)`: no usable answer (RC 91).
    async fn query(
        self: &Arc<Self>,
        ctx: &mut Context,
        lifecycle: Option<&Lifecycle>,
    ) -> Result<bool, Failure> {
        let outbound = self.formatter.format_request(ctx)?;
        let reservation = self.reserve(&outbound.key).map_err(|e| {
            Failure::new(
                FailureKind::Rejected,
                format!("endpoint {}: {e}", self.options.name),
            )
        })?;
        if let Some(lc) = lifecycle {
            // Durable before anything goes upstream.
            if let Err(f) = lc.before_upstream(ctx.tranlog_id, &self.options.name).await {
                self.waiters.lock().remove(&reservation.key);
                return Err(f);
            }
        }
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + self.options.timeout);
        let key = reservation.key.clone();
        let result = self
            .send(reservation, outbound.payload, deadline, Wait::FailFast)
            .await;
        let external = started.elapsed();
        ctx.external = Some(external);
        if let Some(m) = self.metrics.get()
            && !matches!(
                result,
                Err(ExchangeError::NotSent(_) | ExchangeError::Busy(_))
            )
        {
            // Only what reached the link: a request never sent spent no
            // time at the endpoint.
            m.external(external);
        }
        let upstream = match result {
            Ok(frame) => match self.formatter.parse_response(ctx, &frame) {
                Ok(()) => Upstream::Answered,
                Err(f) => {
                    tracing::error!(endpoint = %self.options.name, tenant = %ctx.tenant(), listener = %ctx.listener(),
                        stan = ctx.request.get_str(11).unwrap_or(""), error = %f,
                        "the endpoint's reply cannot be read: its outcome is unknown, the transaction is reversed");
                    Upstream::Unreadable
                }
            },
            Err(e) => {
                tracing::warn!(endpoint = %self.options.name, address = %self.options.address,
                    tenant = %ctx.tenant(), listener = %ctx.listener(),
                    stan = ctx.request.get_str(11).unwrap_or(""), error = %e, "no answer from the endpoint: 91");
                e.upstream()
            }
        };
        ctx.upstream = Some(UpstreamLeg {
            endpoint: self.options.name.clone(),
            result: upstream,
        });
        if upstream == Upstream::Answered {
            return Ok(true);
        }
        if upstream.needs_reversal()
            && let Some(id) = ctx.tranlog_id
        {
            self.expect_late(key, id);
        }
        ctx.set_result_code(rc::ISSUER_UNAVAILABLE);
        Ok(false)
    }
}

/// Connects the endpoint's link, attempt `attempt` onwards: attempt 0 at
/// once, attempt `n` after [`Backoff::jittered`]`(n - 1)`; until it is up
/// or the switch shuts down.
async fn connect(inner: Arc<Inner>, mut attempt: u32) {
    let shutdown = inner.links.shutdown.clone();
    let o = &inner.options;
    loop {
        if attempt > 0 {
            let wait = o.reconnect.jittered(attempt - 1);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        inner.state.lock().status = LinkStatus::Connecting;
        let opened = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(CONNECT_TIMEOUT, crate::tls::connect(&o.address, o.tls.as_deref())) => r,
        };
        match opened {
            Ok(Ok((read, write))) => {
                inner.install(read, write);
                return;
            }
            Ok(Err(e)) => inner.attempt_failed(e.to_string()),
            Err(_) => inner.attempt_failed(format!(
                "no connection within {} ms",
                CONNECT_TIMEOUT.as_millis()
            )),
        }
        attempt = attempt.saturating_add(1);
    }
}

/// Writes the frames queued for the link until it closes.
async fn write_link(
    inner: Arc<Inner>,
    generation: u64,
    mut sink: FramedWrite<crate::tls::LinkWrite, crate::framing::FrameCodec>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    closed: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            _ = closed.cancelled() => break,
            f = rx.recv() => match f {
                Some(f) => f,
                None => break,
            },
        };
        if let Err(e) = sink.send(frame).await {
            tracing::warn!(endpoint = %inner.options.name, error = %e, "endpoint link write failed");
            inner.link_lost(generation, &format!("write failed: {e}"));
            break;
        }
    }
    // Dropping the receiver marks the link closed for `sender`.
}

/// What the link's reader needs.
struct LinkReader {
    name: Arc<str>,
    formatter: Arc<dyn Formatter>,
    waiters: Arc<Waiters>,
    late: Arc<Late>,
    tranlog: Option<Arc<dyn Tranlog>>,
    tasks: TaskTracker,
}

/// Reads replies until the link closes, handing each to the request
/// waiting for its key (or recording it as a late reply).
async fn read_link(
    inner: Arc<Inner>,
    generation: u64,
    mut frames: FramedRead<crate::tls::LinkRead, crate::framing::FrameCodec>,
    closed: CancellationToken,
    activity: Arc<Activity>,
) {
    let reader = inner.reader();
    let name = reader.name.clone();
    let why = loop {
        let frame = tokio::select! {
            _ = closed.cancelled() => break "closed".to_owned(),
            f = frames.next() => match f {
                Some(f) => f,
                None => break "the endpoint closed the connection".to_owned(),
            },
        };
        let frame = match frame {
            Ok(f) => f.freeze(),
            Err(e) => {
                tracing::warn!(endpoint = %name, error = %e, "endpoint link framing error; reconnecting");
                break format!("framing error: {e}");
            }
        };
        *activity.lock() = tokio::time::Instant::now();
        if !frame.is_empty() {
            reader.dispatch(frame);
        }
    };
    tracing::debug!(endpoint = %name, reason = %why, "endpoint link closed");
    // Those waiting on this link will get no reply: answer them now rather
    // than at their timeout.
    reader.waiters.lock().clear();
    closed.cancel();
    inner.link_lost(generation, &why);
}

/// The echo task of one link: an 0800 after `every` without a frame from
/// the endpoint; no answer within the endpoint timeout closes the link.
struct Echo {
    inner: Arc<Inner>,
    generation: u64,
    tx: mpsc::UnboundedSender<Bytes>,
    closed: CancellationToken,
    activity: Arc<Activity>,
    every: Duration,
}

/// Why an echo did not prove the link alive.
enum EchoError {
    /// The formatter builds no echo: none on this endpoint.
    Unsupported(String),
    /// Sent, not answered in time (or the link closed).
    Unanswered(String),
}

impl Echo {
    async fn run(self) {
        loop {
            let due = *self.activity.lock() + self.every;
            tokio::select! {
                _ = self.closed.cancelled() => return,
                _ = tokio::time::sleep_until(due) => {}
            }
            if *self.activity.lock() + self.every > tokio::time::Instant::now() {
                continue; // a frame came meanwhile
            }
            let name = &self.inner.options.name;
            match self.echo().await {
                Ok(rc) => {
                    tracing::debug!(endpoint = %name, rc = rc.as_deref().unwrap_or("?"), "echo answered")
                }
                Err(EchoError::Unsupported(why)) => {
                    self.inner.no_echo.store(true, Ordering::Relaxed);
                    tracing::info!(endpoint = %name, reason = %why,
                        "the endpoint's formatter builds no echo (0800): no echo on this endpoint");
                    return;
                }
                Err(EchoError::Unanswered(why)) => {
                    if self.closed.is_cancelled() {
                        return;
                    }
                    tracing::warn!(endpoint = %name, reason = %why, "echo not answered: the link is declared down");
                    self.inner
                        .link_lost(self.generation, &format!("echo not answered: {why}"));
                    return;
                }
            }
        }
    }

    /// Sends one echo and waits for its answer: the answer's result code.
    async fn echo(&self) -> Result<Option<String>, EchoError> {
        let inner = &self.inner;
        let stan = inner.echo_stan.fetch_add(1, Ordering::Relaxed) % 999_999 + 1;
        let request = echo_request(stan, SystemTime::now());
        let mut ctx = Context::new("".into(), inner.options.name.clone(), 0, request);
        let outbound = inner
            .formatter
            .format_request(&mut ctx)
            .map_err(|f| EchoError::Unsupported(f.to_string()))?;
        let reservation = match inner.reserve(&outbound.key) {
            Ok(r) => r,
            // An earlier echo with this key still waits: this one is moot.
            Err(_) => return Ok(None),
        };
        inner.state.lock().echoes_sent += 1;
        if self.tx.send(Bytes::from(outbound.payload)).is_err() {
            inner.waiters.lock().remove(&reservation.key);
            return Err(EchoError::Unanswered("the link closed".into()));
        }
        let timeout = inner.options.timeout;
        match tokio::time::timeout(timeout, reservation.reply).await {
            Ok(Ok(frame)) => {
                inner.state.lock().echoes_answered += 1;
                let rc = match inner.formatter.parse_response(&mut ctx, &frame) {
                    Ok(()) => ctx.result_code().map(str::to_owned),
                    Err(_) => None,
                };
                Ok(rc)
            }
            Ok(Err(_)) => Err(EchoError::Unanswered("the link closed".into())),
            Err(_) => {
                inner.waiters.lock().remove(&reservation.key);
                Err(EchoError::Unanswered(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                )))
            }
        }
    }
}

impl LinkReader {
    fn dispatch(&self, frame: Bytes) {
        let key = match self.formatter.reply_key(&frame) {
            Ok(key) => key,
            Err(f) => {
                tracing::warn!(endpoint = %self.name, error = %f, "reply without a readable key; dropped");
                return;
            }
        };
        if let Some(waiter) = self.waiters.lock().remove(&key) {
            let _ = waiter.send(frame);
            return;
        }
        let late = self
            .late
            .lock()
            .remove(&key)
            .filter(|(_, until)| *until > Instant::now());
        match (late, &self.tranlog) {
            (Some((id, _)), Some(tranlog)) => self.record_late(tranlog.clone(), id, frame),
            _ => {
                tracing::warn!(endpoint = %self.name, key = %key, "reply matches no waiting request (unsolicited); dropped")
            }
        }
    }

    /// A reply after its request timed out: recorded on the transaction,
    /// never forwarded; its reversal goes on.
    fn record_late(&self, tranlog: Arc<dyn Tranlog>, id: TxId, frame: Bytes) {
        let mut scratch = Context::new("".into(), self.name.clone(), 0, Default::default());
        let rc = match self.formatter.parse_response(&mut scratch, &frame) {
            Ok(()) => scratch.result_code().map(str::to_owned),
            Err(_) => None,
        };
        tracing::warn!(endpoint = %self.name, tranlog_id = id, rc = rc.as_deref().unwrap_or("?"),
            "late reply recorded on its transaction; not forwarded, its reversal goes on");
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let name = self.name.clone();
        self.tasks.spawn(async move {
            if let Err(e) = tranlog.late_reply(id, rc, at).await {
                tracing::error!(endpoint = %name, tranlog_id = id, error = %e, "recording a late reply failed");
            }
        });
    }
}

/// The `query-endpoint` step: switches the transaction out to an endpoint.
/// Aborts with RC 91 when the endpoint does not answer in time; an answer
/// (approved or declined) is passed through and the step prepares.
pub struct QueryEndpoint {
    endpoint: Arc<Endpoint>,
    lifecycle: Option<Arc<Lifecycle>>,
}

impl QueryEndpoint {
    /// A step that queries `endpoint`, recording the send in `lifecycle`'s
    /// tranlog first.
    pub fn new(endpoint: Arc<Endpoint>, lifecycle: Option<Arc<Lifecycle>>) -> QueryEndpoint {
        QueryEndpoint {
            endpoint,
            lifecycle,
        }
    }
}

impl AsyncParticipant for QueryEndpoint {
    fn prepare<'a>(&'a self, ctx: &'a mut Context) -> BoxFuture<'a, Result<Outcome, Failure>> {
        Box::pin(async move {
            Ok(
                if self.endpoint.query(ctx, self.lifecycle.as_deref()).await? {
                    Outcome::PREPARED
                } else {
                    Outcome::ABORTED
                },
            )
        })
    }
}
