//! The `validate` participant: the request checks of the default wire
//! contract, in its order, each with its response code.
//!
//! 1. **30** format error: an authorization or financial request (or its
//!    repeat: 0100, 0101, 0200, 0201, 1100, 1101, 1200, 1201) without DE3,
//!    DE4, DE11 or DE41;
//! 2. **14** invalid card number: DE2 present and not 12–19 digits or failing
//!    the Luhn check;
//! 3. **54** expired card: DE14 (YYMM) before the current month, UTC, by the
//!    host's clock; a DE14 that is not a valid YYMM counts as expired;
//! 4. **13** invalid amount: DE4 present and zero or not numeric (zero is
//!    allowed on a balance inquiry, DE3 `31xxxx`, which moves no money);
//! 5. **12** unsupported: any other MTI, a network management request that
//!    is not an echo test, or a 1993 request whose function code (DE24)
//!    belongs to another message class. Network management needs no
//!    DE3/4/11/41.
//!
//! ## ISO 8583:1987 and ISO 8583:1993 MTIs
//!
//! The MTI's version digit decides which rules apply, whatever the
//! listener's spec: `0xxx` is ISO 8583:1987, `1xxx` ISO 8583:1993; any
//! other version (2003, national, private) is unsupported (12).
//!
//! | | 1987 | 1993 |
//! |---|---|---|
//! | authorization / its repeat | 0100 / 0101 | 1100 / 1101 |
//! | financial / its repeat | 0200 / 0201 | 1200 / 1201 |
//! | echo test | 0800 with DE70 = 301 | 1800 or 1804 with DE24 = 831 |
//!
//! A 1993 authorization or financial request may carry DE24 (function
//! code); when it does, its first digit must be the message class (1xx for
//! 1100/1101, 2xx for 1200/1201), else 12. In 1993, DE70 is a country code:
//! it plays no part in a 1993 echo test.
//!
//! A repeat reaches the pipeline only when the switch has no record of its
//! original (one it has is answered from the tranlog by the host); it is
//! then processed as the original, so it gets the original's checks.
//! Reversals and advices (x4xx, x22x) never reach the pipeline: the host
//! matches them to their originals and queues them for the endpoint.
//!
//! On the first failing check it sets the result code and aborts; otherwise
//! it is prepared and does not join (it has nothing to commit). It has no
//! settings: [`Validate::check_settings`] reports any configured key. It
//! fetches the MTI and the values it checks (DE2, DE3, DE4, DE11, DE14,
//! DE24, DE41, DE70) in one host call.

use switchyard_sdk::amount::parse_minor_units;
use switchyard_sdk::card::is_valid_pan;
use switchyard_sdk::expiry::is_expired;
use switchyard_sdk::{
    Clock, Config, Env, Outcome, Participant, SettingProblem, Transaction, field, mti, rc,
};

/// DE24: the function code in ISO 8583:1993 (the network international
/// identifier in 1987, which validate does not read there).
pub const FUNCTION_CODE: u16 = 24;

/// DE24 of an ISO 8583:1993 echo test.
pub const ECHO_TEST_1993: &[u8] = b"831";

/// Fields an authorization or financial request (or its repeat) must carry.
const MANDATORY: [u16; 4] = [
    field::PROCESSING_CODE,
    field::AMOUNT,
    field::STAN,
    field::TERMINAL_ID,
];

/// The ISO 8583 version of an MTI: its first digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// ISO 8583:1987 (`0xxx`).
    Iso1987,
    /// ISO 8583:1993 (`1xxx`).
    Iso1993,
}

/// What a request is to the default contract, by its MTI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An authorization or financial request, or its repeat (x100, x101,
    /// x200, x201); `class` is the MTI's class digit (1 or 2).
    Financial {
        /// The MTI's version.
        version: Version,
        /// The message class: b'1' (authorization) or b'2' (financial).
        class: u8,
    },
    /// A network management request: 0800, 1800 or 1804.
    NetworkManagement(Version),
    /// Anything else: unsupported.
    Other,
}

