//! The `velocity` participant: limits how many transactions, and how much
//! money, a card, a terminal or a merchant may move in a window of time.
//! Profiles are data (settings); the counters are the host's (`counters`
//! capability), exact under concurrency; reversals give back what they
//! reversed, once (`kv` capability for the markers). It needs
//! `grants = ["counters", "kv"]`.
//!
//! # Settings
//!
//! One setting per profile, checked in the order of the settings:
//!
//! ```toml
//! config = { "profile card" = "scope=card window=24h count=10 amount=*:2500.00",
//!            "profile atm" = "scope=terminal window=day types=withdrawal amount=840:10000 rc=61" }
//! ```
//!
//! `"profile <name>" = "<items>"`: the name is 1 to 64 letters, digits, `_`,
//! `-` or `.`; the items are separated by spaces, each `key=value`:
//!
//! | item | values | default |
//! |---|---|---|
//! | `scope` | `card` (DE2, else the PAN of DE35), `terminal` (DE41), `merchant` (DE42 alone); surrounding spaces are not part of the key | `card` |
//! | `window` | `<N>h` (1–744) or `<N>d` (1–31): the last N hours or days, sliding; `day` or `month`: the current calendar day or month, UTC | `24h` |
//! | `count` | at most N counted transactions in the window (1–1,000,000,000) | none |
//! | `amount` | `<CUR>:<decimal>[,<CUR>:<decimal>…]`: at most this total per currency, in major units; CUR an ISO 4217 numeric code (`840`) or `*` for every currency not named | none |
//! | `types` | comma list of `purchase` (DE3 `00…`), `withdrawal` (`01…`), `refund` (`20…`) | `purchase,withdrawal` |
//! | `approvals` | `only`: only approved transactions stay counted; `all`: every transaction that passed the check | `only` |
//! | `rc` | the result code of a decline by this profile: 2 letters or digits, not an approval code | `65` (count), `61` (amount) |
//!
//! A profile needs `count`, `amount` or both. Amounts are in the currency's
//! ISO 4217 exponent (`840:2500.00` is 250000 cents, `392:5000` 5000 yen); a
//! `*` limit is converted with the transaction currency's exponent, dropping
//! decimals the currency does not have (`*:2500.50` is 2500 yen). The
//! currency is DE49, `840` when absent; each currency is counted apart
//! (`<profile>:amount:<CUR>`). With no setting at all the participant uses
//! the default contract's profile, [`DEFAULT_PROFILE`]:
//! `"profile card" = "scope=card window=24h count=10 amount=*:2500.00"`
//! (the 11th approval per card in 24 h → 65; an approved amount over
//! 2,500.00 per card in 24 h → 61). [`Participant::check_settings`] reports
//! every unknown setting and every bad profile item.
//!
//! # What counts
//!
//! 0100 and 0200 (and their repeats 0101, 0201, which reach the pipeline
//! only when processed as originals), and their ISO 8583:1993 forms 1100,
//! 1200, 1101, 1201, whose DE3 is of one of the profile's
//! types and that carry the scope's field; anything else is left alone by
//! that profile (and when no profile applies, the participant does not
//! join). A refund counts like a purchase: velocity limits activity, not
//! net spend. A partial approval (10) counts its requested amount.
//!
//! # Exact under concurrency
//!
//! `prepare` does not check first and count later: it **reserves**, adding
//! `+1` to `<profile>:count` and DE4 (minor units) to
//! `<profile>:amount:<CUR>` with one atomic `counter_add` each, and
//! declines when the sum it gets back is over the limit. So of two
//! transactions at the limit at the same time, one gets the sum over the
//! limit and is declined: both cannot pass. A decline gives back every
//! reservation the transaction made (all profiles), sets the result code of
//! the first profile exceeded (settings order; the count before the amount
//! within a profile) and aborts; a declined transaction never counts.
//!
//! - `commit`: with `approvals=only`, a transaction whose result code is
//!   not an approval (00, 08, 10, 11, 16) gets its reservation back;
//!   approvals keep it.
//! - `abort`: with `approvals=only` the reservation is given back; with
//!   `approvals=all` it stays (every attempt counts).
//!
//! The reservations are not kept in the instance: with the host's `reuse`
//! instance policy, `commit` or `abort` may run on another instance than
//! `prepare`. They are recomputed from the request, which is the same; the
//! calendar period is the one of `prepare`'s time, passed on in the
//! variable [`AT_VAR`] (set only when a calendar profile reserved).
//!
//! # Reversals
//!
//! [`Participant::reverse`] gets the original request and its response: if
//! the original was approved (its DE39, else its result code) — or for
//! `approvals=all` profiles, whatever its result — its count and amount are
//! given back, **once per `TRANLOG_ID`**: a `kv` compare-and-set of the
//! marker `rev:<TRANLOG_ID>` from absent claims the reversal, and only then
//! are the negative `counter_add`s made. A reversal delivered again finds
//! the marker and does nothing. If the first give-back fails the marker is
//! removed and the error returned, so the host delivers it again; if the
//! process dies between the claim and the give-backs (or a later give-back
//! fails), the card stays over-counted: the conservative direction. With no
//! `TRANLOG_ID` (a switch without a tranlog) a reversal cannot be told from
//! its redelivery: each call gives back, with a warning.
//!
//! A give-back goes into the counter of the time the reversal runs (the
//! original's DE7/DE12/DE13 are the acquirer's and may be wrong): the same
//! sliding window, the current calendar day or month. It never takes a
//! counter below zero: when the original has left the window (or its
//! calendar period has passed), what is given back is at most what is
//! still counted. A reversal late in a sliding window still credits the
//! card until the give-back itself leaves the window; settings changed in
//! between apply to the give-back.
//!
//! Two velocity steps under one plugin name share counters and markers: use
//! one step with several profiles. Counter keys are card numbers, terminal
//! and merchant ids (the host keeps only their keyed hash); the log shows
//! profile names and sums, never a card number.
//!
//! A counter that fails in `prepare` (not granted, a window the host does
//! not accept) gives back what was reserved and aborts with **96** after an
//! error in the log; so do settings that do not parse. An applying amount
//! limit with DE4 missing is **30**, DE4 not numeric **13**, a DE49 that is
//! not 3 digits **30** (normally `validate` has refused them already).

