//! The formatter of endpoint `yyy`, an IBM-mainframe-style host: fixed-position records in
//! EBCDIC (code page 037) laid out by the copybook `YYY.CPY` (docs/mainframe.md, and the table
//! in [`record`]), amounts as zoned decimal `S9(10)V99` with a trailing overpunch sign. The
//! link frames each record with an IBM RDW (framing `rdw`: a 2-byte big-endian length that
//! counts the RDW's own 4 bytes, then 2 zero bytes); the framing is the host's.
//!
//! Settings:
//! - `default_currency`: 3 digits, default `840`: `YYY-CURRENCY` of a request without DE49.
//!
//! Any other key is reported by `check-settings` (and refused at first use).
//!
//! Behaviour:
//! - `format-request`: an 0100 or 0200 (or a repeat, 0101/0201) becomes an `AQ` record (87
//!   bytes): DE11 → `YYY-STAN` (required), DE7 → `YYY-XMIT-DATE-TIME` (zeros when absent),
//!   DE41 → `YYY-TERMINAL-ID` (required), DE42 → `YYY-MERCHANT-ID` (spaces when absent),
//!   DE2 → `YYY-PAN` (or the PAN part of DE35 when there is no DE2; one of them is required),
//!   DE14 → `YYY-EXPIRY` (else the expiry of DE35, else zeros), DE4 → `YYY-AMOUNT` (DE4's
//!   minor units with 2 implied decimals: `000000001000` is +10.00; a DE4 that is not numeric
//!   or over 12 digits is refused), DE49 → `YYY-CURRENCY`, `YYY-RESPONSE-CODE` and
//!   `YYY-APPROVAL-CODE` spaces. Other MTIs are refused: yyy has no record for them.
//! - Keys: `REPLY-TYPE|STAN|TERMINAL|DATE-TIME`, the record type of the reply
//!   ([`record::RecordType::reply`]): `AR|000123|TERM0001|0615115959` for an `AQ`,
//!   `RR|…` for a reversal, `CR|…` for an advice, so a late `AR` never acknowledges the
//!   reversal waiting for its `RR`. `reply-key` reads the same from a reply record (refusing a
//!   request record type, a wrong length for its type, or a STAN, terminal or date-time that
//!   does not decode).
//! - `parse-response`: the whole reply record is decoded; its `YYY-RESPONSE-CODE` (two letters
//!   or digits) becomes the result code and, on an approved (`00`) `AR`, a non-blank
//!   `YYY-APPROVAL-CODE` the response's DE38. It reads `RR` and `CR` too.
//! - `format-saf`:
//!   - a **reversal** is an `RQ` record (90 bytes): the original's fields as in its `AQ`
//!     (its own STAN and DE7, so the key names the original), `YYY-APPROVAL-CODE` the DE38
//!     the original got (spaces when none), `YYY-REASON` the reversal's reason (`68` for a
//!     timeout) and `YYY-REPEAT` `N`, or `Y` on a retransmission. An original that kept no
//!     PAN (the tranlog never keeps DE35) reverses with `YYY-PAN` spaces.
//!   - an **advice** is a `CQ` record (90 bytes) forwarding the acquirer's 0220 (0221): its
//!     fields as an `AQ` takes them, its DE38 as `YYY-APPROVAL-CODE`, the advice's reason and
//!     the repeat flag as for a reversal.
//!
//! Errors name the field and offset, never a value. Nothing is logged.

pub mod cp037;
pub mod record;

use switchyard_sdk::amount::parse_minor_units;
use switchyard_sdk::cobol::Decimal;
use switchyard_sdk::{
    Config, Env, Formatter, Outbound, SafKind, SafRequest, SettingProblem, Transaction, field,
};

use record::{AMOUNT_SCALE, Record, RecordType};

/// `YYY-CURRENCY` when neither DE49 nor `default_currency` gives one.
pub const DEFAULT_CURRENCY: &str = "840";
/// The setting naming the currency of requests without DE49.
pub const DEFAULT_CURRENCY_KEY: &str = "default_currency";
/// Every setting the formatter reads.
pub const SETTINGS: [&str; 1] = [DEFAULT_CURRENCY_KEY];
/// The largest DE4 `YYY-AMOUNT` holds: 9,999,999,999.99.
pub const MAX_AMOUNT_MINOR: u64 = 999_999_999_999;

