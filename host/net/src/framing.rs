//! Length framing of ISO 8583 messages on a TCP stream: a tokio-util codec over the sans-I/O
//! [`switchyard_iso8583::framing`] module, plus whether each message carries a 5-byte TPDU.
//!
//! Names (config `framing = "…"`): a length header — `2b` (alias `nac`, `post`, `2-byte`),
//! `3b`, `4b` (`raw`), `2a`, `3a`, `4a` (`ascii`), `2bcd`, `visa` — optionally followed by
//! `+self` (the header counts its own bytes) and/or `+tpdu` (a TPDU follows the header; a
//! listener answers with source and destination swapped). Examples: `nac`, `4a`, `2b+tpdu`,
//! `2b+self`, `visa`. `rdw` is an IBM record descriptor word: the Visa header counting itself
//! (`visa+self`: a 2-byte big-endian length that includes the 4 header bytes, then 2 zero
//! bytes), the framing of endpoint `yyy`.

use std::fmt;
use std::io;

use bytes::{Bytes, BytesMut};
use switchyard_iso8583::framing::{self as sans_io, FrameError, LengthHeader};
use tokio_util::codec::{Decoder, Encoder};

/// How messages are delimited on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Framing {
    header: LengthHeader,
    includes_header: bool,
    tpdu: bool,
}

impl Default for Framing {
    fn default() -> Framing {
        Framing::Nac
    }
}

impl Framing {
    /// A 2-byte big-endian length that does not count itself, no TPDU (jPOS NACChannel
    /// without its TPDU; the default wire contract).
    #[allow(non_upper_case_globals)]
    pub const Nac: Framing = Framing::new(LengthHeader::Binary2);

    /// An IBM record descriptor word (RDW): a 2-byte big-endian length that counts the whole
    /// record including the 4-byte RDW, then 2 zero bytes; no TPDU. The same as `visa+self`.
    #[allow(non_upper_case_globals)]
    pub const Rdw: Framing = Framing::new(LengthHeader::Visa).with_header_included(true);

    /// `header`, not counting itself, no TPDU.
    pub const fn new(header: LengthHeader) -> Framing {
        Framing {
            header,
            includes_header: false,
            tpdu: false,
        }
    }

    /// Whether the header counts its own bytes.
    pub const fn with_header_included(mut self, included: bool) -> Framing {
        self.includes_header = included;
        self
    }

    /// Whether each message starts with a 5-byte TPDU.
    pub const fn with_tpdu(mut self, tpdu: bool) -> Framing {
        self.tpdu = tpdu;
        self
    }

    /// Parses a framing name from config: a header name, then `+self` and/or `+tpdu`.
    pub fn parse(name: &str) -> Option<Framing> {
        let mut parts = name.split('+');
        let mut framing = match parts.next()? {
            "rdw" => Framing::Rdw,
            header => Framing::new(LengthHeader::parse(header)?),
        };
        for modifier in parts {
            match modifier {
                "self" if !framing.includes_header => framing.includes_header = true,
                "tpdu" if !framing.tpdu => framing.tpdu = true,
                _ => return None,
            }
        }
        Some(framing)
    }

    /// Names accepted by [`Framing::parse`]: the length headers (each may take `+self`,
    /// `+tpdu`), then `rdw` (which counts itself already: `+tpdu` only).
    pub const NAMES: &'static [&'static str] = &[
        "2b", "3b", "4b", "2a", "3a", "4a", "2bcd", "visa", "nac", "post", "2-byte", "raw",
        "ascii", "rdw",
    ];

    /// The length header.
    pub const fn header(self) -> LengthHeader {
        self.header
    }

    /// Whether the header counts itself.
    pub const fn header_included(self) -> bool {
        self.includes_header
    }

    /// Whether each message starts with a 5-byte TPDU.
    pub const fn tpdu(self) -> bool {
        self.tpdu
    }

    /// The largest frame this framing can express at all.
    pub const fn max_expressible(self) -> usize {
        let max = self.header.max_length();
        if self.includes_header {
            max - self.header.len()
        } else {
            max
        }
    }

    /// A codec for this framing that refuses frames over `max_frame` bytes (the connection
    /// is closed; nothing beyond the cap is allocated).
    pub fn codec(self, max_frame: usize) -> FrameCodec {
        FrameCodec {
            framing: sans_io::Framing::new(self.header, max_frame)
                .with_header_included(self.includes_header),
        }
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.header == LengthHeader::Visa && self.includes_header {
            f.write_str("rdw")?;
        } else {
            f.write_str(self.header.name())?;
            if self.includes_header {
                f.write_str("+self")?;
            }
        }
        if self.tpdu {
            f.write_str("+tpdu")?;
        }
        Ok(())
    }
}

