//! The `loyalty` participant: the switch's internal loyalty host. A loyalty
//! card (the router sends it the range `600649`) holds a points balance in
//! the plugin's key/value store; 1 point is one minor unit (0.01) of the
//! plugin's currency.
//!
//! Settings:
//! - `currency`: the ISO 4217 numeric code the points are denominated in,
//!   three digits. Default `"840"`.
//!
//! Any other key is a settings error (reported by `check_settings`, and
//! answered with 96 and an error log should the plugin run anyway). It
//! needs `grants = ["kv"]`.
//!
//! Requests (ISO 8583:1987 0100 and 0200, ISO 8583:1993 1100 and 1200, or
//! a repeat the switch processes as an original;
//! the type is the first two digits of DE3):
//! - **purchase** (DE3 `00xxxx`): spends DE4 (minor units) in points. In
//!   `prepare`, one compare-and-set checks the balance and debits it, so two
//!   concurrent purchases can never both pass on a balance that covers one:
//!   approved (**00**, a 6-character code in DE38, prepared) while the
//!   balance covers the amount, else **51** (aborted). An authorization
//!   (0100) spends too: its completion never reaches the pipeline.
//! - **refund** (DE3 `20xxxx`): credits DE4 in points in `prepare`: **00**
//!   with DE38. Refunds are not matched to purchases.
//! - **balance inquiry** (DE3 `31xxxx`): **00**, DE38, and DE54 with one
//!   additional-amounts entry ([`available_balance`]): account type `00`,
//!   amount type `02` (available), the plugin's currency, `C` (or `D` for a
//!   negative balance), 12 digits of points. DE4 is not read.
//! - any other DE3: **12**. No DE3, or a DE3 that is not six digits: **30**.
//! - DE2 missing or not a valid card number: **14**. DE4 missing: **30**;
//!   not numeric, zero or beyond 64 bits: **13**. A DE49 other than the
//!   plugin's currency: **13** (points are in one currency; an inquiry is
//!   answered in the plugin's currency whatever DE49 says).
//! - the kv store failing, a corrupt value (see [`record`]), a change that
//!   loses its compare-and-set [`MAX_ATTEMPTS`] times in a row, or a balance
//!   beyond 64 bits (or beyond DE54's 12 digits): **96** with an error log.
//! - any other MTI (0800): prepared without joining, nothing changed.
//!
//! Second phase: the points applied in `prepare` are kept in the variable
//! [`APPLIED`] (signed, e.g. `-1500` for a purchase). `abort` (another
//! participant refused the transaction after us) and `commit` with a result
//! code other than 00 give them back, once, and clear DE38 and DE54.
//!
//! Reversals (`reverse`, contract 1.2.0): when the original's result code
//! (the transaction's, else DE39 of its response) is 00, its effect is
//! undone exactly once per `TRANLOG_ID`: a purchase's points are credited
//! back, a refund's debited back — a balance may then go **negative** (the
//! refunded points were already spent). The credit and the record of the
//! `TRANLOG_ID` are one compare-and-set, so a reversal delivered again
//! (delivery is at least once) finds its id and does nothing. A value keeps
//! the newest [`MAX_REVERSED`] ids: a redelivery after 32 later reversals
//! on the same card would apply again. A reversal without a `TRANLOG_ID`
//! (a switch without a tranlog) cannot be applied exactly once and is
//! refused (`Err`); the operator corrects with `switchyard loyalty credit`.
//! Inquiries and declined originals have nothing to undo. Reversals are
//! full reversals (DE4 of the original).
//!
//! Log messages show card numbers masked (first 6, last 4). The kv key
//! holds the PAN, which the host hashes.

pub mod record;

pub use record::{
    KEY_PREFIX, MAX_REVERSED, PointsRecord, RecordError, format_points, is_valid_id, parse_points,
    points_key,
};

use std::fmt;

use switchyard_sdk::amount::parse_minor_units;
use switchyard_sdk::card::{is_valid_pan, mask_pan};
use switchyard_sdk::{
    Clock, Config, Env, Kv, Outcome, Participant, SettingProblem, TRANLOG_ID, Transaction, Values,
    field, mti, rc,
};

