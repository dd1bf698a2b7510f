use std::borrow::Cow;
use std::cell::{Cell, RefCell};

use super::*;
use switchyard_sdk::mock::{MockEnv, MockTransaction};
use switchyard_sdk::{Counters, Level, Log, MapConfig};

/// A coupon card (range 600650); passes Luhn.
const CARD: &str = "6006500000000018";
/// Another coupon card; passes Luhn.
const OTHER_CARD: &str = "6006500000000000";

/// The day of [`MockEnv::DEFAULT_NOW`].
const TODAY: &str = "2025-06-15";

fn request(de3: &str, amount: &str) -> MockTransaction {
    MockTransaction::new("0200")
        .with_field(2, CARD)
        .with_field(3, de3)
        .with_field(4, amount)
        .with_field(11, "000123")
        .with_field(41, "TERM0001")
        .with_field(49, "840")
}

fn redemption(amount: &str, tranlog_id: &str) -> MockTransaction {
    request("000000", amount).with_tranlog_id(tranlog_id)
}

fn inquiry() -> MockTransaction {
    request("310000", "000000000000").with_tranlog_id("99")
}

fn day(text: &str) -> Date {
    Date::parse(text).expect("a day")
}

/// Issues a coupon the way the CLI's `coupons issue` does.
fn issue(env: &impl Kv, pan: &str, value: u64, expires: &str) {
    put(env, pan, value, expires, State::Open);
}

fn put(env: &impl Kv, pan: &str, value: u64, expires: &str, state: State) {
    let coupon = Coupon {
        pan: pan.into(),
        value,
        expires: day(expires),
        state,
    };
    env.kv_set(&coupon_key(pan), format_coupon(&coupon).as_bytes())
        .unwrap();
}

fn state(env: &MockEnv, pan: &str) -> State {
    let value = env.kv_get(&coupon_key(pan)).unwrap().expect("a coupon");
    parse_coupon(&value).unwrap().state
}

fn redeemed(token: &str) -> State {
    State::Redeemed(token.into())
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

fn run_with(env: &MockEnv, plugin: &mut CouponHost, tx: &mut MockTransaction) -> Outcome {
    let outcome = plugin.prepare(tx, env);
    assert_no_pan_logged(env);
    outcome
}

fn run(env: &MockEnv, mut tx: MockTransaction) -> (Outcome, MockTransaction) {
    let outcome = run_with(env, &mut CouponHost::default(), &mut tx);
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

/// The original as the host hands it to `reverse`.
fn reversal_of(original: MockTransaction, code: &str, id: &str) -> MockTransaction {
    original.with_result_code(code).reversed(id, "68")
}

#[test]
fn a_redemption_up_to_the_value_is_approved_once() {
    let env = MockEnv::new();
    issue(&env, CARD, 2_500, "2025-12-31");
    let (outcome, tx) = run(&env, redemption("000000001000", "42"));
    assert_eq!((outcome, tx.rc()), (Outcome::Prepared, Some(rc::APPROVED)));
    assert_auth_code(&tx);
    assert_eq!(tx.vars()[REDEEMED], "42");
    assert_eq!(state(&env, CARD), redeemed("42"));
    assert!(env.logged(
        Level::Debug,
        "600650******0018 redeemed for 1000 of its 2500 by 42"
    ));

    // A second redemption: 05, and the coupon stays the first one's.
    let (outcome, tx) = run(&env, redemption("000000000001", "43"));
    assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some(DO_NOT_HONOUR)));
    assert!(tx.response().is_empty());
    assert_eq!(state(&env, CARD), redeemed("42"));
}

#[test]
fn the_whole_value_is_approved_and_more_is_51() {
    let env = MockEnv::new();
    issue(&env, CARD, 2_500, "2025-12-31");
    let (outcome, tx) = run(&env, redemption("000000002501", "1"));
    assert_eq!(
        (outcome, tx.rc()),
        (Outcome::Aborted, Some(INSUFFICIENT_FUNDS))
    );
    assert_eq!(state(&env, CARD), State::Open, "not redeemed");
    let (outcome, _) = run(&env, redemption("000000002500", "2"));
    assert_eq!(outcome, Outcome::Prepared);
}

