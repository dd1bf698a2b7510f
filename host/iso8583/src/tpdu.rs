//! The 5-byte TPDU (transport protocol data unit) that POS networks put between the length
//! header and the message: an ID (`0x60` for a transaction), a destination and a source
//! address of two bytes each. A reply carries the request's TPDU with source and destination
//! swapped.

use std::fmt;

use bytes::Bytes;

/// Bytes of a TPDU.
pub const LEN: usize = 5;

/// A TPDU: ID, destination, source.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Tpdu(pub [u8; LEN]);

/// A frame too short to hold its TPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame of {0} bytes is too short for its 5-byte TPDU")]
pub struct TpduError(pub usize);

impl Tpdu {
    /// A TPDU from its ID, destination and source.
    pub const fn new(id: u8, destination: [u8; 2], source: [u8; 2]) -> Tpdu {
        Tpdu([id, destination[0], destination[1], source[0], source[1]])
    }

    /// Reads the TPDU at the start of `frame`.
    pub fn read(frame: &[u8]) -> Result<Tpdu, TpduError> {
        frame
            .get(..LEN)
            .and_then(|b| b.try_into().ok())
            .map(Tpdu)
            .ok_or(TpduError(frame.len()))
    }

    /// Splits a frame into its TPDU and the message after it (no copy).
    pub fn split(frame: Bytes) -> Result<(Tpdu, Bytes), TpduError> {
        let tpdu = Tpdu::read(&frame)?;
        Ok((tpdu, frame.slice(LEN..)))
    }

    /// Parses 10 hex digits (`"6000010000"`).
    pub fn from_hex(hex: &str) -> Option<Tpdu> {
        let b = hex.as_bytes();
        if b.len() != 2 * LEN {
            return None;
        }
        let mut out = [0u8; LEN];
        for (i, o) in out.iter_mut().enumerate() {
            let hi = (b[2 * i] as char).to_digit(16)?;
            let lo = (b[2 * i + 1] as char).to_digit(16)?;
            *o = (hi << 4 | lo) as u8;
        }
        Some(Tpdu(out))
    }

    /// The ID byte.
    pub fn id(&self) -> u8 {
        self.0[0]
    }
    /// The destination address.
    pub fn destination(&self) -> [u8; 2] {
        [self.0[1], self.0[2]]
    }
    /// The source address.
    pub fn source(&self) -> [u8; 2] {
        [self.0[3], self.0[4]]
    }

    /// The reply's TPDU: source and destination swapped.
    pub fn swap(&self) -> Tpdu {
        let t = self.0;
        Tpdu([t[0], t[3], t[4], t[1], t[2]])
    }

    /// The five bytes.
    pub fn as_bytes(&self) -> &[u8; LEN] {
        &self.0
    }
}

impl fmt::Display for Tpdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_and_parse() {
        let t = Tpdu::from_hex("6000010002").unwrap();
        assert_eq!(t, Tpdu::new(0x60, [0, 1], [0, 2]));
        assert_eq!(t.swap().to_string(), "6000020001");
        assert_eq!(t.swap().swap(), t);
        assert_eq!(
            (t.id(), t.destination(), t.source()),
            (0x60, [0, 1], [0, 2])
        );
        assert!(Tpdu::from_hex("60000100").is_none());
        assert!(Tpdu::from_hex("60000100zz").is_none());
        let (tpdu, rest) = Tpdu::split(Bytes::from_static(b"\x60\x00\x01\x00\x020800")).unwrap();
        assert_eq!(tpdu, t);
        assert_eq!(&rest[..], b"0800");
        assert_eq!(
            Tpdu::split(Bytes::from_static(b"\x60\x00"))
                .unwrap_err()
                .to_string(),
            "frame of 2 bytes is too short for its 5-byte TPDU"
        );
    }
}
