//! In-memory stand-ins for the host, for native unit tests of participants.
//!
//! [`MockTransaction`] behaves like the host's transaction interface
//! (including its refusal of bitmaps and of 35, 45 and 52 in a response) and
//! counts the calls a component would have made, so a test can check that a
//! participant only fetches what it reads. Its `Debug` output masks DE2 and
//! leaves out track and PIN data.
//!
//! Reversals and store-and-forward messages (contract 1.2.0) are tested the
//! same way: the transaction the host hands to
//! [`Participant::reverse`](crate::Participant::reverse) is the original's
//! request and response with [`MockTransaction::reversed`]'s variables; the
//! one it hands to [`Formatter::format_saf`](crate::Formatter::format_saf)
//! the original (or the acquirer's advice) with
//! [`MockTransaction::with_tranlog_id`]. [`MockEnv`]'s `kv` and counters
//! are shared by every call made with it, so a test can deliver a reversal
//! twice and check that it took effect once.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;

use crate::card::mask_pan;
use crate::transaction::Values;
use crate::{
    Clock, Config, Counters, Kv, Level, Log, MapConfig, REVERSAL_REASON, TRANLOG_ID, Transaction,
    field,
};

/// Highest data element number of the contract.
const MAX_FIELD: u16 = 192;

/// An in-memory transaction.
#[derive(Clone, Default)]
pub struct MockTransaction {
    mti: String,
    request: BTreeMap<u16, Vec<u8>>,
    response: BTreeMap<u16, Vec<u8>>,
    vars: BTreeMap<String, String>,
    result_code: Option<String>,
    calls: Cell<u32>,
    fields_read: RefCell<Vec<u16>>,
}

impl MockTransaction {
    /// A request with this MTI and no fields.
    pub fn new(mti: &str) -> MockTransaction {
        MockTransaction {
            mti: mti.to_string(),
            ..MockTransaction::default()
        }
    }

    /// Adds a request field.
    pub fn with_field(mut self, field: u16, value: impl AsRef<[u8]>) -> MockTransaction {
        self.request.insert(field, value.as_ref().to_vec());
        self
    }

    /// Removes a request field.
    pub fn without_field(mut self, field: u16) -> MockTransaction {
        self.request.remove(&field);
        self
    }

    /// Sets a context variable.
    pub fn with_var(mut self, name: &str, value: &str) -> MockTransaction {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }

    /// Sets a response field directly, as an earlier participant would have.
    pub fn with_response_field(mut self, field: u16, value: impl AsRef<[u8]>) -> MockTransaction {
        self.response.insert(field, value.as_ref().to_vec());
        self
    }

    /// Sets the result code, as an earlier participant (or, for a reversal,
    /// the original's response) would have.
    pub fn with_result_code(mut self, code: &str) -> MockTransaction {
        self.result_code = Some(code.to_string());
        self
    }

    /// Sets `TRANLOG_ID`, as the host does for a reversal or a
    /// store-and-forward message.
    pub fn with_tranlog_id(self, tranlog_id: &str) -> MockTransaction {
        self.with_var(TRANLOG_ID, tranlog_id)
    }

    /// This transaction (the original's request and response) as the host
    /// delivers its reversal to [`Participant::reverse`](crate::Participant::reverse):
    /// with the variables `TRANLOG_ID` and `REVERSAL_REASON`.
    pub fn reversed(self, tranlog_id: &str, reason: &str) -> MockTransaction {
        self.with_tranlog_id(tranlog_id)
            .with_var(REVERSAL_REASON, reason)
    }

    /// The response fields set so far.
    pub fn response(&self) -> &BTreeMap<u16, Vec<u8>> {
        &self.response
    }

    /// The context variables.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// The result code, as a plain `&str`.
    pub fn rc(&self) -> Option<&str> {
        self.result_code.as_deref()
    }

    /// How many host calls a component would have made so far.
    pub fn calls(&self) -> u32 {
        self.calls.get()
    }

    /// The request fields fetched one by one, in call order.
    pub fn fields_read(&self) -> Vec<u16> {
        self.fields_read.borrow().clone()
    }

    fn count(&self) {
        self.calls.set(self.calls.get() + 1);
    }
}