/// The `currency` used when none is configured.
pub const DEFAULT_CURRENCY: &str = "840";

/// The variable `prepare` leaves for the second phase: the points it
/// applied to the balance, signed (`-1500`: a purchase debited 1500).
pub const APPLIED: &str = "LOYALTY_POINTS_APPLIED";

/// How many times a change of a card's value is tried when its
/// compare-and-set loses to a concurrent change.
pub const MAX_ATTEMPTS: u32 = 16;

/// Insufficient funds.
pub const INSUFFICIENT_FUNDS: &str = "51";

/// DE54: additional amounts.
pub const ADDITIONAL_AMOUNTS: u16 = 54;

/// The largest amount of a DE54 entry (12 digits).
const MAX_DE54_AMOUNT: u64 = 999_999_999_999;

/// What `prepare` reads, in one host call: the MTI (0) and the fields.
const READ: [u16; 5] = [
    0,
    field::PAN,
    field::PROCESSING_CODE,
    field::AMOUNT,
    field::CURRENCY,
];

/// What `reverse` reads of the original request.
const READ_ORIGINAL: [u16; 3] = [field::PAN, field::PROCESSING_CODE, field::AMOUNT];

/// The plugin's settings, parsed once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    currency: [u8; 3],
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { currency: *b"840" }
    }
}

impl Settings {
    /// Reads the settings, reporting every problem.
    pub fn parse(config: &impl Config) -> Result<Settings, Vec<SettingProblem>> {
        let mut settings = Settings::default();
        let mut problems = Vec::new();
        for (key, value) in config.entries() {
            match key.as_str() {
                "currency" => match <[u8; 3]>::try_from(value.as_bytes()) {
                    Ok(code) if code.iter().all(u8::is_ascii_digit) => settings.currency = code,
                    _ => problems.push(SettingProblem::new(
                        key,
                        "expected an ISO 4217 numeric currency code of three digits, e.g. \"840\"",
                    )),
                },
                _ => problems.push(SettingProblem::new(
                    key,
                    "unknown setting: loyalty has only `currency`",
                )),
            }
        }
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(problems)
        }
    }

    /// The currency of the points, three digits.
    pub fn currency(&self) -> &str {
        std::str::from_utf8(&self.currency).unwrap_or(DEFAULT_CURRENCY)
    }
}

/// What a request asks of the loyalty host (the first two digits of DE3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `00`: spend points.
    Purchase,
    /// `20`: credit points.
    Refund,
    /// `31`: answer the balance.
    BalanceInquiry,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Purchase => "purchase",
            Operation::Refund => "refund",
            Operation::BalanceInquiry => "balance inquiry",
        })
    }
}

/// A request refused before the balance is touched: its response code and
/// why, without card data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decline {
    /// The response code (DE39).
    pub code: &'static str,
    /// Why, for the log.
    pub reason: String,
}

fn decline(code: &'static str, reason: impl Into<String>) -> Decline {
    Decline {
        code,
        reason: reason.into(),
    }
}

/// The operation of a processing code (DE3): **30** when it is not six
/// digits, **12** for a type other than 00, 20 and 31.
pub fn operation(de3: &[u8]) -> Result<Operation, Decline> {
    if de3.len() != 6 || !de3.iter().all(u8::is_ascii_digit) {
        return Err(decline(
            rc::FORMAT_ERROR,
            "the processing code (DE3) is not six digits",
        ));
    }
    match &de3[..2] {
        b"00" => Ok(Operation::Purchase),
        b"20" => Ok(Operation::Refund),
        b"31" => Ok(Operation::BalanceInquiry),
        other => Err(decline(
            rc::UNSUPPORTED,
            format!(
                "transaction type {} is not a purchase (00), refund (20) or balance inquiry (31)",
                String::from_utf8_lossy(other)
            ),
        )),
    }
}

