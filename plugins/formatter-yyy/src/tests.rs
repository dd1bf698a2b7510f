//! Native tests of the formatter against the SDK's in-memory transaction and environment.

use super::*;
use record::{AUTH_LEN, Problem, RecordError, SAF_LEN};
use switchyard_sdk::mock::{MockEnv, MockTransaction};

/// The published Visa test card.
const TEST_PAN: &str = "4761739001010119";

/// The `AQ` record of [`purchase`], from Python's own `cp037` codec:
/// `("AQ000123" "0615115959" "TERM0001" "MERCHANT0000001" + PAN.ljust(19) + "2712"
/// "00000000100{" "840" + 8 spaces).encode("cp037")`.
const GOLDEN_AQ: &str = "C1D8F0F0F0F1F2F3F0F6F1F5F1F1F5F9F5F9E3C5D9D4F0F0F0F1D4C5D9C3C8C1D5E3\
    F0F0F0F0F0F0F1F4F7F6F1F7F3F9F0F0F1F0F1F0F1F1F9404040F2F7F1F2F0F0F0F0F0F0F0F0F1F0F0C0F8F4F0\
    4040404040404040";

/// The `AR` the mainframe simulator (host/net/src/mainframe.rs) answers to [`GOLDEN_AQ`]
/// (its first approval, `Y00000`): host/net/tests/mainframe.rs holds the simulator to the
/// same bytes.
const SIMULATOR_AR: &str = "C1D9F0F0F0F1F2F3F0F6F1F5F1F1F5F9F5F9E3C5D9D4F0F0F0F1D4C5D9C3C8C1D5E3\
    F0F0F0F0F0F0F140404040404040404040404040404040404040F0F0F0F0F0F0F0F0F0F0F0F0F1F0F0C0F8F4F0\
    F0F0E8F0F0F0F0F0";

fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// `ascii` (printable) in code page 037.
fn ebcdic(ascii: &str) -> Vec<u8> {
    ascii.bytes().map(|b| cp037::encode(b).unwrap()).collect()
}

fn purchase() -> MockTransaction {
    MockTransaction::new("0200")
        .with_field(2, TEST_PAN)
        .with_field(3, "000000")
        .with_field(4, "000000001000")
        .with_field(7, "0615115959")
        .with_field(11, "000123")
        .with_field(14, "2712")
        .with_field(41, "TERM0001")
        .with_field(42, "MERCHANT0000001")
        .with_field(49, "840")
}

/// A reply record of `kind` to [`purchase`]: PAN spaces, expiry zeros, as the simulator sends.
fn reply(kind: &str, code: &str, approval: &str) -> Vec<u8> {
    let mut text = format!(
        "{kind}0001230615115959TERM0001MERCHANT0000001{}000000000000100{{840{code:<2}{approval:<6}",
        " ".repeat(19)
    );
    if kind != "AR" {
        text.push_str("68N");
    }
    ebcdic(&text)
}

fn format(tx: &mut MockTransaction) -> Result<Outbound, String> {
    YyyFormatter::default().format_request(tx, &MockEnv::new())
}

#[test]
fn an_authorization_is_an_aq_record_at_the_copybooks_offsets() {
    let out = format(&mut purchase()).unwrap();
    assert_eq!(out.payload, unhex(GOLDEN_AQ));
    assert_eq!(out.payload.len(), AUTH_LEN);
    assert_eq!(out.key, "AR|000123|TERM0001|0615115959");
    assert!(!format!("{out:?}").contains(TEST_PAN));
    // Field by field: the amount is zoned with a C zone on its last digit.
    let p = &out.payload;
    assert_eq!(p[..2], [0xC1, 0xD8], "AQ");
    assert_eq!(p[41..57], *ebcdic(TEST_PAN), "YYY-PAN");
    assert_eq!(p[57..60], [0x40; 3], "YYY-PAN padded with spaces");
    assert_eq!(p[64..76], *ebcdic("00000000100{"), "YYY-AMOUNT +10.00");
    assert_eq!(p[75], 0xC0, "+0 overpunched");
    // The same 0100 and the repeats: AQ too.
    for mti in ["0100", "0101", "0201"] {
        let mut tx = purchase();
        let mut retyped = MockTransaction::new(mti);
        for n in tx.request_fields().into_owned() {
            retyped = retyped.with_field(n, tx.request_field(n).unwrap());
        }
        tx = retyped;
        assert_eq!(format(&mut tx).unwrap().payload, unhex(GOLDEN_AQ), "{mti}");
    }
}

