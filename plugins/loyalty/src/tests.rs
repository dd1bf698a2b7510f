use std::borrow::Cow;
use std::cell::{Cell, RefCell};

use super::*;
use switchyard_sdk::mock::{MockEnv, MockTransaction};
use switchyard_sdk::{Counters, Level, Log, MapConfig};

/// A loyalty card (range 600649); passes Luhn.
const CARD: &str = "6006490000000004";
/// Another loyalty card; passes Luhn.
const OTHER_CARD: &str = "6006490000000012";

fn request(de3: &str, amount: &str) -> MockTransaction {
    MockTransaction::new("0200")
        .with_field(2, CARD)
        .with_field(3, de3)
        .with_field(4, amount)
        .with_field(11, "000123")
        .with_field(41, "TERM0001")
        .with_field(49, "840")
}

fn purchase(amount: &str) -> MockTransaction {
    request("000000", amount)
}

fn refund(amount: &str) -> MockTransaction {
    request("200000", amount)
}

fn inquiry() -> MockTransaction {
    request("310000", "000000000000")
}

/// Sets a card's value the way the CLI's `loyalty credit` does.
fn credit(env: &impl Kv, pan: &str, balance: i64) {
    let mut record = read(env, pan).unwrap();
    record.balance = balance;
    env.kv_set(&points_key(pan), format_points(&record).as_bytes())
        .unwrap();
}

fn stored(env: &MockEnv, pan: &str) -> PointsRecord {
    let value = env.kv_get(&points_key(pan)).unwrap().expect("a value");
    parse_points(&value).unwrap()
}

fn balance(env: &MockEnv) -> i64 {
    read(env, CARD).unwrap().balance
}

/// No log message shows a full card number.
fn assert_no_pan_logged(env: &MockEnv) {
    for (_, message) in env.logs() {
        assert!(
            !message.contains(CARD) && !message.contains(OTHER_CARD),
            "{message}"
        );
    }
}

fn run_with(env: &MockEnv, plugin: &mut Loyalty, tx: &mut MockTransaction) -> Outcome {
    let outcome = plugin.prepare(tx, env);
    assert_no_pan_logged(env);
    outcome
}

fn run(env: &MockEnv, mut tx: MockTransaction) -> (Outcome, MockTransaction) {
    let outcome = run_with(env, &mut Loyalty::default(), &mut tx);
    (outcome, tx)
}