/// The formatter's settings, read once per instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `YYY-CURRENCY` of a request without DE49: 3 ASCII digits.
    pub default_currency: [u8; 3],
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            default_currency: *b"840",
        }
    }
}

impl Settings {
    /// Reads the settings the formatter knows; every bad value is a problem.
    pub fn read(config: &impl Config) -> Result<Settings, Vec<SettingProblem>> {
        let mut settings = Settings::default();
        let mut problems = Vec::new();
        if let Some(value) = config.get(DEFAULT_CURRENCY_KEY) {
            match <[u8; 3]>::try_from(value.trim().as_bytes()) {
                Ok(code) if code.iter().all(u8::is_ascii_digit) => {
                    settings.default_currency = code;
                }
                _ => problems.push(SettingProblem::new(
                    DEFAULT_CURRENCY_KEY,
                    format!(
                        "{value:?} is not an ISO 4217 numeric currency code (3 digits, e.g. 840)"
                    ),
                )),
            }
        }
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(problems)
        }
    }

    /// Every problem of `config`: bad values and unknown keys.
    pub fn check(config: &impl Config) -> Vec<SettingProblem> {
        let mut problems = Settings::read(config).err().unwrap_or_default();
        for (key, _) in config.entries() {
            if !SETTINGS.contains(&key.as_str()) {
                problems.push(SettingProblem::new(
                    key,
                    format!(
                        "formatter-yyy has no such setting (it knows: {})",
                        SETTINGS.join(", ")
                    ),
                ));
            }
        }
        problems
    }
}

/// The formatter of endpoint `yyy`. Holds its settings once read.
#[derive(Clone, Debug, Default)]
pub struct YyyFormatter {
    settings: Option<Settings>,
}

/// The request fields a record is made of, fetched in one host call; 0 is the MTI.
const WANTED: [u16; 11] = [
    0,
    field::PAN,
    field::AMOUNT,
    field::TRANSMISSION_DATE_TIME,
    field::STAN,
    field::EXPIRATION_DATE,
    field::TRACK2,
    field::AUTH_ID,
    field::TERMINAL_ID,
    field::MERCHANT_ID,
    field::CURRENCY,
];

/// The transaction's request as text, as [`WANTED`] fetched it.
struct Request {
    mti: String,
    values: Vec<Option<Vec<u8>>>,
}

impl Request {
    fn read(tx: &impl Transaction) -> Request {
        let values = tx.request_values(&WANTED);
        Request {
            mti: values.str(0).unwrap_or_default().to_owned(),
            values: (0..WANTED.len())
                .map(|i| values.get(i).map(<[u8]>::to_vec))
                .collect(),
        }
    }

    fn get(&self, n: u16) -> Option<&[u8]> {
        let i = WANTED.iter().position(|&w| w == n)?;
        self.values.get(i)?.as_deref()
    }

    /// Whether the request is an authorization or financial request (0100, 0101, 0200, 0201).
    fn is_authorization(&self) -> bool {
        let m = self.mti.as_bytes();
        m.len() == 4 && matches!(m[1], b'1' | b'2') && m[2] == b'0' && matches!(m[3], b'0' | b'1')
    }

    /// Whether the request is an acquirer's completion advice (0220, 0221).
    fn is_advice(&self) -> bool {
        self.mti.len() == 4 && self.mti.starts_with("022")
    }

