//! One ISO 8583 message: its MTI and its data elements.

use std::fmt;

use bytes::Bytes;

use crate::mti::Mti;
use crate::redact::Shown;

/// Field numbers a [`Message`] can hold: 2..=64, 66..=192.
/// 1 and 65 are the secondary and tertiary bitmap indicators, managed by the codec.
pub(crate) const fn is_data_element(field: u16) -> bool {
    matches!(field, 2..=64 | 66..=192)
}

/// Word index and bit mask of `field` (1..=192) in a presence map. Bits are in wire order:
/// field 1 is the most significant bit of word 0, field 64 its least significant bit.
#[inline]
pub(crate) const fn bit(field: u16) -> (usize, u64) {
    let i = (field - 1) as usize;
    (i / 64, 1u64 << (63 - (i % 64)))
}

/// The field number is not a data element (0, 1, 65 or above 192).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("field {0} is not a data element (valid: 2..=64 and 66..=192; 1 and 65 are bitmaps)")]
pub struct FieldNumberError(pub u16);

/// A message: MTI + data elements 2..=192 (1 and 65 are bitmaps, managed by the codec).
///
/// Field values are the *logical* content: for n/a/an/ans/z fields the characters as ASCII
/// bytes (digits for n, whatever the wire encoding), for b fields the raw bytes. They never
/// include length prefixes. Values are [`Bytes`], so a message decoded from an ASCII spec
/// borrows from its frame.
///
/// Storage is compact: a 192-bit presence map and the present values in ascending field order
/// (a field's index is the number of present fields before it).
///
/// `Debug` never shows a full PAN (DE2 and DE34 are masked to first 6 + last 4) nor track data,
/// PIN blocks or chip data (DE35, DE36, DE45, DE52, DE55 show `<redacted>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    mti: Mti,
    present: [u64; 3],
    values: Vec<Bytes>,
}

impl Default for Message {
    /// An empty message with MTI `0000`.
    fn default() -> Message {
        Message::new(Mti::from_bytes(*b"0000"))
    }
}

impl Message {
    /// An empty message.
    pub fn new(mti: Mti) -> Message {
        Message {
            mti,
            present: [0; 3],
            values: Vec::new(),
        }
    }

    /// An empty message with room for `fields` values.
    pub fn with_capacity(mti: Mti, fields: usize) -> Message {
        Message {
            mti,
            present: [0; 3],
            values: Vec::with_capacity(fields.min(192)),
        }
    }

    /// The message type indicator.
    pub fn mti(&self) -> Mti {
        self.mti
    }

    /// The message type indicator as text, borrowed from the message (`msg.mti().as_str()`
    /// borrows a temporary copy).
    pub fn mti_str(&self) -> &str {
        self.mti.as_str()
    }

    /// Replaces the message type indicator.
    pub fn set_mti(&mut self, mti: Mti) {
        self.mti = mti;
    }

    /// Index into `values` of `field` if it were present; `None` if the number is out of range.
    #[inline]
    fn slot(&self, field: u16) -> Option<(usize, usize, u64)> {
        if !(1..=192).contains(&field) {
            return None;
        }
        let (w, m) = bit(field);
        let before = match w {
            0 => 0,
            1 => self.present[0].count_ones(),
            _ => self.present[0].count_ones() + self.present[1].count_ones(),
        } + (self.present[w] & !(m | (m - 1))).count_ones();
        Some((before as usize, w, m))
    }

    /// The value of `field`, if present.
    #[inline]
    pub fn get(&self, field: u16) -> Option<&[u8]> {
        self.get_bytes(field).map(|b| &b[..])
    }

    /// The value of `field` as shared [`Bytes`], if present.
    #[inline]
    pub fn get_bytes(&self, field: u16) -> Option<&Bytes> {
        let (i, w, m) = self.slot(field)?;
        if self.present[w] & m == 0 {
            return None;
        }
        self.values.get(i)
    }

    /// The value of `field` as text; `None` if absent or not UTF-8.
    pub fn get_str(&self, field: u16) -> Option<&str> {
        std::str::from_utf8(self.get(field)?).ok()
    }

    /// Whether `field` is present.
    pub fn contains(&self, field: u16) -> bool {
        (1..=192).contains(&field) && {
            let (w, m) = bit(field);
            self.present[w] & m != 0
        }
    }

    /// Sets `field` to `value`, replacing any previous value.
    ///
    /// Panics in debug builds if `field` is 0, 1, 65 or above 192 (in release builds such a call
    /// is ignored) — use [`Message::try_set`] for field numbers from untrusted input.
    pub fn set(&mut self, field: u16, value: impl Into<Bytes>) {
        let result = self.try_set(field, value);
        debug_assert!(result.is_ok(), "{}", FieldNumberError(field));
    }

    /// Sets `field` to `value`, replacing any previous value, or says why the field number is
    /// not a data element.
    pub fn try_set(&mut self, field: u16, value: impl Into<Bytes>) -> Result<(), FieldNumberError> {
        if !is_data_element(field) {
            return Err(FieldNumberError(field));
        }
        let Some((i, w, m)) = self.slot(field) else {
            return Err(FieldNumberError(field));
        };
        let value = value.into();
        if self.present[w] & m != 0 {
            self.values[i] = value;
        } else {
            self.present[w] |= m;
            self.values.insert(i, value);
        }
        Ok(())
    }

    /// Appends a field known to be a data element and above every present field (decoder).
    #[inline]
    pub(crate) fn push_ascending(&mut self, field: u16, value: Bytes) {
        debug_assert!(is_data_element(field));
        debug_assert!(self.field_numbers().last().is_none_or(|last| last < field));
        let (w, m) = bit(field);
        self.present[w] |= m;
        self.values.push(value);
    }