impl Kind {
    /// The kind of `mti` (four ASCII digits; anything else is
    /// [`Kind::Other`]).
    pub fn of(mti: &str) -> Kind {
        let [v, class, function, origin] = mti.as_bytes() else {
            return Kind::Other;
        };
        let version = match v {
            b'0' => Version::Iso1987,
            b'1' => Version::Iso1993,
            _ => return Kind::Other,
        };
        match (class, function, origin, version) {
            (b'1' | b'2', b'0', b'0' | b'1', _) => Kind::Financial {
                version,
                class: *class,
            },
            (b'8', b'0', b'0', _) | (b'8', b'0', b'4', Version::Iso1993) => {
                Kind::NetworkManagement(version)
            }
            _ => Kind::Other,
        }
    }
}

/// The validation participant. Stateless.
#[derive(Clone, Copy, Debug, Default)]
pub struct Validate;

/// A failed check: the response code and why, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The response code (DE39).
    pub code: &'static str,
    /// What was wrong, without any card data.
    pub reason: String,
}

fn reject(code: &'static str, reason: impl Into<String>) -> Result<(), Rejection> {
    Err(Rejection {
        code,
        reason: reason.into(),
    })
}

/// What `check` reads, in one host call: the MTI (0) and the fields.
const READ: [u16; 9] = [
    0,
    field::PAN,
    field::PROCESSING_CODE,
    field::AMOUNT,
    field::STAN,
    field::EXPIRATION_DATE,
    FUNCTION_CODE,
    field::TERMINAL_ID,
    field::NETWORK_MANAGEMENT_CODE,
];

/// Runs the checks in the contract's order; the first failure wins.
pub fn check(tx: &impl Transaction, clock: &impl Clock) -> Result<(), Rejection> {
    let values = tx.request_values(&READ);
    let value = |f: u16| {
        READ.iter()
            .position(|r| *r == f)
            .and_then(|i| values.get(i))
    };
    let mti = values.str(0).unwrap_or_default();
    let kind = Kind::of(mti);
    let financial = matches!(kind, Kind::Financial { .. });

    if financial && let Some(missing) = MANDATORY.into_iter().find(|&f| value(f).is_none()) {
        return reject(rc::FORMAT_ERROR, format!("{mti} without DE{missing}"));
    }
    if let Some(pan) = value(field::PAN)
        && !is_valid_pan(pan)
    {
        return reject(
            rc::INVALID_CARD,
            format!("DE2 ({} characters) is not a valid card number", pan.len()),
        );
    }
    if let Some(yymm) = value(field::EXPIRATION_DATE) {
        match is_expired(yymm, clock.now_unix_millis()) {
            Ok(false) => {}
            Ok(true) => return reject(rc::EXPIRED, "DE14 is before the current month"),
            Err(e) => return reject(rc::EXPIRED, format!("DE14 is not an expiry date: {e}")),
        }
    }
    // A balance inquiry (DE3 31xxxx) moves no money: its DE4 may be zero.
    let inquiry = value(field::PROCESSING_CODE).is_some_and(|pc| pc.starts_with(b"31"));
    if let Some(amount) = value(field::AMOUNT) {
        match parse_minor_units(amount) {
            Ok(0) if !inquiry => return reject(rc::INVALID_AMOUNT, "DE4 is zero"),
            Ok(_) => {}
            Err(e) => return reject(rc::INVALID_AMOUNT, format!("DE4: {e}")),
        }
    }
    match kind {
        Kind::Financial {
            version: Version::Iso1987,
            ..
        } => Ok(()),
        Kind::Financial {
            version: Version::Iso1993,
            class,
        } => match value(FUNCTION_CODE) {
            Some(code) if code.first() != Some(&class) => reject(
                rc::UNSUPPORTED,
                format!(
                    "{mti} with function code (DE24) {} of another message class",
                    String::from_utf8_lossy(code)
                ),
            ),
            _ => Ok(()),
        },
        Kind::NetworkManagement(Version::Iso1987) => match value(field::NETWORK_MANAGEMENT_CODE) {
            Some(code) if code == mti::ECHO_TEST => Ok(()),
            Some(_) => reject(
                rc::UNSUPPORTED,
                format!("{mti} other than an echo test (DE70 301)"),
            ),
            None => reject(rc::UNSUPPORTED, format!("{mti} without DE70")),
        },
        Kind::NetworkManagement(Version::Iso1993) => match value(FUNCTION_CODE) {
            Some(code) if code == ECHO_TEST_1993 => Ok(()),
            Some(_) => reject(
                rc::UNSUPPORTED,
                format!("{mti} other than an echo test (DE24 831)"),
            ),
            None => reject(rc::UNSUPPORTED, format!("{mti} without DE24")),
        },
        Kind::Other => reject(rc::UNSUPPORTED, format!("MTI {mti} is not supported")),
    }
}