    /// The record of `kind` for this request. `pan_required`: whether a request without a
    /// PAN is refused (an `AQ`) or sent with spaces (a store-and-forward record).
    fn record(
        &self,
        kind: RecordType,
        settings: Settings,
        pan_required: bool,
    ) -> Result<Record, String> {
        let (pan, track_expiry) = self.pan(pan_required)?;
        let expiry = match self.get(field::EXPIRATION_DATE) {
            Some(v) => digits(v, 4).ok_or("DE14 (expiry) is not 4 digits YYMM")?,
            None => track_expiry.unwrap_or_else(|| "0000".into()),
        };
        let date_time = match self.get(field::TRANSMISSION_DATE_TIME) {
            Some(v) => digits(v, 10).ok_or("DE7 (transmission date-time) is not 10 digits")?,
            None => "0000000000".into(),
        };
        let stan = self
            .get(field::STAN)
            .ok_or("no DE11 (STAN) to match the reply by")?;
        let terminal = self
            .get(field::TERMINAL_ID)
            .ok_or("no DE41 (terminal id) to match the reply by")?;
        let currency = match self.get(field::CURRENCY) {
            Some(v) => digits(v, 3).ok_or("DE49 (currency) is not 3 digits")?,
            None => String::from_utf8_lossy(&settings.default_currency).into_owned(),
        };
        Ok(Record {
            kind,
            stan: digits(stan, 6).ok_or("DE11 (STAN) is not 6 digits")?,
            date_time,
            terminal: text(terminal, "DE41 (terminal id)", 8)?,
            merchant: match self.get(field::MERCHANT_ID) {
                Some(v) => text(v, "DE42 (merchant id)", 15)?,
                None => String::new(),
            },
            pan,
            expiry,
            amount: self.amount()?,
            currency,
            response_code: String::new(),
            approval_code: String::new(),
            reason: String::new(),
            repeat: false,
        })
    }

    /// `YYY-PAN` from DE2, else from the PAN part of DE35, with the expiry DE35 carries.
    fn pan(&self, required: bool) -> Result<(String, Option<String>), String> {
        let is_pan = |p: &[u8]| (1..=19).contains(&p.len()) && p.iter().all(u8::is_ascii_digit);
        let track = self.get(field::TRACK2).map(|t| {
            let split = t.iter().position(|&b| b == b'=' || b == b'D');
            let (pan, rest) = split.map_or((t, &[][..]), |i| (&t[..i], &t[i + 1..]));
            (pan, rest.get(..4).and_then(|e| digits(e, 4)))
        });
        if let Some(pan) = self.get(field::PAN) {
            if !is_pan(pan) {
                return Err("DE2 (PAN) is not 1 to 19 digits".into());
            }
            return Ok((ascii(pan), track.and_then(|(_, e)| e)));
        }
        match track {
            Some((pan, expiry)) if is_pan(pan) => Ok((ascii(pan), expiry)),
            Some(_) => {
                Err("DE35 (track 2) has no PAN of 1 to 19 digits before its separator".into())
            }
            None if required => Err("no DE2 or DE35 to take the PAN from".into()),
            None => Ok((String::new(), None)),
        }
    }

    /// `YYY-AMOUNT`: DE4's minor units with 2 implied decimals.
    fn amount(&self) -> Result<Decimal, String> {
        let de4 = self.get(field::AMOUNT).ok_or("no DE4 (amount)")?;
        let units = parse_minor_units(de4).map_err(|e| format!("DE4 (amount): {e}"))?;
        if units > MAX_AMOUNT_MINOR {
            return Err(
                "DE4 (amount) does not fit YYY-AMOUNT S9(10)V99 (at most 9999999999.99)".into(),
            );
        }
        Ok(Decimal::new(i128::from(units), AMOUNT_SCALE))
    }
}

/// `value` as text when it is exactly `len` ASCII digits.
fn digits(value: &[u8], len: usize) -> Option<String> {
    (value.len() == len && value.iter().all(u8::is_ascii_digit)).then(|| ascii(value))
}

/// `value` (printable ASCII, at most `len` characters) as text, for an `X(len)` field.
fn text(value: &[u8], what: &str, len: usize) -> Result<String, String> {
    if value.len() > len {
        return Err(format!("{what} is longer than {len} characters"));
    }
    if !value.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(format!("{what} is not printable text"));
    }
    Ok(ascii(value))
}

/// ASCII bytes (checked by the caller) as a string.
fn ascii(value: &[u8]) -> String {
    value.iter().map(|&b| char::from(b)).collect()
}

impl YyyFormatter {
    /// The settings, read from `config` on first use and kept.
    fn settings(&mut self, config: &impl Config) -> Result<Settings, String> {
        if let Some(settings) = self.settings {
            return Ok(settings);
        }
        let settings = Settings::read(config).map_err(|problems| {
            let all: Vec<String> = problems
                .iter()
                .map(|p| format!("setting `{}`: {}", p.key, p.message))
                .collect();
            format!("formatter-yyy: {}", all.join("; "))
        })?;
        self.settings = Some(settings);
        Ok(settings)
    }

