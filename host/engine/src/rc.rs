//! Response codes (DE39) of the default wire contract.
//!
//! Codes are strings, not an enum: endpoints pass their own codes through,
//! and the set grows without breaking anyone.

/// Approved.
pub const APPROVED: &str = "00";
/// Refer to card issuer (approve with ID) — unused by the default pipeline.
pub const DO_NOT_HONOUR: &str = "05";
/// Unsupported message type.
pub const UNSUPPORTED: &str = "12";
/// Invalid amount.
pub const INVALID_AMOUNT: &str = "13";
/// Invalid card number.
pub const INVALID_CARD: &str = "14";
/// Format error: undecodable, or a mandatory field missing.
pub const FORMAT_ERROR: &str = "30";
/// Not sufficient funds (endpoint simulator).
pub const INSUFFICIENT_FUNDS: &str = "51";
/// Expired card.
pub const EXPIRED_CARD: &str = "54";
/// Over the local-auth amount limit.
pub const OVER_LIMIT: &str = "61";
/// The endpoint did not answer in time or is unreachable.
pub const ISSUER_UNAVAILABLE: &str = "91";
/// A participant failed (trap, deadline, host error).
pub const SYSTEM_ERROR: &str = "96";

/// What a response code means, for people at a terminal: the ISO 8583:1987
/// two-character response codes (DE39) and the ISO 8583:1993 three-digit
/// action codes most hosts send. `None` for a code outside both tables.
pub fn meaning(code: &str) -> Option<&'static str> {
    match code.len() {
        2 => MEANINGS_1987.iter(),
        3 => MEANINGS_1993.iter(),
        _ => return None,
    }
    .find(|(c, _)| *c == code)
    .map(|(_, m)| *m)
}

/// The ISO 8583:1993 action code (DE39 n3) that carries the 1987 response
/// code `rc`, for specs whose DE39 is three digits; `None` for a code
/// without an equivalent. An approval is `000`, the authorization and
/// financial classes' code: [`action_code_1993_for`] gives the accepting
/// code of every message class.
pub fn action_code_1993(rc: &str) -> Option<&'static str> {
    ACTION_CODES.iter().find(|(c, _)| *c == rc).map(|(_, a)| *a)
}

/// Like [`action_code_1993`], for a response of message class `class`
/// (the MTI's second digit, as an ASCII digit). ISO 8583:1993 accepts each
/// class with its own code: `00` is `000` for authorizations and financial
/// messages (x1xx, x2xx), and the class digit followed by `00` for the
/// others: 300 file action successful, 400 reversal or chargeback
/// accepted, 500 reconciled in balance, 600 administrative accepted, 700
/// fee collection accepted, 800 network management accepted. Declines and
/// rejections (1xx, 9xx) are the same in every class.
pub fn action_code_1993_for(rc: &str, class: u8) -> Option<&'static str> {
    if rc != APPROVED {
        return action_code_1993(rc);
    }
    Some(match class {
        b'3' => "300",
        b'4' => "400",
        b'5' => "500",
        b'6' => "600",
        b'7' => "700",
        b'8' => "800",
        _ => "000",
    })
}

/// 1987 response code → 1993 action code.
const ACTION_CODES: &[(&str, &str)] = &[
    ("00", "000"),
    ("01", "107"),
    ("03", "109"),
    ("04", "200"),
    ("05", "100"),
    ("08", "001"),
    ("10", "002"),
    ("11", "003"),
    ("12", "902"),
    ("13", "110"),
    ("14", "111"),
    ("15", "908"),
    ("25", "914"),
    ("30", "904"),
    ("51", "116"),
    ("54", "101"),
    ("55", "117"),
    ("57", "119"),
    ("58", "120"),
    ("59", "102"),
    ("61", "121"),
    ("62", "104"),
    ("65", "123"),
    ("75", "106"),
    ("91", "911"),
    ("92", "908"),
    ("94", "913"),
    ("96", "909"),
];