/// Points of a DE4 amount: **30** when absent, **13** when not numeric,
/// zero or beyond 64 bits.
fn amount_points(amount: Option<&[u8]>) -> Result<i64, Decline> {
    let amount = amount.ok_or_else(|| decline(rc::FORMAT_ERROR, "no amount (DE4)"))?;
    match parse_minor_units(amount).map(i64::try_from) {
        Ok(Ok(points)) if points > 0 => Ok(points),
        Ok(Ok(_)) => Err(decline(rc::INVALID_AMOUNT, "the amount (DE4) is zero")),
        Ok(Err(_)) => Err(decline(rc::INVALID_AMOUNT, "the amount (DE4) is too large")),
        Err(e) => Err(decline(
            rc::INVALID_AMOUNT,
            format!("the amount (DE4) is {e}"),
        )),
    }
}

/// A request the loyalty host acts on.
#[derive(Clone, PartialEq, Eq)]
struct Request {
    pan: String,
    operation: Operation,
    /// The amount in points; 0 for an inquiry.
    points: i64,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("pan", &mask_pan(self.pan.as_bytes()))
            .field("operation", &self.operation)
            .field("points", &self.points)
            .finish()
    }
}

/// The card number of DE2: **14** when absent or not a valid card number.
fn card(pan: Option<&[u8]>) -> Result<String, Decline> {
    pan.filter(|pan| is_valid_pan(pan))
        .and_then(|pan| std::str::from_utf8(pan).ok())
        .map(str::to_owned)
        .ok_or_else(|| decline(rc::INVALID_CARD, "no valid card number in DE2"))
}

/// The request in `values` ([`READ`]).
fn read_request(values: &Values<'_>, settings: &Settings) -> Result<Request, Decline> {
    let pan = card(values.get(1))?;
    let de3 = values
        .get(2)
        .ok_or_else(|| decline(rc::FORMAT_ERROR, "no processing code (DE3)"))?;
    let operation = operation(de3)?;
    if operation == Operation::BalanceInquiry {
        return Ok(Request {
            pan,
            operation,
            points: 0,
        });
    }
    if let Some(currency) = values.get(4)
        && currency != settings.currency
    {
        return Err(decline(
            rc::INVALID_AMOUNT,
            format!(
                "the currency (DE49) {} is not the points currency {}",
                String::from_utf8_lossy(currency),
                settings.currency()
            ),
        ));
    }
    let points = amount_points(values.get(3))?;
    Ok(Request {
        pan,
        operation,
        points,
    })
}

/// Why a change of a card's points did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The balance does not cover a purchase.
    Insufficient {
        /// The balance found.
        balance: i64,
    },
    /// The stored value is not a points value.
    Corrupt(RecordError),
    /// The kv store failed.
    Kv(String),
    /// Every compare-and-set lost to a concurrent change.
    Contended,
    /// The balance would not fit in 64 bits.
    Overflow,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Insufficient { balance } => write!(f, "the balance is {balance} points"),
            Failure::Corrupt(e) => write!(f, "the stored points value is corrupt: {e}"),
            Failure::Kv(e) => write!(f, "the kv store failed: {e}"),
            Failure::Contended => write!(
                f,
                "{MAX_ATTEMPTS} compare-and-sets in a row lost to concurrent changes"
            ),
            Failure::Overflow => f.write_str("the balance would not fit in 64 bits"),
        }
    }
}

impl std::error::Error for Failure {}

/// Reads a card's points (a missing key is a balance of 0).
fn read(env: &impl Kv, pan: &str) -> Result<PointsRecord, Failure> {
    match env.kv_get(&points_key(pan)).map_err(Failure::Kv)? {
        None => Ok(PointsRecord::default()),
        Some(value) => parse_points(&value).map_err(Failure::Corrupt),
    }
}

/// Changes a card's points with one compare-and-set: `f` gets the current
/// record and returns whether to store its change (`false`: nothing to
/// write). Retried from a fresh read when the compare-and-set loses, at
/// most [`MAX_ATTEMPTS`] times. Returns the record as stored (or as found).
fn change(
    env: &impl Kv,
    pan: &str,
    mut f: impl FnMut(&mut PointsRecord) -> Result<bool, Failure>,
) -> Result<PointsRecord, Failure> {
    let key = points_key(pan);
    for _ in 0..MAX_ATTEMPTS {
        let current = env.kv_get(&key).map_err(Failure::Kv)?;
        let mut record = match &current {
            None => PointsRecord::default(),
            Some(value) => parse_points(value).map_err(Failure::Corrupt)?,
        };
        if !f(&mut record)? {
            return Ok(record);
        }
        let value = format_points(&record);
        if env
            .kv_compare_and_set(&key, current.as_deref(), value.as_bytes())
            .map_err(Failure::Kv)?
        {
            return Ok(record);
        }
    }
    Err(Failure::Contended)
}

