//! The `coupon` participant: the switch's internal coupon host. A coupon is
//! a card number (the router sends it the range `600650`) that the operator
//! issued with a value and an expiry (`switchyard coupons issue`); it lives
//! in the plugin's key/value store (see [`record`] for the value format).
//!
//! Settings:
//! - `currency`: the ISO 4217 numeric code coupon values are in, three
//!   digits. Default `"840"`.
//!
//! Any other key is a settings error (reported by `check_settings`, and
//! answered with 96 and an error log should the plugin run anyway). It
//! needs `grants = ["kv"]`.
//!
//! Requests (ISO 8583:1987 0100 and 0200, ISO 8583:1993 1100 and 1200, or
//! a repeat the switch processes as an original;
//! the type is the first two digits of DE3):
//! - **redemption** (DE3 `00xxxx`), checked in this order: no such coupon
//!   **14**; expired (today, UTC, after its expiry day) **54**; already
//!   redeemed **05**; DE4 over its value **51** (a coupon approves up to its
//!   value, once: no partial approvals, and what is left of a larger value
//!   is not kept). Else one compare-and-set turns its state from `open` to
//!   `redeemed:<TRANLOG_ID>` in `prepare` (`redeemed:-` without a tranlog):
//!   **00** with a 6-character code in DE38, prepared. When the
//!   compare-and-set loses to a concurrent change the coupon is read again
//!   and checked again (a concurrent redemption: **05**).
//! - **balance inquiry** (DE3 `31xxxx`): **14** / **54** as above, else
//!   **00**, DE38, and DE54 with one additional-amounts entry
//!   ([`available_balance`]): account type `00`, amount type `02`, the
//!   plugin's currency, `C`, 12 digits: the value when open, 0 when
//!   redeemed. DE4 is not read.
//! - any other DE3 (a refund, 20, included): **12**. No DE3, or a DE3 that
//!   is not six digits: **30**.
//! - DE2 missing or not a valid card number: **14**. DE4 missing: **30**;
//!   not numeric, or zero: **13**. A DE49 other than the plugin's currency:
//!   **13**.
//! - the kv store failing, a corrupt value (or one whose card number is not
//!   the key's), or [`MAX_ATTEMPTS`] lost compare-and-sets in a row, or a
//!   value beyond DE54's 12 digits: **96** with an error log.
//! - any other MTI (0800): prepared without joining, nothing changed.
//!
//! Second phase: the token of the redemption is kept in the variable
//! [`REDEEMED`]. `abort` (another participant refused the transaction
//! after us) and `commit` with a result code other than 00 turn the coupon
//! back to `open` — only if it is still `redeemed:<same token>` — and clear
//! DE38 and DE54.
//!
//! Reversals (`reverse`, contract 1.2.0): when the original was a
//! redemption whose result code (the transaction's, else DE39 of its
//! response) is 00, one compare-and-set turns `redeemed:<TRANLOG_ID>` back
//! to `open`. The state is its own marker: a reversal delivered again finds
//! `open` (or another transaction's redemption) and does nothing. Without
//! a tranlog every redemption is `redeemed:-`, so they cannot be told apart.
//! A reversal whose coupon was deleted meanwhile does nothing (a warning).
//!
//! Log messages show card numbers masked (first 6, last 4). The kv key
//! holds the PAN, which the host hashes.

pub mod record;

pub use record::{
    Coupon, Date, KEY_PREFIX, NO_TRANLOG, RecordError, State, VERSION, coupon_key, format_coupon,
    is_valid_token, parse_coupon, redemption_token,
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

/// The variable `prepare` leaves for the second phase: the token the
/// redemption recorded (`TRANLOG_ID`, or `-`).
pub const REDEEMED: &str = "COUPON_REDEEMED";

/// How many times a change of a coupon is tried when its compare-and-set
/// loses to a concurrent change.
pub const MAX_ATTEMPTS: u32 = 16;

/// Do not honour: the coupon was already redeemed.
pub const DO_NOT_HONOUR: &str = "05";

/// Insufficient funds: the amount is over the coupon's value.
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
const READ_ORIGINAL: [u16; 2] = [field::PAN, field::PROCESSING_CODE];

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
                    "unknown setting: coupon has only `currency`",
                )),
            }
        }
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(problems)
        }
    }

    /// The currency of coupon values, three digits.
    pub fn currency(&self) -> &str {
        std::str::from_utf8(&self.currency).unwrap_or(DEFAULT_CURRENCY)
    }
}

