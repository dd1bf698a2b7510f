//! The guest SDK for Switchyard participants.
//!
//! A participant is written once, against the traits of this crate, and runs
//! unchanged in three places:
//!
//! - inside a WebAssembly component, where [`Transaction`], [`Config`], [`Log`]
//!   and [`Clock`] (and, when granted, [`Counters`] and [`Kv`]) are the host's
//!   imports of `switchyard:participant@1.4.0`
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
//! ## Reversals and store-and-forward (contract 1.2.0)
//!
//! A participant that keeps effects of the transactions it commits (velocity
//! counts, loyalty points, coupon redemptions) implements
//! [`Participant::reverse`]: the host calls it, with the original request and
//! response in the transaction and the variables [`TRANLOG_ID`] and
//! [`REVERSAL_REASON`], when a committed transaction is reversed. Delivery is
//! at least once, so undo each `TRANLOG_ID` once (a
//! [`Kv::kv_compare_and_set`] marker). The default has nothing to undo.
//! [`export_participant!`] and [`export_selector!`] export it as the
//! `reversible` interface.
//!
//! Every formatter implements [`Formatter::format_saf`] (it is required):
//! the reversal (0420, 0421 when retransmitted) of a transaction its
//! endpoint did not answer in time or the acquirer reversed, and the advice
//! (0220, 0221) forwarding an acquirer's completion, as a [`SafRequest`]
//! asks. The reply is read by [`Formatter::parse_response`]; the key of the
//! message must differ from the key of a reply to the original (include the
//! response MTI). [`export_formatter!`] exports it as `store-and-forward`.
//!
//! ```
//! use switchyard_sdk::{Counters, Env, Outcome, Participant, TRANLOG_ID, Transaction};
//! use switchyard_sdk::mock::{MockEnv, MockTransaction};
//!
//! /// Counts approvals; a reversal takes its count back, once.
//! #[derive(Default)]
//! struct Approvals;
//!
//! impl Participant for Approvals {
//!     fn prepare(&mut self, _tx: &mut impl Transaction, env: &impl Env) -> Outcome {
//!         match env.counter_add("approvals", "all", 1, 3600) {
//!             Ok(_) => Outcome::Prepared,
//!             Err(_) => Outcome::Aborted,
//!         }
//!     }
//!
//!     fn reverse(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Result<(), String> {
//!         let id = tx.var(TRANLOG_ID).ok_or("no TRANLOG_ID")?.into_owned();
//!         if env.kv_compare_and_set(&format!("rev:{id}"), None, b"1")? {
//!             env.counter_add("approvals", "all", -1, 3600)?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let env = MockEnv::new();
//! Approvals.prepare(&mut MockTransaction::new("0200"), &env);
//! let mut reversal = MockTransaction::new("0200").reversed("42", "68");
//! Approvals.reverse(&mut reversal, &env).unwrap();
//! Approvals.reverse(&mut reversal, &env).unwrap(); // delivered again: no effect
//! assert_eq!(env.counter_sum("approvals", "all", 3600), Ok(0));
//! ```
//!
//! ## Fewer crossings (contract 1.4.0)
//!
//! A call into a component costs far more than the little work most
//! participants do in it. [`export_selector!`] exports `selection`, so the
//! host calls a [`Selector`] once (`prepare`, then `select` when prepared)
//! instead of twice. A participant that joins only to undo something in
//! `abort` sets [`Participant::COMMITS`] to `false`: its `commit` is then
//! never called ([`Outcome::ABORT_ONLY`]).
//!
//! ## Settings checked at load (contract 1.3.0)
//!
//! A plugin whose settings can be wrong implements
//! [`Participant::check_settings`] (or [`Formatter::check_settings`]):
//! `switchyard check`, start-up and a hot swap call it once per configured
//! use of the plugin and refuse the configuration with its
//! [`SettingProblem`]s, each shown with the setting's path
//! (`participants.velocity.config."profile daily"`). The default accepts
//! any settings. Every `export_*!` macro exports it as `settings`.
//!
//! ```
//! use switchyard_sdk::{Config, Env, Outcome, Participant, SettingProblem, Transaction};
//! use switchyard_sdk::mock::MockEnv;
//!
//! #[derive(Default)]
//! struct Limit;
//!
//! impl Participant for Limit {
//!     fn prepare(&mut self, _tx: &mut impl Transaction, _env: &impl Env) -> Outcome {
//!         Outcome::NoJoin
//!     }
//!     fn check_settings(&mut self, config: &impl Config) -> Vec<SettingProblem> {
//!         match config.get("limit") {
//!             Some(v) if v.parse::<u64>().is_err() => {
//!                 vec![SettingProblem::new("limit", format!("{v:?} is not a whole number"))]
//!             }
//!             _ => Vec::new(),
//!         }
//!     }
//! }
//!
//! let problems = Limit.check_settings(&MockEnv::new().with_config("limit", "5,000"));
//! assert_eq!(problems[0].key, "limit");
//! ```
//!
//! ## Costs
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
mod auth_code;
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

pub use auth_code::AuthCodes;
pub use env::{Clock, Config, Counters, Env, Kv, Level, Log, MapConfig};
pub use participant::{
    Formatter, Outbound, Outcome, Participant, REVERSAL_REASON, SafKind, SafRequest, Selector,
    SettingProblem, TRANLOG_ID,
};
pub use transaction::{Transaction, Values};
