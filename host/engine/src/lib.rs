//! The transaction engine of Switchyard.
//!
//! Owns what a transaction *is* while it crosses the switch, independent of
//! sockets and of wasmtime:
//! - [`Context`]: the request, the response being built, the result code,
//!   context variables (`PORT`, `TENANT`, `LISTENER`, `MTI`, and whatever
//!   participants set) and the [`Profiler`];
//! - [`Pipeline`]: jPOS TransactionManager semantics — `prepare` in order,
//!   group selectors splicing groups in, then `commit` or `abort` of every
//!   participant that joined, in the same order;
//! - the [`Participant`] / [`AsyncParticipant`] traits that native steps and
//!   the WASM runtime implement, and the [`Formatter`] trait for endpoint
//!   formats;
//! - the [`ports`] the store implements (tranlog, store-and-forward queue,
//!   keyring, kv, counters, swap history) and the money-safe [`lifecycle`]
//!   built on them (repeats, duplicates, reversals, timeouts);
//! - the host steps that need nothing from the outside world: [`steps::Close`]
//!   (builds the response of the default wire contract) and [`steps::LogStep`].
//!
//! It knows nothing of TCP (see `switchyard-net`) nor of WebAssembly (see
//! `switchyard-runtime`): a pipeline of native participants runs here alone,
//! which is how the cost of the sandbox is measured side by side.
#![forbid(unsafe_code)]

mod context;
mod extensions;
pub mod lifecycle;
mod participant;
mod pipeline;
pub mod ports;
mod profiler;
pub mod rc;
pub mod saf;
pub mod steps;

pub use context::{Context, ContextData, HostVar, UpstreamLeg};
pub use extensions::Extensions;
pub use lifecycle::{Admission, Lifecycle};
pub use participant::{
    AsyncParticipant, Failure, FailureKind, Formatter, Outbound, Outcome, Participant, SafMessage,
};
pub use pipeline::{
    BeginHook, Disposition, Node, NodeId, Pipeline, PipelineBuilder, PipelineError, Step, Verdict,
};
pub use profiler::{CompactTrace, Label, MAX_CHECKPOINTS, Profiler, Trace};
pub use switchyard_iso8583 as iso8583;
