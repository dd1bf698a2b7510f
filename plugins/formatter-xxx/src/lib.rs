//! The formatter of endpoint `xxx`: the same ISO 8583 spec as the default
//! listener wire (1987, ASCII fields, binary bitmap; [`Spec::iso87_ascii`])
//! behind a 5-byte TPDU header: `0x60`, destination (2 bytes), source
//! (2 bytes).
//!
//! Settings:
//! - `tpdu_destination`: 4 hex digits, default `0001`;
//! - `tpdu_source`: 4 hex digits, default `0000`.
//!
//! Any other key, or an address that is not 4 hex digits, is refused when
//! the plugin is loaded (`check_settings`, contract 1.3.0).
//!
//! Behaviour:
//! - `format-request`: the request's MTI and every field it has, unchanged
//!   (the endpoint authorizes: it gets the card data; nothing of it is ever
//!   logged). An ISO 8583:1993 request (MTI `1xxx`, from a listener on an
//!   `iso93-*` spec) is translated to 1987 first ([`to_1987`]): 1100 → 0100,
//!   1200 → 0200, 1220 → 0220; DE12 (local date and time, YYMMDDhhmmss)
//!   becomes DE12 (hhmmss) and DE13 (MMDD); the fields that mean the same in
//!   both versions ([`SAME_IN_1987_AND_1993`]) are kept and the others (the
//!   POS data code DE22, the function code DE24, DE13 "date effective", …)
//!   are left out. The endpoint's 2-character response code comes back
//!   unchanged: the acquirer's listener writes it as the 1993 action code.
//!   The matching key is `RESPONSE_MTI|DE11|DE41`, e.g.
//!   `0210|000123|TERM0001` for an 0200; a request without DE11 or DE41
//!   cannot be matched and is refused.
//! - `reply-key`: the same key, read from a reply. The key's MTI is the MTI
//!   of the response a message expects or is ([`key_mti`]): 0200 and 0210
//!   give `0210`, 0420, 0421 and 0430 give `0430`, 0220 and 0221 give
//!   `0230`. A late 0210 therefore never matches a reversal waiting for its
//!   0430.
//! - `parse-response`: the reply's DE39 becomes the result code, its DE38
//!   (when present) the response's DE38. A reply that is not a response
//!   message or has no DE39 is refused with the reason. It reads the replies
//!   to reversals and advices too.
//! - `format-saf` (contract 1.2.0), see [`reversal`] and [`advice`]:
//!   - a **reversal** is an 0420 (an 0421 when it is a retransmission)
//!     carrying the original's DE 2, 3, 4, 11, 12, 13, 14, 37, 41, 42 and
//!     49 (those present; the same STAN), a new DE7 (the host clock's time,
//!     UTC, `MMDDhhmmss`), DE39 = the reversal's reason (`68` for a timeout)
//!     and DE90 = original MTI (4) + original DE11 (6) + original DE7 (10,
//!     zeros when it had none) + DE32 (11, zero-filled on the left) + DE33
//!     (11, zero-filled on the left), see [`original_data_elements`];
//!   - an **advice** is the acquirer's 0220 as received, every field it
//!     carries (its own DE39, if any: the advice's reason is not added), as
//!     an 0221 when it is a retransmission;
//!
//!   both behind the same TPDU, keyed `0430|DE11|DE41` and `0230|DE11|DE41`.
//!
//! The link's length framing is the host's; the TPDU is this formatter's.

use switchyard_iso8583::{Bytes, BytesMut, Message, Mti, Spec};
use switchyard_sdk::{
    Config, Env, Formatter, Outbound, SafKind, SafRequest, SettingProblem, Transaction, field,
};

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

/// DE32: acquiring institution identification code.
pub const ACQUIRER_ID: u16 = 32;
/// DE33: forwarding institution identification code.
pub const FORWARDER_ID: u16 = 33;
/// DE12: local transaction time.
pub const LOCAL_TIME: u16 = 12;
/// DE13: local transaction date.
pub const LOCAL_DATE: u16 = 13;
/// DE90: original data elements of a reversal.
pub const ORIGINAL_DATA: u16 = 90;

