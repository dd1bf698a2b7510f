//! Character classes of field content types, and the byte-level conversions of the wire
//! encodings (EBCDIC, BCD, hex).

use crate::spec::ContentType;

/// The first byte of `value` that `content` does not allow, with its index.
#[inline]
pub(crate) fn first_invalid(content: ContentType, value: &[u8]) -> Option<(usize, u8)> {
    // A branch-free pass first (no early exit, so it vectorizes) for the common, valid case;
    // the position of the first bad byte is only searched for when there is one.
    fn none_bad(value: &[u8], bad: impl Fn(u8) -> bool) -> bool {
        !value.iter().fold(false, |acc, &b| acc | bad(b))
    }
    let ok = match content {
        ContentType::B => return None,
        ContentType::N => none_bad(value, |b| b.wrapping_sub(b'0') >= 10),
        ContentType::Ans => none_bad(value, |b| b.wrapping_sub(0x20) >= 0x5f),
        ContentType::A => none_bad(value, |b| (b | 0x20).wrapping_sub(b'a') >= 26),
        ContentType::An => none_bad(value, |b| {
            b.wrapping_sub(b'0') >= 10 && (b | 0x20).wrapping_sub(b'a') >= 26
        }),
        ContentType::Z => none_bad(value, |b| !is_track(b)),
    };
    if ok {
        return None;
    }
    value
        .iter()
        .position(|&b| !allows(content, b))
        .map(|i| (i, value[i]))
}

/// Whether `content` allows the byte `b`.
pub(crate) fn allows(content: ContentType, b: u8) -> bool {
    match content {
        ContentType::B => true,
        ContentType::N => b.is_ascii_digit(),
        ContentType::A => b.is_ascii_alphabetic(),
        ContentType::An => b.is_ascii_alphanumeric(),
        ContentType::Ans => (0x20..0x7f).contains(&b),
        ContentType::Z => is_track(b),
    }
}

/// Track 2/3 characters (ISO/IEC 7813, ISO 4909): `0`–`9`, `:` `;` `<` `=` `>` `?` (the
/// separator, the start and end sentinels and the control characters), and `D`, the separator as
/// most hosts write it.
#[inline]
fn is_track(b: u8) -> bool {
    b.wrapping_sub(b'0') < 16 || b == b'D'
}

/// ASCII → EBCDIC (IBM code page 037) for the printable range 0x20..=0x7E.
const ASCII_TO_CP037_PRINTABLE: [u8; 95] = [
    0x40, 0x5a, 0x7f, 0x7b, 0x5b, 0x6c, 0x50, 0x7d, 0x4d, 0x5d, 0x5c, 0x4e, 0x6b, 0x60, 0x4b, 0x61,
    0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0x7a, 0x5e, 0x4c, 0x7e, 0x6e, 0x6f,
    0x7c, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6,
    0xd7, 0xd8, 0xd9, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xba, 0xe0, 0xbb, 0xb0, 0x6d,
    0x79, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96,
    0x97, 0x98, 0x99, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xc0, 0x4f, 0xd0, 0xa1,
];

/// ASCII → EBCDIC (IBM code page 1047, z/OS Open Systems) for the printable range: code page 037
/// except `[` (0xAD), `]` (0xBD) and `^` (0x5F).
const ASCII_TO_CP1047_PRINTABLE: [u8; 95] = {
    let mut t = ASCII_TO_CP037_PRINTABLE;
    t[(b'[' - 0x20) as usize] = 0xad;
    t[(b']' - 0x20) as usize] = 0xbd;
    t[(b'^' - 0x20) as usize] = 0x5f;
    t
};

/// A code page's conversion tables, both directions, for printable ASCII.
#[derive(Debug)]
pub(crate) struct EbcdicTables {
    /// ASCII → EBCDIC; printable ASCII only, anything else maps to the EBCDIC `?`.
    to_ebcdic: [u8; 256],
    /// EBCDIC → printable ASCII; 0 where the EBCDIC byte has no printable ASCII counterpart.
    to_ascii: [u8; 256],
}

const fn tables(printable: &[u8; 95]) -> EbcdicTables {
    let mut to_ebcdic = [0x6fu8; 256];
    let mut to_ascii = [0u8; 256];
    let mut i = 0;
    while i < 95 {
        to_ebcdic[0x20 + i] = printable[i];
        to_ascii[printable[i] as usize] = 0x20 + i as u8;
        i += 1;
    }
    EbcdicTables {
        to_ebcdic,
        to_ascii,
    }
}

/// IBM code page 037 (US/Canada).
pub(crate) static CP037: EbcdicTables = tables(&ASCII_TO_CP037_PRINTABLE);
/// IBM code page 1047 (Latin-1 / Open Systems).
pub(crate) static CP1047: EbcdicTables = tables(&ASCII_TO_CP1047_PRINTABLE);