impl Transaction for MockTransaction {
    fn request_mti(&self) -> Cow<'_, str> {
        self.count();
        Cow::Borrowed(&self.mti)
    }

    fn request_fields(&self) -> Cow<'_, [u16]> {
        self.count();
        Cow::Owned(self.request.keys().copied().collect())
    }

    fn request_field(&self, field: u16) -> Option<Cow<'_, [u8]>> {
        self.count();
        self.fields_read.borrow_mut().push(field);
        self.request
            .get(&field)
            .map(|v| Cow::Borrowed(v.as_slice()))
    }

    fn request_values(&self, fields: &[u16]) -> Values<'_> {
        self.count();
        self.fields_read
            .borrow_mut()
            .extend(fields.iter().filter(|f| **f != 0));
        Values::Parts(
            fields
                .iter()
                .map(|f| match f {
                    0 => Some(Cow::Borrowed(self.mti.as_bytes())),
                    f => self.request.get(f).map(|v| Cow::Borrowed(v.as_slice())),
                })
                .collect(),
        )
    }

    fn response_field(&self, field: u16) -> Option<Cow<'_, [u8]>> {
        self.count();
        self.response
            .get(&field)
            .map(|v| Cow::Borrowed(v.as_slice()))
    }

    fn set_response_field(&mut self, field: u16, value: &[u8]) -> Result<(), String> {
        self.count();
        match field {
            0 | 1 | 65 => Err(format!("field {field} is managed by the host")),
            f if f > MAX_FIELD => Err(format!("field {field} is not defined")),
            field::TRACK2 | field::TRACK1 | field::PIN_BLOCK => {
                Err(format!("field {field} is never returned to an acquirer"))
            }
            _ => {
                self.response.insert(field, value.to_vec());
                Ok(())
            }
        }
    }

    fn clear_response_field(&mut self, field: u16) {
        self.count();
        self.response.remove(&field);
    }

    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        self.count();
        self.vars.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }

    fn set_var(&mut self, name: &str, value: &str) {
        self.count();
        self.vars.insert(name.to_string(), value.to_string());
    }

    fn result_code(&self) -> Option<Cow<'_, str>> {
        self.count();
        self.result_code.as_deref().map(Cow::Borrowed)
    }

    fn set_result_code(&mut self, code: &str) {
        self.count();
        self.result_code = Some(code.to_string());
    }
}

/// Field values for `Debug`: DE2 masked, track and PIN data left out.
struct SafeFields<'a>(&'a BTreeMap<u16, Vec<u8>>);

impl fmt::Debug for SafeFields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (&n, value) in self.0 {
            let shown = match n {
                field::PAN => mask_pan(value),
                field::TRACK2 | field::TRACK1 | field::PIN_BLOCK => "<omitted>".to_string(),
                _ => String::from_utf8_lossy(value).into_owned(),
            };
            map.entry(&n, &shown);
        }
        map.finish()
    }
}

impl fmt::Debug for MockTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockTransaction")
            .field("mti", &self.mti)
            .field("request", &SafeFields(&self.request))
            .field("response", &SafeFields(&self.response))
            .field("vars", &self.vars)
            .field("result_code", &self.result_code)
            .field("calls", &self.calls.get())
            .finish()
    }
}

/// Adds per counter (name, key, window): (unix seconds, delta).
type CounterLog = BTreeMap<(String, String, u32), Vec<(i64, i64)>>;

/// An in-memory host environment: settings, a fixed wall clock, a monotonic
/// clock that advances by one microsecond per reading, and a log that keeps
/// every message.
#[derive(Clone, Debug)]
pub struct MockEnv {
    /// The participant's settings.
    pub config: MapConfig,
    /// What [`Clock::now_unix_millis`] answers.
    pub now_unix_millis: i64,
    monotonic: Cell<u64>,
    logs: RefCell<Vec<(Level, String)>>,
    config_calls: Cell<u32>,
    counters: RefCell<CounterLog>,
    kv: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl MockEnv {
    /// 2025-06-15T12:00:00Z: the default wall-clock time of a [`MockEnv`].
    pub const DEFAULT_NOW: i64 = 1_749_988_800_000;

    /// No settings, the clock at [`MockEnv::DEFAULT_NOW`].
    pub fn new() -> MockEnv {
        MockEnv {
            config: MapConfig::new(),
            now_unix_millis: MockEnv::DEFAULT_NOW,
            monotonic: Cell::new(1_000_000),
            logs: RefCell::new(Vec::new()),
            config_calls: Cell::new(0),
            counters: RefCell::default(),
            kv: RefCell::default(),
        }
    }

    /// Adds a setting.
    pub fn with_config(mut self, key: &str, value: &str) -> MockEnv {
        self.config.set(key, value);
        self
    }

    /// Sets the wall clock.
    pub fn at(mut self, now_unix_millis: i64) -> MockEnv {
        self.now_unix_millis = now_unix_millis;
        self
    }

    /// Every message logged so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }

    /// Whether a message at `level` containing `text` was logged.
    pub fn logged(&self, level: Level, text: &str) -> bool {
        self.logs
            .borrow()
            .iter()
            .any(|(l, m)| *l == level && m.contains(text))
    }

    /// How many config calls a component would have made so far.
    pub fn config_calls(&self) -> u32 {
        self.config_calls.get()
    }
}

impl Default for MockEnv {
    fn default() -> MockEnv {
        MockEnv::new()
    }
}

impl Config for MockEnv {
    fn get(&self, key: &str) -> Option<Cow<'_, str>> {
        self.config_calls.set(self.config_calls.get() + 1);
        self.config.get(key)
    }

    fn entries(&self) -> Vec<(String, String)> {
        self.config_calls.set(self.config_calls.get() + 1);
        self.config.entries()
    }
}

impl Log for MockEnv {
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}

impl Clock for MockEnv {
    fn now_unix_millis(&self) -> i64 {
        self.now_unix_millis
    }