impl Participant for Validate {
    fn prepare(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Outcome {
        match check(tx, env) {
            Ok(()) => Outcome::NoJoin,
            Err(Rejection { code, reason }) => {
                env.debug(&format!("validate: {code}: {reason}"));
                tx.set_result_code(code);
                Outcome::Aborted
            }
        }
    }

    /// `validate` has no settings: every configured key is a problem.
    fn check_settings(&mut self, config: &impl Config) -> Vec<SettingProblem> {
        config
            .entries()
            .into_iter()
            .map(|(key, _)| SettingProblem::new(key, "validate has no settings; remove this key"))
            .collect()
    }
}

switchyard_sdk::export_participant!(Validate);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::Level;
    use switchyard_sdk::mock::{MockEnv, MockTransaction};

    /// The published test card; passes Luhn.
    const TEST_PAN: &str = "4761739001010119";
    /// The test card with its check digit changed: fails Luhn.
    const BAD_LUHN_PAN: &str = "4761739001010118";

    /// A valid 0200 on the test card, expiring after [`MockEnv::DEFAULT_NOW`].
    fn purchase() -> MockTransaction {
        request("0200")
    }

    /// A valid request of this MTI on the test card.
    fn request(mti: &str) -> MockTransaction {
        MockTransaction::new(mti)
            .with_field(2, TEST_PAN)
            .with_field(3, "000000")
            .with_field(4, "000000001000")
            .with_field(11, "000123")
            .with_field(14, "2712")
            .with_field(41, "TERM0001")
            .with_field(49, "840")
    }

    fn run(mut tx: MockTransaction) -> (Outcome, Option<String>, MockTransaction) {
        let env = MockEnv::new();
        let outcome = Validate.prepare(&mut tx, &env);
        let code = tx.rc().map(str::to_owned);
        if outcome == Outcome::Aborted {
            assert!(env.logged(Level::Debug, code.as_deref().unwrap()));
        }
        for (_, message) in env.logs() {
            assert!(!message.contains(TEST_PAN) && !message.contains(BAD_LUHN_PAN));
        }
        (outcome, code, tx)
    }

    fn rc_of(tx: MockTransaction) -> Option<String> {
        run(tx).1
    }

    #[test]
    fn a_valid_purchase_is_prepared_without_joining_or_a_result_code() {
        let (outcome, code, tx) = run(purchase());
        assert_eq!(outcome, Outcome::NoJoin);
        assert_eq!(code, None);
        assert!(tx.response().is_empty());
        assert_eq!(run(request("0100")).0, Outcome::NoJoin);
    }

