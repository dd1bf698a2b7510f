//! The WebAssembly runtime of Switchyard (wasmtime 48, component model).
//!
//! Owns everything about running plugins: the one `bindgen!` of the
//! participant contract ([`bindings`]), engines and their epoch ticker,
//! compiling plugins once and caching the precompiled artifacts on disk
//! (keyed by content hash and the engine's compatibility hash), checking a
//! plugin's imports against its granted capabilities and its exports against
//! its roles at load time, the sandbox limits (memory cap, per-call deadline,
//! fuel, stack, tables; a slow call gives up its async worker, see
//! `deadline`), per-plugin circuit breakers, instance policies (`reuse` per tenant, `fresh` per
//! transaction), failure policies, per-plugin metrics, the host capabilities
//! plugins import, hot swap and rollback ([`Registry`]), and turning traps
//! into RC 96 failures.
//!
//! It implements the engine's `Participant` and `Formatter` traits — with
//! `reverse` and `format_saf` over the contract's 1.2.0 exports
//! `reversible` and `store-and-forward` (an endpoint's formatter must have
//! the latter: [`Role::EndpointFormatter`]) — and knows nothing of sockets.

pub mod bindings;
mod breaker;
mod deadline;
mod error;
mod host;
mod metrics;
mod options;
mod participant;
mod plugin;
mod registry;
mod runtime;

pub use breaker::BreakerState;
pub use error::LoadError;
pub use host::{Settings, mask_card_numbers};
pub use metrics::{Histogram, LATENCY_BUCKETS, PluginStats};
pub use options::{
    BreakerOptions, Capability, FailurePolicy, InstancePolicy, Limits, PluginOptions,
};
pub use participant::{WasmFormatter, WasmParticipant};
pub use plugin::{Plugin, PluginShared, Role, SettingsCheck};
pub use registry::{Generation, PluginStatus, Registry, RegistryBuilder, SlotId, SwapOutcome};
pub use runtime::{EPOCH_TICK, Runtime, RuntimeOptions};
