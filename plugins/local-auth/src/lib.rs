//! The `local-auth` participant: authorizes authorization and financial
//! requests in the switch itself, up to an amount limit.
//!
//! Settings:
//! - `limit`: the largest amount approved, a decimal string in major units of
//!   the request's currency (DE49, ISO 4217 exponent; exponent 2 without
//!   DE49), e.g. `"5000.00"` or `"5000"`. Default `"5000.00"`. It must be a
//!   decimal number with at most 2 significant decimals (more cannot be
//!   applied to a currency of exponent 2); [`LocalAuth::check_settings`]
//!   reports anything else.
//!
//! Behaviour, for 0100, 0200, 1100 and 1200 and their repeats (0101, 0201,
//! 1101, 1201: a repeat reaches the pipeline only when the switch has no
//! record of its original, and is then authorized as the original):
//! - an amount (DE4) over the limit: result code **61**, aborted;
//! - otherwise: result code **00**, a 6-character authorization code in DE38
//!   of the response, prepared (it joins, and clears DE38 again if the
//!   transaction is aborted later by someone else);
//! - DE4 missing: **30**; DE4 not numeric: **13** (normally `validate` has
//!   already refused both);
//! - a `limit` that is not an amount for the request's currency: an error
//!   in the log and **96**;
//! - any other MTI (0800, 1804): prepared without joining, nothing changed.
//!
//! The limit is parsed once per currency exponent and kept for the
//! instance's lifetime. The authorization code mixes the wall clock with a
//! per-instance counter seeded from the monotonic clock: six characters of
//! `0-9A-Z`.

use switchyard_sdk::amount::{
    DEFAULT_EXPONENT, currency_exponent, format_major_units, parse_major_units, parse_minor_units,
};
use switchyard_sdk::{
    Clock, Config, Env, Outcome, Participant, SettingProblem, Transaction, field, rc,
};

/// The `limit` used when none is configured.
pub const DEFAULT_LIMIT: &str = "5000.00";

/// Largest ISO 4217 exponent (CLF, UYW): the limit is parsed at most once
/// for each of 0..=`MAX_EXPONENT`.
const MAX_EXPONENT: u8 = 4;

/// The local authorization participant. Keeps a counter for authorization
/// codes and the parsed limit per currency exponent.
#[derive(Clone, Debug, Default)]
pub struct LocalAuth {
    codes: switchyard_sdk::AuthCodes,
    /// The limit in minor units, by currency exponent, parsed on first use.
    limits: [Option<Result<u64, String>>; MAX_EXPONENT as usize + 1],
}

/// Whether `mti` is what local-auth authorizes: an authorization or
/// financial request of ISO 8583:1987 or :1993, or its repeat (0100, 0101,
/// 0200, 0201, 1100, 1101, 1200, 1201).
pub fn authorizes(mti: &str) -> bool {
    matches!(
        mti.as_bytes(),
        [b'0' | b'1', b'1' | b'2', b'0', b'0' | b'1']
    )
}

impl LocalAuth {
    /// A new authorization code: six characters of `0-9A-Z`.
    pub fn next_auth_code(&mut self, clock: &impl Clock) -> [u8; 6] {
        self.codes.next(clock)
    }
}

impl LocalAuth {
    /// The limit in minor units of a currency with `exponent`, read from
    /// the settings the first time that exponent is seen.
    fn limit_minor_units(&mut self, config: &impl Config, exponent: u8) -> Result<u64, String> {
        let exponent = exponent.min(MAX_EXPONENT);
        self.limits[usize::from(exponent)]
            .get_or_insert_with(|| {
                let configured = config.get("limit");
                let limit = configured.as_deref().unwrap_or(DEFAULT_LIMIT);
                parse_major_units(limit, exponent).map_err(|e| {
                    format!(
                        "local-auth: setting `limit` = {limit:?} is not an amount \
                         (exponent {exponent}): {e}"
                    )
                })
            })
            .clone()
    }
}

fn abort(tx: &mut impl Transaction, code: &str) -> Outcome {
    tx.set_result_code(code);
    Outcome::Aborted
}

impl Participant for LocalAuth {
    /// It joins only to clear DE38 in `abort`: nothing to commit.
    const COMMITS: bool = false;