/// A frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// A bad, oversize or truncated frame.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The tokio-util codec of a [`Framing`]: frames in, bodies out (the TPDU, if any, is left at
/// the start of the body for the caller).
#[derive(Debug, Clone)]
pub struct FrameCodec {
    framing: sans_io::Framing,
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FramingError> {
        Ok(self.framing.decode(src)?)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FramingError> {
        Ok(self.framing.decode_eof(src)?)
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FramingError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), FramingError> {
        Ok(self.framing.encode(&body, dst)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn nac_round_trip_and_partial_frames() {
        let mut codec = Framing::Nac.codec(100);
        let mut buf = BytesMut::new();
        codec
            .encode(Bytes::from_static(b"0800abc"), &mut buf)
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
        let err = codec.decode(&mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "frame of 60000 bytes exceeds the maximum of 100"
        );
    }

    #[test]
    fn names_with_modifiers() {
        assert_eq!(Framing::parse("nac"), Some(Framing::Nac));
        assert_eq!(Framing::parse("2-byte"), Some(Framing::Nac));
        let f = Framing::parse("2b+self+tpdu").unwrap();
        assert!(f.header_included() && f.tpdu());
        assert_eq!(f.to_string(), "2b+self+tpdu");
        assert_eq!(f.max_expressible(), 65533);
        assert_eq!(Framing::parse("4a").unwrap().max_expressible(), 9999);
        assert_eq!(Framing::parse("visa").unwrap().header(), LengthHeader::Visa);
        for bad in ["", "5b", "2b+", "2b+tpdu+tpdu", "2b+crc", "+tpdu"] {
            assert_eq!(Framing::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_name_parses_and_rdw_is_visa_counting_itself() {
        for name in LengthHeader::NAMES {
            assert!(Framing::NAMES.contains(name), "{name}");
        }
        for name in Framing::NAMES {
            let f = Framing::parse(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(Framing::parse(&f.to_string()), Some(f), "{name}");
        }
        let rdw = Framing::parse("rdw").unwrap();
        assert_eq!(rdw, Framing::Rdw);
        assert_eq!(Framing::parse("visa+self"), Some(Framing::Rdw));
        assert_eq!(rdw.to_string(), "rdw");
        assert_eq!(rdw.max_expressible(), 65531);
        assert_eq!(Framing::parse("rdw+tpdu").unwrap().to_string(), "rdw+tpdu");
        assert_eq!(
            Framing::parse("rdw+self"),
            None,
            "an RDW counts itself already"
        );
        // An 87-byte record: 91 = 0x5B counts the RDW too.
        let mut codec = rdw.codec(100);
        let mut buf = BytesMut::new();
        codec.encode(Bytes::from(vec![0xC1; 87]), &mut buf).unwrap();
        assert_eq!(&buf[..4], &[0x00, 0x5B, 0x00, 0x00]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().len(), 87);
        let mut reserved = BytesMut::from(&[0x00, 0x05, 0x00, 0x01, 0xC1][..]);
        assert!(
            codec.decode(&mut reserved).is_err(),
            "reserved bytes not zero"
        );
        let mut short = BytesMut::from(&[0x00, 0x03, 0x00, 0x00][..]);
        assert!(codec.decode(&mut short).is_err(), "shorter than the RDW");
    }

    #[test]
    fn a_truncated_stream_is_an_error() {
        let mut codec = Framing::parse("4a").unwrap().codec(100);
        let mut buf = BytesMut::from(&b"0010abc"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let err = codec.decode_eof(&mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "connection closed inside a frame (7 of 14 bytes)"
        );
    }
}
