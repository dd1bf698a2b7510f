//! Acquirer listeners: accept connections, read frames, run each request
//! through the listener's pipeline, write the responses back.
//!
//! Several requests may be in flight on one connection; responses go back in
//! the order they complete (acquirers match them by STAN). A frame that does
//! not decode is answered with RC 30 when its MTI and STAN can be read, and
//! otherwise logged (without card data) and dropped; the connection stays up.
//! A framing error (oversize or bad length header) closes the connection.
//! An empty frame is a keep-alive: skipped, never answered. With a TPDU
//! framing (`+tpdu`), each response carries its request's TPDU with source
//! and destination swapped.
//!
//! Admission (`admission.rs`): beyond `max_connections`, or beyond
//! `max_connections_per_peer` from one IP address, a connection is accepted
//! and closed at once, counted on a rate-limited WARN line; a connection
//! that delivers no complete frame within `first_frame_timeout` is closed.
//!
//! Writes: responses of one connection that complete close together leave
//! in one write. After the first response is queued, when more transactions
//! of the connection are still running, the writer lets them run once
//! (`yield_now`) and takes what they queued before it flushes; with one
//! transaction in flight it flushes at once (no added latency at low load).
//! [`ListenerStats`] counts writes and frames (the admin `/metrics`).
//!
//! Logs: the `switchyard::profiler` INFO line (the trace in the seed's form)
//! is written for transactions that did not approve or were slow
//! ([`TransactionLog`]), or for every one when the operator asks; every
//! transaction's trace is kept in its tranlog row.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use switchyard_engine::steps::complete_response;
use switchyard_engine::{
    Admission, Context, Failure, Label, Lifecycle, Outcome, Participant, Pipeline, Profiler,
    Verdict, rc,
};
use switchyard_iso8583::tpdu::Tpdu;
use switchyard_iso8583::{BytesMut, Message, Spec};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Gate, RefusalCounts, Refusals};
use crate::framing::Framing;

/// What a listener serves and how.
#[derive(Clone)]
pub struct ListenerOptions {
    /// The listener's name (logs, the `LISTENER` variable).
    pub name: Arc<str>,
    /// The tenant its transactions belong to.
    pub tenant: Arc<str>,
    /// The configured port: the `PORT` variable, whatever `bind` says.
    pub port: u16,
    /// The address to bind (port 0 picks a free one).
    pub bind: SocketAddr,
    /// Length framing.
    pub framing: Framing,
    /// Largest accepted frame, in bytes.
    pub max_frame: usize,
    /// A connection with no frame for this long is closed.
    pub idle_timeout: Duration,
    /// A connection that has not delivered one complete frame this long
    /// after it was accepted is closed (then `idle_timeout` applies).
    pub first_frame_timeout: Duration,
    /// Most connections at once from one IP address (0: no limit); one
    /// over it is closed at once.
    pub max_connections_per_peer: usize,
    /// Most requests in flight per connection; reading pauses beyond it.
    pub max_in_flight: usize,
    /// Most connections at once; a connection beyond it is accepted and
    /// closed at once (counted in a rate-limited WARN line).
    pub max_connections: usize,
    /// The message spec of the wire.
    pub spec: Arc<Spec>,
    /// The pipeline every request runs through.
    pub pipeline: Arc<Pipeline>,
    /// Told of every completed transaction (demo, tests, monitoring).
    pub observer: Option<Observer>,
    /// The money-safe life cycle (tranlog, repeats, reversals); `None`
    /// runs every request straight through the pipeline, unrecorded
    /// (benches only).
    pub lifecycle: Option<Arc<Lifecycle>>,
    /// TLS (and mutual TLS) on every connection; `None`: plain TCP.
    /// Shared with the reload (SIGHUP, `POST /tls/reload`).
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    /// Which transactions get the INFO profiler line.
    pub log: TransactionLog,
    /// Writes and frames written, for the admin `/metrics`.
    pub stats: Arc<ListenerStats>,
}

/// Which transactions get the `switchyard::profiler` INFO line (`[log]`
/// in the config): those that did not approve (a result code other than
/// 00, an aborted pipeline), those slower than `slow` (zero: every one),
/// or every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionLog {
    /// A transaction at least this long in the switch is logged.
    pub slow: Duration,
    /// Log every transaction.
    pub every_transaction: bool,
}