/// Adds `delta` points to the balance; a negative `delta` (a purchase) only
/// while the balance covers it.
fn apply(env: &impl Kv, pan: &str, delta: i64) -> Result<PointsRecord, Failure> {
    change(env, pan, |record| {
        let next = record.balance.checked_add(delta).ok_or(Failure::Overflow)?;
        if delta < 0 && next < 0 {
            return Err(Failure::Insufficient {
                balance: record.balance,
            });
        }
        record.balance = next;
        Ok(true)
    })
}

/// Adds `delta` points whatever the balance (a give-back or a reversal).
fn adjust(env: &impl Kv, pan: &str, delta: i64) -> Result<PointsRecord, Failure> {
    change(env, pan, |record| {
        record.balance = record.balance.checked_add(delta).ok_or(Failure::Overflow)?;
        Ok(true)
    })
}

/// The DE54 entry of an available balance: account type `00`, amount type
/// `02`, `currency` (three digits), `C` or `D` (negative), 12 digits of
/// minor units. `None` when the currency is not three digits or the amount
/// needs more than 12 digits.
pub fn available_balance(currency: &str, minor_units: i64) -> Option<String> {
    if currency.len() != 3 || !currency.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let amount = minor_units.unsigned_abs();
    if amount > MAX_DE54_AMOUNT {
        return None;
    }
    let sign = if minor_units < 0 { 'D' } else { 'C' };
    Some(format!("0002{currency}{sign}{amount:012}"))
}

/// The original's result code, in a reversal: the transaction's, else DE39
/// of the original response.
fn original_approved(tx: &impl Transaction) -> bool {
    match tx.result_code() {
        Some(code) => code == rc::APPROVED,
        None => tx.response_field(field::RESPONSE_CODE).as_deref() == Some(b"00"),
    }
}

/// Sets response fields; on a refusal, clears those already set.
fn set_fields(tx: &mut impl Transaction, fields: &[(u16, &[u8])]) -> Result<(), String> {
    for (i, (number, value)) in fields.iter().enumerate() {
        if let Err(reason) = tx.set_response_field(*number, value) {
            for (set, _) in &fields[..i] {
                tx.clear_response_field(*set);
            }
            return Err(format!("the host refused DE{number}: {reason}"));
        }
    }
    Ok(())
}

/// Whether the MTI is an authorization or financial request: 0100 or 0200
/// (ISO 8583:1987), 1100 or 1200 (ISO 8583:1993), or a repeat of one that
/// reaches the pipeline (processed as the original).
fn is_authorization_or_financial(mti: &str) -> bool {
    mti::is_financial_or_repeat(mti) || matches!(mti, "1100" | "1101" | "1200" | "1201")
}

fn abort(tx: &mut impl Transaction, code: &str) -> Outcome {
    tx.set_result_code(code);
    Outcome::Aborted
}

/// The loyalty participant: its settings (parsed once) and a counter for
/// authorization codes. All balances are the host's kv store.
#[derive(Clone, Debug, Default)]
pub struct Loyalty {
    settings: Option<Result<Settings, Vec<SettingProblem>>>,
    codes: switchyard_sdk::AuthCodes,
}

impl Loyalty {
    /// A new authorization code: six characters of `0-9A-Z`, mixing the wall
    /// clock with a per-instance counter seeded from the monotonic clock.
    pub fn next_auth_code(&mut self, clock: &impl Clock) -> [u8; 6] {
        self.codes.next(clock)
    }