    fn monotonic_nanos(&self) -> u64 {
        let now = self.monotonic.get();
        self.monotonic.set(now + 1_000);
        now
    }
}

/// Counters over the mock's wall clock: each add is kept with its time.
impl Counters for MockEnv {
    fn counter_add(
        &self,
        name: &str,
        key: &str,
        delta: i64,
        window_seconds: u32,
    ) -> Result<i64, String> {
        if window_seconds == 0 || window_seconds > 2_678_400 {
            return Err(format!(
                "window of {window_seconds} seconds is outside 1..=2678400"
            ));
        }
        let now = self.now_unix_millis / 1000;
        let mut counters = self.counters.borrow_mut();
        let entries = counters
            .entry((name.to_string(), key.to_string(), window_seconds))
            .or_default();
        if delta != 0 {
            entries.push((now, delta));
        }
        let since = now - i64::from(window_seconds);
        Ok(entries
            .iter()
            .filter(|(t, _)| *t > since)
            .map(|(_, d)| d)
            .sum())
    }
}

/// An in-memory key/value store.
impl Kv for MockEnv {
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.kv.borrow().get(key).cloned())
    }
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.kv.borrow_mut().insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn kv_delete(&self, key: &str) -> Result<bool, String> {
        Ok(self.kv.borrow_mut().remove(key).is_some())
    }
    fn kv_compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, String> {
        let mut kv = self.kv.borrow_mut();
        if kv.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        kv.insert(key.to_string(), value.to_vec());
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_PAN: &str = "4761739001010119";

    #[test]
    fn mock_transaction_answers_like_the_host_and_counts_calls() {
        let mut tx = MockTransaction::new("0200")
            .with_field(4, "000000001000")
            .with_field(11, "000123")
            .with_var("PORT", "5001");
        assert_eq!(tx.request_mti(), "0200");
        assert_eq!(&*tx.request_fields(), &[4, 11]);
        assert_eq!(tx.request_field(4).as_deref(), Some(&b"000000001000"[..]));
        assert_eq!(tx.request_field(2), None);
        assert_eq!(tx.var("PORT").as_deref(), Some("5001"));
        assert_eq!(tx.calls(), 5);
        assert_eq!(tx.fields_read(), vec![4, 2]);

        assert_eq!(tx.set_response_field(38, b"ABC123"), Ok(()));
        assert_eq!(tx.response_field(38).as_deref(), Some(&b"ABC123"[..]));
        tx.clear_response_field(38);
        assert_eq!(tx.response_field(38), None);
        tx.set_result_code("00");
        assert_eq!(tx.result_code().as_deref(), Some("00"));
        tx.set_var("ROUTE", "xxx");
        assert_eq!(tx.vars().get("ROUTE").map(String::as_str), Some("xxx"));
    }

    #[test]
    fn a_reversed_transaction_carries_the_hosts_variables() {
        let tx = MockTransaction::new("0200")
            .with_field(11, "000123")
            .with_result_code("00")
            .reversed("42", "68");
        assert_eq!(tx.var("TRANLOG_ID").as_deref(), Some("42"));
        assert_eq!(tx.var("REVERSAL_REASON").as_deref(), Some("68"));
        assert_eq!(tx.result_code().as_deref(), Some("00"));
        assert_eq!(tx.request_field(11).as_deref(), Some(&b"000123"[..]));
        let saf = MockTransaction::new("0220").with_tranlog_id("7");
        assert_eq!(saf.var("TRANLOG_ID").as_deref(), Some("7"));
        assert_eq!(saf.var("REVERSAL_REASON"), None);
    }

    #[test]
    fn mock_transaction_refuses_what_the_host_refuses() {
        let mut tx = MockTransaction::new("0200");
        for field in [0, 1, 35, 45, 52, 65, 193] {
            assert!(tx.set_response_field(field, b"x").is_err(), "field {field}");
        }
        assert!(tx.response().is_empty());
    }

    #[test]
    fn mock_transaction_debug_never_shows_card_data() {
        let tx = MockTransaction::new("0200")
            .with_field(2, TEST_PAN)
            .with_field(35, format!("{TEST_PAN}=2512"))
            .with_field(52, [0x12, 0x34]);
        let shown = format!("{tx:?}");
        assert!(!shown.contains(TEST_PAN), "{shown}");
        assert!(shown.contains("476173******0119"), "{shown}");
        assert!(shown.contains("<omitted>"), "{shown}");
    }

    #[test]
    fn mock_env_logs_and_ticks() {
        let env = MockEnv::new().with_config("limit", "10.00").at(42);
        assert_eq!(env.get("limit").as_deref(), Some("10.00"));
        assert_eq!(env.config_calls(), 1);
        assert_eq!(env.now_unix_millis(), 42);
        let t0 = env.monotonic_nanos();
        assert!(env.monotonic_nanos() > t0);
        env.warn("something odd");
        assert!(env.logged(Level::Warn, "odd"));
        assert!(!env.logged(Level::Error, "odd"));
    }
}