#[test]
fn de4_is_the_amount_with_two_implied_decimals() {
    for (de4, zoned) in [
        ("000000000000", "00000000000{"),
        ("000000000001", "00000000000A"),
        ("000000001051", "00000000105A"),
        ("000000001077", "00000000107G"),
        ("999999999999", "99999999999I"),
        ("12", "00000000001B"),
    ] {
        let out = format(&mut purchase().with_field(4, de4)).unwrap();
        assert_eq!(out.payload[64..76], *ebcdic(zoned), "{de4}");
        let record = Record::decode(&out.payload).unwrap();
        assert_eq!(
            record.amount,
            Decimal::new(de4.parse().unwrap(), 2),
            "{de4}"
        );
    }
    for (de4, why) in [
        ("1000000000000", "does not fit"),
        ("00000000100A", "not a decimal number"),
        ("", "no digits"),
    ] {
        let err = format(&mut purchase().with_field(4, de4)).unwrap_err();
        assert!(err.contains("DE4") && err.contains(why), "{de4}: {err}");
    }
    let err = format(&mut purchase().without_field(4)).unwrap_err();
    assert!(err.contains("no DE4"), "{err}");
}

#[test]
fn the_pan_comes_from_de2_else_from_track_2() {
    let track = format!("{TEST_PAN}=27121011000012345678");
    let mut tx = purchase()
        .without_field(2)
        .without_field(14)
        .with_field(35, &track);
    let record = Record::decode(&format(&mut tx).unwrap().payload).unwrap();
    assert_eq!(record.pan, TEST_PAN);
    assert_eq!(record.expiry, "2712", "the expiry of DE35");
    let d_separated = "5413330089010509D25121010000000000";
    let mut tx = purchase().without_field(2).with_field(35, d_separated);
    let record = Record::decode(&format(&mut tx).unwrap().payload).unwrap();
    assert_eq!(record.pan, "5413330089010509");
    assert_eq!(record.expiry, "2712", "DE14 wins over DE35");
    // DE2 wins over DE35; no DE14 and no DE35: zeros.
    let mut tx = purchase().with_field(35, d_separated).without_field(14);
    let record = Record::decode(&format(&mut tx).unwrap().payload).unwrap();
    assert_eq!(
        (record.pan.as_str(), record.expiry.as_str()),
        (TEST_PAN, "2512")
    );
    let record = Record::decode(&format(&mut purchase().without_field(14)).unwrap().payload);
    assert_eq!(record.unwrap().expiry, "0000");
    // Refused, without the card number in the message.
    for (tx, why) in [
        (purchase().without_field(2), "no DE2 or DE35"),
        (
            purchase().with_field(2, "47617390010101190000"),
            "DE2 (PAN)",
        ),
        (purchase().with_field(2, "4761 7390"), "DE2 (PAN)"),
        (
            purchase().without_field(2).with_field(35, "=2712"),
            "DE35 (track 2)",
        ),
        (purchase().with_field(14, "27-2"), "DE14"),
    ] {
        let err = format(&mut tx.clone()).unwrap_err();
        assert!(err.contains(why), "{err}");
        assert!(!err.contains(TEST_PAN) && !err.contains("4761739"), "{err}");
    }
}