fn assert_auth_code(tx: &MockTransaction) {
    let code = &tx.response()[&field::AUTH_ID];
    assert_eq!(code.len(), 6);
    assert!(
        code.iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
}

/// The original as the host hands it to `reverse`: request, result code,
/// `TRANLOG_ID` and `REVERSAL_REASON`.
fn reversal_of(original: MockTransaction, code: &str, id: &str) -> MockTransaction {
    original.with_result_code(code).reversed(id, "68")
}

#[test]
fn a_purchase_spends_points_with_an_auth_code() {
    let env = MockEnv::new();
    credit(&env, CARD, 10_000);
    let (outcome, tx) = run(&env, purchase("000000001500"));
    assert_eq!((outcome, tx.rc()), (Outcome::Prepared, Some(rc::APPROVED)));
    assert_auth_code(&tx);
    assert_eq!(balance(&env), 8_500);
    assert_eq!(tx.vars()[APPLIED], "-1500");
    assert!(env.logged(Level::Debug, "-1500 points on 600649******0004"));
}

#[test]
fn a_purchase_the_balance_covers_exactly_is_approved() {
    let env = MockEnv::new();
    credit(&env, CARD, 1_500);
    let (outcome, _) = run(&env, purchase("000000001500"));
    assert_eq!(outcome, Outcome::Prepared);
    assert_eq!(balance(&env), 0);
}

#[test]
fn a_purchase_over_the_balance_is_51_and_changes_nothing() {
    let env = MockEnv::new();
    credit(&env, CARD, 1_000);
    let (outcome, tx) = run(&env, purchase("000000001001"));
    assert_eq!(
        (outcome, tx.rc()),
        (Outcome::Aborted, Some(INSUFFICIENT_FUNDS))
    );
    assert!(tx.response().is_empty(), "no auth code on a decline");
    assert!(!tx.vars().contains_key(APPLIED));
    assert_eq!(balance(&env), 1_000);
    assert!(env.logged(Level::Debug, "600649******0004 has 1000 points"));

    // A card the operator never credited has no points.
    let (outcome, tx) = run(&env, purchase("000000000001").with_field(2, OTHER_CARD));
    assert_eq!(
        (outcome, tx.rc()),
        (Outcome::Aborted, Some(INSUFFICIENT_FUNDS))
    );
    assert_eq!(
        env.kv_get(&points_key(OTHER_CARD)),
        Ok(None),
        "nothing written"
    );
}

#[test]
fn authorizations_repeats_and_1993_requests_spend_too() {
    let env = MockEnv::new();
    credit(&env, CARD, 1_000);
    for mti in ["0100", "0201", "1100", "1200", "1201"] {
        let tx = MockTransaction::new(mti)
            .with_field(2, CARD)
            .with_field(3, "000000")
            .with_field(4, "000000000100");
        let (outcome, tx) = run(&env, tx);
        assert_eq!(
            (outcome, tx.rc()),
            (Outcome::Prepared, Some(rc::APPROVED)),
            "{mti}"
        );
    }
    assert_eq!(balance(&env), 500);
}

#[test]
fn a_refund_credits_points() {
    let env = MockEnv::new();
    credit(&env, CARD, 100);
    let (outcome, tx) = run(&env, refund("000000000250"));
    assert_eq!((outcome, tx.rc()), (Outcome::Prepared, Some(rc::APPROVED)));
    assert_auth_code(&tx);
    assert_eq!(tx.vars()[APPLIED], "250");
    assert_eq!(balance(&env), 350);

    // A refund to a card with no value yet creates it.
    let (outcome, _) = run(&env, refund("000000000250").with_field(2, OTHER_CARD));
    assert_eq!(outcome, Outcome::Prepared);
    assert_eq!(stored(&env, OTHER_CARD).balance, 250);
}

#[test]
fn a_balance_inquiry_answers_de54_and_writes_nothing() {
    let env = MockEnv::new();
    credit(&env, CARD, 12_345);
    let (outcome, tx) = run(&env, inquiry());
    assert_eq!((outcome, tx.rc()), (Outcome::Prepared, Some(rc::APPROVED)));
    assert_eq!(tx.response()[&54], b"0002840C000000012345");
    assert_auth_code(&tx);
    assert!(!tx.vars().contains_key(APPLIED));
    assert_eq!(balance(&env), 12_345);

    // No value: 0, and still nothing written.
    let (_, tx) = run(&env, inquiry().with_field(2, OTHER_CARD));
    assert_eq!(tx.response()[&54], b"0002840C000000000000");
    assert_eq!(env.kv_get(&points_key(OTHER_CARD)), Ok(None));

    // A negative balance is a debit; the amount of DE4 is not read.
    credit(&env, CARD, -42);
    let (_, tx) = run(&env, inquiry().without_field(4));
    assert_eq!(tx.response()[&54], b"0002840D000000000042");
}

#[test]
fn an_inquiry_is_in_the_points_currency() {
    let env = MockEnv::new().with_config("currency", "978");
    credit(&env, CARD, 5);
    let (_, tx) = run(&env, inquiry().without_field(49));
    assert_eq!(tx.response()[&54], b"0002978C000000000005");
    let (_, tx) = run(&env, inquiry().with_field(49, "840"));
    assert_eq!(tx.response()[&54], b"0002978C000000000005");
}

#[test]
fn de54_entries() {
    assert_eq!(
        available_balance("840", 0).as_deref(),
        Some("0002840C000000000000")
    );
    assert_eq!(
        available_balance("840", 999_999_999_999).as_deref(),
        Some("0002840C999999999999")
    );
    assert_eq!(
        available_balance("392", -1).as_deref(),
        Some("0002392D000000000001")
    );
    assert_eq!(available_balance("840", 1_000_000_000_000), None);
    assert_eq!(available_balance("840", i64::MIN), None);
    assert_eq!(available_balance("84", 1), None);
    assert_eq!(available_balance("USD", 1), None);
}

#[test]
fn a_balance_beyond_de54_is_96() {
    let env = MockEnv::new();
    credit(&env, CARD, 1_000_000_000_000);
    let (outcome, tx) = run(&env, inquiry());
    assert_eq!(
        (outcome, tx.rc()),
        (Outcome::Aborted, Some(rc::SYSTEM_ERROR))
    );
    assert!(tx.response().is_empty());
    assert!(env.logged(Level::Error, "does not fit in DE54"));
}

#[test]
fn requests_it_cannot_serve_are_declined_before_the_balance() {
    let env = MockEnv::new();
    credit(&env, CARD, 10_000);
    let cases = [
        (request("010000", "000000000100"), rc::UNSUPPORTED),
        (request("300000", "000000000100"), rc::UNSUPPORTED),
        (request("0000", "000000000100"), rc::FORMAT_ERROR),
        (request("00000A", "000000000100"), rc::FORMAT_ERROR),
        (purchase("").without_field(3), rc::FORMAT_ERROR),
        (purchase("").without_field(4), rc::FORMAT_ERROR),
        (refund("").without_field(4), rc::FORMAT_ERROR),
        (purchase("00000000010A"), rc::INVALID_AMOUNT),
        (purchase("000000000000"), rc::INVALID_AMOUNT),
        (purchase("99999999999999999999"), rc::INVALID_AMOUNT),
        (purchase("9223372036854775808"), rc::INVALID_AMOUNT),
        (
            purchase("000000000100").with_field(49, "978"),
            rc::INVALID_AMOUNT,
        ),
        (purchase("000000000100").without_field(2), rc::INVALID_CARD),
        (
            purchase("000000000100").with_field(2, "6006490000000005"),
            rc::INVALID_CARD,
        ),
        (
            purchase("000000000100").with_field(2, "60064900000"),
            rc::INVALID_CARD,
        ),
    ];
    for (tx, code) in cases {
        let shown = format!("{tx:?}");
        let (outcome, tx) = run(&env, tx);
        assert_eq!(
            (outcome, tx.rc()),
            (Outcome::Aborted, Some(code)),
            "{shown}"
        );
        assert!(tx.response().is_empty(), "{shown}");
    }
    assert_eq!(balance(&env), 10_000);
    // DE49 absent: the points currency.
    let (outcome, _) = run(&env, purchase("000000000100").without_field(49));
    assert_eq!(outcome, Outcome::Prepared);
}

#[test]
fn non_financial_messages_are_left_alone() {
    let env = MockEnv::new();
    let (outcome, tx) = run(&env, MockTransaction::new("0800").with_field(70, "301"));
    assert_eq!((outcome, tx.rc()), (Outcome::NoJoin, None));
    assert_eq!(tx.calls(), 1, "one request-values call");
    assert_eq!(env.config_calls(), 0, "settings not even read");
}

#[test]
fn abort_gives_the_points_back_once_and_clears_the_approval() {
    let env = MockEnv::new();
    credit(&env, CARD, 1_000);
    let mut plugin = Loyalty::default();
    let mut tx = purchase("000000000400");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    assert_eq!(balance(&env), 600);
    plugin.abort(&mut tx, &env);
    assert_eq!(balance(&env), 1_000);
    assert!(tx.response().is_empty(), "DE38 cleared");
    plugin.abort(&mut tx, &env);
    assert_eq!(balance(&env), 1_000, "given back once");

    // A refund's credit is taken back the same way.
    let mut tx = refund("000000000300");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    assert_eq!(balance(&env), 1_300);
    plugin.abort(&mut tx, &env);
    assert_eq!(balance(&env), 1_000);

    // An inquiry has nothing to give back; its DE54 goes.
    let mut tx = inquiry();
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    plugin.abort(&mut tx, &env);
    assert!(tx.response().is_empty());
    assert_eq!(balance(&env), 1_000);
    assert_no_pan_logged(&env);
}

#[test]
fn commit_keeps_an_approval_and_gives_back_anything_else() {
    let env = MockEnv::new();
    credit(&env, CARD, 1_000);
    let mut plugin = Loyalty::default();
    let mut tx = purchase("000000000400");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    plugin.commit(&mut tx, &env);
    assert_eq!(balance(&env), 600);
    assert!(tx.response().contains_key(&field::AUTH_ID));

    let mut tx = purchase("000000000400");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    assert_eq!(balance(&env), 200);
    tx.set_result_code("05"); // a later participant changed its mind
    plugin.commit(&mut tx, &env);
    assert_eq!(balance(&env), 600);
    assert!(!tx.response().contains_key(&field::AUTH_ID));
}

/// What another instance does meanwhile.
type Hook<'a> = Box<dyn FnOnce(&MockEnv) + 'a>;

/// An environment over a [`MockEnv`] that simulates other instances of the
/// plugin: `before_cas` runs once, right before the first compare-and-set
/// (between this instance's read and its write); `lose` makes every
/// compare-and-set lose; `broken` makes the kv store fail.
struct Racing<'a> {
    inner: &'a MockEnv,
    before_cas: RefCell<Option<Hook<'a>>>,
    lose: bool,
    broken: bool,
    cas_calls: Cell<u32>,
}