    #[test]
    fn a_repeat_whose_original_was_never_seen_gets_the_originals_checks() {
        for mti in ["0101", "0201"] {
            let (outcome, code, _) = run(request(mti));
            assert_eq!((outcome, code), (Outcome::NoJoin, None), "{mti}");
            for missing in [3, 4, 11, 41] {
                let code = rc_of(request(mti).without_field(missing));
                assert_eq!(
                    code.as_deref(),
                    Some(rc::FORMAT_ERROR),
                    "{mti} w/o DE{missing}"
                );
            }
            let bad_card = request(mti).with_field(2, BAD_LUHN_PAN);
            assert_eq!(rc_of(bad_card).as_deref(), Some(rc::INVALID_CARD), "{mti}");
            let expired = request(mti).with_field(14, "2505");
            assert_eq!(rc_of(expired).as_deref(), Some(rc::EXPIRED), "{mti}");
            let zero = request(mti).with_field(4, "000000000000");
            assert_eq!(rc_of(zero).as_deref(), Some(rc::INVALID_AMOUNT), "{mti}");
        }
    }

    #[test]
    fn a_missing_mandatory_field_is_a_format_error() {
        for (mti, field) in ["0100", "0200"]
            .into_iter()
            .flat_map(|m| [3, 4, 11, 41].map(|f| (m, f)))
        {
            let (outcome, code, _) = run(request(mti).without_field(field));
            assert_eq!(outcome, Outcome::Aborted, "{mti} without DE{field}");
            assert_eq!(
                code.as_deref(),
                Some(rc::FORMAT_ERROR),
                "{mti} without DE{field}"
            );
        }
    }

    #[test]
    fn pan_is_optional_but_must_be_valid_when_present() {
        assert_eq!(rc_of(purchase().without_field(2)), None);
        for pan in [
            BAD_LUHN_PAN,
            "79927398713",          // passes Luhn, 11 digits
            "00000000000000000000", // passes Luhn, 20 digits
            "476173900101011A",
            "",
        ] {
            assert_eq!(
                rc_of(purchase().with_field(2, pan)).as_deref(),
                Some(rc::INVALID_CARD),
                "PAN of {} characters",
                pan.len()
            );
        }
        assert_eq!(rc_of(purchase().with_field(2, "000000000000")), None);
    }

    #[test]
    fn an_expiry_before_the_current_month_is_expired() {
        // MockEnv's clock is in June 2025.
        assert_eq!(rc_of(purchase().with_field(14, "2506")), None);
        assert_eq!(rc_of(purchase().without_field(14)), None);
        for yymm in ["2505", "2412", "2513", "2500", "25"] {
            assert_eq!(
                rc_of(purchase().with_field(14, yymm)).as_deref(),
                Some(rc::EXPIRED),
                "DE14 {yymm}"
            );
        }
    }

    #[test]
    fn expiry_uses_the_host_clock_in_utc() {
        // 2025-06-30T23:59:59.999Z: still June; a millisecond later July.
        let june_end = 1_751_327_999_999;
        let mut tx = purchase().with_field(14, "2506");
        assert_eq!(
            Validate.prepare(&mut tx, &MockEnv::new().at(june_end)),
            Outcome::NoJoin
        );
        let mut tx = purchase().with_field(14, "2506");
        let outcome = Validate.prepare(&mut tx, &MockEnv::new().at(june_end + 1));
        assert_eq!((outcome, tx.rc()), (Outcome::Aborted, Some(rc::EXPIRED)));
    }

    #[test]
    fn a_zero_or_non_numeric_amount_is_invalid() {
        for amount in ["000000000000", "00000000010A", "            "] {
            assert_eq!(
                rc_of(purchase().with_field(4, amount)).as_deref(),
                Some(rc::INVALID_AMOUNT),
                "DE4 {amount:?}"
            );
        }
        assert_eq!(rc_of(purchase().with_field(4, "000000000001")), None);
    }