const MEANINGS_1987: &[(&str, &str)] = &[
    ("00", "approved"),
    ("01", "refer to card issuer"),
    ("02", "refer to card issuer, special condition"),
    ("03", "invalid merchant"),
    ("04", "pick up card"),
    ("05", "do not honour"),
    ("06", "error"),
    ("07", "pick up card, special condition"),
    ("08", "honour with identification"),
    ("10", "approved for partial amount"),
    ("11", "approved (VIP)"),
    ("12", "invalid transaction"),
    ("13", "invalid amount"),
    ("14", "invalid card number"),
    ("15", "no such issuer"),
    ("19", "re-enter transaction"),
    ("21", "no action taken"),
    ("25", "unable to locate record (original not found)"),
    ("30", "format error"),
    ("33", "expired card, pick up"),
    ("39", "no credit account"),
    ("41", "lost card, pick up"),
    ("43", "stolen card, pick up"),
    ("51", "not sufficient funds"),
    ("54", "expired card"),
    ("55", "incorrect PIN"),
    ("57", "transaction not permitted to cardholder"),
    ("58", "transaction not permitted to terminal"),
    ("59", "suspected fraud"),
    ("61", "exceeds withdrawal amount limit"),
    ("62", "restricted card"),
    ("63", "security violation"),
    ("65", "exceeds withdrawal frequency limit"),
    ("68", "response received too late"),
    ("75", "allowable number of PIN tries exceeded"),
    ("76", "invalid or non-existent original transaction"),
    ("77", "inconsistent with original transaction"),
    ("78", "blocked, first used"),
    ("85", "no reason to decline"),
    ("90", "cutoff is in process"),
    ("91", "issuer or switch inoperative"),
    ("92", "financial institution cannot be found for routing"),
    ("93", "transaction cannot be completed, violation of law"),
    ("94", "duplicate transmission"),
    ("96", "system malfunction"),
];

const MEANINGS_1993: &[(&str, &str)] = &[
    ("000", "approved"),
    ("001", "honour with identification"),
    ("002", "approved for partial amount"),
    ("003", "approved (VIP)"),
    ("100", "do not honour"),
    ("101", "expired card"),
    ("102", "suspected fraud"),
    ("104", "restricted card"),
    ("106", "allowable PIN tries exceeded"),
    ("107", "refer to card issuer"),
    ("109", "invalid merchant"),
    ("110", "invalid amount"),
    ("111", "invalid card number"),
    ("116", "not sufficient funds"),
    ("117", "incorrect PIN"),
    ("118", "no card record"),
    ("119", "transaction not permitted to cardholder"),
    ("120", "transaction not permitted to terminal"),
    ("121", "exceeds withdrawal amount limit"),
    ("123", "exceeds withdrawal frequency limit"),
    ("200", "do not honour, pick up card"),
    ("300", "file action successful"),
    ("400", "reversal accepted"),
    ("500", "reconciled, in balance"),
    ("600", "administrative request accepted"),
    ("700", "fee collection accepted"),
    ("800", "network management accepted"),
    ("902", "invalid transaction"),
    ("904", "format error"),
    ("906", "cutover in process"),
    ("907", "card issuer or switch inoperative"),
    ("908", "transaction destination cannot be found for routing"),
    ("909", "system malfunction"),
    ("911", "card issuer timed out"),
    ("913", "duplicate transmission"),
    ("914", "original transaction not found"),
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_code_of_the_default_contract_has_a_meaning() {
        for code in [
            super::APPROVED,
            super::DO_NOT_HONOUR,
            super::UNSUPPORTED,
            super::INVALID_AMOUNT,
            super::INVALID_CARD,
            super::FORMAT_ERROR,
            super::INSUFFICIENT_FUNDS,
            super::EXPIRED_CARD,
            super::OVER_LIMIT,
            super::ISSUER_UNAVAILABLE,
            super::SYSTEM_ERROR,
            "15",
            "25",
            "94",
        ] {
            assert!(super::meaning(code).is_some(), "{code}");
        }
        assert_eq!(
            super::meaning("61"),
            Some("exceeds withdrawal amount limit")
        );
        assert_eq!(super::meaning("116"), Some("not sufficient funds"));
        assert_eq!(super::meaning("X9"), None);
    }

    #[test]
    fn every_1993_action_code_has_a_meaning() {
        for (rc, action) in super::ACTION_CODES {
            assert!(super::meaning(rc).is_some(), "{rc}");
            assert!(super::meaning(action).is_some(), "{rc} → {action}");
        }
        assert_eq!(super::action_code_1993("51"), Some("116"));
        assert_eq!(super::action_code_1993("91"), Some("911"));
    }

    #[test]
    fn each_1993_message_class_accepts_with_its_own_code() {
        use super::action_code_1993_for as code;
        for (class, accepted) in [
            (b'1', "000"),
            (b'2', "000"),
            (b'3', "300"),
            (b'4', "400"),
            (b'5', "500"),
            (b'6', "600"),
            (b'7', "700"),
            (b'8', "800"),
            (b'9', "000"),
        ] {
            assert_eq!(code("00", class), Some(accepted), "class {}", class as char);
            assert!(super::meaning(accepted).is_some(), "{accepted}");
        }
        // Declines and rejections do not depend on the class.
        assert_eq!(code("25", b'4'), Some("914"));
        assert_eq!(code("30", b'4'), Some("904"));
        assert_eq!(code("12", b'8'), Some("902"));
        assert_eq!(code("51", b'2'), Some("116"));
        assert_eq!(code("X9", b'2'), None);
    }
}
