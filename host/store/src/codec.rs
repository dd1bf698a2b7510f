//! The private binary form of a stored message (before encryption) and the
//! derived clear columns (message class, masked PAN).
//!
//! Form: the 4-byte MTI, then for each field in ascending order its number
//! (u16 BE), its length (u32 BE) and its bytes.

use switchyard_engine::iso8583::{Message, Mti};

use crate::StoreError;

/// Fields never stored, whatever the caller passed: track 2 and 3, track 1,
/// the PIN block, chip data.
pub(crate) const NEVER_STORED: [u16; 5] = [35, 36, 45, 52, 55];

/// The stored form of `message`, without the fields in [`NEVER_STORED`].
/// Returns the bytes and whether a field had to be dropped.
pub(crate) fn encode(message: &Message) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(4 + message.len() * 16);
    out.extend_from_slice(message.mti().as_bytes());
    let mut stripped = false;
    for (field, value) in message.fields() {
        if NEVER_STORED.contains(&field) {
            stripped = true;
            continue;
        }
        out.extend_from_slice(&field.to_be_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
    (out, stripped)
}

/// The message [`encode`] wrote.
pub(crate) fn decode(mut bytes: &[u8]) -> Result<Message, StoreError> {
    let corrupt = |why: &str| StoreError::Corrupt(format!("stored message: {why}"));
    let mti = bytes
        .get(..4)
        .and_then(Mti::try_from_bytes)
        .ok_or_else(|| corrupt("no MTI"))?;
    bytes = &bytes[4..];
    let mut message = Message::new(mti);
    while !bytes.is_empty() {
        let header = bytes
            .get(..6)
            .ok_or_else(|| corrupt("truncated field header"))?;
        let field = u16::from_be_bytes([header[0], header[1]]);
        let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
        let value = bytes
            .get(6..6 + len)
            .ok_or_else(|| corrupt("truncated field"))?;
        message
            .try_set(field, value.to_vec())
            .map_err(|e| corrupt(&e.to_string()))?;
        bytes = &bytes[6 + len..];
    }
    Ok(message)
}

/// The message class of `mti`: its last digit set to 0 (0201 → 0200,
/// 0421 → 0420).
pub(crate) fn class(mti: &str) -> String {
    let mut class = mti.to_string();
    if class.len() == 4 && class.is_char_boundary(3) {
        class.replace_range(3.., "0");
    }
    class
}

/// The PAN as shown: first 6 and last 4 digits, the rest `*`.
pub(crate) fn mask_pan(pan: &str) -> String {
    let chars: Vec<char> = pan.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let n = chars.len();
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < 6 || i >= n - 4 { *c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_strips_sensitive_fields() {
        let mut m = Message::new(Mti::new("0200").unwrap());
        m.set(2, b"4761739001010119".to_vec());
        m.set(4, b"000000001000".to_vec());
        m.set(35, b"4761739001010119=2512".to_vec());
        m.set(52, vec![1u8, 2, 3, 4, 5, 6, 7, 8]);
        m.set(128, vec![0u8; 8]);
        let (bytes, stripped) = encode(&m);
        assert!(stripped);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.get(2), m.get(2));
        assert_eq!(back.get(128), m.get(128));
        assert!(!back.contains(35) && !back.contains(52));
        assert_eq!(back.mti_str(), "0200");
        let (again, stripped) = encode(&back);
        assert!(!stripped);
        assert_eq!(again, bytes);
    }

    #[test]
    fn truncated_or_garbage_forms_are_errors_not_panics() {
        let mut m = Message::new(Mti::new("0420").unwrap());
        m.set(11, b"123456".to_vec());
        let (bytes, _) = encode(&m);
        for n in 0..bytes.len() {
            if n != 4 {
                assert!(decode(&bytes[..n]).is_err(), "{n}");
            }
        }
        assert!(decode(b"0200\x00\x01\x00\x00\x00\x00").is_err()); // field 1
    }

    #[test]
    fn class_and_mask() {
        assert_eq!(class("0201"), "0200");
        assert_eq!(class("0421"), "0420");
        assert_eq!(class("0420"), "0420");
        assert_eq!(mask_pan("4761739001010119"), "476173******0119");
        assert_eq!(mask_pan("1234"), "****");
    }
}