#[test]
fn an_expired_coupon_is_54_and_valid_through_its_expiry_day() {
    let env = MockEnv::new();
    issue(&env, CARD, 2_500, "2025-06-14");
    issue(&env, OTHER_CARD, 2_500, TODAY);
    let (outcome, tx) = run(&env, redemption("000000000100", "1"));
    assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some(rc::EXPIRED)));
    assert_eq!(state(&env, CARD), State::Open);
    assert!(env.logged(Level::Debug, "expired on 2025-06-14"));
    let (outcome, _) = run(
        &env,
        redemption("000000000100", "2").with_field(2, OTHER_CARD),
    );
    assert_eq!(outcome, Outcome::Prepared);
    // One millisecond before the next day, still valid; at midnight UTC, expired.
    let late = MockEnv::new().at(1_750_031_999_999);
    issue(&late, OTHER_CARD, 1, TODAY);
    assert_eq!(
        run(
            &late,
            redemption("000000000001", "3").with_field(2, OTHER_CARD)
        )
        .0,
        Outcome::Prepared
    );
    let midnight = MockEnv::new().at(1_750_032_000_000);
    issue(&midnight, OTHER_CARD, 1, TODAY);
    let (_, tx) = run(
        &midnight,
        redemption("000000000001", "4").with_field(2, OTHER_CARD),
    );
    assert_eq!(tx.rc(), Some(rc::EXPIRED));
}

#[test]
fn the_checks_run_in_the_documented_order() {
    let env = MockEnv::new();
    // Expired and redeemed: 54 first.
    put(&env, CARD, 100, "2025-01-01", redeemed("7"));
    assert_eq!(
        run(&env, redemption("000000000500", "8")).1.rc(),
        Some(rc::EXPIRED)
    );
    // Redeemed and over the value: 05 first.
    put(&env, CARD, 100, "2025-12-31", redeemed("7"));
    assert_eq!(
        run(&env, redemption("000000000500", "8")).1.rc(),
        Some(DO_NOT_HONOUR)
    );
}

#[test]
fn an_unknown_coupon_is_14() {
    let env = MockEnv::new();
    let (outcome, tx) = run(&env, redemption("000000000100", "1"));
    assert_eq!(
        (outcome, tx.rc()),
        (Outcome::Aborted, Some(rc::INVALID_CARD))
    );
    assert_eq!(env.kv_get(&coupon_key(CARD)), Ok(None), "nothing written");
    assert!(env.logged(Level::Debug, "no such coupon"));
}

#[test]
fn without_a_tranlog_the_redemption_is_recorded_as_dash() {
    let env = MockEnv::new();
    issue(&env, CARD, 2_500, "2025-12-31");
    let mut plugin = CouponHost::default();
    let mut tx = redemption("000000000100", "");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    assert_eq!(state(&env, CARD), redeemed("-"));
    plugin.abort(&mut tx, &env);
    assert_eq!(state(&env, CARD), State::Open);
    // No TRANLOG_ID variable at all: the same.
    let mut tx = request("000000", "000000000100");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    assert_eq!(state(&env, CARD), redeemed("-"));
    // An id that cannot be kept in the value: 96.
    issue(&env, OTHER_CARD, 2_500, "2025-12-31");
    let (outcome, tx) = run(
        &env,
        redemption("000000000100", "4 2").with_field(2, OTHER_CARD),
    );
    assert_eq!(
        (outcome, tx.rc()),
        (Outcome::Aborted, Some(rc::SYSTEM_ERROR))
    );
    assert_eq!(state(&env, OTHER_CARD), State::Open);
}

