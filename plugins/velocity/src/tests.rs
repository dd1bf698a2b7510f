use std::borrow::Cow;

use switchyard_sdk::mock::{MockEnv, MockTransaction};
use switchyard_sdk::{Clock, Config, Counters, Kv, Level, Log, MapConfig};

use super::*;

/// The published Visa test card; passes Luhn.
const VISA: &str = "4761739001010119";
/// The published Mastercard test card; passes Luhn.
const MASTERCARD: &str = "5413330089010509";
/// 2025-06-15T12:00:00Z.
const NOON: i64 = MockEnv::DEFAULT_NOW;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn request(pan: &str, de3: &str, amount: &str) -> MockTransaction {
    MockTransaction::new("0200")
        .with_field(2, pan)
        .with_field(3, de3)
        .with_field(4, amount)
        .with_field(11, "000123")
        .with_field(41, "TERM0001")
        .with_field(42, "MERCHANT0000001")
        .with_field(49, "840")
}

fn purchase(amount: &str) -> MockTransaction {
    request(VISA, "000000", amount)
}

/// An environment with these profiles.
fn env_with(profiles: &[(&str, &str)]) -> MockEnv {
    profiles.iter().fold(MockEnv::new(), |env, (name, items)| {
        env.with_config(&format!("profile {name}"), items)
    })
}

/// Runs `tx` through prepare and, when prepared, commits it with `final_rc`
/// as the result code (an endpoint's or local-auth's answer).
fn run(
    v: &mut Velocity,
    env: &MockEnv,
    mut tx: MockTransaction,
    final_rc: &str,
) -> (Outcome, MockTransaction) {
    let outcome = v.prepare(&mut tx, env);
    if outcome.joins() {
        tx.set_result_code(final_rc);
        v.commit(&mut tx, env);
    }
    assert_no_card_data(env);
    (outcome, tx)
}

fn assert_no_card_data(env: &MockEnv) {
    for (_, message) in env.logs() {
        assert!(
            !message.contains(VISA) && !message.contains(MASTERCARD),
            "card number in the log: {message}"
        );
    }
}

fn sum(env: &MockEnv, counter: &str, key: &str, window: u32) -> i64 {
    env.counter_sum(counter, key, window).unwrap()
}

#[test]
fn the_default_profile_declines_the_11th_approval_with_65() {
    let env = MockEnv::new();
    let mut v = Velocity::default();
    for n in 1..=10 {
        let (outcome, tx) = run(&mut v, &env, purchase("000000001000"), "00");
        assert_eq!(
            (outcome, tx.rc()),
            (Outcome::Prepared, Some("00")),
            "approval {n}"
        );
    }
    assert_eq!(sum(&env, "card:count", VISA, 86_400), 10);
    let (outcome, tx) = run(&mut v, &env, purchase("000000001000"), "00");
    assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some("65")));
    assert_eq!(
        sum(&env, "card:count", VISA, 86_400),
        10,
        "the decline does not count"
    );
    assert_eq!(sum(&env, "card:amount:840", VISA, 86_400), 10_000);
    assert!(env.logged(
        Level::Debug,
        "profile `card`: card:count 11 in 1d over the limit 10: 65"
    ));
    // Another card is not affected.
    let other = request(MASTERCARD, "000000", "000000001000");
    assert_eq!(run(&mut v, &env, other, "00").0, Outcome::Prepared);
}

#[test]
fn the_default_profile_declines_an_amount_over_2500_with_61() {
    let env = MockEnv::new();
    let mut v = Velocity::default();
    let (outcome, tx) = run(&mut v, &env, purchase("000000250001"), "00");
    assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some("61")));
    assert_eq!(sum(&env, "card:amount:840", VISA, 86_400), 0);
    assert_eq!(
        sum(&env, "card:count", VISA, 86_400),
        0,
        "the count was given back too"
    );

    assert_eq!(
        run(&mut v, &env, purchase("000000200000"), "00").0,
        Outcome::Prepared
    );
    assert_eq!(
        run(&mut v, &env, purchase("000000050000"), "00").0,
        Outcome::Prepared
    );
    assert_eq!(
        sum(&env, "card:amount:840", VISA, 86_400),
        250_000,
        "2,500.00 exactly"
    );
    let (outcome, tx) = run(&mut v, &env, purchase("000000000001"), "00");
    assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some("61")));
    assert!(env.logged(
        Level::Debug,
        "card:amount:840 2500.01 in 1d over the limit 2500.00: 61"
    ));
    // `*`: yen have no decimals, so 2,500 yen.
    let yen = |amount| purchase(amount).with_field(49, "392");
    assert_eq!(
        run(&mut v, &env, yen("000000002500"), "00").0,
        Outcome::Prepared
    );
    assert_eq!(
        run(&mut v, &env, yen("000000000001"), "00").1.rc(),
        Some("61")
    );
}

#[test]
fn declines_after_velocity_do_not_count() {
    let env = env_with(&[("c", "count=2 amount=840:100")]);
    let mut v = Velocity::default();
    for rc in ["51", "05", "91", "96"] {
        let (outcome, _) = run(&mut v, &env, purchase("000000005000"), rc);
        assert_eq!(outcome, Outcome::Prepared, "{rc}: passed velocity");
    }
    assert_eq!(sum(&env, "c:count", VISA, 86_400), 0);
    assert_eq!(sum(&env, "c:amount:840", VISA, 86_400), 0);
    // A commit without any result code is no approval either.
    let mut tx = purchase("000000005000");
    assert_eq!(v.prepare(&mut tx, &env), Outcome::Prepared);
    v.commit(&mut tx, &env);
    assert_eq!(sum(&env, "c:count", VISA, 86_400), 0);
    // Every approval code keeps its count.
    for rc in ["00", "08"] {
        assert_eq!(
            run(&mut v, &env, purchase("000000001000"), rc).0,
            Outcome::Prepared
        );
    }
    assert_eq!(sum(&env, "c:count", VISA, 86_400), 2);
    assert_eq!(sum(&env, "c:amount:840", VISA, 86_400), 2_000);
}