    /// The settings, parsed on first use; `Err` describes every problem.
    fn settings(&mut self, config: &impl Config) -> Result<Settings, String> {
        match self.settings.get_or_insert_with(|| Settings::parse(config)) {
            Ok(settings) => Ok(*settings),
            Err(problems) => Err(format!(
                "loyalty: bad settings: {}",
                problems
                    .iter()
                    .map(|p| format!("`{}`: {}", p.key, p.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }

    /// A purchase or a refund: `delta` points, then DE38.
    fn apply(
        &mut self,
        tx: &mut impl Transaction,
        env: &impl Env,
        request: &Request,
        delta: i64,
    ) -> Outcome {
        let card = mask_pan(request.pan.as_bytes());
        let record = match apply(env, &request.pan, delta) {
            Ok(record) => record,
            Err(Failure::Insufficient { balance }) => {
                env.debug(&format!(
                    "loyalty: 51: {card} has {balance} points, the purchase needs {}",
                    request.points
                ));
                return abort(tx, INSUFFICIENT_FUNDS);
            }
            Err(failure) => {
                env.error(&format!(
                    "loyalty: {} of {} points on {card}: {failure}",
                    request.operation, request.points
                ));
                return abort(tx, rc::SYSTEM_ERROR);
            }
        };
        let code = self.next_auth_code(env);
        if let Err(reason) = set_fields(tx, &[(field::AUTH_ID, &code)]) {
            // We abort: no second phase will give the points back.
            give_back(env, &request.pan, delta, "the approval could not be set");
            env.error(&format!("loyalty: {reason}"));
            return abort(tx, rc::SYSTEM_ERROR);
        }
        tx.set_var(APPLIED, &delta.to_string());
        tx.set_result_code(rc::APPROVED);
        env.debug(&format!(
            "loyalty: 00: {delta:+} points on {card}, balance {}",
            record.balance
        ));
        Outcome::Prepared
    }

    /// A balance inquiry: DE54 and DE38.
    fn inquire(
        &mut self,
        tx: &mut impl Transaction,
        env: &impl Env,
        request: &Request,
        settings: &Settings,
    ) -> Outcome {
        let card = mask_pan(request.pan.as_bytes());
        let balance = match read(env, &request.pan) {
            Ok(record) => record.balance,
            Err(failure) => {
                env.error(&format!("loyalty: balance inquiry on {card}: {failure}"));
                return abort(tx, rc::SYSTEM_ERROR);
            }
        };
        let Some(de54) = available_balance(settings.currency(), balance) else {
            env.error(&format!(
                "loyalty: balance inquiry on {card}: the balance {balance} does not fit in DE54's 12 digits"
            ));
            return abort(tx, rc::SYSTEM_ERROR);
        };
        let code = self.next_auth_code(env);
        if let Err(reason) = set_fields(
            tx,
            &[
                (ADDITIONAL_AMOUNTS, de54.as_bytes()),
                (field::AUTH_ID, &code),
            ],
        ) {
            env.error(&format!("loyalty: {reason}"));
            return abort(tx, rc::SYSTEM_ERROR);
        }
        tx.set_result_code(rc::APPROVED);
        Outcome::Prepared
    }

    /// The second phase of a transaction that is not approved after all:
    /// gives back what `prepare` applied (once) and clears DE38 and DE54.
    fn undo(tx: &mut impl Transaction, env: &impl Env, why: &str) {
        tx.clear_response_field(field::AUTH_ID);
        tx.clear_response_field(ADDITIONAL_AMOUNTS);
        let applied = tx
            .var(APPLIED)
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|&delta| delta != 0);
        let Some(applied) = applied else {
            return; // an inquiry, or already given back
        };
        tx.set_var(APPLIED, "");
        match card(tx.request_field(field::PAN).as_deref()) {
            Ok(pan) => give_back(env, &pan, applied, why),
            Err(_) => env.error(&format!(
                "loyalty: {why}: {applied:+} points applied to a card no longer in DE2 cannot be given back"
            )),
        }
    }
}

/// Takes back `applied` points; a failure is logged for the operator.
fn give_back(env: &impl Env, pan: &str, applied: i64, why: &str) {
    let card = mask_pan(pan.as_bytes());
    let back = applied.checked_neg().ok_or(Failure::Overflow);
    match back.and_then(|back| adjust(env, pan, back)) {
        Ok(record) => env.debug(&format!(
            "loyalty: {why}: {applied:+} points on {card} given back, balance {}",
            record.balance
        )),
        Err(failure) => env.error(&format!(
            "loyalty: {why}: could not give back {applied:+} points on {card}: {failure}; \
             correct the balance with `switchyard loyalty credit`"
        )),
    }
}

impl Participant for Loyalty {
    fn prepare(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Outcome {
        let values = tx.request_values(&READ);
        if !is_authorization_or_financial(values.str(0).unwrap_or_default()) {
            return Outcome::NoJoin;
        }
        let settings = match self.settings(env) {
            Ok(settings) => settings,
            Err(message) => {
                env.error(&message);
                return abort(tx, rc::SYSTEM_ERROR);
            }
        };
        let request = match read_request(&values, &settings) {
            Ok(request) => request,
            Err(Decline { code, reason }) => {
                env.debug(&format!("loyalty: {code}: {reason}"));
                return abort(tx, code);
            }
        };
        match request.operation {
            Operation::Purchase => self.apply(tx, env, &request, -request.points),
            Operation::Refund => self.apply(tx, env, &request, request.points),
            Operation::BalanceInquiry => self.inquire(tx, env, &request, &settings),
        }
    }

    fn check_settings(&mut self, config: &impl Config) -> Vec<SettingProblem> {
        let parsed = Settings::parse(config);
        let problems = parsed.as_ref().err().cloned().unwrap_or_default();
        self.settings = Some(parsed);
        problems
    }

    fn commit(&mut self, tx: &mut impl Transaction, env: &impl Env) {
        if tx.result_code().as_deref() != Some(rc::APPROVED) {
            Loyalty::undo(tx, env, "committed without approval");
        }
    }

    fn abort(&mut self, tx: &mut impl Transaction, env: &impl Env) {
        Loyalty::undo(tx, env, "aborted");
    }

    fn reverse(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Result<(), String> {
        if !original_approved(tx) {
            env.debug("loyalty: reversal of a transaction that was not approved: nothing to undo");
            return Ok(());
        }
        let values = tx.request_values(&READ_ORIGINAL);
        let describe =
            |d: Decline| format!("loyalty: reversal: the original request: {}", d.reason);
        let pan = card(values.get(0)).map_err(describe)?;
        let de3 = values
            .get(1)
            .ok_or_else(|| describe(decline(rc::FORMAT_ERROR, "no processing code (DE3)")))?;
        let delta = match operation(de3).map_err(describe)? {
            Operation::BalanceInquiry => return Ok(()),
            Operation::Purchase => amount_points(values.get(2)).map_err(describe)?,
            Operation::Refund => -amount_points(values.get(2)).map_err(describe)?,
        };
        drop(values);
        let id = tx.var(TRANLOG_ID).unwrap_or_default().into_owned();
        let card = mask_pan(pan.as_bytes());
        if id.is_empty() {
            return Err(format!(
                "loyalty: a reversal without TRANLOG_ID cannot be applied exactly once \
                 ({delta:+} points on {card}): correct the balance with `switchyard loyalty credit`"
            ));
        }
        if !is_valid_id(&id) {
            return Err(format!(
                "loyalty: TRANLOG_ID {id:?} cannot be recorded in a points value"
            ));
        }
        let mut applied = false;
        let record = change(env, &pan, |record| {
            applied = !record.has_reversed(&id);
            if applied {
                record.balance = record.balance.checked_add(delta).ok_or(Failure::Overflow)?;
                record.record_reversal(&id);
            }
            Ok(applied)
        })
        .map_err(|failure| format!("loyalty: reversal of {id} on {card}: {failure}"))?;
        if applied {
            env.info(&format!(
                "loyalty: reversal of {id}: {delta:+} points on {card}, balance {}",
                record.balance
            ));
        } else {
            env.debug(&format!(
                "loyalty: transaction {id} was already reversed on {card}"
            ));
        }
        Ok(())
    }
}

switchyard_sdk::export_participant!(Loyalty);

#[cfg(test)]
mod tests;