/// Fields whose format and meaning are the same in ISO 8583:1987 and
/// ISO 8583:1993: what [`to_1987`] keeps of a 1993 request.
pub const SAME_IN_1987_AND_1993: [u16; 22] = [
    2, 3, 4, 5, 6, 7, 10, 11, 14, 18, 19, 32, 33, 35, 37, 41, 42, 45, 49, 51, 52, 55,
];

/// `message` as ISO 8583:1987, the version endpoint `xxx` speaks: itself
/// when its MTI is already 1987 (`0xxx`); for an ISO 8583:1993 message
/// (`1xxx`), the MTI with version digit 0, the fields of
/// [`SAME_IN_1987_AND_1993`], and DE12/DE13 (hhmmss, MMDD) from its DE12
/// (YYMMDDhhmmss). Any other MTI version is refused.
pub fn to_1987(message: Message) -> Result<Message, String> {
    let mut mti = *message.mti().as_bytes();
    match mti[0] {
        b'0' => return Ok(message),
        b'1' => mti[0] = b'0',
        _ => {
            return Err(format!(
                "MTI {} is neither ISO 8583:1987 (0xxx) nor :1993 (1xxx)",
                message.mti()
            ));
        }
    }
    let mut out = Message::with_capacity(Mti::from_bytes(mti), SAME_IN_1987_AND_1993.len() + 2);
    for n in SAME_IN_1987_AND_1993 {
        if let Some(value) = message.get(n) {
            out.try_set(n, value.to_vec())
                .map_err(|e| format!("1993 request: {e}"))?;
        }
    }
    if let Some(local) = message.get(LOCAL_TIME) {
        if local.len() != 12 || !local.iter().all(u8::is_ascii_digit) {
            return Err(format!(
                "DE12 of a 1993 request must be 12 digits (YYMMDDhhmmss); it has {} characters",
                local.len()
            ));
        }
        out.set(LOCAL_TIME, local[6..].to_vec());
        out.set(LOCAL_DATE, local[2..6].to_vec());
    }
    Ok(out)
}

/// The fields of the original a reversal carries (those present).
pub const REVERSAL_FIELDS: [u16; 11] = [
    field::PAN,
    field::PROCESSING_CODE,
    field::AMOUNT,
    field::STAN,
    LOCAL_TIME,
    LOCAL_DATE,
    field::EXPIRATION_DATE,
    field::RRN,
    field::TERMINAL_ID,
    field::MERCHANT_ID,
    field::CURRENCY,
];

/// The MTI a matching key is made of: the MTI of the response `mti`
/// expects, or, for a response, its own, with the origin digit 0 (a
/// response's MTI always ends in 0): 0200 → 0210, 0210 → 0210, 0421 → 0430,
/// 0431 → 0430, 0221 → 0230.
pub fn key_mti(mti: Mti) -> Mti {
    let mut digits = *mti.response().unwrap_or(mti).as_bytes();
    digits[3] = b'0';
    Mti::from_bytes(digits)
}

/// The matching key of a message: `RESPONSE_MTI|DE11|DE41` (see
/// [`key_mti`]).
pub fn matching_key(message: &Message) -> Result<String, String> {
    let part = |n: u16, name: &str| {
        message
            .get_str(n)
            .ok_or_else(|| format!("no DE{n} ({name}) to match the reply by"))
    };
    Ok(format!(
        "{}|{}|{}",
        key_mti(message.mti()),
        part(field::STAN, "STAN")?,
        part(field::TERMINAL_ID, "terminal id")?
    ))
}

/// DE7 (transmission date and time) at `unix_millis`: `MMDDhhmmss`, UTC.
pub fn transmission_date_time(unix_millis: i64) -> String {
    let seconds = unix_millis.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil-from-days (H. Hinnant), proleptic Gregorian calendar.
    let z = days + 719_468;
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    format!(
        "{month:02}{day:02}{:02}{:02}{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// DE90 of the reversal of `original`: its MTI (4), DE11 (6), DE7 (10;
/// zeros when it has none), DE32 (11) and DE33 (11), both zero-filled on
/// the left (zeros when absent) — 42 digits.
pub fn original_data_elements(original: &Message) -> Result<String, String> {
    let stan = original
        .get_str(field::STAN)
        .ok_or("the original has no DE11 (STAN)")?;
    let transmitted = original
        .get_str(field::TRANSMISSION_DATE_TIME)
        .unwrap_or("0000000000");
    let institution = |n: u16| -> Result<String, String> {
        let id = original.get_str(n).unwrap_or_default();
        if id.len() > 11 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("DE{n} of the original is not up to 11 digits"));
        }
        Ok(format!("{id:0>11}"))
    };
    if stan.len() != 6 || transmitted.len() != 10 {
        return Err("DE11 or DE7 of the original has the wrong length".into());
    }
    Ok(format!(
        "{}{stan}{transmitted}{}{}",
        original.mti(),
        institution(ACQUIRER_ID)?,
        institution(FORWARDER_ID)?
    ))
}