#[test]
fn two_interleaved_transactions_at_the_limit_cannot_both_pass() {
    let env = env_with(&[("c", "count=10")]);
    let mut first = Velocity::default();
    for _ in 0..9 {
        run(&mut first, &env, purchase("000000001000"), "00");
    }
    // Two instances, as two concurrent transactions get: prepare A,
    // prepare B, commit A, commit B.
    let (mut a, mut b) = (Velocity::default(), Velocity::default());
    let (mut tx_a, mut tx_b) = (purchase("000000001000"), purchase("000000001000"));
    let outcome_a = a.prepare(&mut tx_a, &env);
    let outcome_b = b.prepare(&mut tx_b, &env);
    for (v, tx, outcome) in [
        (&mut a, &mut tx_a, outcome_a),
        (&mut b, &mut tx_b, outcome_b),
    ] {
        if outcome.joins() {
            tx.set_result_code("00");
            v.commit(tx, &env);
        }
    }
    let passed = [outcome_a, outcome_b]
        .iter()
        .filter(|o| o.is_prepared())
        .count();
    assert_eq!(passed, 1, "{outcome_a:?} {outcome_b:?}");
    assert_eq!(tx_b.rc(), Some("65"));
    assert_eq!(sum(&env, "c:count", VISA, 86_400), 10);
}

#[test]
fn two_interleaved_amounts_at_the_limit_cannot_both_pass() {
    let env = env_with(&[("a", "amount=840:2500.00")]);
    let (mut a, mut b) = (Velocity::default(), Velocity::default());
    let (mut tx_a, mut tx_b) = (purchase("000000150000"), purchase("000000150000"));
    assert_eq!(a.prepare(&mut tx_a, &env), Outcome::Prepared);
    assert_eq!(b.prepare(&mut tx_b, &env), Outcome::Aborted);
    assert_eq!(tx_b.rc(), Some("61"));
    tx_a.set_result_code("00");
    a.commit(&mut tx_a, &env);
    assert_eq!(sum(&env, "a:amount:840", VISA, 86_400), 150_000);
}

#[test]
fn a_reservation_is_released_by_whichever_instance_gets_the_second_phase() {
    // With the host's `reuse` policy, commit and abort may run on another
    // instance than prepare.
    let env = env_with(&[("c", "count=5 window=day")]);
    let mut tx = purchase("000000001000");
    assert_eq!(
        Velocity::default().prepare(&mut tx, &env),
        Outcome::Prepared
    );
    let key = format!("{VISA}|2025-06-15");
    assert_eq!(sum(&env, "c:count", &key, 86_400), 1);
    tx.set_result_code("51");
    Velocity::default().commit(&mut tx, &env);
    assert_eq!(sum(&env, "c:count", &key, 86_400), 0);
}

#[test]
fn abort_gives_the_reservation_back() {
    let env = MockEnv::new();
    let mut v = Velocity::default();
    let mut tx = purchase("000000001000");
    assert_eq!(v.prepare(&mut tx, &env), Outcome::Prepared);
    assert_eq!(sum(&env, "card:count", VISA, 86_400), 1);
    assert_eq!(sum(&env, "card:amount:840", VISA, 86_400), 1_000);
    v.abort(&mut tx, &env);
    assert_eq!(sum(&env, "card:count", VISA, 86_400), 0);
    assert_eq!(sum(&env, "card:amount:840", VISA, 86_400), 0);
}

#[test]
fn approvals_all_counts_every_attempt_that_passed() {
    let env = env_with(&[("tries", "count=2 approvals=all")]);
    let mut v = Velocity::default();
    assert_eq!(
        run(&mut v, &env, purchase("000000001000"), "51").0,
        Outcome::Prepared
    );
    let mut tx = purchase("000000001000");
    assert_eq!(v.prepare(&mut tx, &env), Outcome::Prepared);
    v.abort(&mut tx, &env);
    assert_eq!(
        sum(&env, "tries:count", VISA, 86_400),
        2,
        "a decline and an abort count"
    );
    let (outcome, tx) = run(&mut v, &env, purchase("000000001000"), "00");
    assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some("65")));
    assert_eq!(
        sum(&env, "tries:count", VISA, 86_400),
        2,
        "velocity's own decline does not"
    );
    assert!(!tx.vars().contains_key(AT_VAR), "no calendar profile");
}

#[test]
fn a_reversal_gives_back_once() {
    let env = MockEnv::new();
    let mut v = Velocity::default();
    for _ in 0..2 {
        run(&mut v, &env, purchase("000000010000"), "00");
    }
    let (_, original) = run(&mut v, &env, purchase("000000010000"), "00");
    assert_eq!(sum(&env, "card:count", VISA, 86_400), 3);
    let mut reversal = original.reversed("42", "68");
    assert_eq!(v.reverse(&mut reversal, &env), Ok(()));
    assert_eq!(sum(&env, "card:count", VISA, 86_400), 2);
    assert_eq!(sum(&env, "card:amount:840", VISA, 86_400), 20_000);
    assert_eq!(env.kv_get("rev:42"), Ok(Some(b"1".to_vec())));
    // Delivered again (at least once), on another instance: no effect.
    assert_eq!(Velocity::default().reverse(&mut reversal, &env), Ok(()));
    assert_eq!(sum(&env, "card:count", VISA, 86_400), 2);
    assert_eq!(sum(&env, "card:amount:840", VISA, 86_400), 20_000);
    assert_no_card_data(&env);
}