mod calendar;
mod settings;

use std::borrow::Cow;

use switchyard_sdk::amount::{self, AmountError};
use switchyard_sdk::card::{PAN_MAX_LEN, PAN_MIN_LEN};
use switchyard_sdk::{
    Config, Env, Outcome, Participant, SettingProblem, TRANLOG_ID, Transaction, field, mti, rc,
};

pub use calendar::civil_from_days;
pub use settings::{
    AMOUNT_RC, APPROVALS, Approvals, COUNT_RC, CurrencyLimit, DEFAULT_PROFILE, MAX_WINDOW_SECONDS,
    Profile, Scope, TxType, TxTypes, Window, is_approval, parse as parse_profiles,
};

/// The variable `prepare` leaves for `commit` and `abort` when a calendar
/// profile reserved: the wall-clock time of the reservations, Unix
/// milliseconds, so that they are given back into the same period.
pub const AT_VAR: &str = "VELOCITY_AT";

/// The context variable that says this transaction holds reservations
/// (`1`, set by a `prepare` that reserved; `0` once given back). The host
/// calls `abort` on a participant whose own `prepare` aborted too, and a
/// declining `prepare` has given its reservations back already: without
/// this mark, `abort` would give them back a second time.
pub const HELD_VAR: &str = "VELOCITY_HELD";

/// The currency of a request without DE49.
pub const DEFAULT_CURRENCY: [u8; 3] = *b"840";

/// What `prepare`, `commit`, `abort` and `reverse` read, in one host call:
/// the MTI (0) and the fields.
const READ: [u16; 7] = [
    0,
    field::PROCESSING_CODE,
    field::PAN,
    field::AMOUNT,
    field::TERMINAL_ID,
    field::MERCHANT_ID,
    field::CURRENCY,
];

/// The velocity participant. Keeps only its parsed settings: the counters
/// are the host's.
#[derive(Clone, Debug, Default)]
pub struct Velocity {
    profiles: Option<Result<Vec<Profile>, String>>,
}

impl Velocity {
    /// The profiles, parsed on first use; `Err` with every problem.
    fn profiles(&mut self, config: &impl Config) -> Result<&[Profile], &str> {
        let parsed = self.profiles.get_or_insert_with(|| {
            settings::parse(config).map_err(|problems| {
                let all: Vec<String> = problems
                    .iter()
                    .map(|p| format!("`{}`: {}", p.key, p.message))
                    .collect();
                format!("velocity: bad settings: {}", all.join("; "))
            })
        });
        match parsed {
            Ok(profiles) => Ok(profiles),
            Err(message) => Err(message),
        }
    }
}

