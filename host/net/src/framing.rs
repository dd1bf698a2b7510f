//! Length framing of ISO 8583 messages on a TCP stream.

use tokio_util::codec::{LengthDelimitedCodec, length_delimited};

/// How messages are delimited on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Framing {
    /// A 2-byte big-endian length that does not count itself (jPOS NACChannel).
    #[default]
    Nac,
}

impl Framing {
    /// Parses a framing name from config (`nac`, alias `2-byte`).
    pub fn parse(name: &str) -> Option<Framing> {
        match name {
            "nac" | "2-byte" | "2b" => Some(Framing::Nac),
            _ => None,
        }
    }

    /// Names accepted by [`Framing::parse`].
    pub const NAMES: &'static [&'static str] = &["nac", "2-byte"];

    /// The largest frame this framing can express at all.
    pub const fn max_expressible(self) -> usize {
        match self {
            Framing::Nac => u16::MAX as usize,
        }
    }

    /// A codec for this framing that refuses frames over `max_frame` bytes
    /// (the connection is closed; nothing beyond the cap is allocated).
    pub fn codec(self, max_frame: usize) -> LengthDelimitedCodec {
        match self {
            Framing::Nac => length_delimited::Builder::new()
                .length_field_length(2)
                .big_endian()
                .max_frame_length(max_frame.min(self.max_expressible()))
                .new_codec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use tokio_util::codec::{Decoder, Encoder};

    #[test]
    fn nac_round_trip_and_partial_frames() {
        let mut codec = Framing::Nac.codec(100);
        let mut buf = BytesMut::new();
        codec
            .encode(bytes::Bytes::from_static(b"0800abc"), &mut buf)
            .unwrap();
        assert_eq!(&buf[..2], &[0, 7]);
        let mut half = buf.split_to(5);
        assert!(codec.decode(&mut half).unwrap().is_none());
        half.unsplit(buf);
        assert_eq!(&codec.decode(&mut half).unwrap().unwrap()[..], b"0800abc");
    }

    #[test]
    fn oversize_length_is_an_error_not_an_allocation() {
        let mut codec = Framing::Nac.codec(100);
        let mut buf = BytesMut::new();
        buf.put_u16(60_000);
        buf.put_slice(b"x");
        assert!(codec.decode(&mut buf).is_err());
    }
}