#[test]
fn a_reversal_reads_the_approval_from_the_original_response() {
    // The host hands the original's response, not a result code.
    let env = MockEnv::new();
    let mut v = Velocity::default();
    run(&mut v, &env, purchase("000000010000"), "00");
    let mut reversal = purchase("000000010000")
        .with_response_field(39, "00")
        .reversed("7", "68");
    assert_eq!(v.reverse(&mut reversal, &env), Ok(()));
    assert_eq!(sum(&env, "card:count", VISA, 86_400), 0);
}

#[test]
fn a_reversal_of_a_decline_gives_nothing_back() {
    let env = MockEnv::new();
    let mut v = Velocity::default();
    run(&mut v, &env, purchase("000000010000"), "00");
    for declined in [
        purchase("000000010000").with_result_code("91"),
        purchase("000000010000").with_response_field(39, "51"),
        purchase("000000010000"),
    ] {
        let mut reversal = declined.reversed("8", "68");
        assert_eq!(v.reverse(&mut reversal, &env), Ok(()));
    }
    assert_eq!(sum(&env, "card:count", VISA, 86_400), 1);
    assert_eq!(env.kv_get("rev:8"), Ok(None), "no marker taken");
    // An approvals=all profile gives back whatever the original's result.
    let env = env_with(&[("tries", "count=5 approvals=all")]);
    let mut v = Velocity::default();
    run(&mut v, &env, purchase("000000010000"), "91");
    let mut reversal = purchase("000000010000")
        .with_result_code("91")
        .reversed("9", "68");
    assert_eq!(v.reverse(&mut reversal, &env), Ok(()));
    assert_eq!(sum(&env, "tries:count", VISA, 86_400), 0);
}

#[test]
fn a_reversal_without_a_tranlog_gives_back_each_time_with_a_warning() {
    let env = MockEnv::new();
    let mut v = Velocity::default();
    for _ in 0..3 {
        run(&mut v, &env, purchase("000000010000"), "00");
    }
    let mut reversal = purchase("000000010000").with_result_code("00");
    v.reverse(&mut reversal, &env).unwrap();
    let mut reversal = reversal.with_tranlog_id("");
    v.reverse(&mut reversal, &env).unwrap();
    assert_eq!(sum(&env, "card:count", VISA, 86_400), 1);
    assert!(env.logged(Level::Warn, "without a TRANLOG_ID"));
}

#[test]
fn a_reversal_never_takes_a_counter_below_zero() {
    // The reversed original (500.00) was counted on another day: today's
    // counter holds only another transaction's 10.00, and the give-back
    // stops at zero.
    let env = env_with(&[("daily", "window=day count=3 amount=840:1000")]).at(NOON + DAY);
    let mut v = Velocity::default();
    run(&mut v, &env, purchase("000000001000"), "00");
    let mut reversal = purchase("000000050000")
        .with_result_code("00")
        .reversed("11", "68");
    assert_eq!(v.reverse(&mut reversal, &env), Ok(()));
    let key = format!("{VISA}|2025-06-16");
    assert_eq!(sum(&env, "daily:count", &key, 86_400), 0);
    assert_eq!(sum(&env, "daily:amount:840", &key, 86_400), 0);
    // And the counter is usable as before: 3 more approvals.
    for _ in 0..3 {
        assert_eq!(
            run(&mut v, &env, purchase("000000001000"), "00").0,
            Outcome::Prepared
        );
    }
    assert_eq!(
        run(&mut v, &env, purchase("000000001000"), "00").1.rc(),
        Some("65")
    );
}

/// An environment whose counters fail for one counter name, or whose kv
/// fails.
struct Failing {
    inner: MockEnv,
    counter: &'static str,
    kv: bool,
}

impl Config for Failing {
    fn get(&self, key: &str) -> Option<Cow<'_, str>> {
        self.inner.get(key)
    }
    fn entries(&self) -> Vec<(String, String)> {
        self.inner.entries()
    }
}
impl Log for Failing {
    fn log(&self, level: Level, message: &str) {
        self.inner.log(level, message)
    }
}
impl Clock for Failing {
    fn now_unix_millis(&self) -> i64 {
        self.inner.now_unix_millis()
    }
    fn monotonic_nanos(&self) -> u64 {
        self.inner.monotonic_nanos()
    }
}
impl Counters for Failing {
    fn counter_add(&self, name: &str, key: &str, delta: i64, window: u32) -> Result<i64, String> {
        if name == self.counter {
            return Err("counters are down".into());
        }
        self.inner.counter_add(name, key, delta, window)
    }
}
impl Kv for Failing {
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.inner.kv_get(key)
    }
    fn kv_delete(&self, key: &str) -> Result<bool, String> {
        self.inner.kv_delete(key)
    }
    fn kv_compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, String> {
        if self.kv {
            return Err("kv is down".into());
        }
        self.inner.kv_compare_and_set(key, expected, value)
    }
}

#[test]
fn a_failing_counter_gives_back_what_was_reserved_and_aborts_with_96() {
    let env = Failing {
        inner: env_with(&[("a", "count=5"), ("b", "count=5")]),
        counter: "b:count",
        kv: false,
    };
    let mut tx = purchase("000000001000");
    assert_eq!(Velocity::default().prepare(&mut tx, &env), Outcome::Aborted);
    assert_eq!(tx.rc(), Some("96"));
    assert_eq!(sum(&env.inner, "a:count", VISA, 86_400), 0);
    assert!(env.inner.logged(
        Level::Error,
        "profile `b`: counter b:count: counters are down"
    ));
}