/// A request as the profiles see it.
#[derive(Debug)]
struct Request {
    tx_type: TxType,
    card: Option<String>,
    terminal: Option<String>,
    merchant: Option<String>,
    currency: Option<[u8; 3]>,
    amount: Option<Result<i64, AmountError>>,
}

impl Request {
    /// The request in `tx`, or `None` when it is not a financial request of
    /// a counted type.
    fn read(tx: &impl Transaction, profiles: &[Profile]) -> Option<Request> {
        let values = tx.request_values(&READ);
        if !mti::is_financial_or_repeat_any_version(values.str(0).unwrap_or_default()) {
            return None;
        }
        let tx_type = TxType::of_processing_code(values.get(1)?)?;
        let text = |i: usize| {
            values
                .get(i)
                .map(|v| String::from_utf8_lossy(v).trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut card = text(2);
        let (terminal, merchant) = (text(4), text(5));
        let currency = match values.get(6) {
            None => Some(DEFAULT_CURRENCY),
            Some(&[a, b, c]) if [a, b, c].iter().all(u8::is_ascii_digit) => Some([a, b, c]),
            Some(_) => None,
        };
        let amount = values.get(3).map(|v| {
            amount::parse_minor_units(v)
                .and_then(|a| i64::try_from(a).map_err(|_| AmountError::Overflow))
        });
        drop(values);
        if card.is_none()
            && profiles
                .iter()
                .any(|p| p.scope == Scope::Card && p.types.contains(tx_type))
        {
            card = tx.request_field(field::TRACK2).and_then(|t| track2_pan(&t));
        }
        Some(Request {
            tx_type,
            card,
            terminal,
            merchant,
            currency,
            amount,
        })
    }

    fn scope_key(&self, scope: Scope) -> Option<&str> {
        match scope {
            Scope::Card => self.card.as_deref(),
            Scope::Terminal => self.terminal.as_deref(),
            Scope::Merchant => self.merchant.as_deref(),
        }
    }
}

/// The PAN of track 2 data (`;PAN=YYMM…?` or with `D` as separator), when it
/// is 12 to 19 digits.
fn track2_pan(track: &[u8]) -> Option<String> {
    let track = track.strip_prefix(b";").unwrap_or(track);
    let end = track
        .iter()
        .position(|&c| matches!(c, b'=' | b'D' | b'd'))
        .unwrap_or(track.len());
    let pan = &track[..end];
    ((PAN_MIN_LEN..=PAN_MAX_LEN).contains(&pan.len()) && pan.iter().all(u8::is_ascii_digit))
        .then(|| String::from_utf8_lossy(pan).into_owned())
}

/// Which limit a reservation is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limit {
    Count,
    Amount { exponent: u8 },
}

/// One counter add a transaction makes.
#[derive(Debug)]
struct Reservation<'p> {
    profile: &'p Profile,
    counter: Cow<'p, str>,
    key: String,
    delta: i64,
    limit: i64,
    kind: Limit,
}

impl Reservation<'_> {
    fn window(&self) -> u32 {
        self.profile.window.seconds()
    }

    fn rc(&self) -> &str {
        match self.kind {
            Limit::Count => &self.profile.count_rc,
            Limit::Amount { .. } => &self.profile.amount_rc,
        }
    }

    /// Why the sum declines, for the log: no key, only names and numbers.
    fn over_limit(&self, sum: i64) -> String {
        let window = match self.profile.window {
            Window::Sliding(s) if s % 86_400 == 0 => format!("{}d", s / 86_400),
            Window::Sliding(s) => format!("{}h", s / 3_600),
            Window::Day => "the day".to_owned(),
            Window::Month => "the month".to_owned(),
        };
        let (sum, limit) = match self.kind {
            Limit::Count => (sum.to_string(), self.limit.to_string()),
            Limit::Amount { exponent } => (
                amount::format_major_units(sum.unsigned_abs(), exponent),
                amount::format_major_units(self.limit.unsigned_abs(), exponent),
            ),
        };
        format!(
            "velocity: profile `{}`: {} {sum} in {window} over the limit {limit}: {}",
            self.profile.name,
            self.counter,
            self.rc()
        )
    }
}

/// Why a request cannot be planned: the result code and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Refusal {
    code: &'static str,
    reason: String,
}

/// The counter adds of a request.
#[derive(Debug)]
struct Plan<'p> {
    reservations: Vec<Reservation<'p>>,
    /// The wall-clock time read for a calendar period, if any.
    at: Option<i64>,
}