impl<'a> Racing<'a> {
    fn new(inner: &'a MockEnv) -> Racing<'a> {
        Racing {
            inner,
            before_cas: RefCell::new(None),
            lose: false,
            broken: false,
            cas_calls: Cell::new(0),
        }
    }

    fn before_cas(self, f: impl FnOnce(&MockEnv) + 'a) -> Racing<'a> {
        *self.before_cas.borrow_mut() = Some(Box::new(f));
        self
    }
}

impl Config for Racing<'_> {
    fn get(&self, key: &str) -> Option<Cow<'_, str>> {
        self.inner.get(key)
    }
    fn entries(&self) -> Vec<(String, String)> {
        self.inner.entries()
    }
}

impl Log for Racing<'_> {
    fn log(&self, level: Level, message: &str) {
        self.inner.log(level, message)
    }
}

impl Clock for Racing<'_> {
    fn now_unix_millis(&self) -> i64 {
        self.inner.now_unix_millis()
    }
    fn monotonic_nanos(&self) -> u64 {
        self.inner.monotonic_nanos()
    }
}

impl Counters for Racing<'_> {}

impl Kv for Racing<'_> {
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        if self.broken {
            return Err("kv store unavailable".into());
        }
        self.inner.kv_get(key)
    }
    fn kv_compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, String> {
        self.cas_calls.set(self.cas_calls.get() + 1);
        let hook = self.before_cas.borrow_mut().take();
        if let Some(hook) = hook {
            hook(self.inner);
        }
        if self.lose {
            return Ok(false);
        }
        self.inner.kv_compare_and_set(key, expected, value)
    }
}

