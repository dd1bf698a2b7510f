//! The formatter of endpoint `xxx`: the same ISO 8583 spec as the default
//! listener wire (1987, ASCII fields, binary bitmap; [`Spec::iso87_ascii`])
//! behind a 5-byte TPDU header: `0x60`, destination (2 bytes), source
//! (2 bytes).
//!
//! Settings:
//! - `tpdu_destination`: 4 hex digits, default `0001`;
//! - `tpdu_source`: 4 hex digits, default `0000`.
//!
//! Behaviour:
//! - `format-request`: the request's MTI and every field it has, unchanged
//!   (the endpoint authorizes: it gets the card data; nothing of it is ever
//!   logged). The matching key is `DE11|DE41`, e.g. `000123|TERM0001`; a
//!   request without either cannot be matched and is refused.
//! - `reply-key`: the same key, read from a reply.
//! - `parse-response`: the reply's DE39 becomes the result code, its DE38
//!   (when present) the response's DE38. A reply that is not a response
//!   message or has no DE39 is refused with the reason.
//!
//! The link's length framing is the host's; the TPDU is this formatter's.

use switchyard_iso8583::{Bytes, BytesMut, Message, Mti, Spec};
use switchyard_sdk::{Config, Env, Formatter, Outbound, Transaction, field};

/// The first byte of a TPDU.
pub const TPDU_ID: u8 = 0x60;
/// Length of the TPDU header.
pub const TPDU_LEN: usize = 5;
/// Destination address when `tpdu_destination` is not configured.
pub const DEFAULT_TPDU_DESTINATION: u16 = 0x0001;
/// Source address when `tpdu_source` is not configured.
pub const DEFAULT_TPDU_SOURCE: u16 = 0x0000;

/// The formatter of endpoint `xxx`. Holds the spec, built once per instance.
#[derive(Clone, Debug)]
pub struct XxxFormatter {
    spec: Spec,
}

impl Default for XxxFormatter {
    fn default() -> XxxFormatter {
        XxxFormatter {
            spec: Spec::iso87_ascii(),
        }
    }
}

/// Reads a TPDU address setting: exactly 4 hex digits.
fn tpdu_address(config: &impl Config, key: &str, default: u16) -> Result<u16, String> {
    match config.get(key) {
        None => Ok(default),
        Some(text) => {
            let text = text.trim();
            if text.len() == 4 && text.bytes().all(|c| c.is_ascii_hexdigit()) {
                u16::from_str_radix(text, 16).map_err(|e| e.to_string())
            } else {
                Err(format!(
                    "formatter-xxx: setting `{key}` = {text:?} is not 4 hex digits"
                ))
            }
        }
    }
}

/// The TPDU header of a request.
pub fn tpdu(config: &impl Config) -> Result<[u8; TPDU_LEN], String> {
    let [d1, d2] =
        tpdu_address(config, "tpdu_destination", DEFAULT_TPDU_DESTINATION)?.to_be_bytes();
    let [s1, s2] = tpdu_address(config, "tpdu_source", DEFAULT_TPDU_SOURCE)?.to_be_bytes();
    Ok([TPDU_ID, d1, d2, s1, s2])
}

/// The matching key of a message: `DE11|DE41`.
pub fn matching_key(message: &Message) -> Result<String, String> {
    let part = |n: u16, name: &str| {
        message
            .get_str(n)
            .ok_or_else(|| format!("no DE{n} ({name}) to match the reply by"))
    };
    Ok(format!(
        "{}|{}",
        part(field::STAN, "STAN")?,
        part(field::TERMINAL_ID, "terminal id")?
    ))
}

impl XxxFormatter {
    /// Decodes an endpoint message: TPDU, then the ISO 8583 message.
    pub fn decode_reply(&self, reply: &[u8]) -> Result<Message, String> {
        if reply.len() < TPDU_LEN {
            return Err(format!(
                "reply of {} bytes is shorter than its TPDU",
                reply.len()
            ));
        }
        if reply[0] != TPDU_ID {
            return Err(format!(
                "reply does not start with a TPDU (0x{TPDU_ID:02x}): 0x{:02x}",
                reply[0]
            ));
        }
        self.spec
            .decode(Bytes::copy_from_slice(&reply[TPDU_LEN..]))
            .map_err(|e| format!("reply after the TPDU: {e}"))
    }
}