/// The reservations `request` makes under `profiles`; `now` is read once,
/// and only when a calendar profile applies.
fn plan<'p>(
    profiles: &'p [Profile],
    request: &Request,
    mut now: impl FnMut() -> i64,
) -> Result<Plan<'p>, Refusal> {
    let mut reservations = Vec::new();
    let mut at = None;
    for profile in profiles {
        if !profile.types.contains(request.tx_type) {
            continue;
        }
        let Some(base) = request.scope_key(profile.scope) else {
            continue;
        };
        let key = match profile.window {
            Window::Sliding(_) => base.to_owned(),
            Window::Day => format!("{base}|{}", calendar::day(*at.get_or_insert_with(&mut now))),
            Window::Month => {
                format!(
                    "{base}|{}",
                    calendar::month(*at.get_or_insert_with(&mut now))
                )
            }
        };
        if let Some(count) = profile.count {
            reservations.push(Reservation {
                profile,
                counter: Cow::Borrowed(&profile.count_counter),
                key: key.clone(),
                delta: 1,
                limit: count,
                kind: Limit::Count,
            });
        }
        if !profile.limits_amounts() {
            continue;
        }
        let Some(currency) = request.currency else {
            return Err(Refusal {
                code: rc::FORMAT_ERROR,
                reason: format!(
                    "velocity: profile `{}`: DE49 is not a 3-digit currency code",
                    profile.name
                ),
            });
        };
        let Some(limit) = profile.amount_limit(currency) else {
            continue;
        };
        let delta = match &request.amount {
            Some(Ok(amount)) => *amount,
            None => {
                return Err(Refusal {
                    code: rc::FORMAT_ERROR,
                    reason: format!("velocity: profile `{}`: no DE4", profile.name),
                });
            }
            Some(Err(e)) => {
                return Err(Refusal {
                    code: rc::INVALID_AMOUNT,
                    reason: format!("velocity: profile `{}`: DE4 is {e}", profile.name),
                });
            }
        };
        reservations.push(Reservation {
            profile,
            counter: Cow::Owned(profile.amount_counter(currency)),
            key,
            delta,
            limit,
            kind: Limit::Amount {
                exponent: amount::currency_exponent(&currency),
            },
        });
    }
    Ok(Plan { reservations, at })
}

