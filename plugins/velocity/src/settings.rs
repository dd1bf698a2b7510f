//! The velocity profiles, parsed once from the participant's settings.
//!
//! Every setting is `"profile <name>" = "<items>"`; see the crate docs for
//! the items. [`parse`] reads them all and reports every problem at once.

use switchyard_sdk::amount::{self, AmountError};
use switchyard_sdk::{Config, SettingProblem, rc};

/// The prefix of every setting key.
pub const PROFILE_PREFIX: &str = "profile";

/// The profile used when no `profile <name>` is configured: the velocity
/// rules of the default contract (more than 10 approvals per card in 24 h →
/// 65; an approved amount per card over 2,500.00 in 24 h → 61).
pub const DEFAULT_PROFILE: (&str, &str) =
    ("card", "scope=card window=24h count=10 amount=*:2500.00");

/// The longest window the host's counters keep: 31 days.
pub const MAX_WINDOW_SECONDS: u32 = 2_678_400;

/// The counter window of a calendar day.
pub const DAY_SECONDS: u32 = 86_400;

/// The window used when a profile names none: 24 hours.
pub const DEFAULT_WINDOW: Window = Window::Sliding(DAY_SECONDS);

/// The result code of a count limit exceeded unless `rc=` says otherwise:
/// exceeds withdrawal frequency limit.
pub const COUNT_RC: &str = "65";

/// The result code of an amount limit exceeded unless `rc=` says otherwise.
pub const AMOUNT_RC: &str = rc::OVER_LIMIT;

/// The longest profile name.
const MAX_NAME_LEN: usize = 64;

/// The exponent `*` amounts are kept in, converted to the transaction's
/// currency when used: the largest ISO 4217 exponent.
const ANY_EXPONENT: u8 = 4;

/// Result codes that approve (ISO 8583:1987): approved, honour with
/// identification, partial approval, VIP approval, approved with track 3
/// update.
pub const APPROVALS: [&str; 5] = ["00", "08", "10", "11", "16"];

/// Whether `code` approves the transaction.
pub fn is_approval(code: &str) -> bool {
    APPROVALS.contains(&code)
}

/// Which field keys a profile's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The card: DE2, else the PAN of DE35.
    Card,
    /// The terminal: DE41.
    Terminal,
    /// The merchant (card acceptor): DE42.
    Merchant,
}

/// How long a profile counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The last so many seconds.
    Sliding(u32),
    /// The current calendar day, UTC.
    Day,
    /// The current calendar month, UTC.
    Month,
}

impl Window {
    /// The window the host's counter is asked for.
    pub fn seconds(self) -> u32 {
        match self {
            Window::Sliding(seconds) => seconds,
            Window::Day => DAY_SECONDS,
            Window::Month => MAX_WINDOW_SECONDS,
        }
    }
}

/// A transaction type counted by a profile, from the first two digits of
/// DE3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxType {
    /// `00`: goods and services.
    Purchase,
    /// `01`: cash withdrawal.
    Withdrawal,
    /// `20`: refund (returns).
    Refund,
}

impl TxType {
    /// The type of a processing code (DE3), or `None` for any other.
    pub fn of_processing_code(de3: &[u8]) -> Option<TxType> {
        match de3.get(..2)? {
            b"00" => Some(TxType::Purchase),
            b"01" => Some(TxType::Withdrawal),
            b"20" => Some(TxType::Refund),
            _ => None,
        }
    }

    fn bit(self) -> u8 {
        match self {
            TxType::Purchase => 1,
            TxType::Withdrawal => 2,
            TxType::Refund => 4,
        }
    }
}

/// A set of [`TxType`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxTypes(u8);

impl TxTypes {
    /// Purchases and withdrawals: the default.
    pub const DEFAULT: TxTypes = TxTypes(1 | 2);

    /// Whether `ty` is in the set.
    pub fn contains(self, ty: TxType) -> bool {
        self.0 & ty.bit() != 0
    }
}

/// Which transactions stay counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approvals {
    /// Only those whose final result code is an approval.
    Only,
    /// Every one that passed the check.
    All,
}

/// An amount limit in minor units of one currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrencyLimit {
    /// The ISO 4217 numeric code.
    pub currency: [u8; 3],
    /// The limit in minor units.
    pub limit: i64,
}

/// One velocity profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The name, from `profile <name>`.
    pub name: String,
    /// The counter of transactions: `<name>:count`.
    pub count_counter: String,
    /// What keys the counters.
    pub scope: Scope,
    /// How long it counts.
    pub window: Window,
    /// At most so many counted transactions in the window.
    pub count: Option<i64>,
    /// Amount limits of named currencies.
    pub amounts: Vec<CurrencyLimit>,
    /// The amount limit of every other currency (`*`), in minor units of
    /// exponent 4.
    pub any_amount: Option<i64>,
    /// The transaction types counted.
    pub types: TxTypes,
    /// Which transactions stay counted.
    pub approvals: Approvals,
    /// The result code when the count limit is exceeded.
    pub count_rc: String,
    /// The result code when an amount limit is exceeded.
    pub amount_rc: String,
}