#[test]
fn abort_and_an_unapproved_commit_reopen_the_coupon() {
    let env = MockEnv::new();
    issue(&env, CARD, 2_500, "2025-12-31");
    let mut plugin = CouponHost::default();
    let mut tx = redemption("000000000100", "42");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    plugin.abort(&mut tx, &env);
    assert_eq!(state(&env, CARD), State::Open);
    assert!(tx.response().is_empty(), "DE38 cleared");
    plugin.abort(&mut tx, &env);
    assert_eq!(state(&env, CARD), State::Open);

    let mut tx = redemption("000000000100", "43");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    plugin.commit(&mut tx, &env);
    assert_eq!(state(&env, CARD), redeemed("43"), "an approval is kept");
    assert!(tx.response().contains_key(&field::AUTH_ID));

    issue(&env, CARD, 2_500, "2025-12-31");
    let mut tx = redemption("000000000100", "44");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    tx.set_result_code("91");
    plugin.commit(&mut tx, &env);
    assert_eq!(state(&env, CARD), State::Open);
    assert!(!tx.response().contains_key(&field::AUTH_ID));
    assert_no_pan_logged(&env);
}

#[test]
fn abort_leaves_a_coupon_someone_else_changed() {
    let env = MockEnv::new();
    issue(&env, CARD, 2_500, "2025-12-31");
    let mut plugin = CouponHost::default();
    let mut tx = redemption("000000000100", "42");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    put(&env, CARD, 2_500, "2025-12-31", redeemed("77"));
    plugin.abort(&mut tx, &env);
    assert_eq!(state(&env, CARD), redeemed("77"));
    assert!(env.logged(Level::Warn, "no longer redeemed by 42"));
    // Deleted by the operator meanwhile.
    let mut tx = redemption("000000000100", "43").with_field(2, OTHER_CARD);
    issue(&env, OTHER_CARD, 2_500, "2025-12-31");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    env.kv_delete(&coupon_key(OTHER_CARD)).unwrap();
    plugin.abort(&mut tx, &env);
    assert!(env.logged(Level::Warn, "no longer exists"));
    assert_no_pan_logged(&env);
}

#[test]
fn a_reversal_un_redeems_once() {
    let env = MockEnv::new();
    issue(&env, CARD, 2_500, "2025-12-31");
    let mut plugin = CouponHost::default();
    let mut tx = redemption("000000000100", "42");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    plugin.commit(&mut tx, &env);

    let mut reversal = reversal_of(request("000000", "000000000100"), "00", "42");
    assert_eq!(plugin.reverse(&mut reversal, &env), Ok(()));
    assert_eq!(state(&env, CARD), State::Open);
    assert!(env.logged(
        Level::Info,
        "reversal of 42: 600650******0018 is open again"
    ));

    // Redeemed again by another transaction; the first reversal delivered
    // again leaves that one alone.
    let mut tx = redemption("000000000100", "43");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    assert_eq!(plugin.reverse(&mut reversal, &env), Ok(()));
    assert_eq!(state(&env, CARD), redeemed("43"));
    assert!(env.logged(Level::Debug, "already reversed"));
    assert_no_pan_logged(&env);
}

#[test]
fn a_reversal_reads_the_result_code_of_the_original_response_too() {
    let env = MockEnv::new();
    put(&env, CARD, 2_500, "2025-12-31", redeemed("42"));
    let mut reversal = request("000000", "000000000100")
        .with_response_field(39, "00")
        .reversed("42", "68");
    assert_eq!(CouponHost::default().reverse(&mut reversal, &env), Ok(()));
    assert_eq!(state(&env, CARD), State::Open);
}

#[test]
fn declined_originals_and_inquiries_have_nothing_to_undo() {
    let env = MockEnv::new();
    put(&env, CARD, 2_500, "2025-12-31", redeemed("42"));
    let mut plugin = CouponHost::default();
    for mut reversal in [
        reversal_of(request("000000", "000000000100"), "05", "42"),
        request("000000", "000000000100").reversed("42", "68"),
        reversal_of(request("310000", "000000000000"), "00", "42"),
    ] {
        assert_eq!(plugin.reverse(&mut reversal, &env), Ok(()));
    }
    assert_eq!(state(&env, CARD), redeemed("42"));
}

