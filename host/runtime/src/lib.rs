//! The WebAssembly runtime of Switchyard (wasmtime 48, component model).
//!
//! Owns everything about running plugins: the one `bindgen!` of the
//! participant contract ([`bindings`]), the engine and its epoch ticker,
//! compiling plugins once and caching the precompiled artifacts on disk
//! (keyed by content hash and the engine's compatibility hash), checking a
//! plugin's imports and exports at load time, the sandbox limits (memory cap,
//! per-call deadline, stack, tables), per-tenant instance reuse, the host
//! capabilities plugins import, and turning traps into RC 96 failures.
//!
//! It implements the engine's `Participant` and `Formatter` traits and knows
//! nothing of sockets.

pub mod bindings;
mod error;
mod host;
mod participant;
mod plugin;
mod runtime;

pub use error::LoadError;
pub use host::{Settings, mask_card_numbers};
pub use participant::{WasmFormatter, WasmParticipant};
pub use plugin::{Limits, Plugin, PluginStats, Role};
pub use runtime::{EPOCH_TICK, Runtime, RuntimeOptions};