#[test]
fn two_racing_purchases_never_both_pass_on_a_balance_that_covers_one() {
    let env = MockEnv::new();
    credit(&env, CARD, 1_000);
    let other = RefCell::new(None);
    // The other purchase runs entirely between our read and our write.
    let racing = Racing::new(&env).before_cas(|inner| {
        let (outcome, tx) = run(inner, purchase("000000000800"));
        *other.borrow_mut() = Some((outcome, tx.rc().map(str::to_owned)));
    });
    let mut tx = purchase("000000000800");
    let outcome = Loyalty::default().prepare(&mut tx, &racing);
    assert_eq!(
        other.borrow().clone(),
        Some((Outcome::Prepared, Some("00".to_string())))
    );
    assert_eq!(
        (outcome, tx.rc()),
        (Outcome::Aborted, Some(INSUFFICIENT_FUNDS)),
        "we lost the compare-and-set, read again and found 200 points"
    );
    assert_eq!(racing.cas_calls.get(), 1, "no write on a decline");
    assert_eq!(balance(&env), 200);
}

#[test]
fn a_purchase_that_loses_a_race_it_can_still_afford_retries() {
    let env = MockEnv::new();
    credit(&env, CARD, 2_000);
    let racing = Racing::new(&env).before_cas(|inner| {
        assert_eq!(run(inner, purchase("000000000800")).0, Outcome::Prepared);
    });
    let mut tx = purchase("000000000800");
    assert_eq!(
        Loyalty::default().prepare(&mut tx, &racing),
        Outcome::Prepared
    );
    assert_eq!(racing.cas_calls.get(), 2);
    assert_eq!(balance(&env), 400);
}