impl Default for TransactionLog {
    fn default() -> TransactionLog {
        TransactionLog {
            slow: Duration::from_millis(100),
            every_transaction: false,
        }
    }
}

impl TransactionLog {
    /// Whether a transaction that took `total` and ended with `rc` (and
    /// `verdict`, `None` when the life cycle answered it) gets the line.
    pub fn wants(&self, total: Duration, rc: Option<&str>, verdict: Option<Verdict>) -> bool {
        self.every_transaction
            || total >= self.slow
            || rc != Some(rc::APPROVED)
            || verdict == Some(Verdict::Aborted)
    }
}

/// What a listener's connections wrote: writes (flushes of what was
/// queued, each one `write`/`writev` when the socket takes it whole) and
/// response frames.
#[derive(Debug, Default)]
pub struct ListenerStats {
    writes: AtomicU64,
    frames: AtomicU64,
    /// The listener's Prometheus handles (transactions, connections);
    /// `None`: not recorded.
    metrics: Option<switchyard_metrics::ListenerMetrics>,
}

impl ListenerStats {
    /// Counters that also record every transaction and connection in
    /// `metrics` (the listener's handles of the switch's one `Metrics`).
    pub fn with_metrics(metrics: switchyard_metrics::ListenerMetrics) -> ListenerStats {
        ListenerStats {
            metrics: Some(metrics),
            ..ListenerStats::default()
        }
    }

    /// Records one transaction: request MTI, result code, time in the switch.
    fn transaction(&self, mti: &str, rc: Option<&str>, total: Duration) {
        if let Some(m) = &self.metrics {
            m.transaction(mti, rc, total);
        }
    }

    /// Counts an accepted connection, open until the guard drops.
    fn connection_opened(&self) -> Option<switchyard_metrics::OpenConnection> {
        self.metrics.as_ref().map(|m| m.connection_opened())
    }

    /// Writes to the acquirers' sockets.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Response frames written.
    pub fn frames_written(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    fn wrote(&self, frames: u64) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.frames.fetch_add(frames, Ordering::Relaxed);
    }
}

/// A completed transaction, as an [`Observer`] sees it (no card data).
#[derive(Debug, Clone)]
pub struct Completed {
    /// The listener's name.
    pub listener: Arc<str>,
    /// The request's MTI.
    pub mti: String,
    /// The request's STAN (DE11), if any.
    pub stan: Option<String>,
    /// The result code.
    pub rc: Option<String>,
    /// The profiler trace in the seed's form.
    pub trace: String,
}

/// Receives every completed transaction of a listener.
pub type Observer = Arc<dyn Fn(Completed) + Send + Sync>;

/// A bound listener, ready to serve.
pub struct Listener {
    options: Arc<ListenerOptions>,
    socket: TcpListener,
}