impl Formatter for XxxFormatter {
    fn format_request(
        &mut self,
        tx: &mut impl Transaction,
        env: &impl Env,
    ) -> Result<Outbound, String> {
        let header = tpdu(env)?;
        // Two host calls whatever the message: the field list, then the MTI
        // and every value at once.
        let mut wanted = vec![0u16];
        wanted.extend_from_slice(&tx.request_fields());
        let values = tx.request_values(&wanted);
        let mti =
            Mti::new(values.str(0).unwrap_or_default()).map_err(|e| format!("request MTI: {e}"))?;
        let mut message = Message::with_capacity(mti, wanted.len() - 1);
        for (i, &n) in wanted.iter().enumerate().skip(1) {
            if let Some(value) = values.get(i) {
                message
                    .try_set(n, value.to_vec())
                    .map_err(|e| format!("request: {e}"))?;
            }
        }
        let key = matching_key(&message).map_err(|e| format!("request has {e}"))?;
        let mut payload = BytesMut::with_capacity(TPDU_LEN + 256);
        payload.extend_from_slice(&header);
        self.spec
            .encode_into(&message, &mut payload)
            .map_err(|e| format!("encoding the request: {e}"))?;
        Ok(Outbound {
            payload: payload.to_vec(),
            key,
        })
    }

    fn reply_key(&mut self, reply: &[u8], _env: &impl Env) -> Result<String, String> {
        let message = self.decode_reply(reply)?;
        matching_key(&message).map_err(|e| format!("reply has {e}"))
    }

    fn parse_response(
        &mut self,
        reply: &[u8],
        tx: &mut impl Transaction,
        _env: &impl Env,
    ) -> Result<(), String> {
        let message = self.decode_reply(reply)?;
        if message.mti().is_request() {
            return Err(format!(
                "reply MTI {} is a request, not a response",
                message.mti()
            ));
        }
        let code = message
            .get_str(field::RESPONSE_CODE)
            .ok_or("reply has no DE39 (response code)")?;
        if let Some(auth_id) = message.get(field::AUTH_ID) {
            tx.set_response_field(field::AUTH_ID, auth_id)
                .map_err(|e| format!("DE38 of the reply refused: {e}"))?;
        }
        tx.set_result_code(code);
        Ok(())
    }
}