#[test]
fn endless_contention_and_a_failing_store_are_96() {
    let env = MockEnv::new();
    credit(&env, CARD, 2_000);
    let mut racing = Racing::new(&env);
    racing.lose = true;
    let mut tx = purchase("000000000800");
    assert_eq!(
        Loyalty::default().prepare(&mut tx, &racing),
        Outcome::Aborted
    );
    assert_eq!(tx.rc(), Some(rc::SYSTEM_ERROR));
    assert_eq!(racing.cas_calls.get(), MAX_ATTEMPTS);
    assert!(env.logged(Level::Error, "compare-and-sets in a row lost"));
    assert_eq!(balance(&env), 2_000);

    let mut racing = Racing::new(&env);
    racing.broken = true;
    for tx in [purchase("000000000800"), refund("000000000800"), inquiry()] {
        let mut tx = tx;
        assert_eq!(
            Loyalty::default().prepare(&mut tx, &racing),
            Outcome::Aborted
        );
        assert_eq!(tx.rc(), Some(rc::SYSTEM_ERROR));
    }
    assert!(env.logged(Level::Error, "kv store unavailable"));
    let mut original = reversal_of(purchase("000000000800"), "00", "42");
    assert!(Loyalty::default().reverse(&mut original, &racing).is_err());
    assert_no_pan_logged(&env);
}

#[test]
fn a_give_back_that_fails_is_logged_for_the_operator() {
    let env = MockEnv::new();
    credit(&env, CARD, 1_000);
    let mut plugin = Loyalty::default();
    let mut tx = purchase("000000000400");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    let mut racing = Racing::new(&env);
    racing.broken = true;
    plugin.abort(&mut tx, &racing);
    assert!(env.logged(
        Level::Error,
        "could not give back -400 points on 600649******0004"
    ));
    assert!(env.logged(Level::Error, "switchyard loyalty credit"));
    assert_no_pan_logged(&env);
}

#[test]
fn a_reversal_restores_a_purchase_once() {
    let env = MockEnv::new();
    credit(&env, CARD, 1_000);
    let mut plugin = Loyalty::default();
    let mut tx = purchase("000000000400").with_tranlog_id("42");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    plugin.commit(&mut tx, &env);
    assert_eq!(balance(&env), 600);

    let mut reversal = reversal_of(purchase("000000000400"), "00", "42");
    assert_eq!(plugin.reverse(&mut reversal, &env), Ok(()));
    assert_eq!(balance(&env), 1_000);
    assert_eq!(stored(&env, CARD).reversed, vec!["42".to_string()]);
    assert!(env.logged(Level::Info, "reversal of 42: +400 points"));

    // Delivered again (at least once): no effect.
    assert_eq!(plugin.reverse(&mut reversal, &env), Ok(()));
    assert_eq!(plugin.reverse(&mut reversal, &env), Ok(()));
    assert_eq!(balance(&env), 1_000);
    assert!(env.logged(Level::Debug, "42 was already reversed"));

    // Another transaction's reversal still applies.
    let mut other = reversal_of(purchase("000000000100"), "00", "43");
    assert_eq!(plugin.reverse(&mut other, &env), Ok(()));
    assert_eq!(balance(&env), 1_100);
    assert_eq!(
        stored(&env, CARD).reversed,
        vec!["42".to_string(), "43".into()]
    );
    assert_no_pan_logged(&env);
}