impl Listener {
    /// Binds the listener's address.
    pub async fn bind(options: ListenerOptions) -> std::io::Result<Listener> {
        let socket = TcpListener::bind(options.bind).await?;
        Ok(Listener {
            options: Arc::new(options),
            socket,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.options.name
    }

    /// Accepts connections until `shutdown` is cancelled. Connection and
    /// transaction tasks are spawned on `tracker`, so the caller can wait for
    /// in-flight transactions to finish.
    pub async fn serve(self, shutdown: CancellationToken, tracker: TaskTracker) {
        let opts = self.options;
        let gate = Gate::new(opts.max_connections, opts.max_connections_per_peer);
        let mut refusals = Refusals::default();
        tracing::info!(listener = %opts.name, addr = %self.socket.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            port = opts.port, tenant = %opts.tenant, pipeline = opts.pipeline.name(), "listening");
        loop {
            let due = refusals.due();
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    log_refusals(&opts, &gate, refusals.take(tokio::time::Instant::now()));
                    continue;
                }
                r = self.socket.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(listener = %opts.name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let permit = match gate.admit(peer.ip()) {
                Ok(permit) => permit,
                Err(why) => {
                    // Closed at once: the client learns now, not at a timeout.
                    drop(stream);
                    tracing::debug!(listener = %opts.name, %peer, reason = ?why, "connection refused");
                    log_refusals(
                        &opts,
                        &gate,
                        refusals.refused(why, tokio::time::Instant::now()),
                    );
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let opts = opts.clone();
            let shutdown = shutdown.clone();
            let inner = tracker.clone();
            tracker.spawn(async move {
                let open = opts.stats.connection_opened();
                accept_connection(opts, stream, peer, shutdown, inner).await;
                drop((open, permit));
            });
        }
        log_refusals(&opts, &gate, refusals.take(tokio::time::Instant::now()));
        tracing::info!(listener = %opts.name, "stopped accepting");
    }
}

/// The rate-limited line of the connections refused since the last one.
fn log_refusals(opts: &ListenerOptions, gate: &Gate, counts: Option<RefusalCounts>) {
    if let Some(c) = counts {
        tracing::warn!(listener = %opts.name, refused_at_limit = c.full, refused_per_peer = c.per_peer,
            open = gate.open(), max_connections = opts.max_connections,
            max_connections_per_peer = opts.max_connections_per_peer,
            "connections refused (closed at once) since the last such line");
    }
}

/// Longest TLS handshake on an accepted connection (the first-frame
/// timeout, when shorter, bounds it too).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the accept step hands the connection: when its first frame is due
/// (counted from accept, the TLS handshake included) and the verified
/// client subject of a mutual-TLS connection.
struct Accepted {
    first_frame_by: tokio::time::Instant,
    tls_subject: Option<Arc<str>>,
}

/// Serves an accepted connection: plain, or after its TLS handshake (which
/// verifies the client's certificate on a mutual-TLS listener). A failed
/// handshake closes the connection, logged (rate-limited) with its reason.
async fn accept_connection(
    opts: Arc<ListenerOptions>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let now = tokio::time::Instant::now();
    let mut accepted = Accepted {
        first_frame_by: now + opts.first_frame_timeout,
        tls_subject: None,
    };
    let Some(tls) = opts.tls.clone() else {
        let (read, write) = stream.into_split();
        return connection(opts, read, write, accepted, peer, shutdown, tracker).await;
    };
    let limit = accepted.first_frame_by.min(now + HANDSHAKE_TIMEOUT);
    let handshake = tokio::select! {
        _ = shutdown.cancelled() => return,
        r = tokio::time::timeout_at(limit, tls.accept(stream)) => r,
    };
    let reason = match handshake {
        Ok(Ok((stream, subject))) => {
            tracing::debug!(listener = %opts.name, %peer, subject = subject.as_deref().unwrap_or(""), "TLS handshake done");
            accepted.tls_subject = subject;
            let (read, write) = tokio::io::split(stream);
            return connection(opts, read, write, accepted, peer, shutdown, tracker).await;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no handshake within {} ms", (limit - now).as_millis()),
    };
    if let Some(suppressed) = tls.failed_handshake() {
        tracing::warn!(listener = %opts.name, %peer, reason = %reason, not_logged_since_last = suppressed,
            "TLS handshake failed; connection closed");
    }
}

async fn connection<R, W>(
    opts: Arc<ListenerOptions>,
    read: R,
    write: W,
    accepted: Accepted,
    peer: SocketAddr,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let Accepted {
        first_frame_by,
        tls_subject,
    } = accepted;
    tracing::debug!(listener = %opts.name, %peer, "connection opened");
    let mut frames = FramedRead::new(read, opts.framing.codec(opts.max_frame));
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let pending = Arc::new(AtomicUsize::new(0));
    let writer = {
        let sink = FramedWrite::new(write, opts.framing.codec(opts.max_frame));
        let (name, pending, stats) = (opts.name.clone(), pending.clone(), opts.stats.clone());
        tokio::spawn(async move {
            if let Err(e) = write_responses(sink, rx, &pending, &stats).await {
                tracing::info!(listener = %name, %peer, error = %e, "write failed; closing");
            }
        })
    };
    let in_flight = Arc::new(Semaphore::new(opts.max_in_flight));
    // Until the first complete frame, the first-frame deadline; then the
    // idle timeout, frame by frame.
    let mut first_frame_by = Some(first_frame_by);
    loop {
        let permit = match in_flight.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => break,
        };
        let by = first_frame_by.unwrap_or_else(|| tokio::time::Instant::now() + opts.idle_timeout);
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            n = tokio::time::timeout_at(by, frames.next()) => n,
        };
        let frame = match next {
            Err(_) if first_frame_by.is_some() => {
                tracing::info!(listener = %opts.name, %peer, first_frame_ms = opts.first_frame_timeout.as_millis() as u64,
                    "no complete frame within the first-frame timeout; closing");
                break;
            }
            Err(_) => {
                tracing::info!(listener = %opts.name, %peer, idle_s = opts.idle_timeout.as_secs(), "idle timeout; closing");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::warn!(listener = %opts.name, %peer, error = %e, "framing error; closing the connection");
                break;
            }
            Ok(Some(Ok(frame))) => {
                first_frame_by = None;
                frame.freeze()
            }
        };
        if frame.is_empty() {
            continue; // keep-alive
        }
        let received = Instant::now();
        let (tpdu, frame) = if opts.framing.tpdu() {
            match Tpdu::split(frame) {
                Ok((tpdu, message)) => (Some(tpdu.swap()), message),
                Err(e) => {
                    tracing::warn!(listener = %opts.name, %peer, error = %e, "frame without its TPDU; dropped");
                    continue;
                }
            }
        } else {
            (None, frame)
        };
        let opts = opts.clone();
        let reply = Reply::new(tx.clone(), pending.clone());
        let tls_subject = tls_subject.clone();
        tracker.spawn(async move {
            transaction(&opts, peer, frame, tpdu, received, reply, tls_subject).await;
            drop(permit);
        });
    }
    drop(tx);
    // The writer ends once every transaction of this connection responded.
    let _ = writer.await;
    tracing::debug!(listener = %opts.name, %peer, "connection closed");
}

/// Most times the writer lets the connection's other transactions run
/// before it flushes what they queued.
const MAX_YIELDS: usize = 1;

/// The connection's writer: feeds what is queued, and while other
/// transactions of the connection are still running lets them run (at most
/// [`MAX_YIELDS`] times) so that their responses join the same write; then
/// flushes. Ends when every transaction of the connection has answered.
async fn write_responses<W, C>(
    mut sink: FramedWrite<W, C>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    pending: &AtomicUsize,
    stats: &ListenerStats,
) -> Result<(), C::Error>
where
    W: tokio::io::AsyncWrite + Unpin,
    C: tokio_util::codec::Encoder<Bytes>,
{
    while let Some(frame) = rx.recv().await {
        sink.feed(frame).await?;
        let mut frames = 1;
        let mut yields = 0;
        loop {
            while let Ok(frame) = rx.try_recv() {
                sink.feed(frame).await?;
                frames += 1;
            }
            if yields == MAX_YIELDS || pending.load(Ordering::Acquire) == 0 {
                break;
            }
            // Behind every task that is ready to run: the connection's
            // transactions that are about to answer answer first.
            tokio::task::yield_now().await;
            yields += 1;
        }
        SinkExt::<Bytes>::flush(&mut sink).await?;
        stats.wrote(frames);
    }
    Ok(())
}

/// A transaction's way back to its connection: the writer's queue, and the
/// connection's count of transactions that have not queued a response yet
/// (the writer waits for them only while it is not zero).
struct Reply {
    tx: mpsc::UnboundedSender<Bytes>,
    pending: Arc<AtomicUsize>,
    settled: bool,
}

impl Reply {
    fn new(tx: mpsc::UnboundedSender<Bytes>, pending: Arc<AtomicUsize>) -> Reply {
        pending.fetch_add(1, Ordering::AcqRel);
        Reply {
            tx,
            pending,
            settled: false,
        }
    }

    fn settle(&mut self) {
        if !std::mem::replace(&mut self.settled, true) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Queues the response (no longer pending before the writer sees it).
    fn send(mut self, frame: Bytes) {
        self.settle();
        // The connection may be gone; then there is no one to answer.
        let _ = self.tx.send(frame);
    }
}

impl Drop for Reply {
    /// A transaction that ends without a response is no longer pending.
    fn drop(&mut self) {
        self.settle();
    }
}

async fn transaction(
    opts: &ListenerOptions,
    peer: SocketAddr,
    frame: Bytes,
    tpdu: Option<Tpdu>,
    received: Instant,
    reply: Reply,
    tls_subject: Option<Arc<str>>,
) {
    let mut profiler = Profiler::start_at(received);
    let request = match opts.spec.decode(frame.clone()) {
        Ok(m) => m,
        Err(error) => {
            reject(opts, peer, frame, tpdu, &error, reply, received);
            return;
        }
    };
    profiler.checkpoint(Label::Fixed("parse-request"));
    let mut ctx = Context::new(opts.tenant.clone(), opts.name.clone(), opts.port, request);
    ctx.profiler = profiler;
    ctx.spec = Some(opts.spec.clone());
    ctx.tls_client_subject = tls_subject;
    let verdict = run(opts, &mut ctx).await;
    if ctx.respond {
        ConnectionResponder {
            reply,
            spec: opts.spec.clone(),
            listener: opts.name.clone(),
            tenant: opts.tenant.clone(),
            tpdu,
        }
        .respond(&ctx.response);
    } else {
        drop(reply);
        tracing::debug!(tenant = %opts.tenant, listener = %opts.name,
            stan = ctx.request.get_str(11).unwrap_or(""), "pipeline sent no response");
    }
    let total = ctx
        .profiler
        .total()
        .unwrap_or_else(|| ctx.profiler.elapsed());
    opts.stats
        .transaction(ctx.request.mti().as_str(), ctx.result_code(), total);
    if opts.log.wants(total, ctx.result_code(), verdict) {
        log_trace(opts, &ctx, verdict);
    }
    if let Some(observer) = &opts.observer {
        observer(Completed {
            listener: opts.name.clone(),
            mti: ctx.request.mti().as_str().to_owned(),
            stan: ctx.request.get_str(11).map(str::to_owned),
            rc: ctx.result_code().map(str::to_owned),
            trace: ctx
                .profiler
                .trace(Some(&opts.pipeline), ctx.external)
                .to_string(),
        });
    }
}

/// The transaction's `switchyard::profiler` INFO line.
fn log_trace(opts: &ListenerOptions, ctx: &Context, verdict: Option<Verdict>) {
    let mti = ctx.request.mti();
    tracing::info!(
        target: "switchyard::profiler",
        tenant = %opts.tenant,
        listener = %opts.name,
        mti = mti.as_str(),
        stan = ctx.request.get_str(11).unwrap_or(""),
        rc = ctx.result_code().unwrap_or(""),
        verdict = verdict.map_or("answered from the tranlog", |v| match v {
            Verdict::Committed => "committed",
            Verdict::Aborted => "aborted",
        }),
        "{}",
        ctx.profiler.trace(Some(&opts.pipeline), ctx.external)
    );
}

/// Runs the request through the life cycle and the pipeline; `None` when
/// the life cycle answered it without the pipeline (repeat, duplicate,
/// reversal, completion). Either way the response, when there is one, is
/// recorded before this returns.
async fn run(opts: &ListenerOptions, ctx: &mut Context) -> Option<Verdict> {
    let Some(lifecycle) = &opts.lifecycle else {
        let verdict = opts.pipeline.run(ctx).await.verdict;
        answer_failed(opts, ctx);
        return Some(verdict);
    };
    match lifecycle.admit(ctx).await {
        Admission::Respond(response) => {
            ctx.response = response;
            ctx.respond = true;
            ctx.profiler.end();
            None
        }
        Admission::Run => {
            let disposition = opts.pipeline.run(ctx).await;
            answer_failed(opts, ctx);
            lifecycle.finish(ctx, &disposition, &opts.pipeline).await;
            Some(disposition.verdict)
        }
    }
}

/// A failure that left the request unanswered (a selector that failed
/// chooses no `send`) is answered with its result code, recorded like any
/// response (`steps::answer_failed`).
fn answer_failed(opts: &ListenerOptions, ctx: &mut Context) {
    if switchyard_engine::steps::answer_failed(ctx) {
        tracing::warn!(tenant = %opts.tenant, listener = %opts.name,
            stan = ctx.request.get_str(11).unwrap_or(""), rc = ctx.result_code().unwrap_or(""),
            failure = ctx.failure.as_deref().unwrap_or(""),
            "a participant failed before a send step was chosen; answered with the failure's code");
    }
}

/// Answers an undecodable frame with RC 30 when MTI and STAN can be read.
fn reject(
    opts: &ListenerOptions,
    peer: SocketAddr,
    frame: Bytes,
    tpdu: Option<Tpdu>,
    error: &switchyard_iso8583::DecodeError,
    reply: Reply,
    received: Instant,
) {
    // Field, offset, lengths and reason only: no byte of the frame (crate::reject).
    let rejection = crate::reject::reject(&opts.spec, &frame, error);
    let facts = &rejection.facts;
    let mti = facts.mti.as_ref().map(|m| m.as_str());
    match rejection.reply {
        Some(response) => {
            tracing::warn!(tenant = %opts.tenant, listener = %opts.name, %peer, mti,
                stan = facts.stan.as_deref(), field = facts.field, offset = facts.offset,
                length = facts.length, frame_len = facts.frame_len, reason = %facts.reason,
                withheld = ?facts.withheld, "undecodable request; answered with 30");
            opts.stats
                .transaction(mti.unwrap_or(""), response.get_str(39), received.elapsed());
            ConnectionResponder {
                reply,
                spec: opts.spec.clone(),
                listener: opts.name.clone(),
                tenant: opts.tenant.clone(),
                tpdu,
            }
            .respond(&response);
        }
        None => {
            tracing::warn!(tenant = %opts.tenant, listener = %opts.name, %peer, mti,
                field = facts.field, offset = facts.offset, length = facts.length,
                frame_len = facts.frame_len, reason = %facts.reason,
                "undecodable frame without a readable request MTI and STAN; dropped");
        }
    }
}

/// Encodes a response and queues it for the connection's writer.
struct ConnectionResponder {
    reply: Reply,
    spec: Arc<Spec>,
    listener: Arc<str>,
    /// The tenant (log lines).
    tenant: Arc<str>,
    /// The response's TPDU (the request's, swapped), written before the message.
    tpdu: Option<Tpdu>,
}

impl ConnectionResponder {
    fn encode(&self, m: &Message) -> Result<Bytes, switchyard_iso8583::EncodeError> {
        let mut out = BytesMut::new();
        if let Some(t) = &self.tpdu {
            out.extend_from_slice(t.as_bytes());
        }
        match action_code(&self.spec, m) {
            Some(mapped) => self.spec.encode_into(&mapped, &mut out)?,
            None => self.spec.encode_into(m, &mut out)?,
        }
        Ok(out.freeze())
    }
}

/// `m` with its two-character response code as the ISO 8583:1993 action
/// code, when `spec`'s DE39 is three digits (the `iso93-*` specs); `None`
/// when nothing needs to change. The code depends on the response's message
/// class ([`rc::action_code_1993_for`]): an approval is 000 on an 1110 or
/// 1210, 400 on an 1430, 800 on an 1814. A code without an equivalent
/// becomes 909 (system malfunction).
pub fn action_code(spec: &Spec, m: &Message) -> Option<Message> {
    if spec.field(39)?.max_len() != 3 {
        return None;
    }
    let code = m.get_str(39).filter(|c| c.len() == 2)?;
    let class = m.mti().as_bytes()[1];
    let action = rc::action_code_1993_for(code, class).unwrap_or("909");
    let mut mapped = m.clone();
    mapped.set(39, Bytes::from_static(action.as_bytes()));
    Some(mapped)
}

impl ConnectionResponder {
    fn respond(self, response: &Message) {
        let frame = match self.encode(response) {
            Ok(f) => f,
            Err(e) => {
                // A participant put something the spec cannot carry: answer
                // 96 with the bare echo rather than nothing.
                tracing::error!(tenant = %self.tenant, listener = %self.listener, stan = response.get_str(11).unwrap_or(""),
                    error = %e, "response does not encode; answering 96");
                let mut fallback = Message::new(response.mti());
                for f in [3, 4, 7, 11, 12, 13, 37, 41, 42, 49] {
                    if let Some(v) = response.get_bytes(f) {
                        fallback.set(f, v.clone());
                    }
                }
                fallback.set(39, Bytes::from_static(rc::SYSTEM_ERROR.as_bytes()));
                match self.encode(&fallback) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::error!(tenant = %self.tenant, listener = %self.listener, error = %e, "fallback response does not encode either; dropped");
                        return;
                    }
                }
            }
        };
        self.reply.send(frame);
    }
}

/// The `send` step: in the second phase (commit or abort), completes the
/// response if no `close` ran and marks it to be written back to the
/// acquirer; the listener writes it once the tranlog has recorded it.
#[derive(Debug, Default, Clone, Copy)]
pub struct SendResponse;

impl SendResponse {
    fn send(ctx: &mut Context, default_code: &'static str) {
        if !ctx.response.contains(39) {
            let code = ctx.result_code().unwrap_or(default_code).to_owned();
            let mut response = std::mem::take(&mut ctx.response);
            complete_response(&ctx.request, &code, &mut response);
            ctx.response = response;
        }
        ctx.respond = true;
    }
}

impl Participant for SendResponse {
    fn prepare(&self, _ctx: &mut Context) -> Result<Outcome, Failure> {
        Ok(Outcome::PREPARED)
    }

    fn prepare_for_abort(&self, _ctx: &mut Context) -> Option<Result<Outcome, Failure>> {
        Some(Ok(Outcome::PREPARED))
    }

    fn commit(&self, ctx: &mut Context) -> Result<(), Failure> {
        SendResponse::send(ctx, rc::APPROVED);
        Ok(())
    }

    fn abort(&self, ctx: &mut Context) -> Result<(), Failure> {
        SendResponse::send(ctx, rc::SYSTEM_ERROR);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::action_code;
    use switchyard_iso8583::{Message, Mti, Spec};

    fn response(mti: &str, code: &str) -> Message {
        let mut m = Message::new(Mti::new(mti).unwrap());
        m.set(11, &b"000001"[..]);
        m.set(39, code.as_bytes().to_vec());
        m
    }

    fn de39(spec: &str, mti: &str, code: &str) -> Option<String> {
        let spec = Spec::builtin(spec).unwrap();
        action_code(&spec, &response(mti, code)).map(|m| m.get_str(39).unwrap().to_owned())
    }

    #[test]
    fn a_1993_listener_answers_with_the_action_code_of_the_message_class() {
        for spec in ["iso93-ascii", "iso93-binary"] {
            for (mti, code, action) in [
                ("1210", "00", "000"),
                ("1110", "00", "000"),
                ("0210", "00", "000"),
                ("1430", "00", "400"),
                ("0430", "00", "400"),
                ("1814", "00", "800"),
                ("0810", "00", "800"),
                ("1210", "51", "116"),
                ("1430", "25", "914"),
                ("1210", "91", "911"),
                ("1210", "94", "913"),
                ("1210", "X9", "909"),
            ] {
                assert_eq!(
                    de39(spec, mti, code).as_deref(),
                    Some(action),
                    "{spec} {mti} {code}"
                );
                let mapped = action_code(&Spec::builtin(spec).unwrap(), &response(mti, code));
                let bytes = Spec::builtin(spec).unwrap().encode(&mapped.unwrap());
                assert!(bytes.is_ok(), "{spec} {mti} {code}: {bytes:?}");
            }
            // Already three digits (an endpoint's own action code): kept.
            assert_eq!(de39(spec, "1210", "116"), None);
        }
    }

    #[test]
    fn declines_aborts_and_slow_transactions_are_logged_by_default() {
        use super::TransactionLog;
        use std::time::Duration;
        use switchyard_engine::Verdict;
        let log = TransactionLog::default();
        let fast = Duration::from_millis(3);
        let committed = Some(Verdict::Committed);
        assert!(!log.wants(fast, Some("00"), committed));
        assert!(!log.wants(fast, Some("00"), None));
        assert!(log.wants(fast, Some("61"), committed));
        assert!(log.wants(fast, None, committed));
        assert!(log.wants(fast, Some("00"), Some(Verdict::Aborted)));
        assert!(log.wants(Duration::from_millis(100), Some("00"), committed));
        let every = TransactionLog {
            every_transaction: true,
            ..log
        };
        assert!(every.wants(fast, Some("00"), committed));
        let zero = TransactionLog {
            slow: Duration::ZERO,
            ..log
        };
        assert!(zero.wants(Duration::ZERO, Some("00"), committed));
    }

    #[test]
    fn a_1987_listener_keeps_the_response_code() {
        for spec in Spec::builtin_names()
            .iter()
            .filter(|n| n.starts_with("iso87"))
        {
            assert_eq!(de39(spec, "0210", "00"), None, "{spec}");
            assert_eq!(de39(spec, "0430", "00"), None, "{spec}");
        }
    }
}

#[cfg(test)]
mod pipelined {
    //! Several requests in flight on one connection: every response comes
    //! back whole, in whatever order they complete, and the listener's
    //! counters count the frames and the writes they took.

    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::BufMut;
    use futures::future::BoxFuture;
    use switchyard_engine::{AsyncParticipant, Context, Failure, Outcome, PipelineBuilder, Step};
    use switchyard_iso8583::{BytesMut, Message, Mti, Spec};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::{Listener, ListenerOptions, ListenerStats, SendResponse, TransactionLog};

    const N: u32 = 8;

    /// Completes the requests in reverse order of arrival: STAN `i` goes
    /// once the `N - 1 - i` later ones went.
    struct Reversed(watch::Sender<u32>);

    impl AsyncParticipant for Reversed {
        fn prepare<'a>(&'a self, ctx: &'a mut Context) -> BoxFuture<'a, Result<Outcome, Failure>> {
            Box::pin(async move {
                let stan: u32 = ctx.request.get_str(11).unwrap().parse().unwrap();
                let turn = N - 1 - stan;
                let mut rx = self.0.subscribe();
                rx.wait_for(|done| *done == turn).await.unwrap();
                self.0.send_modify(|done| *done += 1);
                Ok(Outcome::PREPARED)
            })
        }
    }

    fn options(spec: Arc<Spec>, stats: Arc<ListenerStats>) -> ListenerOptions {
        let mut b = PipelineBuilder::new("p");
        let (order, _) = watch::channel(0);
        b.participant("reversed", Step::Async(Arc::new(Reversed(order))))
            .unwrap();
        b.participant("send", Step::Sync(Arc::new(SendResponse)))
            .unwrap();
        b.main(&["reversed", "send"]);
        ListenerOptions {
            name: "l".into(),
            tenant: "t".into(),
            port: 5001,
            bind: ([127, 0, 0, 1], 0).into(),
            framing: crate::Framing::default(),
            max_frame: 4096,
            idle_timeout: Duration::from_secs(30),
            first_frame_timeout: Duration::from_secs(30),
            max_connections_per_peer: 0,
            max_in_flight: 2 * N as usize,
            max_connections: 4,
            spec,
            pipeline: Arc::new(b.build().unwrap()),
            observer: None,
            lifecycle: None,
            tls: None,
            log: TransactionLog::default(),
            stats,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipelined_responses_arrive_whole_in_any_order_and_are_counted() {
        let spec = Arc::new(Spec::builtin("iso87-ascii").unwrap());
        let stats = Arc::new(ListenerStats::default());
        let listener = Listener::bind(options(spec.clone(), stats.clone()))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
        tracker.spawn(listener.serve(shutdown.clone(), tracker.clone()));

        // All requests in one write, each with its 2-byte length.
        let mut out = BytesMut::new();
        for stan in 0..N {
            let mut m = Message::new(Mti::new("0200").unwrap());
            m.set(3, &b"000000"[..]);
            m.set(4, &b"000000001000"[..]);
            m.set(11, format!("{stan:06}").into_bytes());
            m.set(41, &b"TERM0001"[..]);
            let body = spec.encode(&m).unwrap();
            out.put_u16(body.len() as u16);
            out.extend_from_slice(&body);
        }
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(&out).await.unwrap();
        let mut stans = Vec::new();
        for _ in 0..N {
            let len = conn.read_u16().await.unwrap();
            let mut body = vec![0; usize::from(len)];
            conn.read_exact(&mut body).await.unwrap();
            let response = spec.decode(body.into()).unwrap();
            assert_eq!(response.mti().as_str(), "0210");
            assert_eq!(response.get_str(39), Some("00"));
            assert_eq!(response.get_str(41), Some("TERM0001"));
            stans.push(response.get_str(11).unwrap().to_owned());
        }
        let unique: BTreeSet<&String> = stans.iter().collect();
        assert_eq!(unique.len(), N as usize, "{stans:?}");

        drop(conn);
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        assert_eq!(stats.frames_written(), u64::from(N));
        let writes = stats.writes();
        assert!((1..=u64::from(N)).contains(&writes), "{writes} writes");
    }
}