    #[test]
    fn every_other_mti_is_unsupported() {
        for mti in [
            "0400", "0401", "0420", "0421", "0110", "0220", "0221", "0301", "0202", "1400", "1420",
            "1421", "1220", "1210", "1300", "1202", "2200", "9200", "0804", "020",
        ] {
            let tx = MockTransaction::new(mti)
                .with_field(3, "000000")
                .with_field(4, "000000001000")
                .with_field(11, "000123")
                .with_field(41, "TERM0001");
            assert_eq!(rc_of(tx).as_deref(), Some(rc::UNSUPPORTED), "MTI {mti}");
        }
        let echo = MockTransaction::new("0800")
            .with_field(7, "0615120000")
            .with_field(11, "000001")
            .with_field(70, "301");
        assert_eq!(run(echo).0, Outcome::NoJoin);
        let sign_on = MockTransaction::new("0800").with_field(70, "001");
        assert_eq!(rc_of(sign_on).as_deref(), Some(rc::UNSUPPORTED));
        assert_eq!(
            rc_of(MockTransaction::new("0800")).as_deref(),
            Some(rc::UNSUPPORTED)
        );
    }

    #[test]
    fn checks_run_in_the_contracts_order() {
        let bad_everything = purchase()
            .without_field(41)
            .with_field(2, BAD_LUHN_PAN)
            .with_field(14, "2001")
            .with_field(4, "000000000000");
        assert_eq!(
            rc_of(bad_everything.clone()).as_deref(),
            Some(rc::FORMAT_ERROR)
        );
        let bad = bad_everything.with_field(41, "TERM0001");
        assert_eq!(rc_of(bad.clone()).as_deref(), Some(rc::INVALID_CARD));
        let bad = bad.with_field(2, TEST_PAN);
        assert_eq!(rc_of(bad.clone()).as_deref(), Some(rc::EXPIRED));
        let bad = bad.with_field(14, "2712");
        assert_eq!(rc_of(bad).as_deref(), Some(rc::INVALID_AMOUNT));
        // An unsupported MTI is the last check.
        let reversal = MockTransaction::new("0400").with_field(2, BAD_LUHN_PAN);
        assert_eq!(rc_of(reversal).as_deref(), Some(rc::INVALID_CARD));
        let reversal = MockTransaction::new("0400").with_field(4, "000000000000");
        assert_eq!(rc_of(reversal).as_deref(), Some(rc::INVALID_AMOUNT));
    }

    #[test]
    fn one_host_call_reads_everything_it_checks() {
        let (_, _, tx) = run(purchase());
        assert_eq!(tx.fields_read(), vec![2, 3, 4, 11, 14, 24, 41, 70]);
        assert_eq!(tx.calls(), 1, "one request-values call");
        let (_, _, tx) = run(MockTransaction::new("0800").with_field(70, "301"));
        assert_eq!(tx.calls(), 1);
    }

    #[test]
    fn iso_8583_1993_requests_get_the_same_checks() {
        for mti in ["1100", "1101", "1200", "1201"] {
            let (outcome, code, _) = run(request(mti));
            assert_eq!((outcome, code), (Outcome::NoJoin, None), "{mti}");
            for missing in [3, 4, 11, 41] {
                let code = rc_of(request(mti).without_field(missing));
                assert_eq!(
                    code.as_deref(),
                    Some(rc::FORMAT_ERROR),
                    "{mti} w/o DE{missing}"
                );
            }
            let bad_card = request(mti).with_field(2, BAD_LUHN_PAN);
            assert_eq!(rc_of(bad_card).as_deref(), Some(rc::INVALID_CARD), "{mti}");
            let expired = request(mti).with_field(14, "2505");
            assert_eq!(rc_of(expired).as_deref(), Some(rc::EXPIRED), "{mti}");
            let zero = request(mti).with_field(4, "000000000000");
            assert_eq!(rc_of(zero).as_deref(), Some(rc::INVALID_AMOUNT), "{mti}");
        }
    }