impl Profile {
    /// The amount limit for `currency` (three ASCII digits), in its minor
    /// units: the named currency's, else `*`'s with the currency's exponent
    /// (decimals it does not have are dropped).
    pub fn amount_limit(&self, currency: [u8; 3]) -> Option<i64> {
        if let Some(named) = self.amounts.iter().find(|l| l.currency == currency) {
            return Some(named.limit);
        }
        let any = self.any_amount?;
        let exponent = amount::currency_exponent(&currency).min(ANY_EXPONENT);
        Some(any / 10i64.pow(u32::from(ANY_EXPONENT - exponent)))
    }

    /// Whether the profile has any amount limit.
    pub fn limits_amounts(&self) -> bool {
        !self.amounts.is_empty() || self.any_amount.is_some()
    }

    /// The amount counter of `currency`: `<name>:amount:<CUR>`.
    pub fn amount_counter(&self, currency: [u8; 3]) -> String {
        let currency = String::from_utf8_lossy(&currency);
        format!("{}:amount:{currency}", self.name)
    }
}

/// Every profile of the settings, in their order, or every problem found.
/// No profile at all: [`DEFAULT_PROFILE`].
pub fn parse(config: &impl Config) -> Result<Vec<Profile>, Vec<SettingProblem>> {
    let mut entries = config.entries();
    if entries.is_empty() {
        entries.push((
            format!("{PROFILE_PREFIX} {}", DEFAULT_PROFILE.0),
            DEFAULT_PROFILE.1.to_owned(),
        ));
    }
    let mut profiles = Vec::new();
    let mut problems = Vec::new();
    for (key, value) in &entries {
        let Some(name) = profile_name(key) else {
            problems.push(SettingProblem::new(
                key.as_str(),
                format!("unknown setting: expected `{PROFILE_PREFIX} <name>` = \"<items>\""),
            ));
            continue;
        };
        match parse_profile(name, value) {
            Ok(profile) => profiles.push(profile),
            Err(found) => problems.extend(
                found
                    .into_iter()
                    .map(|m| SettingProblem::new(key.as_str(), m)),
            ),
        }
    }
    if problems.is_empty() {
        Ok(profiles)
    } else {
        Err(problems)
    }
}

/// The profile name of a setting key (`profile card` → `card`), or `None`
/// when the key is not a profile.
fn profile_name(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PROFILE_PREFIX)?;
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    Some(rest.trim())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// One profile, or the messages of every problem in it.
pub fn parse_profile(name: &str, items: &str) -> Result<Profile, Vec<String>> {
    let mut problems = Vec::new();
    if !valid_name(name) {
        problems.push(format!(
            "profile name {name:?}: expected 1 to {MAX_NAME_LEN} letters, digits, `_`, `-` or `.`"
        ));
    }
    let mut scope = Scope::Card;
    let mut window = DEFAULT_WINDOW;
    let mut count = None;
    let mut amounts = Vec::new();
    let mut any_amount = None;
    let mut types = TxTypes::DEFAULT;
    let mut approvals = Approvals::Only;
    let mut rc_override: Option<String> = None;
    let mut seen: Vec<&str> = Vec::new();
    for item in items.split_ascii_whitespace() {
        let Some((key, value)) = item.split_once('=') else {
            problems.push(format!("item `{item}`: expected `key=value`"));
            continue;
        };
        if seen.contains(&key) {
            problems.push(format!("item `{item}`: `{key}` is given twice"));
            continue;
        }
        seen.push(key);
        let result = match key {
            "scope" => parse_scope(value).map(|s| scope = s),
            "window" => parse_window(value).map(|w| window = w),
            "count" => parse_count(value).map(|c| count = Some(c)),
            "amount" => parse_amounts(value).map(|(named, any)| {
                amounts = named;
                any_amount = any;
            }),
            "types" => parse_types(value).map(|t| types = t),
            "approvals" => parse_approvals(value).map(|a| approvals = a),
            "rc" => parse_rc(value).map(|code| rc_override = Some(code)),
            _ => Err(
                "unknown item: expected scope, window, count, amount, types, approvals or rc"
                    .to_owned(),
            ),
        };
        if let Err(message) = result {
            problems.push(format!("item `{item}`: {message}"));
        }
    }
    if !seen.contains(&"count") && !seen.contains(&"amount") {
        problems
            .push("no limit: expected `count=<N>`, `amount=<CUR>:<decimal>` or both".to_owned());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Profile {
        name: name.to_owned(),
        count_counter: format!("{name}:count"),
        scope,
        window,
        count,
        amounts,
        any_amount,
        types,
        approvals,
        count_rc: rc_override.clone().unwrap_or_else(|| COUNT_RC.to_owned()),
        amount_rc: rc_override.unwrap_or_else(|| AMOUNT_RC.to_owned()),
    })
}