#[test]
fn a_failing_reversal_is_retried_by_the_host() {
    let inner = MockEnv::new();
    run(
        &mut Velocity::default(),
        &inner,
        purchase("000000001000"),
        "00",
    );
    let mut reversal = purchase("000000001000")
        .with_result_code("00")
        .reversed("5", "68");
    // The kv is down: Err, nothing given back.
    let env = Failing {
        inner,
        counter: "",
        kv: true,
    };
    assert!(Velocity::default().reverse(&mut reversal, &env).is_err());
    // The first give-back fails: the claim is released, Err.
    let env = Failing {
        inner: env.inner,
        counter: "card:count",
        kv: false,
    };
    let err = Velocity::default()
        .reverse(&mut reversal, &env)
        .unwrap_err();
    assert!(err.contains("giving back card:count failed"), "{err}");
    assert_eq!(env.inner.kv_get("rev:5"), Ok(None));
    // The next delivery succeeds, once.
    let env = env.inner;
    Velocity::default().reverse(&mut reversal, &env).unwrap();
    Velocity::default().reverse(&mut reversal, &env).unwrap();
    assert_eq!(sum(&env, "card:count", VISA, 86_400), 0);
    assert_eq!(sum(&env, "card:amount:840", VISA, 86_400), 0);
}

#[test]
fn terminal_and_merchant_scopes_count_every_card() {
    let env = env_with(&[
        ("term", "scope=terminal count=2"),
        ("shop", "scope=merchant count=3 rc=N1"),
    ]);
    let mut v = Velocity::default();
    let visa = || request(VISA, "000000", "000000001000");
    let mastercard = || request(MASTERCARD, "000000", "000000001000");
    assert_eq!(run(&mut v, &env, visa(), "00").0, Outcome::Prepared);
    assert_eq!(run(&mut v, &env, mastercard(), "00").0, Outcome::Prepared);
    let (outcome, tx) = run(&mut v, &env, visa(), "00");
    assert_eq!(
        (outcome, tx.rc()),
        (Outcome::Aborted, Some("65")),
        "the terminal's third"
    );
    assert_eq!(sum(&env, "term:count", "TERM0001", 86_400), 2);
    assert_eq!(sum(&env, "shop:count", "MERCHANT0000001", 86_400), 2);
    // Another terminal of the same merchant: the merchant's third, then over.
    let elsewhere = || visa().with_field(41, "TERM0002");
    assert_eq!(run(&mut v, &env, elsewhere(), "00").0, Outcome::Prepared);
    let (outcome, tx) = run(&mut v, &env, elsewhere(), "00");
    assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some("N1")));
    assert_eq!(sum(&env, "term:count", "TERM0002", 86_400), 1, "given back");
    // Without DE42 the merchant profile does not count; the terminal's does.
    let no_merchant = || {
        request(VISA, "000000", "000000001000")
            .with_field(41, "TERM0003")
            .without_field(42)
    };
    for _ in 0..2 {
        assert_eq!(run(&mut v, &env, no_merchant(), "00").0, Outcome::Prepared);
    }
    assert_eq!(sum(&env, "shop:count", "MERCHANT0000001", 86_400), 3);
}

#[test]
fn a_request_without_any_scope_field_is_not_joined() {
    let env = env_with(&[("shop", "scope=merchant count=1")]);
    let mut tx = purchase("000000001000").without_field(42);
    assert_eq!(Velocity::default().prepare(&mut tx, &env), Outcome::NoJoin);
    assert_eq!(tx.rc(), None);
}

#[test]
fn the_card_is_read_from_track_2_without_de2() {
    let env = env_with(&[("c", "count=1")]);
    let mut v = Velocity::default();
    let track = |t: String| purchase("000000001000").without_field(2).with_field(35, t);
    assert_eq!(
        run(&mut v, &env, track(format!("{VISA}=2512101")), "00").0,
        Outcome::Prepared
    );
    assert_eq!(sum(&env, "c:count", VISA, 86_400), 1);
    let (outcome, tx) = run(&mut v, &env, track(format!(";{VISA}D2512101?")), "00");
    assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some("65")));
    // Neither DE2 nor a readable track 2: not counted.
    let mut tx = track("garbage".to_owned());
    assert_eq!(v.prepare(&mut tx, &env), Outcome::NoJoin);
    // DE2 present: track 2 is never read.
    let mut tx = purchase("000000001000").with_field(35, format!("{VISA}=2512"));
    v.prepare(&mut tx, &env);
    assert!(!tx.fields_read().contains(&35));
}

#[test]
fn calendar_day_keys_the_counter_by_the_utc_date() {
    let mut env = env_with(&[("daily", "window=day count=2")]);
    let mut v = Velocity::default();
    env.now_unix_millis = NOON + 11 * HOUR + 59 * 60_000; // 23:59
    for _ in 0..2 {
        let (outcome, _) = run(&mut v, &env, purchase("000000001000"), "00");
        assert_eq!(outcome, Outcome::Prepared);
    }
    let mut over = purchase("000000001000");
    assert_eq!(v.prepare(&mut over, &env), Outcome::Aborted);
    let today = format!("{VISA}|2025-06-15");
    assert_eq!(sum(&env, "daily:count", &today, 86_400), 2);
    // Midnight, UTC: a new day starts from zero, a minute after the last.
    env.now_unix_millis = NOON + 12 * HOUR;
    let mut tx = purchase("000000001000");
    assert_eq!(v.prepare(&mut tx, &env), Outcome::Prepared);
    assert_eq!(
        tx.vars().get(AT_VAR).map(String::as_str),
        Some("1750032000000")
    );
    let tomorrow = format!("{VISA}|2025-06-16");
    assert_eq!(sum(&env, "daily:count", &tomorrow, 86_400), 1);
    assert_eq!(sum(&env, "daily:count", &today, 86_400), 2);
}