    #[test]
    fn a_1993_function_code_must_belong_to_the_message_class() {
        for (mti, function) in [
            ("1100", "100"),
            ("1100", "108"),
            ("1200", "200"),
            ("1201", "201"),
        ] {
            let tx = request(mti).with_field(24, function);
            assert_eq!(rc_of(tx), None, "{mti} DE24 {function}");
        }
        for (mti, function) in [
            ("1100", "200"),
            ("1200", "100"),
            ("1200", "400"),
            ("1200", "831"),
        ] {
            let (outcome, code, _) = run(request(mti).with_field(24, function));
            assert_eq!(
                (outcome, code.as_deref()),
                (Outcome::Aborted, Some(rc::UNSUPPORTED)),
                "{mti} DE24 {function}"
            );
        }
        // In 1987 DE24 is the network international identifier: not checked.
        assert_eq!(rc_of(request("0200").with_field(24, "001")), None);
        // The earlier checks still come first.
        let both = request("1200").with_field(24, "100").without_field(11);
        assert_eq!(rc_of(both).as_deref(), Some(rc::FORMAT_ERROR));
    }

    #[test]
    fn a_1993_echo_test_is_an_1804_or_1800_with_function_code_831() {
        for mti in ["1804", "1800"] {
            let echo = MockTransaction::new(mti)
                .with_field(7, "0615120000")
                .with_field(11, "000001")
                .with_field(24, "831");
            assert_eq!(run(echo).0, Outcome::NoJoin, "{mti}");
        }
        let sign_on = MockTransaction::new("1804").with_field(24, "801");
        assert_eq!(rc_of(sign_on).as_deref(), Some(rc::UNSUPPORTED));
        // DE70 is a country code in 1993: a 1987-style echo is not one.
        let de70 = MockTransaction::new("1804").with_field(70, "301");
        assert_eq!(rc_of(de70).as_deref(), Some(rc::UNSUPPORTED));
        // And a 1987 0800 is judged by DE70 alone.
        let de24 = MockTransaction::new("0800").with_field(24, "831");
        assert_eq!(rc_of(de24).as_deref(), Some(rc::UNSUPPORTED));
    }

    #[test]
    fn kinds_by_mti() {
        use Version::{Iso1987, Iso1993};
        for (mti, kind) in [
            (
                "0100",
                Kind::Financial {
                    version: Iso1987,
                    class: b'1',
                },
            ),
            (
                "0201",
                Kind::Financial {
                    version: Iso1987,
                    class: b'2',
                },
            ),
            (
                "1101",
                Kind::Financial {
                    version: Iso1993,
                    class: b'1',
                },
            ),
            (
                "1200",
                Kind::Financial {
                    version: Iso1993,
                    class: b'2',
                },
            ),
            ("0800", Kind::NetworkManagement(Iso1987)),
            ("1800", Kind::NetworkManagement(Iso1993)),
            ("1804", Kind::NetworkManagement(Iso1993)),
            ("0804", Kind::Other),
            ("1810", Kind::Other),
            ("1420", Kind::Other),
            ("2200", Kind::Other),
            ("", Kind::Other),
            ("12000", Kind::Other),
        ] {
            assert_eq!(Kind::of(mti), kind, "{mti:?}");
        }
    }

    #[test]
    fn any_setting_is_a_problem() {
        assert!(Validate.check_settings(&MockEnv::new()).is_empty());
        let env = MockEnv::new()
            .with_config("limit", "10.00")
            .with_config("strict", "yes");
        let problems = Validate.check_settings(&env);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["limit", "strict"]);
        assert!(problems[0].message.contains("no settings"));
    }

    #[test]
    fn a_balance_inquiry_may_carry_a_zero_amount() {
        let inquiry = request("0200")
            .with_field(3, "310000")
            .with_field(4, "000000000000");
        assert_ne!(rc_of(inquiry).as_deref(), Some(rc::INVALID_AMOUNT));
        let purchase = request("0200")
            .with_field(3, "000000")
            .with_field(4, "000000000000");
        assert_eq!(rc_of(purchase).as_deref(), Some(rc::INVALID_AMOUNT));
    }
}