#[test]
fn a_reversed_refund_is_debited_back_even_below_zero() {
    let env = MockEnv::new();
    let mut plugin = Loyalty::default();
    let mut tx = refund("000000000500");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    let mut tx = purchase("000000000500");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    assert_eq!(balance(&env), 0);
    let mut reversal = reversal_of(refund("000000000500"), "00", "7");
    assert_eq!(plugin.reverse(&mut reversal, &env), Ok(()));
    assert_eq!(balance(&env), -500);
    let (_, tx) = run(&env, inquiry());
    assert_eq!(tx.response()[&54], b"0002840D000000000500");
    assert_eq!(
        run(&env, purchase("000000000001")).1.rc(),
        Some(INSUFFICIENT_FUNDS)
    );
}

#[test]
fn the_result_code_of_the_original_response_counts_too() {
    let env = MockEnv::new();
    // The host gave the original's response, without a result code.
    let mut reversal = purchase("000000000400")
        .with_response_field(39, "00")
        .reversed("42", "68");
    assert_eq!(Loyalty::default().reverse(&mut reversal, &env), Ok(()));
    assert_eq!(balance(&env), 400);
}

#[test]
fn declined_originals_and_inquiries_have_nothing_to_undo() {
    let env = MockEnv::new();
    credit(&env, CARD, 1_000);
    let mut plugin = Loyalty::default();
    for mut reversal in [
        reversal_of(purchase("000000000400"), "51", "1"),
        purchase("000000000400")
            .with_response_field(39, "05")
            .reversed("2", "68"),
        purchase("000000000400").reversed("3", "68"),
        reversal_of(inquiry(), "00", "4"),
    ] {
        assert_eq!(plugin.reverse(&mut reversal, &env), Ok(()));
    }
    assert_eq!(
        stored(&env, CARD),
        PointsRecord {
            balance: 1_000,
            reversed: vec![]
        }
    );
}

#[test]
fn a_reversal_without_a_tranlog_id_is_refused() {
    let env = MockEnv::new();
    credit(&env, CARD, 1_000);
    let mut plugin = Loyalty::default();
    for id in ["", "4 2"] {
        let mut reversal = reversal_of(purchase("000000000400"), "00", id);
        let error = plugin.reverse(&mut reversal, &env).unwrap_err();
        assert!(!error.contains(CARD), "{error}");
    }
    let mut reversal = purchase("000000000400").with_result_code("00");
    let error = plugin.reverse(&mut reversal, &env).unwrap_err();
    assert!(error.contains("without TRANLOG_ID"), "{error}");
    assert_eq!(balance(&env), 1_000);
}

#[test]
fn a_corrupt_value_is_96_with_an_error_log_never_a_panic() {
    for value in [&b"lots"[..], b"", b"10  42", b"\xff\xfe", b"10 42 "] {
        let env = MockEnv::new();
        env.kv_set(&points_key(CARD), value).unwrap();
        for tx in [purchase("000000000100"), refund("000000000100"), inquiry()] {
            let (outcome, tx) = run(&env, tx);
            assert_eq!(
                (outcome, tx.rc()),
                (Outcome::Aborted, Some(rc::SYSTEM_ERROR))
            );
            assert!(tx.response().is_empty());
        }
        assert!(env.logged(Level::Error, "corrupt"));
        let mut reversal = reversal_of(purchase("000000000100"), "00", "9");
        let error = Loyalty::default().reverse(&mut reversal, &env).unwrap_err();
        assert!(error.contains("corrupt"), "{error}");
        assert_eq!(env.kv_get(&points_key(CARD)), Ok(Some(value.to_vec())));
    }
}

#[test]
fn a_balance_that_would_overflow_is_96() {
    let env = MockEnv::new();
    credit(&env, CARD, i64::MAX);
    let (outcome, tx) = run(&env, refund("000000000001"));
    assert_eq!(
        (outcome, tx.rc()),
        (Outcome::Aborted, Some(rc::SYSTEM_ERROR))
    );
    assert!(env.logged(Level::Error, "64 bits"));
}