    fn prepare(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Outcome {
        // MTI, currency and amount in one host call.
        let values = tx.request_values(&[0, field::CURRENCY, field::AMOUNT]);
        if !authorizes(values.str(0).unwrap_or_default()) {
            return Outcome::NoJoin;
        }
        let exponent = values.get(1).map_or(DEFAULT_EXPONENT, currency_exponent);
        let limit = match self.limit_minor_units(env, exponent) {
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

    /// `limit` must be a decimal amount with at most 2 significant
    /// decimals; any other key is unknown.
    fn check_settings(&mut self, config: &impl Config) -> Vec<SettingProblem> {
        config
            .entries()
            .into_iter()
            .filter_map(|(key, value)| match key.as_str() {
                "limit" => parse_major_units(&value, DEFAULT_EXPONENT).err().map(|e| {
                    SettingProblem::new(
                        key,
                        format!(
                            "{value:?} is not an amount ({e}): expected a decimal number in \
                             major units with at most 2 decimals, e.g. \"5000.00\""
                        ),
                    )
                }),
                _ => Some(SettingProblem::new(
                    key,
                    "unknown setting: local-auth has only `limit`",
                )),
            })
            .collect()
    }

    fn abort(&mut self, tx: &mut impl Transaction, _env: &impl Env) {
        // Someone after us refused the transaction: the approval is void.
        tx.clear_response_field(field::AUTH_ID);
    }
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

    #[test]
    fn authorizes_1993_requests_and_repeats_of_unseen_originals() {
        for mti in ["0101", "0201", "1100", "1101", "1200", "1201"] {
            let (outcome, tx) = run(request(mti, "000000001000"));
            assert_eq!(
                (outcome, tx.rc()),
                (Outcome::Prepared, Some(rc::APPROVED)),
                "{mti}"
            );
            assert_auth_code(&tx);
            let (outcome, tx) = run(request(mti, "000000500001"));
            assert_eq!(
                (outcome, tx.rc()),
                (Outcome::Aborted, Some(rc::OVER_LIMIT)),
                "{mti}"
            );
            assert!(tx.response().is_empty(), "{mti}: no auth code on a decline");
        }
        for mti in [
            "1804", "0800", "1420", "0420", "0220", "0110", "1202", "2200", "",
        ] {
            assert!(!authorizes(mti), "{mti:?}");
            let (outcome, tx) = run(request(mti, "000000001000"));
            assert_eq!((outcome, tx.rc()), (Outcome::NoJoin, None), "{mti:?}");
        }
    }

    #[test]
    fn the_limit_is_parsed_once_per_currency_exponent() {
        let env = MockEnv::new().with_config("limit", "10.00");
        let mut plugin = LocalAuth::default();
        for _ in 0..3 {
            let mut tx = purchase("000000001000");
            assert_eq!(plugin.prepare(&mut tx, &env), Outcome::Prepared);
        }
        assert_eq!(env.config_calls(), 1);
        let mut yen = purchase("000000000010").with_field(49, "392");
        assert_eq!(plugin.prepare(&mut yen, &env), Outcome::Prepared);
        assert_eq!(env.config_calls(), 2, "a new exponent reads it again");
    }

    #[test]
    fn check_settings_names_a_bad_limit_and_unknown_keys() {
        let mut plugin = LocalAuth::default();
        assert!(plugin.check_settings(&MockEnv::new()).is_empty());
        for good in ["5000.00", "5000", "0.5", " 10.00 ", "10.000"] {
            let env = MockEnv::new().with_config("limit", good);
            assert!(plugin.check_settings(&env).is_empty(), "{good:?}");
        }
        for bad in ["lots", "5,000.00", "-1", "", "10.001", "1e3"] {
            let env = MockEnv::new().with_config("limit", bad);
            let problems = plugin.check_settings(&env);
            assert_eq!(problems.len(), 1, "{bad:?}");
            assert_eq!(problems[0].key, "limit");
            assert!(problems[0].message.contains("e.g. \"5000.00\""), "{bad:?}");
        }
        let env = MockEnv::new()
            .with_config("limit", "lots")
            .with_config("limt", "10.00");
        let keys: Vec<String> = plugin
            .check_settings(&env)
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, ["limit", "limt"]);
    }
}
