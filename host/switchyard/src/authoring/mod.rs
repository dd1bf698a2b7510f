//! Plugin authoring: what `switchyard plugin new` and `switchyard plugin
//! test` do.
//!
//! - [`scaffold`]: creates a standalone plugin crate (participant, selector
//!   or formatter) with a passing native test, the guest SDK and the WIT
//!   contract vendored into it so that it builds outside this repository;
//! - [`harness`]: runs one plugin, in the real runtime, against one message,
//!   without a switch, and reports what it did ([`harness::Report`]);
//! - [`cli`]: the two subcommands' arguments and output.
//!
//! Loading, sandboxing and the host capabilities are `switchyard-runtime`'s;
//! the transaction context is `switchyard-engine`'s. This module only drives
//! them.

pub mod cli;
pub mod harness;
mod report;
pub mod scaffold;
mod vendor;