#[test]
fn a_reversal_without_a_tranlog_reopens_a_dash_redemption() {
    let env = MockEnv::new();
    put(&env, CARD, 2_500, "2025-12-31", redeemed("-"));
    let mut reversal = reversal_of(request("000000", "000000000100"), "00", "");
    assert_eq!(CouponHost::default().reverse(&mut reversal, &env), Ok(()));
    assert_eq!(state(&env, CARD), State::Open);
}

#[test]
fn a_reversal_of_a_deleted_coupon_does_nothing_and_a_corrupt_one_is_retried() {
    let env = MockEnv::new();
    let mut plugin = CouponHost::default();
    let mut reversal = reversal_of(request("000000", "000000000100"), "00", "42");
    assert_eq!(plugin.reverse(&mut reversal, &env), Ok(()));
    assert!(env.logged(Level::Warn, "no longer exists"));
    env.kv_set(&coupon_key(CARD), b"v1 garbage").unwrap();
    let error = plugin.reverse(&mut reversal, &env).unwrap_err();
    assert!(
        error.contains("corrupt") && !error.contains(CARD),
        "{error}"
    );
}

#[test]
fn a_corrupt_value_is_96_with_an_error_log_never_a_panic() {
    let other = format!("v1 {OTHER_CARD} 2500 2025-12-31 open");
    for value in [
        &b"lots"[..],
        b"",
        b"v1 6006500000000018 2500 2025-12-31",
        b"v1 6006500000000018 25x0 2025-12-31 open",
        b"v1 6006500000000018 2500 2025-02-30 open",
        b"v1 6006500000000018 2500 2025-12-31 redeemed",
        b"\xff",
        other.as_bytes(),
    ] {
        let env = MockEnv::new();
        env.kv_set(&coupon_key(CARD), value).unwrap();
        for tx in [redemption("000000000100", "1"), inquiry()] {
            let (outcome, tx) = run(&env, tx);
            assert_eq!(
                (outcome, tx.rc()),
                (Outcome::Aborted, Some(rc::SYSTEM_ERROR)),
                "{:?}",
                String::from_utf8_lossy(value)
            );
            assert!(tx.response().is_empty());
        }
        assert!(
            env.logged(Level::Error, "corrupt") || env.logged(Level::Error, "another card"),
            "{:?}",
            env.logs()
        );
        assert_eq!(env.kv_get(&coupon_key(CARD)), Ok(Some(value.to_vec())));
    }
}

#[test]
fn a_balance_inquiry_answers_what_is_left() {
    let env = MockEnv::new();
    issue(&env, CARD, 2_500, "2025-12-31");
    let (outcome, tx) = run(&env, inquiry());
    assert_eq!((outcome, tx.rc()), (Outcome::Prepared, Some(rc::APPROVED)));
    assert_eq!(tx.response()[&54], b"0002840C000000002500");
    assert_auth_code(&tx);
    assert_eq!(state(&env, CARD), State::Open, "an inquiry redeems nothing");

    put(&env, CARD, 2_500, "2025-12-31", redeemed("42"));
    let (_, tx) = run(&env, inquiry().without_field(4));
    assert_eq!(tx.response()[&54], b"0002840C000000000000");

    put(&env, CARD, 2_500, "2025-01-01", State::Open);
    assert_eq!(run(&env, inquiry()).1.rc(), Some(rc::EXPIRED));
    assert_eq!(
        run(&env, inquiry().with_field(2, OTHER_CARD)).1.rc(),
        Some(rc::INVALID_CARD)
    );
    put(&env, CARD, 1_000_000_000_000, "2025-12-31", State::Open);
    let (outcome, tx) = run(&env, inquiry());
    assert_eq!(
        (outcome, tx.rc()),
        (Outcome::Aborted, Some(rc::SYSTEM_ERROR))
    );
    assert!(env.logged(Level::Error, "does not fit in DE54"));

    // In the plugin's currency; abort clears what it answered.
    let env = MockEnv::new().with_config("currency", "978");
    issue(&env, CARD, 5, "2025-12-31");
    let mut plugin = CouponHost::default();
    let mut tx = inquiry();
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    assert_eq!(tx.response()[&54], b"0002978C000000000005");
    plugin.abort(&mut tx, &env);
    assert!(tx.response().is_empty());
    assert_eq!(state(&env, CARD), State::Open);
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
    assert_eq!(available_balance("840", 1_000_000_000_000), None);
    assert_eq!(available_balance("EUR", 1), None);
}