/// Gives back `done`, logging what fails (the counter then stays
/// over-counted: the conservative direction).
fn give_back(env: &impl Env, done: &[&Reservation<'_>]) {
    for r in done {
        if r.delta == 0 {
            continue;
        }
        if let Err(e) = env.counter_add(&r.counter, &r.key, -r.delta, r.window()) {
            env.error(&format!(
                "velocity: profile `{}`: giving back {} failed, it stays counted: {e}",
                r.profile.name, r.counter
            ));
        }
    }
}

fn refuse(tx: &mut impl Transaction, code: &str) -> Outcome {
    tx.set_result_code(code);
    Outcome::Aborted
}

impl Velocity {
    /// `commit` without an approval, or `abort`: gives back the
    /// reservations of the profiles with `approvals=only`.
    fn release(&mut self, tx: &mut impl Transaction, env: &impl Env, phase: &str) {
        if tx.var(HELD_VAR).as_deref() != Some("1") {
            return; // nothing reserved, or given back already
        }
        tx.set_var(HELD_VAR, "0");
        let profiles = match self.profiles(env) {
            Ok(profiles) => profiles,
            Err(message) => return env.error(message),
        };
        if profiles.iter().all(|p| p.approvals == Approvals::All) {
            return;
        }
        let Some(request) = Request::read(tx, profiles) else {
            return;
        };
        let at = || {
            tx.var(AT_VAR)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or_else(|| {
                    env.warn(&format!(
                        "velocity: {phase}: {AT_VAR} is not set: giving back into the current period"
                    ));
                    env.now_unix_millis()
                })
        };
        match plan(profiles, &request, at) {
            Ok(plan) => {
                let only: Vec<&Reservation<'_>> = plan
                    .reservations
                    .iter()
                    .filter(|r| r.profile.approvals == Approvals::Only)
                    .collect();
                give_back(env, &only);
            }
            Err(refusal) => env.error(&format!("{} in {phase}", refusal.reason)),
        }
    }
}

impl Participant for Velocity {
    fn prepare(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Outcome {
        let profiles = match self.profiles(env) {
            Ok(profiles) => profiles,
            Err(message) => {
                env.error(message);
                return refuse(tx, rc::SYSTEM_ERROR);
            }
        };
        let Some(request) = Request::read(tx, profiles) else {
            return Outcome::NoJoin;
        };
        let plan = match plan(profiles, &request, || env.now_unix_millis()) {
            Ok(plan) => plan,
            Err(refusal) => {
                env.debug(&refusal.reason);
                return refuse(tx, refusal.code);
            }
        };
        if plan.reservations.is_empty() {
            return Outcome::NoJoin;
        }
        let mut done: Vec<&Reservation<'_>> = Vec::with_capacity(plan.reservations.len());
        for r in &plan.reservations {
            match env.counter_add(&r.counter, &r.key, r.delta, r.window()) {
                Ok(sum) => {
                    done.push(r);
                    if sum > r.limit {
                        give_back(env, &done);
                        env.debug(&r.over_limit(sum));
                        return refuse(tx, r.rc());
                    }
                }
                Err(e) => {
                    give_back(env, &done);
                    env.error(&format!(
                        "velocity: profile `{}`: counter {}: {e}",
                        r.profile.name, r.counter
                    ));
                    return refuse(tx, rc::SYSTEM_ERROR);
                }
            }
        }
        if let Some(at) = plan.at {
            tx.set_var(AT_VAR, &at.to_string());
        }
        tx.set_var(HELD_VAR, "1");
        Outcome::Prepared
    }

    fn check_settings(&mut self, config: &impl Config) -> Vec<SettingProblem> {
        match settings::parse(config) {
            Ok(profiles) => {
                self.profiles = Some(Ok(profiles));
                Vec::new()
            }
            Err(problems) => problems,
        }
    }

    fn commit(&mut self, tx: &mut impl Transaction, env: &impl Env) {
        let approved = tx.result_code().is_some_and(|code| is_approval(&code));
        if !approved {
            self.release(tx, env, "commit");
        }
    }

    fn abort(&mut self, tx: &mut impl Transaction, env: &impl Env) {
        self.release(tx, env, "abort");
    }

    fn reverse(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Result<(), String> {
        let profiles = self.profiles(env).map_err(str::to_owned)?;
        let Some(request) = Request::read(tx, profiles) else {
            return Ok(());
        };
        let approved = tx
            .response_field(field::RESPONSE_CODE)
            .map(|code| String::from_utf8_lossy(&code).into_owned())
            .or_else(|| tx.result_code().map(Cow::into_owned))
            .is_some_and(|code| is_approval(&code));
        let plan = match plan(profiles, &request, || env.now_unix_millis()) {
            Ok(plan) => plan,
            Err(refusal) => {
                env.warn(&format!(
                    "{} in the reversed original: nothing to give back",
                    refusal.reason
                ));
                return Ok(());
            }
        };
        let counted: Vec<&Reservation<'_>> = plan
            .reservations
            .iter()
            .filter(|r| r.delta != 0 && (approved || r.profile.approvals == Approvals::All))
            .collect();
        if counted.is_empty() {
            return Ok(());
        }
        let tranlog_id = tx.var(TRANLOG_ID).map(Cow::into_owned).unwrap_or_default();
        let marker = format!("rev:{tranlog_id}");
        if tranlog_id.is_empty() {
            env.warn("velocity: reversal without a TRANLOG_ID: giving back without a marker");
        } else if !env.kv_compare_and_set(&marker, None, b"1")? {
            return Ok(());
        }
        for (i, r) in counted.iter().enumerate() {
            let window = r.window();
            let sum = match env.counter_add(&r.counter, &r.key, -r.delta, window) {
                Ok(sum) => sum,
                Err(e) => {
                    let message = format!(
                        "velocity: reversal: profile `{}`: giving back {} failed: {e}",
                        r.profile.name, r.counter
                    );
                    if i == 0 && !tranlog_id.is_empty() {
                        // Nothing given back yet: release the claim so that
                        // the host's next delivery retries.
                        env.kv_delete(&marker)?;
                        return Err(message);
                    }
                    env.error(&format!("{message}; it stays counted"));
                    continue;
                }
            };
            // Never below zero: the original may have left the window.
            if sum < 0
                && let Err(e) = env.counter_add(&r.counter, &r.key, -sum, window)
            {
                env.error(&format!(
                    "velocity: reversal: profile `{}`: {} is {sum} and could not be set back to zero: {e}",
                    r.profile.name, r.counter
                ));
            }
        }
        Ok(())
    }
}

switchyard_sdk::export_participant!(Velocity);

#[cfg(test)]
mod tests;