    /// Removes `field` and returns its value.
    pub fn remove(&mut self, field: u16) -> Option<Bytes> {
        let (i, w, m) = self.slot(field)?;
        if self.present[w] & m == 0 {
            return None;
        }
        self.present[w] &= !m;
        Some(self.values.remove(i))
    }

    /// The present fields and their values, in ascending field order.
    pub fn fields(&self) -> impl Iterator<Item = (u16, &Bytes)> {
        self.field_numbers().zip(self.values.iter())
    }

    /// The present field numbers, ascending.
    pub fn field_numbers(&self) -> impl Iterator<Item = u16> + use<> {
        FieldNumbers {
            present: self.present,
            word: 0,
        }
    }

    /// The presence map in wire order (bit 63 of word 0 is field 1); bits 1 and 65 are never set.
    pub(crate) fn presence(&self) -> &[u64; 3] {
        &self.present
    }

    pub(crate) fn values(&self) -> &[Bytes] {
        &self.values
    }

    /// The number of present fields.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no field is present.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Iterates the set bits of a presence map as field numbers.
pub(crate) struct FieldNumbers {
    pub(crate) present: [u64; 3],
    pub(crate) word: usize,
}

impl Iterator for FieldNumbers {
    type Item = u16;
    #[inline]
    fn next(&mut self) -> Option<u16> {
        while self.word < 3 {
            let w = &mut self.present[self.word];
            if *w != 0 {
                let lz = w.leading_zeros();
                *w &= !(1u64 << (63 - lz));
                return Some((self.word as u16) * 64 + lz as u16 + 1);
            }
            self.word += 1;
        }
        None
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Value<'a>(u16, &'a [u8]);
        impl fmt::Debug for Value<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(
                    &Shown {
                        field: self.0,
                        value: self.1,
                        limit: usize::MAX,
                    },
                    f,
                )
            }
        }
        struct Mti<'a>(&'a str);
        impl fmt::Debug for Mti<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        let mut map = f.debug_map();
        map.entry(&Mti("mti"), &Mti(self.mti.as_str()));
        for (n, v) in self.fields() {
            map.entry(&n, &Value(n, v));
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mti() -> Mti {
        Mti::new("0200").unwrap()
    }

    #[test]
    fn set_get_remove_in_any_order() {
        let mut m = Message::new(mti());
        assert!(m.is_empty());
        for f in [41u16, 2, 192, 128, 66, 64, 11, 129, 3] {
            m.set(f, f.to_string());
        }
        assert_eq!(
            m.field_numbers().collect::<Vec<_>>(),
            [2, 3, 11, 41, 64, 66, 128, 129, 192]
        );
        for (f, v) in m.fields() {
            assert_eq!(v, f.to_string().as_bytes());
        }
        assert_eq!(m.get_str(41), Some("41"));
        m.set(41, "replaced");
        assert_eq!(m.get_str(41), Some("replaced"));
        assert_eq!(m.len(), 9);
        assert_eq!(m.remove(64).as_deref(), Some(&b"64"[..]));
        assert_eq!(m.remove(64), None);
        assert!(!m.contains(64));
        assert!(m.contains(66));
        assert_eq!(m.get(66), Some(&b"66"[..]));
        assert_eq!(m.get(0), None);
        assert_eq!(m.get(193), None);
        assert_eq!(m.get(u16::MAX), None);
        assert_eq!(m.len(), 8);
    }

    #[test]
    fn bitmap_fields_and_out_of_range_are_refused() {
        let mut m = Message::new(mti());
        for f in [0u16, 1, 65, 193, u16::MAX] {
            assert_eq!(m.try_set(f, "x"), Err(FieldNumberError(f)));
        }
        assert!(m.is_empty());
        assert_eq!(
            FieldNumberError(65).to_string(),
            "field 65 is not a data element (valid: 2..=64 and 66..=192; 1 and 65 are bitmaps)"
        );
    }

    #[test]
    fn equality_ignores_insertion_order() {
        let mut a = Message::new(mti());
        a.set(4, "000000001000");
        a.set(2, "4761739001010119");
        let mut b = Message::new(mti());
        b.set(2, "4761739001010119");
        b.set(4, "000000001000");
        assert_eq!(a, b);
        b.set_mti(Mti::new("0210").unwrap());
        assert_ne!(a, b);
    }

    #[test]
    fn debug_masks_the_pan_and_hides_secrets() {
        let mut m = Message::new(mti());
        m.set(2, "4761739001010119");
        m.set(4, "000000001000");
        m.set(35, "4761739001010119D25122011758928889");
        m.set(45, "B4761739001010119^TEST/CARD^2512");
        m.set(52, &[0x12u8, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0][..]);
        m.set(55, &[0x9fu8, 0x26][..]);
        m.set(64, &[0x01u8, 0x02][..]);
        let s = format!("{m:?}");
        assert_eq!(
            s,
            "{mti: 0200, 2: \"476173******0119\", 4: \"000000001000\", 35: <redacted>, \
             45: <redacted>, 52: <redacted>, 55: <redacted>, 64: 0x0102}"
        );
        assert!(!s.contains("4761739001010119"));
        assert!(!format!("{m:#?}").contains("4761739001010119"));
    }

    #[test]
    fn default_is_empty_0000() {
        let m = Message::default();
        assert_eq!(m.mti().as_str(), "0000");
        assert_eq!(m.mti_str(), "0000");
        assert!(m.is_empty());
    }
}