/// What a request asks of the coupon host (the first two digits of DE3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `00`: redeem the coupon.
    Redemption,
    /// `31`: answer what the coupon is worth.
    BalanceInquiry,
}

/// A request refused before the coupon is read: its response code and
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
/// digits, **12** for a type other than 00 and 31.
pub fn operation(de3: &[u8]) -> Result<Operation, Decline> {
    if de3.len() != 6 || !de3.iter().all(u8::is_ascii_digit) {
        return Err(decline(
            rc::FORMAT_ERROR,
            "the processing code (DE3) is not six digits",
        ));
    }
    match &de3[..2] {
        b"00" => Ok(Operation::Redemption),
        b"31" => Ok(Operation::BalanceInquiry),
        other => Err(decline(
            rc::UNSUPPORTED,
            format!(
                "transaction type {} is not a redemption (00) or balance inquiry (31)",
                String::from_utf8_lossy(other)
            ),
        )),
    }
}

/// The card number of DE2: **14** when absent or not a valid card number.
fn card(pan: Option<&[u8]>) -> Result<String, Decline> {
    pan.filter(|pan| is_valid_pan(pan))
        .and_then(|pan| std::str::from_utf8(pan).ok())
        .map(str::to_owned)
        .ok_or_else(|| decline(rc::INVALID_CARD, "no valid card number in DE2"))
}

/// A request the coupon host acts on.
#[derive(Clone, PartialEq, Eq)]
struct Request {
    pan: String,
    operation: Operation,
    /// DE4 in minor units; 0 for an inquiry.
    amount: u64,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("pan", &mask_pan(self.pan.as_bytes()))
            .field("operation", &self.operation)
            .field("amount", &self.amount)
            .finish()
    }
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
            amount: 0,
        });
    }
    if let Some(currency) = values.get(4)
        && currency != settings.currency
    {
        return Err(decline(
            rc::INVALID_AMOUNT,
            format!(
                "the currency (DE49) {} is not the coupon currency {}",
                String::from_utf8_lossy(currency),
                settings.currency()
            ),
        ));
    }
    let amount = values
        .get(3)
        .ok_or_else(|| decline(rc::FORMAT_ERROR, "no amount (DE4)"))?;
    let amount = match parse_minor_units(amount) {
        Ok(0) => return Err(decline(rc::INVALID_AMOUNT, "the amount (DE4) is zero")),
        Ok(amount) => amount,
        Err(e) => {
            return Err(decline(
                rc::INVALID_AMOUNT,
                format!("the amount (DE4) is {e}"),
            ));
        }
    };
    Ok(Request {
        pan,
        operation,
        amount,
    })
}

/// Why a coupon was not redeemed (or read, or turned back to open).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// No coupon has this card number.
    NoSuchCoupon,
    /// Its expiry day is past.
    Expired(Date),
    /// It was redeemed already.
    AlreadyRedeemed,
    /// The amount is over its value.
    OverValue {
        /// The coupon's value.
        value: u64,
    },
    /// The stored value is not a coupon value.
    Corrupt(RecordError),
    /// The stored value is another card's coupon.
    WrongCard,
    /// The kv store failed.
    Kv(String),
    /// Every compare-and-set lost to a concurrent change.
    Contended,
}

