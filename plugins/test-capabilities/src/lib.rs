//! The `test-capabilities` participant: exercises the capabilities of
//! contract 1.1.0 and the reversals of 1.2.0 for the host's tests. For a
//! financial request (0100, 0200, or a repeat the switch processes as an
//! original) it
//!
//! - counts the card's transactions of the last hour (`counters`, counter
//!   `txns`, keyed by the card number — the host keeps only a keyed hash);
//! - adds one loyalty point per whole currency unit of DE4 to the card's
//!   balance in its key/value store (`kv`, compare-and-set so concurrent
//!   transactions do not lose points);
//!
//! answers both in DE44 as `n=<count>;p=<points>`, and joins (prepared): the
//! points are the effect it undoes.
//!
//! - `abort`: the transaction did not go through; the points `prepare`
//!   added (the variable [`EARNED`]) are given back.
//! - `reverse` (contract 1.2.0): a committed transaction was reversed; the
//!   points it earned (from the original's DE4) are given back, **once per
//!   `TRANLOG_ID`**: a compare-and-set of the marker `rev:<TRANLOG_ID>` from
//!   absent claims the reversal, so a reversal delivered again (at least
//!   once, after a crash) finds the marker and does nothing. If giving the
//!   points back fails, the marker is removed again and the error returned,
//!   so the host's next delivery retries. (A crash between the claim and the
//!   give-back would lose the give-back: two `kv` keys cannot change
//!   atomically.)
//!
//! Balances never go below zero. A capability failing in `prepare` aborts
//! with 96 after an error in the log. It needs `grants = ["counters", "kv",
//! …]`; without them the host refuses to load it.

use switchyard_sdk::amount::parse_minor_units;
use switchyard_sdk::{Env, Outcome, Participant, TRANLOG_ID, Transaction, field, mti, rc};

/// The variable `prepare` leaves for `abort`: the points the transaction
/// earned.
pub const EARNED: &str = "TEST_CAPABILITIES_EARNED";

/// The participant. Stateless: all its state is the host's.
#[derive(Clone, Copy, Debug, Default)]
pub struct TestCapabilities;

fn fail(tx: &mut impl Transaction, env: &impl Env, what: &str, e: String) -> Outcome {
    env.error(&format!("test-capabilities: {what}: {e}"));
    tx.set_result_code(rc::SYSTEM_ERROR);
    Outcome::Aborted
}

/// The card and the points a financial request earns, or `None` for any
/// other request.
fn card_and_points(tx: &impl Transaction) -> Option<(String, u64)> {
    let values = tx.request_values(&[0, field::PAN, field::AMOUNT]);
    let (Some(pan), Some(amount)) = (values.str(1), values.get(2)) else {
        return None;
    };
    if !mti::is_financial_or_repeat(values.str(0).unwrap_or_default()) {
        return None;
    }
    Some((pan.to_owned(), parse_minor_units(amount).unwrap_or(0) / 100))
}

/// Adds `delta` points to the card's balance (never below zero) and returns
/// the new balance. Compare-and-set: concurrent transactions lose nothing.
fn add_points(env: &impl Env, pan: &str, delta: i64) -> Result<u64, String> {
    loop {
        let current = env.kv_get(pan).map_err(|e| format!("kv.get: {e}"))?;
        let balance: u64 = current
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let next = balance.saturating_add_signed(delta);
        match env.kv_compare_and_set(pan, current.as_deref(), next.to_string().as_bytes()) {
            Ok(true) => return Ok(next),
            Ok(false) => continue,
            Err(e) => return Err(format!("kv.compare-and-set: {e}")),
        }
    }
}

/// `points` as a negative delta.
fn give_back(points: u64) -> i64 {
    -i64::try_from(points).unwrap_or(i64::MAX)
}