#[test]
fn a_calendar_reservation_is_given_back_into_the_period_of_prepare() {
    let mut env = env_with(&[("daily", "window=day count=2")]);
    env.now_unix_millis = NOON + 12 * HOUR - 1;
    let (today, tomorrow) = (format!("{VISA}|2025-06-15"), format!("{VISA}|2025-06-16"));
    let mut tx = purchase("000000001000");
    let mut v = Velocity::default();
    assert_eq!(v.prepare(&mut tx, &env), Outcome::Prepared);
    assert_eq!(sum(&env, "daily:count", &today, 86_400), 1);
    // The endpoint declines after midnight.
    env.now_unix_millis = NOON + 12 * HOUR + 500;
    tx.set_result_code("51");
    v.commit(&mut tx, &env);
    assert_eq!(sum(&env, "daily:count", &today, 86_400), 0);
    assert_eq!(sum(&env, "daily:count", &tomorrow, 86_400), 0);
    // Without the variable, the current period, with a warning.
    let mut tx = purchase("000000001000");
    assert_eq!(v.prepare(&mut tx, &env), Outcome::Prepared);
    assert_eq!(sum(&env, "daily:count", &tomorrow, 86_400), 1);
    let mut bare = purchase("000000001000").with_var(HELD_VAR, "1");
    bare.set_result_code("05");
    v.commit(&mut bare, &env);
    assert!(env.logged(Level::Warn, "VELOCITY_AT is not set"));
    assert_eq!(sum(&env, "daily:count", &tomorrow, 86_400), 0);
}

#[test]
fn calendar_month_keys_the_counter_by_the_utc_month() {
    let mut env = env_with(&[("monthly", "window=month amount=840:100.00")]);
    let mut v = Velocity::default();
    let (outcome, _) = run(&mut v, &env, purchase("000000006000"), "00");
    assert_eq!(outcome, Outcome::Prepared);
    let june = format!("{VISA}|2025-06");
    assert_eq!(sum(&env, "monthly:amount:840", &june, 2_678_400), 6_000);
    let (_, tx) = run(&mut v, &env, purchase("000000004001"), "00");
    assert_eq!(tx.rc(), Some("61"));
    // 2025-07-01T00:00:00Z: a new month.
    env.now_unix_millis = 1_751_328_000_000;
    let (outcome, _) = run(&mut v, &env, purchase("000000010000"), "00");
    assert_eq!(outcome, Outcome::Prepared);
    let july = format!("{VISA}|2025-07");
    assert_eq!(sum(&env, "monthly:amount:840", &july, 2_678_400), 10_000);
    // The last millisecond of July is still July.
    env.now_unix_millis = 1_754_006_399_999;
    let (_, tx) = run(&mut v, &env, purchase("000000000001"), "00");
    assert_eq!(tx.rc(), Some("61"));
}

#[test]
fn sliding_windows_forget_what_left_them() {
    let mut env = env_with(&[
        ("hourly", "window=2h count=1"),
        ("weekly", "window=7d count=2"),
    ]);
    let mut v = Velocity::default();
    let (outcome, _) = run(&mut v, &env, purchase("000000001000"), "00");
    assert_eq!(outcome, Outcome::Prepared);
    env.now_unix_millis = NOON + HOUR;
    let (_, tx) = run(&mut v, &env, purchase("000000001000"), "00");
    assert_eq!(tx.rc(), Some("65"), "the hour's second");
    env.now_unix_millis = NOON + 2 * HOUR;
    let (outcome, _) = run(&mut v, &env, purchase("000000001000"), "00");
    assert_eq!(outcome, Outcome::Prepared, "the first left the 2 hours");
    assert_eq!(sum(&env, "weekly:count", VISA, 7 * 86_400), 2);
    env.now_unix_millis = NOON + 5 * HOUR;
    let (outcome, tx) = run(&mut v, &env, purchase("000000001000"), "00");
    assert_eq!(
        (outcome, tx.rc()),
        (Outcome::Aborted, Some("65")),
        "the week's third"
    );
    assert_eq!(sum(&env, "hourly:count", VISA, 7_200), 0, "given back");
    env.now_unix_millis = NOON + 7 * 24 * HOUR;
    let (outcome, _) = run(&mut v, &env, purchase("000000001000"), "00");
    assert_eq!(outcome, Outcome::Prepared, "the first left the week");
}

