//! Card numbers (PAN, DE2): Luhn check, validity, masking, BIN.
//!
//! Never log or print a PAN: [`mask_pan`] keeps at most the first six and
//! the last four digits.

/// Shortest PAN accepted (ISO/IEC 7812).
pub const PAN_MIN_LEN: usize = 12;
/// Longest PAN accepted (ISO/IEC 7812).
pub const PAN_MAX_LEN: usize = 19;

/// Whether `digits` passes the Luhn (mod 10) check. False for an empty
/// string or any character that is not an ASCII digit.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, &c) in digits.iter().rev().enumerate() {
        if !c.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(c - b'0');
        if !i.is_multiple_of(2) {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// Whether `pan` is a plausible card number: 12 to 19 ASCII digits that pass
/// the Luhn check.
pub fn is_valid_pan(pan: &[u8]) -> bool {
    (PAN_MIN_LEN..=PAN_MAX_LEN).contains(&pan.len()) && luhn_valid(pan)
}

/// The PAN with everything but the first six and last four characters
/// replaced by `*`. Shorter values keep less: below 12 characters only the
/// last four are shown, below 8 nothing. Bytes that are not printable ASCII
/// are shown as `?`.
pub fn mask_pan(pan: &[u8]) -> String {
    let len = pan.len();
    let (head, tail) = match len {
        12.. => (6, 4),
        8..=11 => (0, 4),
        _ => (0, 0),
    };
    pan.iter()
        .enumerate()
        .map(|(i, &c)| {
            if i < head || i >= len - tail {
                if c.is_ascii_graphic() {
                    char::from(c)
                } else {
                    '?'
                }
            } else {
                '*'
            }
        })
        .collect()
}

/// The bank identification number: the first six digits of a PAN of valid
/// length, or `None` when the PAN is too short or they are not digits.
pub fn bin(pan: &[u8]) -> Option<&str> {
    bin_of_len(pan, 6)
}

/// The first `len` digits of a PAN of valid length (6 or 8 for BIN tables).
pub fn bin_of_len(pan: &[u8], len: usize) -> Option<&str> {
    if pan.len() < PAN_MIN_LEN || len > pan.len() {
        return None;
    }
    let prefix = &pan[..len];
    if !prefix.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(prefix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published test card (Visa); passes Luhn.
    const TEST_PAN: &[u8] = b"4761739001010119";
    /// The same with its last digit changed: fails Luhn.
    const BAD_LUHN_PAN: &[u8] = b"4761739001010118";

    #[test]
    fn luhn_accepts_the_test_card_and_rejects_a_changed_digit() {
        assert!(luhn_valid(TEST_PAN));
        assert!(!luhn_valid(BAD_LUHN_PAN));
        assert!(luhn_valid(b"79927398713"));
        assert!(!luhn_valid(b"79927398710"));
        assert!(luhn_valid(b"0"));
    }

    #[test]
    fn luhn_rejects_empty_and_non_digits() {
        assert!(!luhn_valid(b""));
        assert!(!luhn_valid(b"4761 7390 0101 0119"));
        assert!(!luhn_valid(b"476173900101011A"));
    }

    #[test]
    fn valid_pan_needs_12_to_19_digits_and_luhn() {
        assert!(is_valid_pan(TEST_PAN));
        assert!(!is_valid_pan(BAD_LUHN_PAN));
        assert!(!is_valid_pan(b"79927398713"), "11 digits");
        assert!(is_valid_pan(b"000000000000"), "12 digits");
        assert!(is_valid_pan(b"0000000000000000000"), "19 digits");
        assert!(!is_valid_pan(b"00000000000000000000"), "20 digits");
    }

    #[test]
    fn mask_keeps_first_six_and_last_four() {
        assert_eq!(mask_pan(TEST_PAN), "476173******0119");
        assert_eq!(mask_pan(b"123456789012"), "123456**9012");
        assert_eq!(mask_pan(b"1234567890123456789"), "123456*********6789");
        assert_eq!(mask_pan(b"12345678901"), "*******8901");
        assert_eq!(mask_pan(b"1234567"), "*******");
        assert_eq!(mask_pan(b""), "");
        assert_eq!(
            mask_pan(b"476173\x00\x01\x02\x03\x04\x05\n119"),
            "476173******?119"
        );
    }

    #[test]
    fn bin_is_the_first_six_digits() {
        assert_eq!(bin(TEST_PAN), Some("476173"));
        assert_eq!(bin_of_len(TEST_PAN, 8), Some("47617390"));
        assert_eq!(bin(b"12345"), None);
        assert_eq!(bin(b"79927398713"), None, "too short for a PAN");
        assert_eq!(bin(b"47A173900101011"), None);
    }
}
