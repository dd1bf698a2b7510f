//! The guest SDK for Switchyard participants.
//!
//! A participant is written once, against the traits of this crate, and runs
//! unchanged in three places:
//!
//! - inside a WebAssembly component, where [`Transaction`], [`Config`], [`Log`]
//!   and [`Clock`] (and, when granted, [`Counters`] and [`Kv`]) are the host's
//!   imports of `switchyard:participant@1.1.0`
//!   (the `guest` feature, on by default, and the `export_*!` macros);
//! - in native unit tests, against [`mock::MockTransaction`] and [`mock::MockEnv`];
//! - natively inside the host, which implements the same traits over its own
//!   transaction context to measure a participant with and without the sandbox.
//!   The host depends on this crate with `default-features = false`, so it
//!   never builds wit-bindgen.
//!
//! ```
//! use switchyard_sdk::{Env, Outcome, Participant, Transaction, rc};
//!
//! #[derive(Default)]
//! struct EchoOnly;
//!
//! impl Participant for EchoOnly {
//!     fn prepare(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Outcome {
//!         if tx.request_mti() == "0800" {
//!             return Outcome::NoJoin;
//!         }
//!         env.debug("echo-only: not an 0800");
//!         tx.set_result_code(rc::UNSUPPORTED);
//!         Outcome::Aborted
//!     }
//! }
//!
//! switchyard_sdk::export_participant!(EchoOnly);
//!
//! // The same code, natively, against the in-memory host:
//! use switchyard_sdk::mock::{MockEnv, MockTransaction};
//! let mut tx = MockTransaction::new("0200");
//! assert_eq!(EchoOnly.prepare(&mut tx, &MockEnv::new()), Outcome::Aborted);
//! assert_eq!(tx.rc(), Some("12"));
//! ```
//!
//! A native host implements [`Transaction`] over its own transaction context
//! (lending its buffers as [`std::borrow::Cow::Borrowed`]) and [`Config`],
//! [`Log`] and [`Clock`] over its settings, tracing and clocks (any type
//! implementing the three is an [`Env`]), then calls
//! `plugin.prepare(&mut tx, &env).bits()` exactly where it would call the
//! component's `prepare`.
//!
//! Every trait method of [`Transaction`] is one host call in a component
//! (~0.1–0.3 µs, more for lists): fetch only what you read, once, and several
//! fields in one [`Transaction::request_values`] call. Settings are fixed for
//! an instance's lifetime, so a component reads them from the host once.
//!
//! The crate also owns the payment helpers every participant needs (card
//! numbers, amounts, expiry dates, response codes). It knows nothing of
//! wasmtime, sockets or the ISO 8583 wire format.

mod env;
mod participant;
mod transaction;

pub mod amount;
pub mod card;
pub mod expiry;
pub mod field;
pub mod mock;
pub mod mti;
pub mod rc;

#[cfg(feature = "guest")]
pub mod guest;

/// COBOL numerics for mainframe endpoint formats (zoned overpunch, packed decimal), from the
/// host's codec crate. Feature `cobol`.
#[cfg(feature = "cobol")]
pub use switchyard_iso8583::cobol;

mod export;

pub use env::{Clock, Config, Counters, Env, Kv, Level, Log, MapConfig};
pub use participant::{Formatter, Outbound, Outcome, Participant, Selector};
pub use transaction::{Transaction, Values};