#[test]
fn only_the_profiles_types_count() {
    let env = env_with(&[
        ("buy", "types=purchase count=1"),
        ("refunds", "types=refund count=1 rc=R1"),
        ("cash", "types=withdrawal,refund amount=840:50"),
    ]);
    let mut v = Velocity::default();
    let tx = |de3: &str, amount: &str| request(VISA, de3, amount);
    assert_eq!(
        run(&mut v, &env, tx("000000", "000000001000"), "00").0,
        Outcome::Prepared
    );
    assert_eq!(
        run(&mut v, &env, tx("200000", "000000001000"), "00").0,
        Outcome::Prepared
    );
    assert_eq!(
        sum(&env, "buy:count", VISA, 86_400),
        1,
        "a refund is not a purchase"
    );
    assert_eq!(sum(&env, "refunds:count", VISA, 86_400), 1);
    assert_eq!(
        sum(&env, "cash:amount:840", VISA, 86_400),
        1_000,
        "a refund adds its amount"
    );
    assert_eq!(
        run(&mut v, &env, tx("200000", "000000000100"), "00").1.rc(),
        Some("R1")
    );
    assert_eq!(
        run(&mut v, &env, tx("011000", "000000004001"), "00").1.rc(),
        Some("61")
    );
    assert_eq!(
        run(&mut v, &env, tx("011000", "000000004000"), "00").0,
        Outcome::Prepared
    );
    assert_eq!(
        sum(&env, "buy:count", VISA, 86_400),
        1,
        "a withdrawal is not a purchase"
    );

    // The default types: purchase and withdrawal.
    let env = env_with(&[("c", "count=5")]);
    let mut v = Velocity::default();
    let mut refund = tx("200000", "000000001000");
    assert_eq!(v.prepare(&mut refund, &env), Outcome::NoJoin);
    assert_eq!(
        run(&mut v, &env, tx("010000", "000000001000"), "00").0,
        Outcome::Prepared
    );
    assert_eq!(
        run(&mut v, &env, tx("001000", "000000001000"), "00").0,
        Outcome::Prepared
    );
    assert_eq!(sum(&env, "c:count", VISA, 86_400), 2);
    // A balance inquiry (31) or an unreadable DE3 is never counted.
    for de3 in ["310000", "3", ""] {
        let mut other = tx(de3, "000000000000");
        assert_eq!(v.prepare(&mut other, &env), Outcome::NoJoin, "{de3:?}");
    }
    let mut none = tx("000000", "000000000000").without_field(3);
    assert_eq!(v.prepare(&mut none, &env), Outcome::NoJoin);
}

#[test]
fn amounts_are_limited_per_currency() {
    let env = env_with(&[("fx", "amount=840:100.00,392:10000,414:1.5")]);
    let mut v = Velocity::default();
    let in_ = |currency: &str, amount: &str| purchase(amount).with_field(49, currency);
    assert_eq!(
        run(&mut v, &env, in_("840", "000000010000"), "00").0,
        Outcome::Prepared
    );
    assert_eq!(
        run(&mut v, &env, in_("392", "000000010000"), "00").0,
        Outcome::Prepared
    );
    assert_eq!(
        run(&mut v, &env, in_("414", "000000001500"), "00").0,
        Outcome::Prepared
    );
    for currency in ["840", "392", "414"] {
        let (outcome, tx) = run(&mut v, &env, in_(currency, "000000000001"), "00");
        assert_eq!(
            (outcome, tx.rc()),
            (Outcome::Aborted, Some("61")),
            "{currency}"
        );
    }
    assert_eq!(sum(&env, "fx:amount:392", VISA, 86_400), 10_000);
    // A currency not named and no `*`: not limited, and no counter kept.
    let mut tx = in_("978", "999999999999");
    assert_eq!(v.prepare(&mut tx, &env), Outcome::NoJoin);
    // No DE49: 840.
    let (outcome, tx) = run(
        &mut v,
        &env,
        purchase("000000000001").without_field(49),
        "00",
    );
    assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some("61")));
}

#[test]
fn a_named_currency_wins_over_any_currency() {
    let env = env_with(&[("fx", "amount=*:10.00,978:20.00")]);
    let mut v = Velocity::default();
    let in_ = |currency: &str, amount: &str| purchase(amount).with_field(49, currency);
    assert_eq!(
        run(&mut v, &env, in_("978", "000000002000"), "00").0,
        Outcome::Prepared
    );
    assert_eq!(
        run(&mut v, &env, in_("826", "000000001000"), "00").0,
        Outcome::Prepared
    );
    assert_eq!(
        run(&mut v, &env, in_("826", "000000000001"), "00").1.rc(),
        Some("61")
    );
    assert_eq!(
        run(&mut v, &env, in_("414", "000000010000"), "00").0,
        Outcome::Prepared,
        "10.000 KWD"
    );
}

#[test]
fn the_first_profile_exceeded_decides_and_every_reservation_is_given_back() {
    let env = env_with(&[
        ("wide", "scope=terminal count=100"),
        ("small", "amount=840:10 rc=X1"),
        ("count", "count=1 rc=X2"),
    ]);
    let mut v = Velocity::default();
    assert_eq!(
        run(&mut v, &env, purchase("000000001000"), "00").0,
        Outcome::Prepared
    );
    // Over both `small` and `count`: `small` comes first.
    let (outcome, tx) = run(&mut v, &env, purchase("000000000001"), "00");
    assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some("X1")));
    assert_eq!(sum(&env, "wide:count", "TERM0001", 86_400), 1);
    assert_eq!(sum(&env, "small:amount:840", VISA, 86_400), 1_000);
    assert_eq!(sum(&env, "count:count", VISA, 86_400), 1);
}

#[test]
fn within_a_profile_the_count_comes_before_the_amount() {
    let env = env_with(&[("both", "count=1 amount=840:10")]);
    let mut v = Velocity::default();
    run(&mut v, &env, purchase("000000001000"), "00");
    assert_eq!(
        run(&mut v, &env, purchase("000000000001"), "00").1.rc(),
        Some("65")
    );
    let env = env_with(&[("both", "count=1 amount=840:10 rc=99")]);
    let mut v = Velocity::default();
    run(&mut v, &env, purchase("000000001000"), "00");
    assert_eq!(
        run(&mut v, &env, purchase("000000000001"), "00").1.rc(),
        Some("99")
    );
}