#[test]
fn the_key_fields_are_required_and_the_rest_defaulted() {
    for (n, why) in [(11, "no DE11"), (41, "no DE41")] {
        let err = format(&mut purchase().without_field(n)).unwrap_err();
        assert!(err.contains(why), "{err}");
    }
    for (n, value, why) in [
        (11, "12345", "DE11 (STAN) is not 6 digits"),
        (7, "06151159", "DE7"),
        (41, "TERMINAL9", "DE41 (terminal id) is longer than 8"),
        (
            42,
            "MERCHANT00000001",
            "DE42 (merchant id) is longer than 15",
        ),
        (42, "MERCH\u{e9}", "DE42 (merchant id) is not printable"),
        (49, "84", "DE49"),
    ] {
        let err = format(&mut purchase().with_field(n, value)).unwrap_err();
        assert!(err.contains(why), "DE{n}: {err}");
    }
    let bare = purchase()
        .without_field(7)
        .without_field(42)
        .without_field(49)
        .with_field(41, "T1");
    let out = format(&mut bare.clone()).unwrap();
    let record = Record::decode(&out.payload).unwrap();
    assert_eq!(record.date_time, "0000000000");
    assert_eq!(record.merchant, "");
    assert_eq!(out.payload[26..41], [0x40; 15], "YYY-MERCHANT-ID spaces");
    assert_eq!(record.currency, DEFAULT_CURRENCY);
    assert_eq!(out.payload[18..26], *ebcdic("T1      "));
    assert_eq!(out.key, "AR|000123|T1|0000000000");
    let env = MockEnv::new().with_config("default_currency", "978");
    let out = YyyFormatter::default()
        .format_request(&mut bare.clone(), &env)
        .unwrap();
    assert_eq!(Record::decode(&out.payload).unwrap().currency, "978");
}

#[test]
fn other_mtis_have_no_yyy_record() {
    for mti in ["0800", "0400", "0420", "0220", "0110", "0202", "02"] {
        let mut tx = MockTransaction::new(mti)
            .with_field(4, "000000001000")
            .with_field(11, "000123")
            .with_field(41, "TERM0001");
        let err = format(&mut tx).unwrap_err();
        assert!(err.contains("no yyy record"), "{mti}: {err}");
    }
}

#[test]
fn the_reply_key_matches_the_request_key() {
    let mut formatter = YyyFormatter::default();
    let env = MockEnv::new();
    let out = formatter.format_request(&mut purchase(), &env).unwrap();
    assert_eq!(
        formatter.reply_key(&reply("AR", "00", "Y00001"), &env),
        Ok(out.key.clone())
    );
    assert_eq!(
        formatter.reply_key(&reply("AR", "51", ""), &env),
        Ok(out.key)
    );
}

#[test]
fn the_simulators_reply_to_the_golden_request_is_read() {
    let mut formatter = YyyFormatter::default();
    let env = MockEnv::new();
    let out = formatter.format_request(&mut purchase(), &env).unwrap();
    let ar = unhex(SIMULATOR_AR);
    assert_eq!(formatter.reply_key(&ar, &env), Ok(out.key));
    let mut tx = purchase();
    formatter.parse_response(&ar, &mut tx, &env).unwrap();
    assert_eq!(tx.rc(), Some("00"));
    assert_eq!(tx.response()[&38], b"Y00000");
}

