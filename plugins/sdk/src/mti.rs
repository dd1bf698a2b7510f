//! Message type indicators of the default wire contract.

/// Authorization request.
pub const AUTHORIZATION: &str = "0100";
/// Financial transaction request.
pub const FINANCIAL: &str = "0200";
/// Repeat of an authorization request.
pub const AUTHORIZATION_REPEAT: &str = "0101";
/// Repeat of a financial transaction request.
pub const FINANCIAL_REPEAT: &str = "0201";
/// Network management request.
pub const NETWORK_MANAGEMENT: &str = "0800";

/// DE70 of an echo test.
pub const ECHO_TEST: &[u8] = b"301";

/// Whether the MTI moves money: an authorization or financial request.
pub fn is_financial(mti: &str) -> bool {
    mti == AUTHORIZATION || mti == FINANCIAL
}

/// Whether the MTI is an authorization or financial request or its repeat
/// (0100, 0101, 0200, 0201). A repeat the switch has a record of is answered
/// from the record by the host; one whose original it never saw reaches the
/// pipeline and is processed as the original.
pub fn is_financial_or_repeat(mti: &str) -> bool {
    is_financial(mti) || mti == AUTHORIZATION_REPEAT || mti == FINANCIAL_REPEAT
}

/// [`is_financial_or_repeat`] in ISO 8583:1987 or 1993: 0100, 0101, 0200,
/// 0201, 1100, 1101, 1200, 1201. The MTI's version digit, not the
/// listener's spec, says which version a request is; a participant that
/// limits or moves money must see both.
pub fn is_financial_or_repeat_any_version(mti: &str) -> bool {
    match mti.as_bytes() {
        [b'0' | b'1', rest @ ..] => {
            let as_1987 = [b"0".as_slice(), rest].concat();
            std::str::from_utf8(&as_1987).is_ok_and(is_financial_or_repeat)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_versions_are_financial_or_repeats() {
        for mti in [
            "0100", "0101", "0200", "0201", "1100", "1101", "1200", "1201",
        ] {
            assert!(is_financial_or_repeat_any_version(mti), "{mti}");
        }
        for mti in ["0800", "1804", "0420", "1420", "2100", "", "01", "1a00"] {
            assert!(!is_financial_or_repeat_any_version(mti), "{mti}");
        }
    }

    #[test]
    fn only_0100_and_0200_are_financial() {
        assert!(is_financial("0100"));
        assert!(is_financial("0200"));
        assert!(!is_financial("0800"));
        assert!(!is_financial("0400"));
        assert!(!is_financial("0110"));
        assert!(!is_financial("0201"));
    }

    #[test]
    fn repeats_count_with_their_originals() {
        for mti in ["0100", "0101", "0200", "0201"] {
            assert!(is_financial_or_repeat(mti), "{mti}");
        }
        for mti in [
            "0110", "0210", "0220", "0221", "0400", "0420", "0421", "0800",
        ] {
            assert!(!is_financial_or_repeat(mti), "{mti}");
        }
    }
}