#[test]
fn requests_it_cannot_serve_are_declined_before_the_coupon() {
    let env = MockEnv::new();
    issue(&env, CARD, 2_500, "2025-12-31");
    let cases = [
        (request("200000", "000000000100"), rc::UNSUPPORTED),
        (request("010000", "000000000100"), rc::UNSUPPORTED),
        (request("00000", "000000000100"), rc::FORMAT_ERROR),
        (request("000000", "").without_field(3), rc::FORMAT_ERROR),
        (request("000000", "").without_field(4), rc::FORMAT_ERROR),
        (request("000000", "000000000000"), rc::INVALID_AMOUNT),
        (request("000000", "0000000001.0"), rc::INVALID_AMOUNT),
        (
            request("000000", "000000000100").with_field(49, "978"),
            rc::INVALID_AMOUNT,
        ),
        (
            request("000000", "000000000100").without_field(2),
            rc::INVALID_CARD,
        ),
        (
            request("000000", "000000000100").with_field(2, "6006500000000019"),
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
    assert_eq!(state(&env, CARD), State::Open);
    let (outcome, _) = run(&env, redemption("000000000100", "1").without_field(49));
    assert_eq!(
        outcome,
        Outcome::Prepared,
        "DE49 absent: the plugin's currency"
    );
}

#[test]
fn non_financial_messages_are_left_alone() {
    let env = MockEnv::new();
    let (outcome, tx) = run(&env, MockTransaction::new("0800").with_field(70, "301"));
    assert_eq!((outcome, tx.rc()), (Outcome::NoJoin, None));
    assert_eq!(tx.calls(), 1);
    assert_eq!(env.config_calls(), 0);
}

#[test]
fn authorizations_repeats_and_1993_requests_redeem_too() {
    for mti in ["0100", "0201", "1100", "1200", "1201"] {
        let env = MockEnv::new();
        issue(&env, CARD, 2_500, "2025-12-31");
        let tx = MockTransaction::new(mti)
            .with_field(2, CARD)
            .with_field(3, "000000")
            .with_field(4, "000000000100")
            .with_tranlog_id("5");
        let (outcome, _) = run(&env, tx);
        assert_eq!(outcome, Outcome::Prepared, "{mti}");
        assert_eq!(state(&env, CARD), redeemed("5"));
    }
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
fn of_two_racing_redemptions_one_gets_05() {
    let env = MockEnv::new();
    issue(&env, CARD, 2_500, "2025-12-31");
    let other = RefCell::new(None);
    // The other redemption runs entirely between our read and our write.
    let racing = Racing::new(&env).before_cas(|inner| {
        let (outcome, tx) = run(inner, redemption("000000000100", "41"));
        *other.borrow_mut() = Some((outcome, tx.rc().map(str::to_owned)));
    });
    let mut tx = redemption("000000000100", "42");
    let outcome = CouponHost::default().prepare(&mut tx, &racing);
    assert_eq!(
        other.borrow().clone(),
        Some((Outcome::Prepared, Some("00".to_string())))
    );
    assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some(DO_NOT_HONOUR)));
    assert_eq!(racing.cas_calls.get(), 1);
    assert_eq!(state(&env, CARD), redeemed("41"));
}

#[test]
fn endless_contention_and_a_failing_store_are_96() {
    let env = MockEnv::new();
    issue(&env, CARD, 2_500, "2025-12-31");
    let mut racing = Racing::new(&env);
    racing.lose = true;
    let mut tx = redemption("000000000100", "42");
    assert_eq!(
        CouponHost::default().prepare(&mut tx, &racing),
        Outcome::Aborted
    );
    assert_eq!(tx.rc(), Some(rc::SYSTEM_ERROR));
    assert_eq!(racing.cas_calls.get(), MAX_ATTEMPTS);
    assert!(env.logged(Level::Error, "compare-and-sets in a row lost"));
    assert_eq!(state(&env, CARD), State::Open);

    let mut racing = Racing::new(&env);
    racing.broken = true;
    for mut tx in [redemption("000000000100", "42"), inquiry()] {
        assert_eq!(
            CouponHost::default().prepare(&mut tx, &racing),
            Outcome::Aborted
        );
        assert_eq!(tx.rc(), Some(rc::SYSTEM_ERROR));
    }
    assert!(env.logged(Level::Error, "kv store unavailable"));
    let mut reversal = reversal_of(request("000000", "000000000100"), "00", "42");
    assert!(
        CouponHost::default()
            .reverse(&mut reversal, &racing)
            .is_err()
    );

    // A reopen that fails in abort is logged.
    let mut plugin = CouponHost::default();
    let mut tx = redemption("000000000100", "42");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Prepared);
    plugin.abort(&mut tx, &racing);
    assert!(env.logged(Level::Error, "could not reopen 600650******0018"));
    assert_no_pan_logged(&env);
}

