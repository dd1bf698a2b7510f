//! `switchyard loyalty …` and `switchyard coupons …` ([`cli`]) over
//! [`switchyard_admin::ops::hosts`].

pub mod cli;

pub use switchyard_admin::ops::hosts::*;
