//! The `test-capabilities` participant: exercises the capabilities of
//! contract 1.1.0 for the host's tests. For a financial request it
//!
//! - counts the card's transactions of the last hour (`counters`, counter
//!   `txns`, keyed by the card number — the host keeps only a keyed hash);
//! - adds one loyalty point per whole currency unit of DE4 to the card's
//!   balance in its key/value store (`kv`, compare-and-set so concurrent
//!   transactions do not lose points);
//!
//! and answers both in DE44 as `n=<count>;p=<points>`. A capability failing
//! aborts with 96 after an error in the log. It needs `grants = ["counters",
//! "kv", …]`; without them the host refuses to load it.

use switchyard_sdk::amount::parse_minor_units;
use switchyard_sdk::{Env, Outcome, Participant, Transaction, field, mti, rc};

/// The participant. Stateless: all its state is the host's.
#[derive(Clone, Copy, Debug, Default)]
pub struct TestCapabilities;

fn fail(tx: &mut impl Transaction, env: &impl Env, what: &str, e: String) -> Outcome {
    env.error(&format!("test-capabilities: {what}: {e}"));
    tx.set_result_code(rc::SYSTEM_ERROR);
    Outcome::Aborted
}

impl Participant for TestCapabilities {
    fn prepare(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Outcome {
        let values = tx.request_values(&[0, field::PAN, field::AMOUNT]);
        let (Some(pan), Some(amount)) = (values.str(1), values.get(2)) else {
            return Outcome::NoJoin;
        };
        if !mti::is_financial(values.str(0).unwrap_or_default()) {
            return Outcome::NoJoin;
        }
        let pan = pan.to_owned();
        let earned = parse_minor_units(amount).unwrap_or(0) / 100;
        let count = match env.counter_add("txns", &pan, 1, 3600) {
            Ok(n) => n,
            Err(e) => return fail(tx, env, "counters.add", e),
        };
        let points = loop {
            let current = match env.kv_get(&pan) {
                Ok(v) => v,
                Err(e) => return fail(tx, env, "kv.get", e),
            };
            let balance: u64 = current
                .as_deref()
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let next = (balance + earned).to_string();
            match env.kv_compare_and_set(&pan, current.as_deref(), next.as_bytes()) {
                Ok(true) => break balance + earned,
                Ok(false) => continue,
                Err(e) => return fail(tx, env, "kv.compare-and-set", e),
            }
        };
        let answer = format!("n={count};p={points}");
        if let Err(e) = tx.set_response_field(44, answer.as_bytes()) {
            return fail(tx, env, "DE44", e);
        }
        Outcome::NoJoin
    }
}

switchyard_sdk::export_participant!(TestCapabilities);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::mock::{MockEnv, MockTransaction};

    #[test]
    fn counts_and_accumulates_points() {
        let env = MockEnv::new();
        let mut p = TestCapabilities;
        for expected in ["n=1;p=10", "n=2;p=20"] {
            let mut tx = MockTransaction::new("0200")
                .with_field(2, "4761739001010119")
                .with_field(4, "000000001000");
            assert_eq!(p.prepare(&mut tx, &env), Outcome::NoJoin);
            assert_eq!(
                tx.response().get(&44).map(Vec::as_slice),
                Some(expected.as_bytes())
            );
        }
    }
}
