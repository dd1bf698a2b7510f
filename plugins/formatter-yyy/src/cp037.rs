//! IBM code page 037 (EBCDIC, US/Canada) for the printable ASCII range, both directions: the
//! text of every `X(n)` and the digits of every `9(n)` field of a yyy record.

/// ASCII 0x20..=0x7E → code page 037, in ASCII order.
const PRINTABLE: [u8; 95] = [
    0x40, 0x5a, 0x7f, 0x7b, 0x5b, 0x6c, 0x50, 0x7d, 0x4d, 0x5d, 0x5c, 0x4e, 0x6b, 0x60, 0x4b, 0x61,
    0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0x7a, 0x5e, 0x4c, 0x7e, 0x6e, 0x6f,
    0x7c, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6,
    0xd7, 0xd8, 0xd9, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xba, 0xe0, 0xbb, 0xb0, 0x6d,
    0x79, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96,
    0x97, 0x98, 0x99, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xc0, 0x4f, 0xd0, 0xa1,
];

/// EBCDIC → ASCII; 0 where the EBCDIC byte is not a printable character.
const TO_ASCII: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < PRINTABLE.len() {
        t[PRINTABLE[i] as usize] = 0x20 + i as u8;
        i += 1;
    }
    t
};

/// The EBCDIC space, the padding of every `X(n)` field.
pub const SPACE: u8 = 0x40;

/// The code page 037 byte of a printable ASCII byte; `None` for anything else.
pub fn encode(ascii: u8) -> Option<u8> {
    PRINTABLE
        .get(usize::from(ascii.checked_sub(0x20)?))
        .copied()
}

/// The printable ASCII byte of a code page 037 byte; `None` when it has none.
pub fn decode(ebcdic: u8) -> Option<u8> {
    match TO_ASCII[usize::from(ebcdic)] {
        0 => None,
        a => Some(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_round_trips_and_nothing_else_maps() {
        for a in 0x20..=0x7eu8 {
            let e = encode(a).unwrap();
            assert_eq!(decode(e), Some(a), "{a:#04x}");
        }
        for a in (0..0x20u8).chain(0x7f..=0xff) {
            assert_eq!(encode(a), None, "{a:#04x}");
        }
        let mapped = (0..=255u8).filter(|&e| decode(e).is_some()).count();
        assert_eq!(mapped, 95, "one EBCDIC byte per printable character");
    }

    #[test]
    fn the_characters_of_the_records() {
        assert_eq!(encode(b' '), Some(SPACE));
        assert_eq!(encode(b'0'), Some(0xf0));
        assert_eq!(encode(b'9'), Some(0xf9));
        // The record types: A, Q, R, C.
        assert_eq!(encode(b'A'), Some(0xc1));
        assert_eq!(encode(b'Q'), Some(0xd8));
        assert_eq!(encode(b'R'), Some(0xd9));
        assert_eq!(encode(b'C'), Some(0xc3));
        // The overpunch characters read as text: `{` is +0, `}` is -0.
        assert_eq!(encode(b'{'), Some(0xc0));
        assert_eq!(encode(b'}'), Some(0xd0));
        assert_eq!(decode(0x00), None);
        assert_eq!(decode(0xff), None);
    }
}