#[test]
fn settings_are_checked_every_problem_at_once() {
    let mut plugin = Loyalty::default();
    assert_eq!(plugin.check_settings(&MapConfig::new()), vec![]);
    assert_eq!(
        plugin.check_settings(&MapConfig::new().with("currency", "978")),
        vec![]
    );
    let problems = plugin.check_settings(
        &MapConfig::new()
            .with("currency", "EUR")
            .with("limit", "10")
            .with("curency", "840"),
    );
    let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["currency", "limit", "curency"]);
    assert!(problems[0].message.contains("three digits"));
    assert!(problems[1].message.contains("unknown setting"));
    for bad in ["84", "8400", "", " 840", "８４０"] {
        let problems = plugin.check_settings(&MapConfig::new().with("currency", bad));
        assert_eq!(problems.len(), 1, "{bad:?}");
    }
}

#[test]
fn bad_settings_are_96_with_an_error_log() {
    let env = MockEnv::new().with_config("currency", "dollars");
    credit(&env, CARD, 1_000);
    let (outcome, tx) = run(&env, purchase("000000000100"));
    assert_eq!(
        (outcome, tx.rc()),
        (Outcome::Aborted, Some(rc::SYSTEM_ERROR))
    );
    assert!(env.logged(Level::Error, "loyalty: bad settings: `currency`"));
    assert_eq!(balance(&env), 1_000);
}

#[test]
fn settings_are_read_once_per_instance() {
    let env = MockEnv::new().with_config("currency", "978");
    credit(&env, CARD, 1_000);
    let mut plugin = Loyalty::default();
    for _ in 0..3 {
        let mut tx = purchase("000000000100").with_field(49, "978");
        assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    }
    assert_eq!(env.config_calls(), 1);
    // check_settings parses them for the instance too.
    let env = MockEnv::new();
    let mut plugin = Loyalty::default();
    assert!(plugin.check_settings(&env).is_empty());
    let calls = env.config_calls();
    let mut tx = inquiry();
    run_with(&env, &mut plugin, &mut tx);
    assert_eq!(env.config_calls(), calls);
}

#[test]
fn auth_codes_differ_from_one_transaction_to_the_next() {
    let env = MockEnv::new();
    let mut plugin = Loyalty::default();
    let codes: std::collections::HashSet<[u8; 6]> =
        (0..1000).map(|_| plugin.next_auth_code(&env)).collect();
    assert_eq!(codes.len(), 1000);
}

#[test]
fn operations_of_processing_codes() {
    assert_eq!(operation(b"000000"), Ok(Operation::Purchase));
    assert_eq!(operation(b"003000"), Ok(Operation::Purchase));
    assert_eq!(operation(b"200000"), Ok(Operation::Refund));
    assert_eq!(operation(b"310000"), Ok(Operation::BalanceInquiry));
    assert_eq!(
        operation(b"010000").map_err(|d| d.code),
        Err(rc::UNSUPPORTED)
    );
    assert_eq!(operation(b"").map_err(|d| d.code), Err(rc::FORMAT_ERROR));
    assert_eq!(
        operation(b"0000000").map_err(|d| d.code),
        Err(rc::FORMAT_ERROR)
    );
}

#[test]
fn a_request_never_shows_its_card_in_debug() {
    let request = Request {
        pan: CARD.into(),
        operation: Operation::Purchase,
        points: 1,
    };
    assert!(!format!("{request:?}").contains(CARD));
}

#[test]
fn abort_after_its_own_decline_changes_nothing() {
    // The host's transaction manager aborts the participant that aborted
    // too (jPOS semantics).
    let env = MockEnv::new();
    credit(&env, CARD, 1_000);
    let mut plugin = Loyalty::default();
    let mut tx = purchase("000000001500");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Aborted);
    plugin.abort(&mut tx, &env);
    assert_eq!(
        stored(&env, CARD),
        PointsRecord {
            balance: 1_000,
            reversed: vec![]
        }
    );
    assert_eq!(tx.rc(), Some(INSUFFICIENT_FUNDS));
}
