//! The network side of Switchyard (tokio).
//!
//! Owns every socket: acquirer [`listener`]s (framing, many connections,
//! several requests in flight per connection, idle timeout, graceful
//! shutdown), the `send` step that writes a transaction's response back,
//! [`endpoint`] links (one multiplexed connection per endpoint, replies
//! matched by key, timeouts answered with RC 91, external time recorded) and
//! the store-and-forward [`forwarder`] (reversals and advices, retried
//! until acknowledged) and the endpoint [`simulator`] of the default wire
//! contract.
//!
//! It runs pipelines through `switchyard-engine` and formats endpoint
//! messages through the engine's `Formatter` trait; it knows nothing of
//! WebAssembly.
#![forbid(unsafe_code)]

mod admission;
pub mod endpoint;
pub mod forwarder;
pub mod framing;
pub mod link;
pub mod listener;
pub mod mainframe;
pub mod reject;
pub mod simulator;
pub mod tls;

pub use endpoint::{Endpoint, EndpointOptions, ExchangeError, Links, QueryEndpoint};
pub use forwarder::{
    DEFAULT_ACK_CODES, EndpointDelivery, Forwarder, ForwarderOptions, ForwarderStats,
};
pub use framing::Framing;
pub use link::{Backoff, EndpointState, LinkStatus};
pub use listener::{
    Completed, Listener, ListenerOptions, ListenerStats, Observer, SendResponse, TransactionLog,
};
pub use mainframe::{MainframeOptions, MainframeSimulator};
pub use simulator::{Simulator, SimulatorOptions};
pub use tls::{ClientTls, ClientTlsFiles, ServerTls, ServerTlsFiles, TlsError};