switchyard_sdk::export_formatter!(XxxFormatter);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::mock::{MockEnv, MockTransaction};

    /// The published test card; passes Luhn.
    const TEST_PAN: &str = "4761739001010119";
    /// The test card with its check digit changed: fails Luhn.
    const BAD_LUHN_PAN: &str = "4761739001010118";

    fn purchase() -> MockTransaction {
        MockTransaction::new("0200")
            .with_field(2, TEST_PAN)
            .with_field(3, "000000")
            .with_field(4, "000000001000")
            .with_field(11, "000123")
            .with_field(14, "2712")
            .with_field(41, "TERM0001")
            .with_field(49, "840")
    }

    /// What endpoint xxx answers: TPDU with the addresses swapped, then the
    /// response message.
    fn reply(mti: &str, fields: &[(u16, &str)]) -> Vec<u8> {
        let mut message = Message::new(Mti::new(mti).unwrap());
        for &(n, value) in fields {
            message.set(n, value.as_bytes().to_vec());
        }
        let mut out = vec![TPDU_ID, 0x00, 0x00, 0x00, 0x01];
        out.extend_from_slice(&Spec::iso87_ascii().encode(&message).unwrap());
        out
    }

    fn approval() -> Vec<u8> {
        reply(
            "0210",
            &[
                (3, "000000"),
                (4, "000000001000"),
                (11, "000123"),
                (38, "XA1234"),
                (39, "00"),
                (41, "TERM0001"),
            ],
        )
    }

    #[test]
    fn a_request_is_the_tpdu_then_the_iso87_ascii_message() {
        let mut tx = MockTransaction::new("0200")
            .with_field(3, "000000")
            .with_field(4, "000000001000")
            .with_field(11, "000123")
            .with_field(41, "TERM0001");
        let out = XxxFormatter::default()
            .format_request(&mut tx, &MockEnv::new())
            .unwrap();
        let mut golden = vec![0x60, 0x00, 0x01, 0x00, 0x00];
        golden.extend_from_slice(b"0200");
        golden.extend_from_slice(&[0x30, 0x20, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00]);
        golden.extend_from_slice(b"000000000000001000000123TERM0001");
        assert_eq!(out.payload, golden);
        assert_eq!(out.key, "000123|TERM0001");
    }

    #[test]
    fn every_request_field_is_sent_unchanged() {
        let mut tx = purchase().with_field(35, format!("{TEST_PAN}=27121010000000000"));
        let mut formatter = XxxFormatter::default();
        let out = formatter.format_request(&mut tx, &MockEnv::new()).unwrap();
        let sent = formatter.decode_reply(&out.payload).unwrap();
        assert_eq!(sent.mti().as_str(), "0200");
        let sent_fields: Vec<u16> = sent.field_numbers().collect();
        assert_eq!(sent_fields, [2, 3, 4, 11, 14, 35, 41, 49]);
        for n in sent_fields {
            assert_eq!(Some(&*tx.request_field(n).unwrap()), sent.get(n), "DE{n}");
        }
        assert!(!format!("{out:?}").contains(TEST_PAN));
    }

    #[test]
    fn the_formatter_does_not_judge_the_card() {
        let mut tx = purchase().with_field(2, BAD_LUHN_PAN);
        let mut formatter = XxxFormatter::default();
        let out = formatter.format_request(&mut tx, &MockEnv::new()).unwrap();
        let sent = formatter.decode_reply(&out.payload).unwrap();
        assert_eq!(sent.get(2), Some(BAD_LUHN_PAN.as_bytes()));
    }

    #[test]
    fn tpdu_addresses_are_configurable() {
        let env = MockEnv::new()
            .with_config("tpdu_destination", "0A1b")
            .with_config("tpdu_source", "ff00");
        let out = XxxFormatter::default()
            .format_request(&mut purchase(), &env)
            .unwrap();
        assert_eq!(out.payload[..5], [0x60, 0x0A, 0x1B, 0xFF, 0x00]);
        for bad in ["1", "00001", "GGGG", "0x01", ""] {
            let env = MockEnv::new().with_config("tpdu_source", bad);
            let err = XxxFormatter::default()
                .format_request(&mut purchase(), &env)
                .unwrap_err();
            assert!(err.contains("`tpdu_source`"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_request_without_stan_or_terminal_cannot_be_matched() {
        for n in [11, 41] {
            let err = XxxFormatter::default()
                .format_request(&mut purchase().without_field(n), &MockEnv::new())
                .unwrap_err();
            assert!(err.contains(&format!("DE{n}")), "{err}");
        }
    }

    #[test]
    fn the_reply_key_matches_the_request_key() {
        let mut formatter = XxxFormatter::default();
        let env = MockEnv::new();
        let out = formatter.format_request(&mut purchase(), &env).unwrap();
        assert_eq!(formatter.reply_key(&approval(), &env), Ok(out.key));
    }

    #[test]
    fn reply_key_refuses_what_is_not_a_tpdu_message() {
        let mut formatter = XxxFormatter::default();
        let env = MockEnv::new();
        assert!(formatter.reply_key(b"\x60\x00", &env).is_err());
        let mut no_tpdu = approval();
        no_tpdu[0] = 0x30;
        assert!(
            formatter
                .reply_key(&no_tpdu, &env)
                .unwrap_err()
                .contains("TPDU")
        );
        let truncated = &approval()[..20];
        assert!(formatter.reply_key(truncated, &env).is_err());
        let no_terminal = reply("0210", &[(11, "000123"), (39, "00")]);
        let err = formatter.reply_key(&no_terminal, &env).unwrap_err();
        assert!(err.contains("DE41"), "{err}");
    }

    #[test]
    fn an_approval_sets_the_result_code_and_auth_code() {
        let mut tx = purchase();
        XxxFormatter::default()
            .parse_response(&approval(), &mut tx, &MockEnv::new())
            .unwrap();
        assert_eq!(tx.rc(), Some("00"));
        assert_eq!(tx.response()[&38], b"XA1234");
    }

    #[test]
    fn the_endpoints_own_code_is_passed_through() {
        for code in ["05", "51", "14"] {
            let decline = reply("0210", &[(11, "000123"), (39, code), (41, "TERM0001")]);
            let mut tx = purchase();
            XxxFormatter::default()
                .parse_response(&decline, &mut tx, &MockEnv::new())
                .unwrap();
            assert_eq!(tx.rc(), Some(code));
            assert!(tx.response().is_empty(), "no DE38 without one in the reply");
        }
    }

    #[test]
    fn a_reply_without_de39_or_that_is_a_request_is_refused() {
        let mut tx = purchase();
        let no_code = reply("0210", &[(11, "000123"), (41, "TERM0001")]);
        let err = XxxFormatter::default()
            .parse_response(&no_code, &mut tx, &MockEnv::new())
            .unwrap_err();
        assert!(err.contains("DE39"), "{err}");
        let request = reply("0200", &[(11, "000123"), (39, "00"), (41, "TERM0001")]);
        let err = XxxFormatter::default()
            .parse_response(&request, &mut tx, &MockEnv::new())
            .unwrap_err();
        assert!(err.contains("request"), "{err}");
        assert_eq!(tx.rc(), None);
    }

    #[test]
    fn nothing_is_logged() {
        let env = MockEnv::new();
        let mut formatter = XxxFormatter::default();
        let mut tx = purchase();
        formatter.format_request(&mut tx, &env).unwrap();
        formatter.reply_key(&approval(), &env).unwrap();
        formatter
            .parse_response(&approval(), &mut tx, &env)
            .unwrap();
        assert!(env.logs().is_empty());
    }
}
