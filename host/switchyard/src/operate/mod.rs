//! The life cycle's operator commands (`switchyard tranlog`, `saf`, `keys`,
//! `loyalty`, `coupons`): [`cli`]. What they answer with
//! ([`switchyard_admin::ops`]) is shared with the admin server.

pub mod cli;
pub mod hosts;

pub use switchyard_admin::ops::*;