#[test]
fn reply_key_refuses_what_is_not_a_reply_record() {
    let mut formatter = YyyFormatter::default();
    let env = MockEnv::new();
    let request = format(&mut purchase()).unwrap().payload;
    let err = formatter.reply_key(&request, &env).unwrap_err();
    assert!(err.contains("AQ is a request"), "{err}");
    let err = formatter.reply_key(&request[..86], &env).unwrap_err();
    assert_eq!(
        err,
        "reply: YYY-RECORD-TYPE at offset 0: record of 86 bytes, its record type has 87"
    );
    let err = formatter.reply_key(&[0xC1], &env).unwrap_err();
    assert!(err.contains("has no record type"), "{err}");
    let mut unknown = reply("AR", "00", "");
    unknown[1] = 0xE7; // AX
    assert!(
        formatter
            .reply_key(&unknown, &env)
            .unwrap_err()
            .contains("not a record type of yyy")
    );
    let mut bad_stan = reply("AR", "00", "");
    bad_stan[4] = 0x40;
    assert_eq!(
        formatter.reply_key(&bad_stan, &env).unwrap_err(),
        "reply: YYY-STAN at offset 4: not all digits"
    );
    let mut bad_terminal = reply("AR", "00", "");
    bad_terminal[20] = 0x00;
    assert_eq!(
        formatter.reply_key(&bad_terminal, &env).unwrap_err(),
        "reply: YYY-TERMINAL-ID at offset 20: not a printable code page 037 character"
    );
    assert!(formatter.reply_key(&[], &env).is_err());
}

#[test]
fn an_approval_sets_the_result_code_and_auth_code() {
    let mut tx = purchase();
    YyyFormatter::default()
        .parse_response(&reply("AR", "00", "Y00001"), &mut tx, &MockEnv::new())
        .unwrap();
    assert_eq!(tx.rc(), Some("00"));
    assert_eq!(tx.response()[&38], b"Y00001");
    // A short approval code is padded to DE38's 6 characters.
    let mut tx = purchase();
    YyyFormatter::default()
        .parse_response(&reply("AR", "00", "AB12"), &mut tx, &MockEnv::new())
        .unwrap();
    assert_eq!(tx.response()[&38], b"AB12  ");
    // Approved without an approval code: no DE38.
    let mut tx = purchase();
    YyyFormatter::default()
        .parse_response(&reply("AR", "00", ""), &mut tx, &MockEnv::new())
        .unwrap();
    assert!(tx.response().is_empty());
}

#[test]
fn the_endpoints_own_code_is_passed_through() {
    for code in ["05", "51", "14", "N7"] {
        let mut tx = purchase();
        YyyFormatter::default()
            .parse_response(&reply("AR", code, "Y00001"), &mut tx, &MockEnv::new())
            .unwrap();
        assert_eq!(tx.rc(), Some(code));
        assert!(tx.response().is_empty(), "{code}: DE38 only on approval");
    }
}

#[test]
fn a_bad_reply_is_refused_with_its_field_and_offset() {
    let parse = |bytes: &[u8]| {
        let mut tx = purchase();
        let r = YyyFormatter::default().parse_response(bytes, &mut tx, &MockEnv::new());
        assert_eq!(tx.rc(), None);
        r.unwrap_err()
    };
    assert_eq!(
        parse(&reply("AR", "", "")),
        "reply: YYY-RESPONSE-CODE at offset 79: not a 2-character response code"
    );
    assert!(parse(&reply("AR", "0", "")).contains("YYY-RESPONSE-CODE"));
    let request = format(&mut purchase()).unwrap().payload;
    assert!(parse(&request).contains("AQ is a request"));
    let mut bad_sign = reply("AR", "00", "");
    bad_sign[75] = 0x30; // zone 3: no EBCDIC sign
    assert_eq!(
        parse(&bad_sign),
        "reply: YYY-AMOUNT at offset 75: no overpunch sign (zone C, D or F)"
    );
    let mut bad_digit = reply("AR", "00", "");
    bad_digit[70] = 0xC1;
    assert_eq!(
        parse(&bad_digit),
        "reply: YYY-AMOUNT at offset 70: not a zoned digit (F0-F9)"
    );
    let mut bad_currency = reply("AR", "00", "");
    bad_currency[77] = 0xC1;
    assert_eq!(
        parse(&bad_currency),
        "reply: YYY-CURRENCY at offset 77: not all digits"
    );
    let mut bad_pan = reply("AR", "00", "");
    bad_pan[45] = 0xF4;
    assert_eq!(
        parse(&bad_pan),
        "reply: YYY-PAN at offset 41: not digits, left-justified and space-padded"
    );
    let mut bad_repeat = reply("RR", "00", "");
    bad_repeat[89] = 0xC1;
    assert_eq!(
        parse(&bad_repeat),
        "reply: YYY-REPEAT at offset 89: neither Y nor N"
    );
    // Nothing panics on any length or byte.
    for len in 0..=SAF_LEN + 1 {
        for b in [0x00, 0x40, 0xC1, 0xF0, 0xFF] {
            let mut bytes = reply("RR", "00", "");
            bytes.resize(len, b);
            let mut tx = purchase();
            let _ = YyyFormatter::default().parse_response(&bytes, &mut tx, &MockEnv::new());
            let _ = YyyFormatter::default().reply_key(&bytes, &MockEnv::new());
        }
    }
}