#[test]
fn a_missing_or_bad_amount_is_refused_when_an_amount_limit_applies() {
    let env = MockEnv::new();
    let mut v = Velocity::default();
    let mut tx = purchase("").without_field(4);
    assert_eq!(
        (v.prepare(&mut tx, &env), tx.rc()),
        (Outcome::Aborted, Some("30"))
    );
    let mut tx = purchase("00000000100A");
    assert_eq!(
        (v.prepare(&mut tx, &env), tx.rc()),
        (Outcome::Aborted, Some("13"))
    );
    let mut tx = purchase("000000001000").with_field(49, "US");
    assert_eq!(
        (v.prepare(&mut tx, &env), tx.rc()),
        (Outcome::Aborted, Some("30"))
    );
    assert_eq!(sum(&env, "card:count", VISA, 86_400), 0, "nothing reserved");
    // A count-only profile needs no amount.
    let env = env_with(&[("c", "count=1")]);
    let mut v = Velocity::default();
    let mut tx = purchase("").without_field(4).with_field(49, "US");
    assert_eq!(v.prepare(&mut tx, &env), Outcome::Prepared);
}

#[test]
fn other_messages_are_left_alone() {
    let env = MockEnv::new();
    let mut v = Velocity::default();
    for mti in ["0800", "0400", "0420", "0220", "0110"] {
        let mut tx = MockTransaction::new(mti)
            .with_field(2, VISA)
            .with_field(3, "000000")
            .with_field(4, "000000001000");
        assert_eq!(v.prepare(&mut tx, &env), Outcome::NoJoin, "{mti}");
        assert_eq!(tx.calls(), 1, "{mti}: one host call");
    }
    // A repeat processed as an original counts.
    let mut repeat = MockTransaction::new("0201")
        .with_field(2, VISA)
        .with_field(3, "000000")
        .with_field(4, "000000001000");
    assert_eq!(v.prepare(&mut repeat, &env), Outcome::Prepared);
    assert_eq!(sum(&env, "card:count", VISA, 86_400), 1);
}

#[test]
fn an_approved_commit_costs_one_host_call() {
    let env = MockEnv::new();
    let mut v = Velocity::default();
    let mut tx = purchase("000000001000");
    v.prepare(&mut tx, &env);
    assert_eq!(
        tx.calls(),
        2,
        "prepare: one request_values, one set_var (held)"
    );
    tx.set_result_code("00");
    let before = tx.calls();
    v.commit(&mut tx, &env);
    assert_eq!(tx.calls() - before, 1);
    assert_eq!(env.config_calls(), 1, "settings read once");
}

#[test]
fn bad_settings_in_a_transaction_are_a_system_error() {
    let env = env_with(&[("c", "count=ten")]);
    let mut v = Velocity::default();
    let mut tx = purchase("000000001000");
    assert_eq!(
        (v.prepare(&mut tx, &env), tx.rc()),
        (Outcome::Aborted, Some("96"))
    );
    assert!(env.logged(
        Level::Error,
        "velocity: bad settings: `profile c`: item `count=ten`"
    ));
    let mut reversal = purchase("000000001000")
        .with_result_code("00")
        .reversed("1", "68");
    assert!(v.reverse(&mut reversal, &env).is_err());
}

fn problems(config: &[(&str, &str)]) -> Vec<SettingProblem> {
    let config: MapConfig = config.iter().copied().collect();
    Velocity::default().check_settings(&config)
}

fn assert_problem(items: &str, expected: &str) {
    let found = problems(&[("profile p", items)]);
    assert_eq!(found.len(), 1, "{items:?}: {found:?}");
    assert_eq!(found[0].key, "profile p");
    assert!(
        found[0].message.contains(expected),
        "{items:?}: {}",
        found[0].message
    );
}

#[test]
fn good_settings_have_no_problem() {
    assert_eq!(problems(&[]), vec![], "the default profile");
    let all = "scope=merchant window=31d count=1000000000 amount=840:2500.00,392:100,*:0.0001 \
               types=purchase,withdrawal,refund approvals=all rc=N7";
    for items in [
        "count=10",
        "amount=*:2500",
        all,
        "window=744h count=1",
        "window=1h count=1",
        "window=day scope=terminal count=1",
        "window=month amount=978:1.5",
        "  count=1   scope=card  ",
    ] {
        assert_eq!(problems(&[("profile p", items)]), vec![], "{items:?}");
    }
    let config: MapConfig = [("profile a.b-c_9", "count=1")].into_iter().collect();
    let mut v = Velocity::default();
    assert_eq!(v.check_settings(&config), vec![]);
    let p = &v.profiles.as_ref().unwrap().as_ref().unwrap()[0];
    assert_eq!(
        (p.name.as_str(), p.count_counter.as_str()),
        ("a.b-c_9", "a.b-c_9:count")
    );
}

#[test]
fn the_default_profile_is_the_default_contracts() {
    let profiles = parse_profiles(&MapConfig::new()).unwrap();
    assert_eq!(profiles.len(), 1);
    let p = &profiles[0];
    assert_eq!(p.name, "card");
    assert_eq!(
        (p.scope, p.window, p.count),
        (Scope::Card, Window::Sliding(86_400), Some(10))
    );
    assert_eq!(p.amount_limit(*b"840"), Some(250_000));
    assert_eq!(p.amount_limit(*b"392"), Some(2_500));
    assert_eq!(p.amount_limit(*b"414"), Some(2_500_000));
    assert_eq!((p.count_rc.as_str(), p.amount_rc.as_str()), ("65", "61"));
    assert_eq!((p.types, p.approvals), (TxTypes::DEFAULT, Approvals::Only));
}

