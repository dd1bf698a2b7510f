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

use std::net::SocketAddr;
use std::sync::Arc;
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
    /// Most requests in flight per connection; reading pauses beyond it.
    pub max_in_flight: usize,
    /// Most connections at once; accepting pauses beyond it.
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
        let limit = Arc::new(Semaphore::new(opts.max_connections));
        tracing::info!(listener = %opts.name, addr = %self.socket.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            port = opts.port, tenant = %opts.tenant, pipeline = opts.pipeline.name(), "listening");
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = limit.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.socket.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(listener = %opts.name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let opts = opts.clone();
            let shutdown = shutdown.clone();
            let inner = tracker.clone();
            tracker.spawn(async move {
                connection(opts, stream, peer, shutdown, inner).await;
                drop(permit);
            });
        }
        tracing::info!(listener = %opts.name, "stopped accepting");
    }
}

async fn connection(
    opts: Arc<ListenerOptions>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    tracing::debug!(listener = %opts.name, %peer, "connection opened");
    let (read, write) = stream.into_split();
    let mut frames = FramedRead::new(read, opts.framing.codec(opts.max_frame));
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let writer = {
        let mut sink = FramedWrite::new(write, opts.framing.codec(opts.max_frame));
        let name = opts.name.clone();
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                if let Err(e) = sink.feed(frame).await {
                    tracing::info!(listener = %name, %peer, error = %e, "write failed; closing");
                    return;
                }
                // Batch what is already queued into one flush.
                while let Ok(frame) = rx.try_recv() {
                    if let Err(e) = sink.feed(frame).await {
                        tracing::info!(listener = %name, %peer, error = %e, "write failed; closing");
                        return;
                    }
                }
                if let Err(e) = SinkExt::<Bytes>::flush(&mut sink).await {
                    tracing::info!(listener = %name, %peer, error = %e, "write failed; closing");
                    return;
                }
            }
        })
    };
    let in_flight = Arc::new(Semaphore::new(opts.max_in_flight));
    loop {
        let permit = match in_flight.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => break,
        };
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            n = tokio::time::timeout(opts.idle_timeout, frames.next()) => n,
        };
        let frame = match next {
            Err(_) => {
                tracing::info!(listener = %opts.name, %peer, idle_s = opts.idle_timeout.as_secs(), "idle timeout; closing");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::warn!(listener = %opts.name, %peer, error = %e, "framing error; closing the connection");
                break;
            }
            Ok(Some(Ok(frame))) => frame.freeze(),
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
        let tx = tx.clone();
        tracker.spawn(async move {
            transaction(&opts, peer, frame, tpdu, received, tx).await;
            drop(permit);
        });
    }
    drop(tx);
    // The writer ends once every transaction of this connection responded.
    let _ = writer.await;
    tracing::debug!(listener = %opts.name, %peer, "connection closed");
}

async fn transaction(
    opts: &ListenerOptions,
    peer: SocketAddr,
    frame: Bytes,
    tpdu: Option<Tpdu>,
    received: Instant,
    tx: mpsc::UnboundedSender<Bytes>,
) {
    let mut profiler = Profiler::start_at(received);
    let request = match opts.spec.decode(frame.clone()) {
        Ok(m) => m,
        Err(error) => {
            reject(opts, peer, frame, tpdu, &error, &tx);
            return;
        }
    };
    profiler.checkpoint(Label::Fixed("parse-request"));
    let mut ctx = Context::new(opts.tenant.clone(), opts.name.clone(), opts.port, request);
    ctx.profiler = profiler;
    ctx.spec = Some(opts.spec.clone());
    let verdict = run(opts, &mut ctx).await;
    if ctx.respond {
        ConnectionResponder {
            tx,
            spec: opts.spec.clone(),
            listener: opts.name.clone(),
            tpdu,
        }
        .respond(&ctx.response);
    } else {
        tracing::debug!(listener = %opts.name, "pipeline sent no response");
    }
    let mti = ctx.request.mti();
    tracing::info!(
        target: "switchyard::profiler",
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
    if let Some(observer) = &opts.observer {
        observer(Completed {
            listener: opts.name.clone(),
            mti: mti.as_str().to_owned(),
            stan: ctx.request.get_str(11).map(str::to_owned),
            rc: ctx.result_code().map(str::to_owned),
            trace: ctx
                .profiler
                .trace(Some(&opts.pipeline), ctx.external)
                .to_string(),
        });
    }
}

/// Runs the request through the life cycle and the pipeline; `None` when
/// the life cycle answered it without the pipeline (repeat, duplicate,
/// reversal, completion). Either way the response, when there is one, is
/// recorded before this returns.
async fn run(opts: &ListenerOptions, ctx: &mut Context) -> Option<Verdict> {
    let Some(lifecycle) = &opts.lifecycle else {
        return Some(opts.pipeline.run(ctx).await.verdict);
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
            lifecycle.finish(ctx, &disposition, &opts.pipeline).await;
            Some(disposition.verdict)
        }
    }
}

/// Answers an undecodable frame with RC 30 when MTI and STAN can be read.
fn reject(
    opts: &ListenerOptions,
    peer: SocketAddr,
    frame: Bytes,
    tpdu: Option<Tpdu>,
    error: &switchyard_iso8583::DecodeError,
    tx: &mpsc::UnboundedSender<Bytes>,
) {
    let (partial, _) = opts.spec.decode_partial(frame);
    let readable = partial.filter(|m| m.contains(11) && m.mti().is_request());
    match readable {
        Some(request) => {
            tracing::warn!(listener = %opts.name, %peer, mti = request.mti().as_str(),
                stan = request.get_str(11).unwrap_or(""), error = %error,
                "undecodable request; answered with 30");
            let mut response = Message::default();
            complete_response(&request, rc::FORMAT_ERROR, &mut response);
            ConnectionResponder {
                tx: tx.clone(),
                spec: opts.spec.clone(),
                listener: opts.name.clone(),
                tpdu,
            }
            .respond(&response);
        }
        None => {
            tracing::warn!(listener = %opts.name, %peer, error = %error,
                "undecodable frame without a readable MTI and STAN; dropped");
        }
    }
}

/// Encodes a response and queues it for the connection's writer.
struct ConnectionResponder {
    tx: mpsc::UnboundedSender<Bytes>,
    spec: Arc<Spec>,
    listener: Arc<str>,
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
    fn respond(&self, response: &Message) {
        let frame = match self.encode(response) {
            Ok(f) => f,
            Err(e) => {
                // A participant put something the spec cannot carry: answer
                // 96 with the bare echo rather than nothing.
                tracing::error!(listener = %self.listener, stan = response.get_str(11).unwrap_or(""),
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
                        tracing::error!(listener = %self.listener, error = %e, "fallback response does not encode either; dropped");
                        return;
                    }
                }
            }
        };
        // The connection may be gone; then there is no one to answer.
        let _ = self.tx.send(frame);
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