fn parse_scope(value: &str) -> Result<Scope, String> {
    match value {
        "card" => Ok(Scope::Card),
        "terminal" => Ok(Scope::Terminal),
        "merchant" => Ok(Scope::Merchant),
        _ => Err("expected `card`, `terminal` or `merchant`".to_owned()),
    }
}

fn parse_window(value: &str) -> Result<Window, String> {
    const EXPECTED: &str = "expected `<N>h` or `<N>d` (sliding, 1h to 744h or 1d to 31d), `day` or `month` (calendar, UTC)";
    match value {
        "day" => return Ok(Window::Day),
        "month" => return Ok(Window::Month),
        _ => {}
    }
    let (digits, unit) = match value.as_bytes().last() {
        Some(b'h') => (&value[..value.len() - 1], 3_600u64),
        Some(b'd') => (&value[..value.len() - 1], 86_400u64),
        _ => return Err(EXPECTED.to_owned()),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(EXPECTED.to_owned());
    }
    let seconds = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|s| (1..=u64::from(MAX_WINDOW_SECONDS)).contains(s))
        .ok_or_else(|| EXPECTED.to_owned())?;
    u32::try_from(seconds)
        .map(Window::Sliding)
        .map_err(|_| EXPECTED.to_owned())
}

fn parse_count(value: &str) -> Result<i64, String> {
    const EXPECTED: &str = "expected a whole number of transactions from 1 to 1000000000";
    if value.is_empty() || !value.bytes().all(|c| c.is_ascii_digit()) {
        return Err(EXPECTED.to_owned());
    }
    value
        .parse::<i64>()
        .ok()
        .filter(|n| (1..=1_000_000_000).contains(n))
        .ok_or_else(|| EXPECTED.to_owned())
}

/// `<CUR>:<decimal>[,…]`: the named currencies' limits and `*`'s.
fn parse_amounts(value: &str) -> Result<(Vec<CurrencyLimit>, Option<i64>), String> {
    let mut named: Vec<CurrencyLimit> = Vec::new();
    let mut any = None;
    for part in value.split(',') {
        let Some((currency, decimal)) = part.split_once(':') else {
            return Err(format!(
                "`{part}`: expected `<CUR>:<decimal>`, CUR an ISO 4217 numeric code or `*`"
            ));
        };
        let exponent = match currency {
            "*" => ANY_EXPONENT,
            c if c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()) => {
                amount::currency_exponent(c.as_bytes())
            }
            _ => {
                return Err(format!(
                    "`{part}`: currency `{currency}` is not a 3-digit ISO 4217 numeric code or `*`"
                ));
            }
        };
        let limit = match amount::parse_major_units(decimal, exponent) {
            Ok(0) => Err(format!("`{part}`: the limit must be more than zero")),
            Ok(minor) => {
                i64::try_from(minor).map_err(|_| format!("`{part}`: the limit is too large"))
            }
            Err(AmountError::TooPrecise { .. }) if currency == "*" => {
                Err(format!("`{part}`: more than {ANY_EXPONENT} decimals"))
            }
            Err(e) => Err(format!(
                "`{part}`: `{decimal}` is not a decimal amount in major units ({e})"
            )),
        }?;
        if currency == "*" {
            if any.replace(limit).is_some() {
                return Err("`*` is given twice".to_owned());
            }
        } else {
            let code = [
                currency.as_bytes()[0],
                currency.as_bytes()[1],
                currency.as_bytes()[2],
            ];
            if named.iter().any(|l| l.currency == code) {
                return Err(format!("currency {currency} is given twice"));
            }
            named.push(CurrencyLimit {
                currency: code,
                limit,
            });
        }
    }
    Ok((named, any))
}

fn parse_types(value: &str) -> Result<TxTypes, String> {
    let mut bits = 0u8;
    for name in value.split(',') {
        bits |= match name {
            "purchase" => TxType::Purchase.bit(),
            "withdrawal" => TxType::Withdrawal.bit(),
            "refund" => TxType::Refund.bit(),
            _ => {
                return Err(format!(
                    "type `{name}`: expected a list of `purchase`, `withdrawal`, `refund`"
                ));
            }
        };
    }
    Ok(TxTypes(bits))
}

fn parse_approvals(value: &str) -> Result<Approvals, String> {
    match value {
        "only" => Ok(Approvals::Only),
        "all" => Ok(Approvals::All),
        _ => Err("expected `only` or `all`".to_owned()),
    }
}

fn parse_rc(value: &str) -> Result<String, String> {
    if value.len() != 2 || !value.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err("expected a response code of 2 letters or digits".to_owned());
    }
    if is_approval(value) {
        return Err(format!(
            "{value} approves: expected a decline code such as 65 or 61"
        ));
    }
    Ok(value.to_owned())
}