/// The reversal (0420; 0421 when `retransmission`) of `original`, sent at
/// `now_unix_millis`, with `reason` as DE39. See the crate docs.
pub fn reversal(
    original: &Message,
    retransmission: bool,
    reason: &str,
    now_unix_millis: i64,
) -> Result<Message, String> {
    let mti = if retransmission { "0421" } else { "0420" };
    let mut message = Message::with_capacity(
        Mti::new(mti).map_err(|e| e.to_string())?,
        REVERSAL_FIELDS.len() + 3,
    );
    for n in REVERSAL_FIELDS {
        if let Some(value) = original.get(n) {
            message
                .try_set(n, value.to_vec())
                .map_err(|e| format!("reversal: {e}"))?;
        }
    }
    message.set(
        field::TRANSMISSION_DATE_TIME,
        transmission_date_time(now_unix_millis).into_bytes(),
    );
    message.set(field::RESPONSE_CODE, reason.as_bytes().to_vec());
    message.set(
        ORIGINAL_DATA,
        original_data_elements(original)?.into_bytes(),
    );
    Ok(message)
}

/// The advice forwarding the acquirer's `completion` (an 0220 or 0221):
/// every field it carries, as an 0220, or an 0221 when `retransmission`.
pub fn advice(completion: &Message, retransmission: bool) -> Result<Message, String> {
    let mti = completion.mti();
    if &mti.as_bytes()[..3] != b"022" {
        return Err(format!(
            "an advice forwards an acquirer's 0220; the transaction's request is an {mti}"
        ));
    }
    let mut message = completion.clone();
    message.set_mti(
        Mti::new(if retransmission { "0221" } else { "0220" }).map_err(|e| e.to_string())?,
    );
    Ok(message)
}

impl XxxFormatter {
    /// The transaction's request as a 1987 message ([`to_1987`]): two host
    /// calls whatever the message (the field list, then the MTI and every
    /// value at once).
    fn request(tx: &impl Transaction) -> Result<Message, String> {
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
        to_1987(message)
    }

    /// `message` behind `header`, and its key.
    fn outbound(&self, header: [u8; TPDU_LEN], message: &Message) -> Result<Outbound, String> {
        let key = matching_key(message)?;
        let mut payload = BytesMut::with_capacity(TPDU_LEN + 256);
        payload.extend_from_slice(&header);
        self.spec
            .encode_into(message, &mut payload)
            .map_err(|e| format!("encoding the {} message: {e}", message.mti()))?;
        Ok(Outbound {
            payload: payload.to_vec(),
            key,
        })
    }

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

/// The settings this formatter reads.
pub const SETTINGS: [&str; 2] = ["tpdu_destination", "tpdu_source"];

impl Formatter for XxxFormatter {
    fn check_settings(&mut self, config: &impl Config) -> Vec<SettingProblem> {
        let mut problems = Vec::new();
        for key in SETTINGS {
            if let Err(e) = tpdu_address(config, key, 0) {
                let message = e.strip_prefix("formatter-xxx: ").unwrap_or(&e);
                problems.push(SettingProblem::new(key, message));
            }
        }
        for (key, _) in config.entries() {
            if !SETTINGS.contains(&key.as_str()) {
                problems.push(SettingProblem::new(
                    &key,
                    format!(
                        "formatter-xxx has no setting `{key}` (it reads {})",
                        SETTINGS.join(", ")
                    ),
                ));
            }
        }
        problems
    }

