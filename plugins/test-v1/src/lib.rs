//! The `test-v1` participant, built with plain wit-bindgen against
//! `wit/participant@1.0.0` — the contract as it was first published — to
//! prove a 1.0.0 plugin keeps loading and working when the host offers 1.1.0.
//!
//! It refuses cash withdrawals (DE3 starting with `01`) with RC 57
//! (transaction not permitted) and lets everything else through.

// The export glue wit-bindgen generates declares `export_name` functions.
#![allow(unsafe_code)]

#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "participant-plugin",
        path: "../../wit/participant@1.0.0",
    });
}

use bindings::exports::switchyard::participant::participant::Guest;
use bindings::switchyard::participant::transaction;

struct V1;

impl Guest for V1 {
    fn prepare() -> u32 {
        match transaction::request_field(3) {
            Some(code) if code.starts_with(b"01") => {
                transaction::set_result_code("57");
                0
            }
            _ => 0x41,
        }
    }
    fn commit() {}
    fn abort() {}
}

bindings::export!(V1 with_types_in bindings);
