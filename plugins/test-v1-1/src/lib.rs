//! The `test-v1-1` formatter, built with plain wit-bindgen against
//! `wit/participant@1.1.0` — before `store-and-forward` existed — to prove a
//! 1.1.0 formatter keeps loading and formatting requests when the host
//! offers 1.2.0, and that the host refuses it as an endpoint's formatter
//! (an endpoint needs `store-and-forward` to reverse a timed-out request).
//!
//! Its wire format is text: a request is `REQ|<DE11>|<DE41>|<DE4>`, a reply
//! `RSP|<DE11>|<DE41>|<DE39>`; the key of both is `<DE11>|<DE41>`.

// The export glue wit-bindgen generates declares `export_name` functions.
#![allow(unsafe_code)]

#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "formatter-plugin",
        path: "../../wit/participant@1.1.0",
    });
}

use bindings::exports::switchyard::participant::formatter::{Guest, Outbound};
use bindings::switchyard::participant::transaction;

struct V11;

/// A request field as text.
fn text(n: u16) -> Result<String, String> {
    let value = transaction::request_field(n).ok_or_else(|| format!("no DE{n}"))?;
    String::from_utf8(value).map_err(|_| format!("DE{n} is not text"))
}

/// The parts of an `RSP` reply.
fn reply_parts(reply: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(reply).map_err(|_| "reply is not text".to_string())?;
    let parts: Vec<String> = text.split('|').map(str::to_owned).collect();
    if parts.len() != 4 || parts[0] != "RSP" {
        return Err(format!("not an RSP reply ({} bytes)", reply.len()));
    }
    Ok(parts)
}

impl Guest for V11 {
    fn format_request() -> Result<Outbound, String> {
        let (stan, terminal, amount) = (text(11)?, text(41)?, text(4)?);
        Ok(Outbound {
            payload: format!("REQ|{stan}|{terminal}|{amount}").into_bytes(),
            key: format!("{stan}|{terminal}"),
        })
    }

    fn reply_key(reply: Vec<u8>) -> Result<String, String> {
        let parts = reply_parts(&reply)?;
        Ok(format!("{}|{}", parts[1], parts[2]))
    }

    fn parse_response(reply: Vec<u8>) -> Result<(), String> {
        let parts = reply_parts(&reply)?;
        transaction::set_result_code(&parts[3]);
        Ok(())
    }
}

bindings::export!(V11 with_types_in bindings);