/// The original 0200 as the tranlog keeps it, with the response it got.
fn original() -> MockTransaction {
    purchase()
        .with_field(12, "115959")
        .with_field(37, "516612345678")
        .with_response_field(38, "Y00001")
        .with_tranlog_id("42")
}

#[test]
fn a_reversal_is_an_rq_record_naming_its_original() {
    let mut formatter = YyyFormatter::default();
    let env = MockEnv::new();
    let out = formatter
        .format_saf(&SafRequest::reversal("68"), &mut original(), &env)
        .unwrap();
    let golden = unhex(
        "D9D8F0F0F0F1F2F3F0F6F1F5F1F1F5F9F5F9E3C5D9D4F0F0F0F1D4C5D9C3C8C1D5E3F0F0F0F0F0F0F1F4F7\
         F6F1F7F3F9F0F0F1F0F1F0F1F1F9404040F2F7F1F2F0F0F0F0F0F0F0F0F1F0F0C0F8F4F04040E8F0F0F0F0\
         F1F6F8D5",
    );
    assert_eq!(out.payload, golden);
    assert_eq!(out.payload.len(), SAF_LEN);
    assert_eq!(out.key, "RR|000123|TERM0001|0615115959");
    // A retransmission: the same record with YYY-REPEAT `Y`, and the same key.
    let again = formatter
        .format_saf(
            &SafRequest::reversal("68").retransmitted(),
            &mut original(),
            &env,
        )
        .unwrap();
    assert_eq!(again.payload[..89], out.payload[..89]);
    assert_eq!(again.payload[89], 0xE8, "Y");
    assert_eq!(again.key, out.key);
    // The reason is the reversal's.
    let other = formatter
        .format_saf(&SafRequest::reversal("17"), &mut original(), &env)
        .unwrap();
    assert_eq!(Record::decode(&other.payload).unwrap().reason, "17");
}

#[test]
fn a_reversal_of_an_original_without_pan_or_approval_sends_spaces() {
    let mut tx = purchase()
        .without_field(2)
        .without_field(14)
        .with_tranlog_id("43");
    let out = YyyFormatter::default()
        .format_saf(&SafRequest::reversal("68"), &mut tx, &MockEnv::new())
        .unwrap();
    let record = Record::decode(&out.payload).unwrap();
    assert_eq!(record.pan, "");
    assert_eq!(out.payload[41..60], [0x40; 19]);
    assert_eq!(record.expiry, "0000");
    assert_eq!(record.approval_code, "");
    assert!(!record.repeat);
}

#[test]
fn a_reversal_of_what_yyy_did_not_authorize_is_refused() {
    for (tx, why) in [
        (
            MockTransaction::new("0800").with_field(11, "000001"),
            "0800",
        ),
        (original().without_field(11), "no DE11"),
        (original().without_field(4), "no DE4"),
    ] {
        let err = YyyFormatter::default()
            .format_saf(
                &SafRequest::reversal("68"),
                &mut tx.clone(),
                &MockEnv::new(),
            )
            .unwrap_err();
        assert!(err.contains(why), "{err}");
    }
    let err = YyyFormatter::default()
        .format_saf(
            &SafRequest::reversal("681"),
            &mut original(),
            &MockEnv::new(),
        )
        .unwrap_err();
    assert_eq!(
        err,
        "RQ record: YYY-REASON at offset 87: longer than the field"
    );
}