impl EbcdicTables {
    /// The EBCDIC byte for a printable ASCII byte (callers validate content first; anything
    /// else maps to the EBCDIC question mark).
    #[inline]
    pub(crate) fn encode(&self, b: u8) -> u8 {
        self.to_ebcdic[b as usize]
    }

    /// The printable ASCII byte for an EBCDIC byte, if it has one.
    #[inline]
    pub(crate) fn decode(&self, b: u8) -> Option<u8> {
        match self.to_ascii[b as usize] {
            0 => None,
            a => Some(a),
        }
    }
}

/// The EBCDIC (code page 037) byte for a printable ASCII byte.
#[cfg(test)]
#[inline]
pub(crate) fn ascii_to_ebcdic(b: u8) -> u8 {
    CP037.encode(b)
}

/// The printable ASCII byte for an EBCDIC (code page 037) byte, if it has one.
#[cfg(test)]
#[inline]
pub(crate) fn ebcdic_to_ascii(b: u8) -> Option<u8> {
    CP037.decode(b)
}

/// The value of an ASCII hex digit (either case).
#[inline]
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// The upper-case ASCII hex digit for a nibble.
#[inline]
pub(crate) fn hex_digit(n: u8) -> u8 {
    b"0123456789ABCDEF"[(n & 0xf) as usize]
}

/// The nibble for a BCD character: digits, and for track data `D`/`=` as 0xD.
#[inline]
pub(crate) fn bcd_nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'D' | b'=' => Some(0xd),
        _ => None,
    }
}

/// The character for a BCD nibble in a field of `content` type: digits, and for track data
/// 0xD as `D`.
#[inline]
pub(crate) fn bcd_char(content: ContentType, n: u8) -> Option<u8> {
    match n {
        0..=9 => Some(b'0' + n),
        0xd if content == ContentType::Z => Some(b'D'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        use ContentType::*;
        assert_eq!(first_invalid(N, b"0123456789"), None);
        assert_eq!(first_invalid(N, b"12 4"), Some((2, b' ')));
        assert_eq!(first_invalid(N, b"/"), Some((0, b'/')));
        assert_eq!(first_invalid(N, b":"), Some((0, b':')));
        assert_eq!(first_invalid(A, b"AbcZz"), None);
        assert_eq!(first_invalid(A, b"Ab1"), Some((2, b'1')));
        assert_eq!(first_invalid(A, b"@"), Some((0, b'@')));
        assert_eq!(first_invalid(A, b"["), Some((0, b'[')));
        assert_eq!(first_invalid(A, b"`"), Some((0, b'`')));
        assert_eq!(first_invalid(A, b"{"), Some((0, b'{')));
        assert_eq!(first_invalid(An, b"A1b2"), None);
        assert_eq!(first_invalid(An, b"A1 "), Some((2, b' ')));
        assert_eq!(first_invalid(Ans, b" ~AB!"), None);
        assert_eq!(first_invalid(Ans, b"AB\x7f"), Some((2, 0x7f)));
        assert_eq!(first_invalid(Ans, b"AB\x1f"), Some((2, 0x1f)));
        assert_eq!(first_invalid(Ans, "é".as_bytes()), Some((0, 0xc3)));
        assert_eq!(first_invalid(Z, b";4761739001010119=2512?"), None);
        assert_eq!(first_invalid(Z, b"4761739001010119D2512"), None);
        assert_eq!(first_invalid(Z, b"47617^"), Some((5, b'^')));
        assert_eq!(first_invalid(B, &[0, 0xff]), None);
        // `allows` agrees with the fast path for every byte.
        for c in [N, A, An, Ans, Z, B] {
            for b in 0..=255u8 {
                assert_eq!(first_invalid(c, &[b]).is_none(), allows(c, b), "{c:?} {b}");
            }
        }
    }

    #[test]
    fn ebcdic_round_trips_printable_ascii() {
        for a in 0x20..=0x7eu8 {
            assert_eq!(ebcdic_to_ascii(ascii_to_ebcdic(a)), Some(a));
        }
        assert_eq!(ascii_to_ebcdic(b'0'), 0xf0);
        assert_eq!(ascii_to_ebcdic(b'A'), 0xc1);
        assert_eq!(ascii_to_ebcdic(b' '), 0x40);
        assert_eq!(ebcdic_to_ascii(0x00), None);
        assert_eq!(ebcdic_to_ascii(0xff), None);
        for a in 0x20..=0x7eu8 {
            assert_eq!(CP1047.decode(CP1047.encode(a)), Some(a));
        }
        assert_eq!(CP1047.encode(b'['), 0xad);
        assert_eq!(CP1047.encode(b'^'), 0x5f);
        assert_eq!(CP037.encode(b'^'), 0xb0);
        assert_eq!(CP1047.decode(0xb0), None);
    }
}
