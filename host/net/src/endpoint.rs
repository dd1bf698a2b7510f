//! Endpoint links and the `query-endpoint` step.
//!
//! One multiplexed TCP connection per endpoint, opened on first use and
//! re-opened after it drops. Requests are written as they come; replies are
//! matched to their requests by the key the endpoint's formatter gives both
//! (e.g. STAN + terminal), so many transactions share the link. A request
//! that gets no reply within the endpoint's timeout, or cannot be sent at
//! all, aborts with RC 91. The time spent waiting is the transaction's
//! *external* time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use switchyard_engine::{AsyncParticipant, Context, Failure, Formatter, Outcome, rc};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::framing::Framing;

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

type Waiters = Mutex<HashMap<String, oneshot::Sender<Bytes>>>;

/// An endpoint: its formatter and its link.
pub struct Endpoint {
    options: EndpointOptions,
    formatter: Arc<dyn Formatter>,
    waiters: Arc<Waiters>,
    link: tokio::sync::Mutex<Option<mpsc::UnboundedSender<Bytes>>>,
}

impl Endpoint {
    /// An endpoint reached per `options`, speaking `formatter`'s format.
    pub fn new(options: EndpointOptions, formatter: Arc<dyn Formatter>) -> Endpoint {
        Endpoint {
            options,
            formatter,
            waiters: Arc::default(),
            link: tokio::sync::Mutex::new(None),
        }
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.options.name
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
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        let mut sink = FramedWrite::new(write, self.options.framing.codec(self.options.max_frame));
        let name = self.options.name.clone();
        let closed = tokio_util::sync::CancellationToken::new();
        let writer_closed = closed.clone();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    _ = writer_closed.cancelled() => break,
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
        });
        let mut frames = FramedRead::new(read, self.options.framing.codec(self.options.max_frame));
        let name = self.options.name.clone();
        let formatter = self.formatter.clone();
        let waiters = self.waiters.clone();
        tokio::spawn(async move {
            while let Some(frame) = frames.next().await {
                let frame = match frame {
                    Ok(f) => f.freeze(),
                    Err(e) => {
                        tracing::warn!(endpoint = %name, error = %e, "endpoint link framing error; reconnecting");
                        break;
                    }
                };
                if frame.is_empty() {
                    continue;
                }
                match formatter.reply_key(&frame) {
                    Ok(key) => match waiters.lock().remove(&key) {
                        Some(waiter) => {
                            let _ = waiter.send(frame);
                        }
                        None => {
                            tracing::warn!(endpoint = %name, key = %key, "reply matches no waiting request (late or unsolicited); dropped")
                        }
                    },
                    Err(f) => {
                        tracing::warn!(endpoint = %name, error = %f, "reply without a readable key; dropped")
                    }
                }
            }
            tracing::info!(endpoint = %name, "endpoint link closed");
            // The next request reconnects; those waiting on this link will
            // get no reply: answer them now rather than at their timeout.
            waiters.lock().clear();
            closed.cancel();
        });
        tracing::info!(endpoint = %self.options.name, address = %self.options.address, "endpoint link connected");
        *link = Some(tx.clone());
        Ok(tx)
    }

    /// Sends the transaction to the endpoint and reads the reply into it.
    /// `Ok(false)`: no reply in time or unreachable (RC 91 set).
    pub async fn query(&self, ctx: &mut Context) -> Result<bool, Failure> {
        let outbound = self.formatter.format_request(ctx)?;
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + self.options.timeout);
        let (tx, rx) = oneshot::channel();
        {
            let mut waiters = self.waiters.lock();
            if waiters.contains_key(&outbound.key) {
                return Err(Failure::new(
                    switchyard_engine::FailureKind::Rejected,
                    format!(
                        "endpoint {}: a request with key {} is already waiting for its reply",
                        self.options.name, outbound.key
                    ),
                ));
            }
            waiters.insert(outbound.key.clone(), tx);
        }
        let sent = tokio::time::timeout_at(deadline, async {
            let link = self.sender().await?;
            link.send(Bytes::from(outbound.payload))
                .map_err(|_| std::io::Error::other("link closed"))
        })
        .await;
        let reply = match sent {
            Ok(Ok(())) => tokio::time::timeout_at(deadline, rx)
                .await
                .ok()
                .and_then(Result::ok),
            Ok(Err(e)) => {
                tracing::warn!(endpoint = %self.options.name, address = %self.options.address, error = %e, "endpoint unreachable");
                None
            }
            Err(_) => None,
        };
        ctx.external = Some(started.elapsed());
        match reply {
            Some(frame) => {
                self.formatter.parse_response(ctx, &frame)?;
                Ok(true)
            }
            None => {
                self.waiters.lock().remove(&outbound.key);
                ctx.set_result_code(rc::ISSUER_UNAVAILABLE);
                Ok(false)
            }
        }
    }
}

/// The `query-endpoint` step: switches the transaction out to an endpoint.
/// Aborts with RC 91 when the endpoint does not answer in time; an answer
/// (approved or declined) is passed through and the step prepares.
pub struct QueryEndpoint {
    endpoint: Arc<Endpoint>,
}

impl QueryEndpoint {
    /// A step that queries `endpoint`.
    pub fn new(endpoint: Arc<Endpoint>) -> QueryEndpoint {
        QueryEndpoint { endpoint }
    }
}

impl AsyncParticipant for QueryEndpoint {
    fn prepare<'a>(&'a self, ctx: &'a mut Context) -> BoxFuture<'a, Result<Outcome, Failure>> {
        Box::pin(async move {
            Ok(if self.endpoint.query(ctx).await? {
                Outcome::PREPARED
            } else {
                Outcome::ABORTED
            })
        })
    }
}