impl Refusal {
    /// The response code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoSuchCoupon => rc::INVALID_CARD,
            Refusal::Expired(_) => rc::EXPIRED,
            Refusal::AlreadyRedeemed => DO_NOT_HONOUR,
            Refusal::OverValue { .. } => INSUFFICIENT_FUNDS,
            Refusal::Corrupt(_) | Refusal::WrongCard | Refusal::Kv(_) | Refusal::Contended => {
                rc::SYSTEM_ERROR
            }
        }
    }

    /// Whether it is a failure of the host rather than an answer about the
    /// coupon.
    pub fn is_failure(&self) -> bool {
        self.code() == rc::SYSTEM_ERROR
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoSuchCoupon => f.write_str("no such coupon"),
            Refusal::Expired(day) => write!(f, "the coupon expired on {day}"),
            Refusal::AlreadyRedeemed => f.write_str("the coupon was already redeemed"),
            Refusal::OverValue { value } => {
                write!(f, "the amount is over the coupon's value of {value}")
            }
            Refusal::Corrupt(e) => write!(f, "the stored coupon is corrupt: {e}"),
            Refusal::WrongCard => f.write_str("the stored coupon names another card number"),
            Refusal::Kv(e) => write!(f, "the kv store failed: {e}"),
            Refusal::Contended => write!(
                f,
                "{MAX_ATTEMPTS} compare-and-sets in a row lost to concurrent changes"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// A stored value as the coupon of `pan`.
fn load(value: &[u8], pan: &str) -> Result<Coupon, Refusal> {
    let coupon = parse_coupon(value).map_err(Refusal::Corrupt)?;
    if coupon.pan != pan {
        return Err(Refusal::WrongCard);
    }
    Ok(coupon)
}

/// Reads the coupon of `pan`.
fn read(env: &impl Kv, pan: &str) -> Result<Coupon, Refusal> {
    let value = env
        .kv_get(&coupon_key(pan))
        .map_err(Refusal::Kv)?
        .ok_or(Refusal::NoSuchCoupon)?;
    load(&value, pan)
}

/// Redeems the coupon of `pan` for `amount` on `today`, recording `token`:
/// one compare-and-set from `open`, checked again from a fresh read when
/// it loses.
fn redeem(
    env: &impl Kv,
    pan: &str,
    amount: u64,
    token: &str,
    today: Date,
) -> Result<Coupon, Refusal> {
    let key = coupon_key(pan);
    for _ in 0..MAX_ATTEMPTS {
        let current = env
            .kv_get(&key)
            .map_err(Refusal::Kv)?
            .ok_or(Refusal::NoSuchCoupon)?;
        let coupon = load(&current, pan)?;
        if coupon.is_expired(today) {
            return Err(Refusal::Expired(coupon.expires));
        }
        if coupon.state != State::Open {
            return Err(Refusal::AlreadyRedeemed);
        }
        if amount > coupon.value {
            return Err(Refusal::OverValue {
                value: coupon.value,
            });
        }
        let redeemed = Coupon {
            state: State::Redeemed(token.to_owned()),
            ..coupon
        };
        if env
            .kv_compare_and_set(&key, Some(&current), format_coupon(&redeemed).as_bytes())
            .map_err(Refusal::Kv)?
        {
            return Ok(redeemed);
        }
    }
    Err(Refusal::Contended)
}

/// What turning a coupon back to open found.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reopened {
    /// It was redeemed by the token and is open again.
    Yes,
    /// It is open, or redeemed by another transaction: nothing to do.
    NotRedeemedBy(State),
    /// The coupon no longer exists.
    Missing,
}

/// Turns the coupon of `pan` back to open if it is still redeemed by
/// `token`: one compare-and-set, retried from a fresh read when it loses.
fn reopen(env: &impl Kv, pan: &str, token: &str) -> Result<Reopened, Refusal> {
    let key = coupon_key(pan);
    for _ in 0..MAX_ATTEMPTS {
        let Some(current) = env.kv_get(&key).map_err(Refusal::Kv)? else {
            return Ok(Reopened::Missing);
        };
        let coupon = load(&current, pan)?;
        if !matches!(&coupon.state, State::Redeemed(t) if t == token) {
            return Ok(Reopened::NotRedeemedBy(coupon.state));
        }
        let open = Coupon {
            state: State::Open,
            ..coupon
        };
        if env
            .kv_compare_and_set(&key, Some(&current), format_coupon(&open).as_bytes())
            .map_err(Refusal::Kv)?
        {
            return Ok(Reopened::Yes);
        }
    }
    Err(Refusal::Contended)
}

/// The DE54 entry of an available amount: account type `00`, amount type
/// `02`, `currency` (three digits), `C`, 12 digits of minor units. `None`
/// when the currency is not three digits or the amount needs more than 12
/// digits.
pub fn available_balance(currency: &str, minor_units: u64) -> Option<String> {
    if currency.len() != 3 || !currency.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if minor_units > MAX_DE54_AMOUNT {
        return None;
    }
    Some(format!("0002{currency}C{minor_units:012}"))
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

/// Logs a refusal (an error for a failure, else debug) and aborts with its
/// code.
fn refuse(tx: &mut impl Transaction, env: &impl Env, card: &str, refusal: &Refusal) -> Outcome {
    let message = format!("coupon: {}: {card}: {refusal}", refusal.code());
    if refusal.is_failure() {
        env.error(&message);
    } else {
        env.debug(&message);
    }
    abort(tx, refusal.code())
}

/// Turns the coupon back to open after a transaction that did not go
/// through; a failure is logged for the operator.
fn give_back(env: &impl Env, pan: &str, token: &str, why: &str) {
    let card = mask_pan(pan.as_bytes());
    match reopen(env, pan, token) {
        Ok(Reopened::Yes) => env.debug(&format!("coupon: {why}: {card} is open again")),
        Ok(Reopened::NotRedeemedBy(state)) => env.warn(&format!(
            "coupon: {why}: {card} is no longer redeemed by {token} ({state:?}): left as it is"
        )),
        Ok(Reopened::Missing) => env.warn(&format!(
            "coupon: {why}: {card} no longer exists: nothing to reopen"
        )),
        Err(refusal) => env.error(&format!(
            "coupon: {why}: could not reopen {card}: {refusal}"
        )),
    }
}

/// The coupon participant: its settings (parsed once) and a counter for
/// authorization codes. All coupons are the host's kv store.
#[derive(Clone, Debug, Default)]
pub struct CouponHost {
    settings: Option<Result<Settings, Vec<SettingProblem>>>,
    codes: switchyard_sdk::AuthCodes,
}

impl CouponHost {
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
                "coupon: bad settings: {}",
                problems
                    .iter()
                    .map(|p| format!("`{}`: {}", p.key, p.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }

    /// A redemption: the compare-and-set, then DE38.
    fn redeem(&mut self, tx: &mut impl Transaction, env: &impl Env, request: &Request) -> Outcome {
        let card = mask_pan(request.pan.as_bytes());
        let id = tx.var(TRANLOG_ID).unwrap_or_default().into_owned();
        let token = redemption_token(&id).to_owned();
        if !is_valid_token(&token) {
            env.error(&format!(
                "coupon: TRANLOG_ID {id:?} cannot be recorded in a coupon value"
            ));
            return abort(tx, rc::SYSTEM_ERROR);
        }
        let today = Date::from_unix_millis(env.now_unix_millis());
        let coupon = match redeem(env, &request.pan, request.amount, &token, today) {
            Ok(coupon) => coupon,
            Err(refusal) => return refuse(tx, env, &card, &refusal),
        };
        let code = self.next_auth_code(env);
        if let Err(reason) = set_fields(tx, &[(field::AUTH_ID, &code)]) {
            // We abort: no second phase will reopen it.
            give_back(env, &request.pan, &token, "the approval could not be set");
            env.error(&format!("coupon: {reason}"));
            return abort(tx, rc::SYSTEM_ERROR);
        }
        tx.set_var(REDEEMED, &token);
        tx.set_result_code(rc::APPROVED);
        env.debug(&format!(
            "coupon: 00: {card} redeemed for {} of its {} by {token}",
            request.amount, coupon.value
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
        let today = Date::from_unix_millis(env.now_unix_millis());
        let coupon = match read(env, &request.pan) {
            Ok(coupon) if coupon.is_expired(today) => {
                return refuse(tx, env, &card, &Refusal::Expired(coupon.expires));
            }
            Ok(coupon) => coupon,
            Err(refusal) => return refuse(tx, env, &card, &refusal),
        };
        let left = match coupon.state {
            State::Open => coupon.value,
            State::Redeemed(_) => 0,
        };
        let Some(de54) = available_balance(settings.currency(), left) else {
            env.error(&format!(
                "coupon: balance inquiry on {card}: the value {left} does not fit in DE54's 12 digits"
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
            env.error(&format!("coupon: {reason}"));
            return abort(tx, rc::SYSTEM_ERROR);
        }
        tx.set_result_code(rc::APPROVED);
        Outcome::Prepared
    }

    /// The second phase of a transaction that is not approved after all:
    /// reopens the coupon it redeemed (once) and clears DE38 and DE54.
    fn undo(tx: &mut impl Transaction, env: &impl Env, why: &str) {
        tx.clear_response_field(field::AUTH_ID);
        tx.clear_response_field(ADDITIONAL_AMOUNTS);
        let Some(token) = tx
            .var(REDEEMED)
            .filter(|t| !t.is_empty())
            .map(|t| t.into_owned())
        else {
            return; // an inquiry, or already reopened
        };
        tx.set_var(REDEEMED, "");
        match card(tx.request_field(field::PAN).as_deref()) {
            Ok(pan) => give_back(env, &pan, &token, why),
            Err(_) => env.error(&format!(
                "coupon: {why}: the coupon redeemed by {token} is no longer in DE2 and cannot be reopened"
            )),
        }
    }
}

impl Participant for CouponHost {
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
                env.debug(&format!("coupon: {code}: {reason}"));
                return abort(tx, code);
            }
        };
        match request.operation {
            Operation::Redemption => self.redeem(tx, env, &request),
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
            CouponHost::undo(tx, env, "committed without approval");
        }
    }

    fn abort(&mut self, tx: &mut impl Transaction, env: &impl Env) {
        CouponHost::undo(tx, env, "aborted");
    }

    fn reverse(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Result<(), String> {
        if !original_approved(tx) {
            env.debug("coupon: reversal of a transaction that was not approved: nothing to undo");
            return Ok(());
        }
        let values = tx.request_values(&READ_ORIGINAL);
        let describe = |d: Decline| format!("coupon: reversal: the original request: {}", d.reason);
        let pan = card(values.get(0)).map_err(describe)?;
        let de3 = values
            .get(1)
            .ok_or_else(|| describe(decline(rc::FORMAT_ERROR, "no processing code (DE3)")))?;
        if operation(de3).map_err(describe)? != Operation::Redemption {
            return Ok(()); // an inquiry redeems nothing
        }
        drop(values);
        let id = tx.var(TRANLOG_ID).unwrap_or_default().into_owned();
        let token = redemption_token(&id);
        let card = mask_pan(pan.as_bytes());
        match reopen(env, &pan, token) {
            Ok(Reopened::Yes) => {
                env.info(&format!(
                    "coupon: reversal of {token}: {card} is open again"
                ));
                Ok(())
            }
            Ok(Reopened::NotRedeemedBy(state)) => {
                env.debug(&format!(
                    "coupon: reversal of {token}: {card} is not redeemed by it ({state:?}): already reversed"
                ));
                Ok(())
            }
            Ok(Reopened::Missing) => {
                env.warn(&format!(
                    "coupon: reversal of {token}: {card} no longer exists: nothing to reopen"
                ));
                Ok(())
            }
            Err(refusal) => Err(format!("coupon: reversal of {token} on {card}: {refusal}")),
        }
    }
}

switchyard_sdk::export_participant!(CouponHost);

#[cfg(test)]
mod tests;