/// An acquirer's completion as the tranlog keeps it.
fn completion() -> MockTransaction {
    MockTransaction::new("0220")
        .with_field(2, "5413330089010509")
        .with_field(3, "000000")
        .with_field(4, "000000000800")
        .with_field(7, "0615120500")
        .with_field(11, "000124")
        .with_field(38, "Y00001")
        .with_field(41, "TERM0001")
        .with_field(49, "840")
        .with_tranlog_id("44")
}

#[test]
fn an_advice_is_a_cq_record_of_the_acquirers_0220() {
    let mut formatter = YyyFormatter::default();
    let out = formatter
        .format_saf(
            &SafRequest::advice("00"),
            &mut completion(),
            &MockEnv::new(),
        )
        .unwrap();
    assert_eq!(out.payload.len(), SAF_LEN);
    assert_eq!(out.payload[..2], [0xC3, 0xD8], "CQ");
    assert_eq!(out.key, "CR|000124|TERM0001|0615120500");
    let record = Record::decode(&out.payload).unwrap();
    assert_eq!(record.pan, "5413330089010509");
    assert_eq!(record.amount, Decimal::new(800, 2));
    assert_eq!(record.approval_code, "Y00001");
    assert_eq!(record.reason, "00");
    assert!(!record.repeat);
    let again = formatter
        .format_saf(
            &SafRequest::advice("00").retransmitted(),
            &mut completion(),
            &MockEnv::new(),
        )
        .unwrap();
    assert!(Record::decode(&again.payload).unwrap().repeat);
    assert_eq!(again.key, out.key);
    // The advice's acknowledgement is read by parse-response.
    let mut ack = reply("CR", "00", "");
    ack.splice(2..8, ebcdic("000124"));
    ack.splice(8..18, ebcdic("0615120500"));
    assert_eq!(formatter.reply_key(&ack, &MockEnv::new()), Ok(out.key));
    let mut tx = completion();
    formatter
        .parse_response(&ack, &mut tx, &MockEnv::new())
        .unwrap();
    assert_eq!(tx.rc(), Some("00"));
}

#[test]
fn an_advice_of_anything_but_an_0220_is_refused() {
    let err = YyyFormatter::default()
        .format_saf(&SafRequest::advice("00"), &mut purchase(), &MockEnv::new())
        .unwrap_err();
    assert!(err.contains("0220") && err.contains("0200"), "{err}");
}

#[test]
fn a_late_ar_never_matches_a_waiting_rr() {
    let mut formatter = YyyFormatter::default();
    let env = MockEnv::new();
    let reversal = formatter
        .format_saf(&SafRequest::reversal("68"), &mut original(), &env)
        .unwrap();
    let late = formatter
        .reply_key(&reply("AR", "00", "Y00001"), &env)
        .unwrap();
    assert_eq!(late, "AR|000123|TERM0001|0615115959");
    assert_ne!(late, reversal.key);
    let ack = reply("RR", "00", "");
    assert_eq!(formatter.reply_key(&ack, &env), Ok(reversal.key));
    // The acknowledgement is read by parse-response, and sets no DE38.
    let mut tx = original();
    formatter.parse_response(&ack, &mut tx, &env).unwrap();
    assert_eq!(tx.rc(), Some("00"));
    let mut tx = original();
    formatter
        .parse_response(&reply("RR", "00", "Y00009"), &mut tx, &env)
        .unwrap();
    assert_eq!(
        tx.response().get(&38).map(Vec::as_slice),
        Some(&b"Y00001"[..])
    );
}

