//! Endpoint links and the `query-endpoint` step.
//!
//! One multiplexed TCP connection per endpoint, opened on first use and
//! re-opened after it drops. Requests are written as they come; replies are
//! matched to their requests by the key the endpoint's formatter gives both
//! (the response MTI, STAN and terminal for `xxx`), so many transactions —
//! and the store-and-forward forwarder's reversals — share the link.
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
use std::sync::Arc;
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
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::framing::Framing;

/// How long a timed-out request's key is kept to recognise its late reply:
/// this many endpoint timeouts, and at least [`LATE_MIN`].
const LATE_TIMEOUTS: u32 = 10;
const LATE_MIN: Duration = Duration::from_secs(60);

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
    options: EndpointOptions,
    formatter: Arc<dyn Formatter>,
    waiters: Arc<Waiters>,
    late: Arc<Late>,
    tranlog: Option<Arc<dyn Tranlog>>,
    links: Links,
    link: tokio::sync::Mutex<Option<mpsc::UnboundedSender<Bytes>>>,
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
            options,
            formatter,
            waiters: Arc::default(),
            late: Arc::default(),
            tranlog,
            links,
            link: tokio::sync::Mutex::new(None),
        }
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.options.name
    }

    /// Its options.
    pub fn options(&self) -> &EndpointOptions {
        &self.options
    }

    /// Its formatter.
    pub fn formatter(&self) -> &Arc<dyn Formatter> {
        &self.formatter
    }

    /// The link's sender, connecting first if needed.
    async fn sender(&self) -> std::io::Result<mpsc::UnboundedSender<Bytes>> {
        let mut link = self.link.lock().await;
        if let Some(tx) = link.as_ref().filter(|tx| !tx.is_closed()) {
            return Ok(tx.clone());
        }
        let stream = TcpStream::connect(&self.options.address).await?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let closed = self.links.shutdown.child_token();
        let sink = FramedWrite::new(write, self.options.framing.codec(self.options.max_frame));
        self.links.tasks.spawn(write_link(
            self.options.name.clone(),
            sink,
            rx,
            closed.clone(),
        ));
        let frames = FramedRead::new(read, self.options.framing.codec(self.options.max_frame));
        self.links
            .tasks
            .spawn(read_link(self.reader(), frames, closed));
        tracing::info!(endpoint = %self.options.name, address = %self.options.address, "endpoint link connected");
        *link = Some(tx.clone());
        Ok(tx)
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
        &self,
        reservation: Reservation,
        payload: Vec<u8>,
        deadline: tokio::time::Instant,
    ) -> Result<Bytes, ExchangeError> {
        let sent = tokio::time::timeout_at(deadline, async {
            let link = self.sender().await?;
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

    /// Sends `outbound` and waits for the reply with its key, at most the
    /// endpoint's timeout.
    pub async fn exchange(&self, outbound: Outbound) -> Result<Bytes, ExchangeError> {
        let reservation = self.reserve(&outbound.key)?;
        let deadline = tokio::time::Instant::now() + self.options.timeout;
        self.send(reservation, outbound.payload, deadline).await
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
    pub async fn query(
        &self,
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
        let result = self.send(reservation, outbound.payload, deadline).await;
        ctx.external = Some(started.elapsed());
        let upstream = match result {
            Ok(frame) => match self.formatter.parse_response(ctx, &frame) {
                Ok(()) => Upstream::Answered,
                Err(f) => {
                    tracing::error!(endpoint = %self.options.name, error = %f,
                        "the endpoint's reply cannot be read: its outcome is unknown, the transaction is reversed");
                    Upstream::Unreadable
                }
            },
            Err(e) => {
                tracing::warn!(endpoint = %self.options.name, address = %self.options.address,
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

/// Writes the frames queued for the link until it closes.
async fn write_link(
    name: Arc<str>,
    mut sink: FramedWrite<tokio::net::tcp::OwnedWriteHalf, crate::framing::FrameCodec>,
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
            tracing::warn!(endpoint = %name, error = %e, "endpoint link write failed");
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
    reader: LinkReader,
    mut frames: FramedRead<tokio::net::tcp::OwnedReadHalf, crate::framing::FrameCodec>,
    closed: CancellationToken,
) {
    let name = reader.name.clone();
    loop {
        let frame = tokio::select! {
            _ = closed.cancelled() => break,
            f = frames.next() => match f {
                Some(f) => f,
                None => break,
            },
        };
        let frame = match frame {
            Ok(f) => f.freeze(),
            Err(e) => {
                tracing::warn!(endpoint = %name, error = %e, "endpoint link framing error; reconnecting");
                break;
            }
        };
        if !frame.is_empty() {
            reader.dispatch(frame);
        }
    }
    tracing::info!(endpoint = %name, "endpoint link closed");
    // The next request reconnects; those waiting on this link will get no
    // reply: answer them now rather than at their timeout.
    reader.waiters.lock().clear();
    closed.cancel();
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