    fn format_request(
        &mut self,
        tx: &mut impl Transaction,
        env: &impl Env,
    ) -> Result<Outbound, String> {
        let header = tpdu(env)?;
        let message = Self::request(tx)?;
        matching_key(&message).map_err(|e| format!("request has {e}"))?;
        self.outbound(header, &message)
    }

    fn format_saf(
        &mut self,
        request: &SafRequest,
        tx: &mut impl Transaction,
        env: &impl Env,
    ) -> Result<Outbound, String> {
        let header = tpdu(env)?;
        let original = Self::request(tx)?;
        let message = match request.kind {
            SafKind::Reversal => {
                matching_key(&original).map_err(|e| format!("the original has {e}"))?;
                reversal(
                    &original,
                    request.retransmission,
                    &request.reason,
                    env.now_unix_millis(),
                )?
            }
            SafKind::Advice => {
                matching_key(&original).map_err(|e| format!("the advice has {e}"))?;
                advice(&original, request.retransmission)?
            }
        };
        self.outbound(header, &message)
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
        assert_eq!(out.key, "0210|000123|TERM0001");
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

    /// An original 0200 as the tranlog keeps it (no DE35/45/52/55), with
    /// fields a reversal does not carry (DE22, DE32, DE33, DE44).
    fn original() -> MockTransaction {
        purchase()
            .with_field(7, "0615115959")
            .with_field(12, "115959")
            .with_field(13, "0615")
            .with_field(22, "051")
            .with_field(32, "12345")
            .with_field(37, "516612345678")
            .with_field(42, "MERCHANT0000001")
            .with_field(44, "extra")
            .with_tranlog_id("42")
    }

    /// The golden reversal of [`original`]: TPDU, `mti`, and `de7` as its
    /// transmission time.
    fn golden_reversal(mti: &[u8], de7: &[u8]) -> Vec<u8> {
        let mut golden = vec![0x60, 0x00, 0x01, 0x00, 0x00];
        golden.extend_from_slice(mti);
        // Primary bitmap: 1 (secondary), 2, 3, 4, 7 | 11, 12, 13, 14 | – | – |
        // 37, 39 | 41, 42 | 49 | –; secondary: 90.
        golden.extend_from_slice(&[0xF2, 0x3C, 0x00, 0x00, 0x0A, 0xC0, 0x80, 0x00]);
        golden.extend_from_slice(&[0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00]);
        golden.extend_from_slice(b"16");
        golden.extend_from_slice(TEST_PAN.as_bytes());
        golden.extend_from_slice(b"000000"); // DE3
        golden.extend_from_slice(b"000000001000"); // DE4
        golden.extend_from_slice(de7); // DE7: now
        golden.extend_from_slice(b"000123"); // DE11: the same STAN
        golden.extend_from_slice(b"115959"); // DE12
        golden.extend_from_slice(b"0615"); // DE13
        golden.extend_from_slice(b"2712"); // DE14
        golden.extend_from_slice(b"516612345678"); // DE37
        golden.extend_from_slice(b"68"); // DE39: the reason
        golden.extend_from_slice(b"TERM0001"); // DE41
        golden.extend_from_slice(b"MERCHANT0000001"); // DE42
        golden.extend_from_slice(b"840"); // DE49
        // DE90: MTI, DE11, DE7 of the original, DE32 and DE33 zero-filled.
        golden.extend_from_slice(b"020000012306151159590000001234500000000000");
        golden
    }

    #[test]
    fn a_reversal_is_an_0420_with_the_originals_fields_and_de90() {
        let mut tx = original();
        let out = XxxFormatter::default()
            .format_saf(&SafRequest::reversal("68"), &mut tx, &MockEnv::new())
            .unwrap();
        assert_eq!(out.payload, golden_reversal(b"0420", b"0615120000"));
        assert_eq!(out.key, "0430|000123|TERM0001");
        assert!(!format!("{out:?}").contains(TEST_PAN));
    }

    #[test]
    fn a_retransmitted_reversal_is_an_0421_with_a_new_de7() {
        let mut tx = original();
        let env = MockEnv::new().at(1_767_225_599_000); // 2025-12-31T23:59:59Z
        let out = XxxFormatter::default()
            .format_saf(&SafRequest::reversal("68").retransmitted(), &mut tx, &env)
            .unwrap();
        assert_eq!(out.payload, golden_reversal(b"0421", b"1231235959"));
        assert_eq!(out.key, "0430|000123|TERM0001", "0421 expects an 0430 too");
    }

    #[test]
    fn a_reversal_carries_only_the_fields_of_the_contract_and_its_reason() {
        let mut formatter = XxxFormatter::default();
        let mut tx = original().with_field(33, "987654");
        let out = formatter
            .format_saf(&SafRequest::reversal("17"), &mut tx, &MockEnv::new())
            .unwrap();
        let sent = formatter.decode_reply(&out.payload).unwrap();
        assert_eq!(sent.mti().as_str(), "0420");
        let fields: Vec<u16> = sent.field_numbers().collect();
        assert_eq!(fields, [2, 3, 4, 7, 11, 12, 13, 14, 37, 39, 41, 42, 49, 90]);
        assert_eq!(sent.get_str(39), Some("17"));
        assert_eq!(
            sent.get_str(90),
            Some("020000012306151159590000001234500000987654")
        );
        // Only what the original has: no DE12/13/37/42 in, none out.
        let mut bare = purchase();
        let out = formatter
            .format_saf(&SafRequest::reversal("68"), &mut bare, &MockEnv::new())
            .unwrap();
        let sent = formatter.decode_reply(&out.payload).unwrap();
        let fields: Vec<u16> = sent.field_numbers().collect();
        assert_eq!(fields, [2, 3, 4, 7, 11, 14, 39, 41, 49, 90]);
    }

    #[test]
    fn de90_is_mti_stan_de7_and_both_institutions_zero_filled() {
        let mut m = Message::new(Mti::new("0100").unwrap());
        m.set(11, b"000777".to_vec());
        m.set(7, b"1231235959".to_vec());
        m.set(32, b"4".to_vec());
        m.set(33, b"12345678901".to_vec());
        let de90 = original_data_elements(&m).unwrap();
        assert_eq!(de90.len(), 42);
        assert_eq!(&de90[..4], "0100", "original MTI");
        assert_eq!(&de90[4..10], "000777", "original DE11");
        assert_eq!(&de90[10..20], "1231235959", "original DE7");
        assert_eq!(
            &de90[20..31],
            "00000000004",
            "DE32, zero-filled on the left"
        );
        assert_eq!(&de90[31..42], "12345678901", "DE33");
        // No DE7, DE32 or DE33: zeros.
        let mut bare = Message::new(Mti::new("0200").unwrap());
        bare.set(11, b"000001".to_vec());
        assert_eq!(
            original_data_elements(&bare).unwrap(),
            format!("0200000001{}", "0".repeat(32))
        );
        // Nothing to identify the original with, or an institution too long.
        let mut no_stan = m.clone();
        no_stan.remove(11);
        assert!(
            original_data_elements(&no_stan)
                .unwrap_err()
                .contains("DE11")
        );
        let mut long = m.clone();
        long.set(32, b"123456789012".to_vec());
        assert!(original_data_elements(&long).unwrap_err().contains("DE32"));
    }

    #[test]
    fn de7_is_mmddhhmmss_utc() {
        for (millis, de7) in [
            (0, "0101000000"),
            (MockEnv::DEFAULT_NOW, "0615120000"),
            (1_709_251_199_000, "0229235959"), // leap day
            (1_767_225_599_999, "1231235959"),
            (951_868_800_000, "0301000000"), // 2000 was a leap year
        ] {
            assert_eq!(transmission_date_time(millis), de7, "{millis}");
        }
    }

    /// An acquirer's completion as the tranlog keeps it.
    fn completion() -> MockTransaction {
        MockTransaction::new("0220")
            .with_field(2, TEST_PAN)
            .with_field(3, "000000")
            .with_field(4, "000000000800")
            .with_field(7, "0615115959")
            .with_field(11, "000124")
            .with_field(38, "AB1234")
            .with_field(41, "TERM0001")
            .with_field(49, "840")
            .with_field(90, "010000012006151100000000000000000000000000")
            .with_tranlog_id("43")
    }

    #[test]
    fn an_advice_is_the_acquirers_0220_as_received() {
        let mut formatter = XxxFormatter::default();
        let mut tx = completion();
        let out = formatter
            .format_saf(&SafRequest::advice("00"), &mut tx, &MockEnv::new())
            .unwrap();
        assert_eq!(&out.payload[..5], &[0x60, 0x00, 0x01, 0x00, 0x00]);
        let sent = formatter.decode_reply(&out.payload).unwrap();
        assert_eq!(sent.mti().as_str(), "0220");
        let fields: Vec<u16> = sent.field_numbers().collect();
        assert_eq!(fields, [2, 3, 4, 7, 11, 38, 41, 49, 90]);
        for n in fields {
            assert_eq!(Some(&*tx.request_field(n).unwrap()), sent.get(n), "DE{n}");
        }
        assert_eq!(out.key, "0230|000124|TERM0001");
        // Golden: the same bytes as the 0220 itself, behind the TPDU.
        let mut golden = vec![0x60, 0x00, 0x01, 0x00, 0x00];
        let mut as_received = Message::new(Mti::new("0220").unwrap());
        for n in [2, 3, 4, 7, 11, 38, 41, 49, 90] {
            as_received.set(n, tx.request_field(n).unwrap().to_vec());
        }
        golden.extend_from_slice(&Spec::iso87_ascii().encode(&as_received).unwrap());
        assert_eq!(out.payload, golden);

        let again = formatter
            .format_saf(
                &SafRequest::advice("00").retransmitted(),
                &mut completion(),
                &MockEnv::new(),
            )
            .unwrap();
        assert_eq!(&again.payload[5..9], b"0221");
        assert_eq!(&again.payload[9..], &out.payload[9..]);
        assert_eq!(again.key, out.key);
    }

    #[test]
    fn an_advice_of_anything_but_an_0220_is_refused() {
        let err = XxxFormatter::default()
            .format_saf(&SafRequest::advice("00"), &mut purchase(), &MockEnv::new())
            .unwrap_err();
        assert!(err.contains("0220") && err.contains("0200"), "{err}");
    }

    #[test]
    fn a_saf_message_without_stan_or_terminal_is_refused() {
        for n in [11, 41] {
            let err = XxxFormatter::default()
                .format_saf(
                    &SafRequest::reversal("68"),
                    &mut original().without_field(n),
                    &MockEnv::new(),
                )
                .unwrap_err();
            assert!(err.contains(&format!("DE{n}")), "{err}");
        }
    }

    #[test]
    fn keys_name_the_response_mti() {
        for (mti, key) in [
            ("0100", "0110"),
            ("0110", "0110"),
            ("0200", "0210"),
            ("0201", "0210"),
            ("0210", "0210"),
            ("0220", "0230"),
            ("0221", "0230"),
            ("0230", "0230"),
            ("0420", "0430"),
            ("0421", "0430"),
            ("0430", "0430"),
            ("0431", "0430"),
            ("0800", "0810"),
        ] {
            assert_eq!(key_mti(Mti::new(mti).unwrap()).as_str(), key, "{mti}");
        }
    }

    #[test]
    fn a_late_0210_never_matches_a_waiting_0430() {
        let mut formatter = XxxFormatter::default();
        let env = MockEnv::new();
        let reversal = formatter
            .format_saf(&SafRequest::reversal("68"), &mut original(), &env)
            .unwrap();
        let late = formatter.reply_key(&approval(), &env).unwrap();
        assert_eq!(late, "0210|000123|TERM0001");
        assert_ne!(late, reversal.key);
        let ack = reply("0430", &[(11, "000123"), (39, "00"), (41, "TERM0001")]);
        assert_eq!(formatter.reply_key(&ack, &env), Ok(reversal.key));
        // The acknowledgement is read by parse-response.
        let mut tx = original();
        formatter.parse_response(&ack, &mut tx, &env).unwrap();
        assert_eq!(tx.rc(), Some("00"));
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
        formatter
            .format_saf(&SafRequest::reversal("68"), &mut original(), &env)
            .unwrap();
        assert!(env.logs().is_empty());
    }

    #[test]
    fn bad_settings_are_named_at_load() {
        let env = MockEnv::new()
            .with_config("tpdu_destination", "00G1")
            .with_config("tpdu_sourse", "0000");
        let problems = XxxFormatter::default().check_settings(&env);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["tpdu_destination", "tpdu_sourse"]);
        assert!(problems[0].message.contains("4 hex digits"), "{problems:?}");
        assert!(problems[1].message.contains("no setting"), "{problems:?}");
        assert!(
            XxxFormatter::default()
                .check_settings(&MockEnv::new())
                .is_empty()
        );
    }