#[test]
fn settings_are_checked_every_problem_at_once() {
    let mut formatter = YyyFormatter::default();
    assert!(formatter.check_settings(&MockEnv::new()).is_empty());
    let good = MockEnv::new().with_config("default_currency", " 978 ");
    assert!(formatter.check_settings(&good).is_empty());
    let bad = MockEnv::new()
        .with_config("default_currency", "EUR")
        .with_config("tpdu_source", "0001");
    let problems = formatter.check_settings(&bad);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0].key, "default_currency");
    assert!(problems[0].message.contains("3 digits"), "{problems:?}");
    assert_eq!(problems[1].key, "tpdu_source");
    assert!(
        problems[1].message.contains("no such setting"),
        "{problems:?}"
    );
    for value in ["", "8400", "84", "8 0"] {
        let env = MockEnv::new().with_config("default_currency", value);
        assert_eq!(formatter.check_settings(&env).len(), 1, "{value:?}");
        // A bad value that reached a transaction anyway is refused there.
        let err = YyyFormatter::default()
            .format_request(&mut purchase(), &env)
            .unwrap_err();
        assert!(err.contains("setting `default_currency`"), "{err}");
    }
}

#[test]
fn settings_are_read_once_per_instance() {
    let env = MockEnv::new();
    let mut formatter = YyyFormatter::default();
    formatter.format_request(&mut purchase(), &env).unwrap();
    let calls = env.config_calls();
    assert_eq!(calls, 1);
    for _ in 0..3 {
        formatter.format_request(&mut purchase(), &env).unwrap();
        formatter
            .format_saf(&SafRequest::reversal("68"), &mut original(), &env)
            .unwrap();
    }
    assert_eq!(env.config_calls(), calls);
}

#[test]
fn one_host_call_reads_the_request() {
    let mut tx = purchase();
    format(&mut tx).unwrap();
    assert_eq!(tx.calls(), 1);
}

#[test]
fn records_round_trip_with_either_sign() {
    for units in [0i128, 1, -1, 105, -105, 999_999_999_999, -999_999_999_999] {
        let record = Record {
            kind: RecordType::ReversalReply,
            stan: "999999".into(),
            date_time: "1231235959".into(),
            terminal: "T 1".into(),
            merchant: "M-1".into(),
            pan: String::new(),
            expiry: "0000".into(),
            amount: Decimal::new(units, 2),
            currency: "978".into(),
            response_code: "00".into(),
            approval_code: String::new(),
            reason: "68".into(),
            repeat: true,
        };
        let bytes = record.encode().unwrap();
        assert_eq!(Record::decode(&bytes), Ok(record.clone()), "{units}");
        let zone = bytes[75] >> 4;
        assert_eq!(zone, if units < 0 { 0xD } else { 0xC }, "{units}");
    }
    let too_big = Record {
        amount: Decimal::new(1_000_000_000_000, 2),
        ..Record::decode(&reply("AR", "00", "")).unwrap()
    };
    assert_eq!(
        too_big.encode(),
        Err(RecordError {
            field: "YYY-AMOUNT",
            offset: 64,
            problem: Problem::AmountDoesNotFit
        })
    );
}

#[test]
fn the_pan_is_never_shown() {
    let record = Record::decode(&format(&mut purchase()).unwrap().payload).unwrap();
    let shown = format!("{record:?}");
    assert!(!shown.contains(TEST_PAN), "{shown}");
    assert!(shown.contains("476173******0119"), "{shown}");
}

#[test]
fn nothing_is_logged() {
    let env = MockEnv::new();
    let mut formatter = YyyFormatter::default();
    let mut tx = purchase();
    formatter.format_request(&mut tx, &env).unwrap();
    formatter.reply_key(&reply("AR", "00", "Y1"), &env).unwrap();
    formatter
        .parse_response(&reply("AR", "00", "Y1"), &mut tx, &env)
        .unwrap();
    formatter
        .format_saf(&SafRequest::reversal("68"), &mut original(), &env)
        .unwrap();
    let _ = formatter.format_request(&mut purchase().without_field(11), &env);
    assert!(env.logs().is_empty());
}