#[test]
fn settings_are_checked_every_problem_at_once() {
    let mut plugin = CouponHost::default();
    assert_eq!(plugin.check_settings(&MapConfig::new()), vec![]);
    assert_eq!(
        plugin.check_settings(&MapConfig::new().with("currency", "978")),
        vec![]
    );
    let problems = plugin.check_settings(
        &MapConfig::new()
            .with("currency", "8400")
            .with("value", "10"),
    );
    let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["currency", "value"]);
    assert!(problems[0].message.contains("three digits"));
    assert!(problems[1].message.contains("unknown setting"));
}

#[test]
fn bad_settings_are_96_with_an_error_log_and_good_ones_are_read_once() {
    let env = MockEnv::new().with_config("currency", "EUR");
    issue(&env, CARD, 2_500, "2025-12-31");
    let (outcome, tx) = run(&env, redemption("000000000100", "1"));
    assert_eq!(
        (outcome, tx.rc()),
        (Outcome::Aborted, Some(rc::SYSTEM_ERROR))
    );
    assert!(env.logged(Level::Error, "coupon: bad settings: `currency`"));
    assert_eq!(state(&env, CARD), State::Open);

    let env = MockEnv::new();
    let mut plugin = CouponHost::default();
    for _ in 0..3 {
        let mut tx = inquiry();
        run_with(&env, &mut plugin, &mut tx);
    }
    assert_eq!(env.config_calls(), 1);
}

#[test]
fn auth_codes_differ_from_one_transaction_to_the_next() {
    let env = MockEnv::new();
    let mut plugin = CouponHost::default();
    let codes: std::collections::HashSet<[u8; 6]> =
        (0..1000).map(|_| plugin.next_auth_code(&env)).collect();
    assert_eq!(codes.len(), 1000);
}

#[test]
fn a_request_never_shows_its_card_in_debug() {
    let request = Request {
        pan: CARD.into(),
        operation: Operation::Redemption,
        amount: 1,
    };
    assert!(!format!("{request:?}").contains(CARD));
}

#[test]
fn abort_after_its_own_decline_changes_nothing() {
    // The host's transaction manager aborts the participant that aborted
    // too (jPOS semantics): a second redemption's abort must not reopen the
    // first one's coupon.
    let env = MockEnv::new();
    put(&env, CARD, 2_500, "2025-12-31", redeemed("42"));
    let mut plugin = CouponHost::default();
    let mut tx = redemption("000000000100", "43");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Aborted);
    plugin.abort(&mut tx, &env);
    assert_eq!(state(&env, CARD), redeemed("42"));
    let mut tx = redemption("000000000100", "42");
    assert_eq!(run_with(&env, &mut plugin, &mut tx), Outcome::Aborted);
    plugin.abort(&mut tx, &env);
    assert_eq!(state(&env, CARD), redeemed("42"), "even with the same id");
}