    /// An ISO 8583:1993 purchase as an `iso93-*` listener decodes it.
    fn purchase_1993() -> MockTransaction {
        MockTransaction::new("1200")
            .with_field(2, TEST_PAN)
            .with_field(3, "000000")
            .with_field(4, "000000001000")
            .with_field(7, "1202101010")
            .with_field(11, "000123")
            .with_field(12, "261202111213")
            .with_field(13, "2601")
            .with_field(14, "2712")
            .with_field(22, "510101511326")
            .with_field(24, "200")
            .with_field(41, "TERM0001")
            .with_field(49, "840")
    }

    #[test]
    fn a_1993_request_goes_to_xxx_as_its_1987_equivalent() {
        let mut f = XxxFormatter::default();
        let env = MockEnv::new();
        let mut tx = purchase_1993();
        let out = f.format_request(&mut tx, &env).unwrap();
        assert_eq!(out.key, "0210|000123|TERM0001");
        let sent = f.decode_reply(&out.payload).unwrap();
        assert_eq!(sent.mti().as_str(), "0200");
        assert_eq!(sent.get_str(12), Some("111213"), "hhmmss");
        assert_eq!(
            sent.get_str(13),
            Some("1202"),
            "MMDD, not 1993's date effective"
        );
        for n in [22, 24] {
            assert!(!sent.contains(n), "DE{n} means something else in 1987");
        }
        for n in [2, 3, 4, 7, 11, 14, 41, 49] {
            assert_eq!(sent.get(n), tx.request_values(&[n]).get(0), "DE{n}");
        }
        // The endpoint's 1987 reply is read as usual.
        let reply = reply("0210", &[(11, "000123"), (41, "TERM0001"), (39, "51")]);
        f.parse_response(&reply, &mut tx, &env).unwrap();
        assert_eq!(tx.rc(), Some("51"));
        let mut auth = MockTransaction::new("1100")
            .with_field(11, "000124")
            .with_field(41, "TERM0001");
        let out = f.format_request(&mut auth, &env).unwrap();
        assert_eq!(out.key, "0110|000124|TERM0001");
    }

