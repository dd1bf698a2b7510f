//! The `local-auth` participant: authorizes 0100 and 0200 requests in the
//! switch itself, up to an amount limit.
//!
//! Settings:
//! - `limit`: the largest amount approved, a decimal string in major units of
//!   the request's currency (DE49, ISO 4217 exponent; exponent 2 without
//!   DE49). Default `"5000.00"`.
//!
//! Behaviour:
//! - an amount (DE4) over the limit: result code **61**, aborted;
//! - otherwise: result code **00**, a 6-character authorization code in DE38
//!   of the response, prepared (it joins, and clears DE38 again if the
//!   transaction is aborted later by someone else);
//! - DE4 missing: **30**; DE4 not numeric: **13** (normally `validate` has
//!   already refused both);
//! - a `limit` that is not an amount: an error in the log and **96**;
//! - any other MTI (0800): prepared without joining, nothing changed.
//!
//! The authorization code mixes the wall clock with a per-instance counter
//! seeded from the monotonic clock: six characters of `0-9A-Z`.

use switchyard_sdk::amount::{
    DEFAULT_EXPONENT, currency_exponent, format_major_units, parse_major_units, parse_minor_units,
};
use switchyard_sdk::{Clock, Env, Outcome, Participant, Transaction, field, mti, rc};

/// The `limit` used when none is configured.
pub const DEFAULT_LIMIT: &str = "5000.00";

/// Characters of an authorization code.
const AUTH_CODE_ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The local authorization participant. Keeps a counter for authorization
/// codes.
#[derive(Clone, Debug, Default)]
pub struct LocalAuth {
    counter: Option<u64>,
}

impl LocalAuth {
    /// A new authorization code: six characters of `0-9A-Z`.
    pub fn next_auth_code(&mut self, clock: &impl Clock) -> [u8; 6] {
        let counter = self
            .counter
            .get_or_insert_with(|| splitmix64(clock.monotonic_nanos()));
        *counter = counter.wrapping_add(1);
        let mut x = splitmix64(*counter ^ (clock.now_unix_millis() as u64).rotate_left(32));
        let mut code = [0u8; 6];
        for c in &mut code {
            *c = AUTH_CODE_ALPHABET[(x % 36) as usize];
            x /= 36;
        }
        code
    }
}

/// The limit in minor units of a currency with `exponent`.
fn limit_minor_units(env: &impl Env, exponent: u8) -> Result<u64, String> {
    let configured = env.get("limit");
    let limit = configured.as_deref().unwrap_or(DEFAULT_LIMIT);
    parse_major_units(limit, exponent).map_err(|e| {
        format!(
            "local-auth: setting `limit` = {limit:?} is not an amount (exponent {exponent}): {e}"
        )
    })
}

fn abort(tx: &mut impl Transaction, code: &str) -> Outcome {
    tx.set_result_code(code);
    Outcome::Aborted
}

impl Participant for LocalAuth {
    fn prepare(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Outcome {
        // MTI, currency and amount in one host call.
        let values = tx.request_values(&[0, field::CURRENCY, field::AMOUNT]);
        if !mti::is_financial(values.str(0).unwrap_or_default()) {
            return Outcome::NoJoin;
        }
        let exponent = values.get(1).map_or(DEFAULT_EXPONENT, currency_exponent);
        let limit = match limit_minor_units(env, exponent) {
            Ok(limit) => limit,
            Err(message) => {
                env.error(&message);
                return abort(tx, rc::SYSTEM_ERROR);
            }
        };
        let amount = match values.get(2).map(parse_minor_units) {
            Some(Ok(amount)) => amount,
            None => return abort(tx, rc::FORMAT_ERROR),
            Some(Err(_)) => return abort(tx, rc::INVALID_AMOUNT),
        };
        if amount > limit {
            env.debug(&format!(
                "local-auth: 61: amount {} over the limit {}",
                format_major_units(amount, exponent),
                format_major_units(limit, exponent)
            ));
            return abort(tx, rc::OVER_LIMIT);
        }
        let code = self.next_auth_code(env);
        if let Err(reason) = tx.set_response_field(field::AUTH_ID, &code) {
            env.error(&format!("local-auth: the host refused DE38: {reason}"));
            return abort(tx, rc::SYSTEM_ERROR);
        }
        tx.set_result_code(rc::APPROVED);
        Outcome::Prepared
    }

    fn abort(&mut self, tx: &mut impl Transaction, _env: &impl Env) {
        // Someone after us refused the transaction: the approval is void.
        tx.clear_response_field(field::AUTH_ID);
    }
}

/// SplitMix64's finalizer: a bijective mix of 64 bits.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

switchyard_sdk::export_participant!(LocalAuth);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::Level;
    use switchyard_sdk::mock::{MockEnv, MockTransaction};

    /// The published test card; passes Luhn.
    const TEST_PAN: &str = "4761739001010119";
    /// The test card with its check digit changed: fails Luhn.
    const BAD_LUHN_PAN: &str = "4761739001010118";

    fn purchase(amount: &str) -> MockTransaction {
        request("0200", amount)
    }

    fn request(mti: &str, amount: &str) -> MockTransaction {
        MockTransaction::new(mti)
            .with_field(2, TEST_PAN)
            .with_field(3, "000000")
            .with_field(4, amount)
            .with_field(11, "000123")
            .with_field(41, "TERM0001")
            .with_field(49, "840")
    }