    /// The outbound message of `record`.
    fn outbound(record: &Record) -> Result<Outbound, String> {
        let payload = record
            .encode()
            .map_err(|e| format!("{} record: {e}", record.kind))?;
        Ok(Outbound {
            payload,
            key: record.key(),
        })
    }
}

impl Formatter for YyyFormatter {
    fn check_settings(&mut self, config: &impl Config) -> Vec<SettingProblem> {
        Settings::check(config)
    }

    fn format_request(
        &mut self,
        tx: &mut impl Transaction,
        env: &impl Env,
    ) -> Result<Outbound, String> {
        let settings = self.settings(env)?;
        let request = Request::read(tx);
        if !request.is_authorization() {
            return Err(format!(
                "yyy takes 0100 and 0200 requests; an {:?} has no yyy record",
                request.mti
            ));
        }
        let record = request
            .record(RecordType::AuthRequest, settings, true)
            .map_err(|e| format!("request: {e}"))?;
        Self::outbound(&record)
    }

    fn format_saf(
        &mut self,
        saf: &SafRequest,
        tx: &mut impl Transaction,
        env: &impl Env,
    ) -> Result<Outbound, String> {
        let settings = self.settings(env)?;
        let request = Request::read(tx);
        let mut record = match saf.kind {
            SafKind::Reversal => {
                if !request.is_authorization() {
                    return Err(format!(
                        "a yyy reversal reverses an 0100 or 0200; the original is an {:?}",
                        request.mti
                    ));
                }
                let mut record = request
                    .record(RecordType::ReversalRequest, settings, false)
                    .map_err(|e| format!("the original: {e}"))?;
                // The approval code the original got, when it is one yyy can carry.
                record.approval_code = tx
                    .response_field(field::AUTH_ID)
                    .filter(|v| text(v, "", 6).is_ok())
                    .map(|v| ascii(&v))
                    .unwrap_or_default();
                record
            }
            SafKind::Advice => {
                if !request.is_advice() {
                    return Err(format!(
                        "a yyy advice forwards an acquirer's 0220; the request is an {:?}",
                        request.mti
                    ));
                }
                let mut record = request
                    .record(RecordType::AdviceRequest, settings, false)
                    .map_err(|e| format!("the advice: {e}"))?;
                if let Some(v) = request.get(field::AUTH_ID) {
                    record.approval_code = text(v, "DE38 (approval code)", 6)
                        .map_err(|e| format!("the advice: {e}"))?;
                }
                record
            }
        };
        record.reason = saf.reason.clone();
        record.repeat = saf.retransmission;
        Self::outbound(&record)
    }

    fn reply_key(&mut self, reply: &[u8], _env: &impl Env) -> Result<String, String> {
        let (kind, key) = record::read_key(reply).map_err(|e| format!("reply: {e}"))?;
        if !kind.is_reply() {
            return Err(format!(
                "reply record type {kind} is a request, not a reply"
            ));
        }
        Ok(key)
    }

    fn parse_response(
        &mut self,
        reply: &[u8],
        tx: &mut impl Transaction,
        _env: &impl Env,
    ) -> Result<(), String> {
        let record = Record::decode(reply).map_err(|e| format!("reply: {e}"))?;
        if !record.kind.is_reply() {
            return Err(format!(
                "reply record type {} is a request, not a reply",
                record.kind
            ));
        }
        let code = &record.response_code;
        if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "reply: {} at offset {}: not a 2-character response code",
                record::RESPONSE_CODE.name,
                record::RESPONSE_CODE.offset
            ));
        }
        if record.kind == RecordType::AuthReply && code == "00" && !record.approval_code.is_empty()
        {
            let de38 = format!("{:<6}", record.approval_code);
            tx.set_response_field(field::AUTH_ID, de38.as_bytes())
                .map_err(|e| format!("DE38 of the reply refused: {e}"))?;
        }
        tx.set_result_code(code);
        Ok(())
    }
}

switchyard_sdk::export_formatter!(YyyFormatter);

#[cfg(test)]
mod tests;