    #[test]
    fn the_reversal_of_a_1993_original_is_a_1987_0420() {
        let mut f = XxxFormatter::default();
        let env = MockEnv::new();
        let mut tx = purchase_1993();
        let out = f
            .format_saf(&SafRequest::reversal("68"), &mut tx, &env)
            .unwrap();
        assert_eq!(out.key, "0430|000123|TERM0001");
        let sent = f.decode_reply(&out.payload).unwrap();
        assert_eq!(sent.mti().as_str(), "0420");
        assert_eq!(sent.get_str(12), Some("111213"));
        assert_eq!(sent.get_str(13), Some("1202"));
        let de90 = sent.get_str(90).unwrap();
        assert_eq!(&de90[..20], "02000001231202101010", "the 0200 xxx saw");
    }

    #[test]
    fn a_1993_request_with_a_bad_de12_or_another_version_is_refused() {
        let mut f = XxxFormatter::default();
        let env = MockEnv::new();
        let mut tx = purchase_1993().with_field(12, "111213");
        let e = f.format_request(&mut tx, &env).unwrap_err();
        assert!(
            e.contains("DE12 of a 1993 request must be 12 digits"),
            "{e}"
        );
        let mut tx = MockTransaction::new("2200")
            .with_field(11, "000123")
            .with_field(41, "TERM0001");
        let e = f.format_request(&mut tx, &env).unwrap_err();
        assert!(e.contains("neither ISO 8583:1987"), "{e}");
        // A 1987 request is sent as it is.
        let message = to_1987(Message::new(Mti::new("0200").unwrap())).unwrap();
        assert_eq!(message.mti().as_str(), "0200");
    }
}