#[test]
fn every_bad_item_is_a_problem_naming_it() {
    let cases = [
        ("count=1 colour=red", "item `colour=red`: unknown item"),
        ("count=1 scope", "item `scope`: expected `key=value`"),
        (
            "count=1 scope=pan",
            "item `scope=pan`: expected `card`, `terminal` or `merchant`",
        ),
        ("count=1 window=0h", "item `window=0h`"),
        ("count=1 window=745h", "item `window=745h`"),
        ("count=1 window=32d", "item `window=32d`"),
        ("count=1 window=1w", "item `window=1w`"),
        ("count=1 window=h", "item `window=h`"),
        ("count=1 window=-1d", "item `window=-1d`"),
        ("count=1 window=week", "item `window=week`"),
        (
            "count=1 window=99999999999999999999h",
            "item `window=99999999999999999999h`",
        ),
        ("count=0", "item `count=0`: expected a whole number"),
        ("count=-1", "item `count=-1`"),
        ("count=1.5", "item `count=1.5`"),
        ("count=1000000001", "item `count=1000000001`"),
        ("count=", "item `count=`"),
        ("amount=2500", "`2500`: expected `<CUR>:<decimal>`"),
        ("amount=USD:2500", "currency `USD` is not a 3-digit"),
        ("amount=84:2500", "currency `84`"),
        ("amount=840:25,00", "`00`: expected `<CUR>:<decimal>`"),
        (
            "amount=840:lots",
            "`840:lots`: `lots` is not a decimal amount",
        ),
        (
            "amount=840:2500.001",
            "`840:2500.001`: `2500.001` is not a decimal amount in major units (more than 2 decimals",
        ),
        ("amount=392:1.5", "`392:1.5`"),
        ("amount=*:1.00001", "`*:1.00001`: more than 4 decimals"),
        ("amount=840:0", "`840:0`: the limit must be more than zero"),
        ("amount=840:-5", "`840:-5`"),
        ("amount=840:1,840:2", "currency 840 is given twice"),
        ("amount=*:1,*:2", "`*` is given twice"),
        (
            "amount=840:99999999999999999999",
            "`840:99999999999999999999`",
        ),
        ("amount=", "item `amount=`"),
        (
            "count=1 types=deposit",
            "type `deposit`: expected a list of",
        ),
        ("count=1 types=", "type ``"),
        ("count=1 types=purchase,,refund", "type ``"),
        (
            "count=1 approvals=some",
            "item `approvals=some`: expected `only` or `all`",
        ),
        (
            "count=1 rc=6",
            "item `rc=6`: expected a response code of 2 letters or digits",
        ),
        ("count=1 rc=655", "item `rc=655`"),
        ("count=1 rc=6-", "item `rc=6-`"),
        ("count=1 rc=00", "item `rc=00`: 00 approves"),
        ("count=1 rc=10", "item `rc=10`: 10 approves"),
        ("count=1 count=2", "item `count=2`: `count` is given twice"),
        ("scope=card window=24h", "no limit: expected `count=<N>`"),
        ("", "no limit"),
    ];
    for (items, expected) in cases {
        assert_problem(items, expected);
    }
}

#[test]
fn every_problem_of_every_setting_is_reported_at_once() {
    let found = problems(&[
        ("profile ok", "count=1"),
        ("profile bad", "scope=pan window=1w count=0 types=deposit"),
        ("limit", "5000.00"),
        ("profile", "count=1"),
        ("profiles x", "count=1"),
        ("profile no:colons", "count=1"),
        ("profile  ", "count=1"),
    ]);
    let shown: Vec<(&str, &str)> = found
        .iter()
        .map(|p| (p.key.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(
        shown.iter().filter(|(k, _)| *k == "profile bad").count(),
        4,
        "{shown:#?}"
    );
    for key in ["limit", "profile", "profiles x"] {
        let problem = shown
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap_or_else(|| panic!("{key}: {shown:#?}"));
        assert!(problem.1.contains("unknown setting"), "{problem:?}");
    }
    for key in ["profile no:colons", "profile  "] {
        let problem = shown
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap_or_else(|| panic!("{key}: {shown:#?}"));
        assert!(problem.1.contains("profile name"), "{problem:?}");
    }
    assert!(!shown.iter().any(|(k, _)| *k == "profile ok"));
    assert_eq!(found.len(), 9, "{shown:#?}");
}

#[test]
fn an_abort_after_its_own_decline_gives_nothing_back_twice() {
    let env = MockEnv::new().with_config("profile c", "scope=card window=24h count=1");
    let mut v = Velocity::default();
    let card = "4111111111111111";
    let mut first = MockTransaction::new("0200")
        .with_field(2, card)
        .with_field(3, "000000")
        .with_field(4, "000000000100");
    assert_eq!(v.prepare(&mut first, &env), Outcome::Prepared);
    first.set_result_code("00");
    v.commit(&mut first, &env);
    let mut second = MockTransaction::new("0200")
        .with_field(2, card)
        .with_field(3, "000000")
        .with_field(4, "000000000100");
    assert_eq!(v.prepare(&mut second, &env), Outcome::Aborted);
    // The host aborts the participant whose prepare aborted too.
    v.abort(&mut second, &env);
    v.abort(&mut second, &env);
    assert_eq!(env.counter_sum("c:count", card, 86_400), Ok(1));
}

#[test]
fn a_1993_financial_request_counts_like_a_1987_one() {
    let env = MockEnv::new().with_config("profile c", "scope=card window=24h count=1");
    let mut v = Velocity::default();
    let card = "4111111111111111";
    let tx = |mti: &str| {
        MockTransaction::new(mti)
            .with_field(2, card)
            .with_field(3, "000000")
            .with_field(4, "000000000100")
    };
    let mut first = tx("1200");
    assert_eq!(v.prepare(&mut first, &env), Outcome::Prepared);
    first.set_result_code("00");
    v.commit(&mut first, &env);
    assert_eq!(
        v.prepare(&mut tx("0200"), &env),
        Outcome::Aborted,
        "the limit is shared"
    );
    assert_eq!(v.prepare(&mut tx("1100"), &env), Outcome::Aborted);
}