    fn run_with(env: &MockEnv, mut tx: MockTransaction) -> (Outcome, MockTransaction) {
        let outcome = LocalAuth::default().prepare(&mut tx, env);
        for (_, message) in env.logs() {
            assert!(!message.contains(TEST_PAN) && !message.contains(BAD_LUHN_PAN));
        }
        (outcome, tx)
    }

    fn run(tx: MockTransaction) -> (Outcome, MockTransaction) {
        run_with(&MockEnv::new(), tx)
    }

    fn assert_auth_code(tx: &MockTransaction) {
        let code = &tx.response()[&38];
        assert_eq!(code.len(), 6);
        assert!(
            code.iter()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }

    #[test]
    fn approves_up_to_the_default_limit_with_an_auth_code() {
        for amount in ["000000001000", "000000500000"] {
            let (outcome, tx) = run(purchase(amount));
            assert_eq!(outcome, Outcome::Prepared, "DE4 {amount}");
            assert_eq!(tx.rc(), Some(rc::APPROVED));
            assert_auth_code(&tx);
        }
    }

    #[test]
    fn approves_an_authorization_too() {
        let (outcome, tx) = run(request("0100", "000000001000"));
        assert_eq!((outcome, tx.rc()), (Outcome::Prepared, Some(rc::APPROVED)));
    }

    #[test]
    fn over_the_limit_is_61() {
        let (outcome, tx) = run(purchase("000000500001"));
        assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some(rc::OVER_LIMIT)));
        assert!(tx.response().is_empty(), "no auth code on a decline");

        let env = MockEnv::new().with_config("limit", "10.00");
        let (outcome, tx) = run_with(&env, purchase("000000001001"));
        assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some(rc::OVER_LIMIT)));
        assert!(env.logged(Level::Debug, "10.01 over the limit 10.00"));
        let (outcome, _) = run_with(&env, purchase("000000001000"));
        assert_eq!(outcome, Outcome::Prepared);
    }

    #[test]
    fn the_limit_is_in_the_currency_of_de49() {
        let env = MockEnv::new().with_config("limit", "5000");
        // JPY: exponent 0, DE4 in yen.
        let jpy = |amount| purchase(amount).with_field(49, "392");
        assert_eq!(run_with(&env, jpy("000000005000")).0, Outcome::Prepared);
        let (outcome, tx) = run_with(&env, jpy("000000005001"));
        assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some(rc::OVER_LIMIT)));
        // KWD: exponent 3. No DE49: exponent 2.
        let kwd = purchase("000005000001").with_field(49, "414");
        assert_eq!(run_with(&env, kwd).1.rc(), Some(rc::OVER_LIMIT));
        let none = purchase("000000500001").without_field(49);
        assert_eq!(run_with(&env, none).1.rc(), Some(rc::OVER_LIMIT));
        let none = purchase("000000500000").without_field(49);
        assert_eq!(run_with(&env, none).1.rc(), Some(rc::APPROVED));
    }

    #[test]
    fn a_bad_limit_is_a_system_error_with_a_log() {
        for limit in ["lots", "5,000.00", "-1", "", "10.001"] {
            let env = MockEnv::new().with_config("limit", limit);
            let (outcome, tx) = run_with(&env, purchase("000000001000"));
            assert_eq!(
                (outcome, tx.rc()),
                (Outcome::Aborted, Some(rc::SYSTEM_ERROR)),
                "{limit:?}"
            );
            assert!(env.logged(Level::Error, "setting `limit`"), "{limit:?}");
        }
    }

    #[test]
    fn a_missing_or_bad_amount_is_refused() {
        let (outcome, tx) = run(purchase("").without_field(4));
        assert_eq!(
            (outcome, tx.rc()),
            (Outcome::Aborted, Some(rc::FORMAT_ERROR))
        );
        let (outcome, tx) = run(purchase("00000000100A"));
        assert_eq!(
            (outcome, tx.rc()),
            (Outcome::Aborted, Some(rc::INVALID_AMOUNT))
        );
    }

    #[test]
    fn non_financial_messages_are_left_alone() {
        let (outcome, tx) = run(MockTransaction::new("0800").with_field(70, "301"));
        assert_eq!(outcome, Outcome::NoJoin);
        assert_eq!(tx.rc(), None);
        assert_eq!(tx.calls(), 1, "only the MTI");
    }

    #[test]
    fn abort_clears_the_auth_code() {
        let env = MockEnv::new();
        let mut plugin = LocalAuth::default();
        let mut tx = purchase("000000001000");
        assert_eq!(plugin.prepare(&mut tx, &env), Outcome::Prepared);
        assert!(tx.response().contains_key(&38));
        plugin.abort(&mut tx, &env);
        assert!(!tx.response().contains_key(&38));
    }

    #[test]
    fn auth_codes_differ_from_one_transaction_to_the_next() {
        let env = MockEnv::new();
        let mut plugin = LocalAuth::default();
        let codes: std::collections::HashSet<[u8; 6]> =
            (0..1000).map(|_| plugin.next_auth_code(&env)).collect();
        assert_eq!(codes.len(), 1000);
    }

    #[test]
    fn fetches_only_the_mti_currency_and_amount() {
        let (_, tx) = run(purchase("000000001000"));
        assert_eq!(tx.fields_read(), vec![49, 4]);
    }

    #[test]
    fn card_checks_are_left_to_validate() {
        // local-auth never reads DE2: a Luhn-failing PAN is validate's 14.
        let (outcome, tx) = run(purchase("000000001000").with_field(2, BAD_LUHN_PAN));
        assert_eq!((outcome, tx.rc()), (Outcome::Prepared, Some(rc::APPROVED)));
        assert!(!tx.fields_read().contains(&2));
    }
}