impl Participant for TestCapabilities {
    fn prepare(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Outcome {
        let Some((pan, earned)) = card_and_points(tx) else {
            return Outcome::NoJoin;
        };
        let count = match env.counter_add("txns", &pan, 1, 3600) {
            Ok(n) => n,
            Err(e) => return fail(tx, env, "counters.add", e),
        };
        let points = match add_points(env, &pan, i64::try_from(earned).unwrap_or(i64::MAX)) {
            Ok(p) => p,
            Err(e) => return fail(tx, env, "points", e),
        };
        // From here on, `abort` gives the points back.
        tx.set_var(EARNED, &earned.to_string());
        let answer = format!("n={count};p={points}");
        if let Err(e) = tx.set_response_field(44, answer.as_bytes()) {
            return fail(tx, env, "DE44", e);
        }
        Outcome::Prepared
    }

    fn abort(&mut self, tx: &mut impl Transaction, env: &impl Env) {
        let earned = tx.var(EARNED).and_then(|v| v.parse::<u64>().ok());
        let (Some(earned), Some((pan, _))) = (earned, card_and_points(tx)) else {
            return; // aborted before it added anything
        };
        if let Err(e) = add_points(env, &pan, give_back(earned)) {
            env.error(&format!(
                "test-capabilities: abort: could not give back {earned} points: {e}"
            ));
        }
    }

    fn reverse(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Result<(), String> {
        let Some((pan, earned)) = card_and_points(tx) else {
            return Ok(()); // it earned nothing
        };
        let id = tx
            .var(TRANLOG_ID)
            .filter(|id| !id.is_empty())
            .ok_or("test-capabilities: a reversal without TRANLOG_ID")?
            .into_owned();
        let marker = format!("rev:{id}");
        let claimed = env
            .kv_compare_and_set(&marker, None, b"1")
            .map_err(|e| format!("test-capabilities: marking {marker}: {e}"))?;
        if !claimed {
            env.debug(&format!(
                "test-capabilities: transaction {id} was already reversed"
            ));
            return Ok(());
        }
        if let Err(e) = add_points(env, &pan, give_back(earned)) {
            // Unclaim, so that the next delivery retries.
            if let Err(d) = env.kv_delete(&marker) {
                env.error(&format!(
                    "test-capabilities: could not remove {marker}: {d}"
                ));
            }
            return Err(format!(
                "test-capabilities: giving back {earned} points of {id}: {e}"
            ));
        }
        Ok(())
    }
}

switchyard_sdk::export_participant!(TestCapabilities);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::Kv;
    use switchyard_sdk::mock::{MockEnv, MockTransaction};

    const TEST_PAN: &str = "4761739001010119";

    fn purchase(amount: &str) -> MockTransaction {
        MockTransaction::new("0200")
            .with_field(2, TEST_PAN)
            .with_field(4, amount)
    }

    fn balance(env: &MockEnv) -> u64 {
        env.kv_get(TEST_PAN)
            .unwrap()
            .map_or(0, |b| String::from_utf8(b).unwrap().parse().unwrap())
    }

    fn de44(tx: &MockTransaction) -> &str {
        std::str::from_utf8(&tx.response()[&44]).unwrap()
    }

    #[test]
    fn counts_and_accumulates_points_and_joins() {
        let env = MockEnv::new();
        let mut p = TestCapabilities;
        for expected in ["n=1;p=10", "n=2;p=20"] {
            let mut tx = purchase("000000001000");
            assert_eq!(p.prepare(&mut tx, &env), Outcome::Prepared);
            assert_eq!(de44(&tx), expected);
        }
        let mut repeat = MockTransaction::new("0201")
            .with_field(2, TEST_PAN)
            .with_field(4, "000000000500");
        assert_eq!(p.prepare(&mut repeat, &env), Outcome::Prepared);
        assert_eq!(de44(&repeat), "n=3;p=25");
    }

    #[test]
    fn other_requests_do_not_join() {
        let env = MockEnv::new();
        let mut echo = MockTransaction::new("0800").with_field(70, "301");
        assert_eq!(TestCapabilities.prepare(&mut echo, &env), Outcome::NoJoin);
        let mut no_card = MockTransaction::new("0200").with_field(4, "000000001000");
        assert_eq!(
            TestCapabilities.prepare(&mut no_card, &env),
            Outcome::NoJoin
        );
        assert!(no_card.response().is_empty());
    }

    #[test]
    fn abort_gives_the_points_back() {
        let env = MockEnv::new();
        let mut p = TestCapabilities;
        let mut kept = purchase("000000001000");
        p.prepare(&mut kept, &env);
        let mut aborted = purchase("000000000700");
        p.prepare(&mut aborted, &env);
        assert_eq!(balance(&env), 17);
        p.abort(&mut aborted, &env);
        assert_eq!(balance(&env), 10);
        // An abort of a transaction that added nothing gives nothing back.
        p.abort(&mut purchase("000000000700"), &env);
        assert_eq!(balance(&env), 10);
    }

    #[test]
    fn a_reversal_gives_the_points_back_once_per_tranlog_id() {
        let env = MockEnv::new();
        let mut p = TestCapabilities;
        for _ in 0..3 {
            let mut tx = purchase("000000001000");
            p.prepare(&mut tx, &env);
            p.commit(&mut tx, &env);
        }
        assert_eq!(balance(&env), 30);
        // The host delivers the reversal of row 42 three times (a crash
        // between giving back and recording it, say): one takes effect.
        for _ in 0..3 {
            let mut tx = purchase("000000001000")
                .with_response_field(44, "n=1;p=10")
                .with_result_code("00")
                .reversed("42", "68");
            assert_eq!(p.reverse(&mut tx, &env), Ok(()));
            assert_eq!(balance(&env), 20);
        }
        assert_eq!(env.kv_get("rev:42").unwrap().as_deref(), Some(&b"1"[..]));
        // Another transaction's reversal is its own.
        let mut tx = purchase("000000001000").reversed("43", "68");
        p.reverse(&mut tx, &env).unwrap();
        assert_eq!(balance(&env), 10);
    }

    #[test]
    fn a_reversal_never_takes_the_balance_below_zero() {
        let env = MockEnv::new();
        let mut tx = purchase("000000009900").reversed("7", "68");
        TestCapabilities.reverse(&mut tx, &env).unwrap();
        assert_eq!(balance(&env), 0);
    }

    #[test]
    fn a_reversal_without_tranlog_id_fails_and_one_of_nothing_is_a_no_op() {
        let env = MockEnv::new();
        let err = TestCapabilities
            .reverse(&mut purchase("000000001000"), &env)
            .unwrap_err();
        assert!(err.contains("TRANLOG_ID"), "{err}");
        // A switch without a tranlog has an empty TRANLOG_ID: no marker `rev:`.
        let mut untracked = purchase("000000001000").reversed("", "68");
        assert!(TestCapabilities.reverse(&mut untracked, &env).is_err());
        assert_eq!(env.kv_get("rev:").unwrap(), None);
        let mut echo = MockTransaction::new("0800").reversed("9", "68");
        assert_eq!(TestCapabilities.reverse(&mut echo, &env), Ok(()));
        assert_eq!(env.kv_get("rev:9").unwrap(), None);
    }

    /// A host whose kv refuses writes of balances (not of markers).
    struct FailingBalances(MockEnv);

    impl switchyard_sdk::Config for FailingBalances {
        fn get(&self, key: &str) -> Option<std::borrow::Cow<'_, str>> {
            self.0.get(key)
        }
        fn entries(&self) -> Vec<(String, String)> {
            self.0.entries()
        }
    }
    impl switchyard_sdk::Log for FailingBalances {
        fn log(&self, level: switchyard_sdk::Level, message: &str) {
            self.0.log(level, message)
        }
    }
    impl switchyard_sdk::Clock for FailingBalances {
        fn now_unix_millis(&self) -> i64 {
            self.0.now_unix_millis()
        }
        fn monotonic_nanos(&self) -> u64 {
            self.0.monotonic_nanos()
        }
    }
    impl switchyard_sdk::Counters for FailingBalances {}
    impl Kv for FailingBalances {
        fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
            self.0.kv_get(key)
        }
        fn kv_delete(&self, key: &str) -> Result<bool, String> {
            self.0.kv_delete(key)
        }
        fn kv_compare_and_set(
            &self,
            key: &str,
            expected: Option<&[u8]>,
            value: &[u8],
        ) -> Result<bool, String> {
            if key.starts_with("rev:") {
                self.0.kv_compare_and_set(key, expected, value)
            } else {
                Err("disk full".into())
            }
        }
    }

    #[test]
    fn a_reversal_that_cannot_give_back_is_retried_by_the_next_delivery() {
        let failing = FailingBalances(MockEnv::new());
        let mut tx = purchase("000000001000").reversed("42", "68");
        let err = TestCapabilities.reverse(&mut tx, &failing).unwrap_err();
        assert!(err.contains("disk full"), "{err}");
        // The marker was removed: the next delivery tries again.
        let env = failing.0;
        assert_eq!(env.kv_get("rev:42").unwrap(), None);
        env.kv_set(TEST_PAN, b"25").unwrap();
        TestCapabilities.reverse(&mut tx, &env).unwrap();
        assert_eq!(balance(&env), 15);
    }
}
