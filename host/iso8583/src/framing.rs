//! Length framing of messages on a byte stream, sans I/O: find one whole frame at the front of
//! a buffer, or write one.
//!
//! A frame is a length header and a body of that many bytes (the body being the message, and
//! the TPDU before it when there is one: see [`crate::tpdu`]). The headers real peers use:
//!
//! | [`LengthHeader`] | name in config | bytes | example (body of 300 bytes) | seen in |
//! |---|---|---|---|---|
//! | `Binary2` | `2b` (`nac`, `post`) | 2, big-endian | `01 2C` | jPOS NACChannel/PostChannel, pyiso8583 examples |
//! | `Binary3` | `3b` | 3, big-endian | `00 01 2C` | some host links |
//! | `Binary4` | `4b` (`raw`) | 4, big-endian | `00 00 01 2C` | jPOS RawChannel |
//! | `Ascii2` | `2a` | 2 ASCII digits | `"99"` at most | iso8583sim `2a` |
//! | `Ascii3` | `3a` | 3 ASCII digits | `"300"` | |
//! | `Ascii4` | `4a` (`ascii`) | 4 ASCII digits | `"0300"` | jPOS ASCIIChannel, iso8583sim `4a` |
//! | `Bcd2` | `2bcd` | 2, packed decimal | `03 00` | BCD host links |
//! | `Visa` | `visa` | 2 big-endian + 2 reserved zero bytes | `01 2C 00 00` | Visa VAP/Base I |
//!
//! Any of them may count itself ([`Framing::with_header_included`], `+self` in a name such as
//! `2b+self`).
//!
//! A body of length 0 is a keep-alive (some acquirers send them between messages): it decodes to
//! an empty frame, which the listener skips without answering. A header that is not a number
//! in its encoding, that says less than its own size when it counts itself, or more than the
//! configured maximum, is a [`FrameError`]: nothing beyond the maximum is ever allocated, and
//! the connection is closed.

use std::fmt;

use bytes::{Buf, BufMut, BytesMut};

/// The length header of a frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LengthHeader {
    /// 2-byte big-endian unsigned length.
    Binary2,
    /// 3-byte big-endian unsigned length.
    Binary3,
    /// 4-byte big-endian unsigned length.
    Binary4,
    /// 2 ASCII digits.
    Ascii2,
    /// 3 ASCII digits.
    Ascii3,
    /// 4 ASCII digits.
    Ascii4,
    /// 2 bytes of packed decimal (4 digits).
    Bcd2,
    /// Visa: a 2-byte big-endian length, then 2 reserved bytes that are zero.
    Visa,
}

impl LengthHeader {
    /// Every length header.
    pub const ALL: [LengthHeader; 8] = [
        LengthHeader::Binary2,
        LengthHeader::Binary3,
        LengthHeader::Binary4,
        LengthHeader::Ascii2,
        LengthHeader::Ascii3,
        LengthHeader::Ascii4,
        LengthHeader::Bcd2,
        LengthHeader::Visa,
    ];

    /// Bytes of the header.
    pub const fn len(self) -> usize {
        match self {
            LengthHeader::Binary2 | LengthHeader::Ascii2 | LengthHeader::Bcd2 => 2,
            LengthHeader::Binary3 | LengthHeader::Ascii3 => 3,
            LengthHeader::Binary4 | LengthHeader::Ascii4 | LengthHeader::Visa => 4,
        }
    }

    /// Always false: a header has at least two bytes (for clippy's `len_without_is_empty`).
    pub const fn is_empty(self) -> bool {
        false
    }

    /// The largest length the header can express.
    pub const fn max_length(self) -> usize {
        match self {
            LengthHeader::Binary2 | LengthHeader::Visa => 0xffff,
            LengthHeader::Binary3 => 0xff_ffff,
            LengthHeader::Binary4 => 0xffff_ffff,
            LengthHeader::Ascii2 => 99,
            LengthHeader::Ascii3 => 999,
            LengthHeader::Ascii4 | LengthHeader::Bcd2 => 9999,
        }
    }

    /// The canonical name (`2b`, `4a`, `visa`, …).
    pub const fn name(self) -> &'static str {
        match self {
            LengthHeader::Binary2 => "2b",
            LengthHeader::Binary3 => "3b",
            LengthHeader::Binary4 => "4b",
            LengthHeader::Ascii2 => "2a",
            LengthHeader::Ascii3 => "3a",
            LengthHeader::Ascii4 => "4a",
            LengthHeader::Bcd2 => "2bcd",
            LengthHeader::Visa => "visa",
        }
    }

    /// Parses a header name: a canonical name or an alias (`nac`, `post`, `2-byte`, `raw`,
    /// `ascii`).
    pub fn parse(name: &str) -> Option<LengthHeader> {
        Some(match name {
            "2b" | "nac" | "post" | "2-byte" => LengthHeader::Binary2,
            "3b" => LengthHeader::Binary3,
            "4b" | "raw" => LengthHeader::Binary4,
            "2a" => LengthHeader::Ascii2,
            "3a" => LengthHeader::Ascii3,
            "4a" | "ascii" => LengthHeader::Ascii4,
            "2bcd" => LengthHeader::Bcd2,
            "visa" => LengthHeader::Visa,
            _ => return None,
        })
    }

    /// Every name [`LengthHeader::parse`] accepts, canonical names first.
    pub const NAMES: &'static [&'static str] = &[
        "2b", "3b", "4b", "2a", "3a", "4a", "2bcd", "visa", "nac", "post", "2-byte", "raw", "ascii",
    ];

    /// Reads the length in `raw` (exactly [`LengthHeader::len`] bytes); `None` when it is not a
    /// number in this header's encoding.
    fn read(self, raw: &[u8]) -> Option<usize> {
        let digits = |raw: &[u8]| {
            raw.iter().try_fold(0usize, |acc, &b| {
                let d = b.wrapping_sub(b'0');
                (d < 10).then_some(acc * 10 + d as usize)
            })
        };
        match self {
            LengthHeader::Binary2 | LengthHeader::Binary3 | LengthHeader::Binary4 => {
                Some(raw.iter().fold(0usize, |acc, &b| acc << 8 | b as usize))
            }
            LengthHeader::Visa => {
                (raw[2] == 0 && raw[3] == 0).then(|| (raw[0] as usize) << 8 | raw[1] as usize)
            }
            LengthHeader::Ascii2 | LengthHeader::Ascii3 | LengthHeader::Ascii4 => digits(raw),
            LengthHeader::Bcd2 => raw.iter().try_fold(0usize, |acc, &b| {
                let (hi, lo) = (b >> 4, b & 0xf);
                (hi < 10 && lo < 10).then_some(acc * 100 + hi as usize * 10 + lo as usize)
            }),
        }
    }

    /// Writes `length` (which fits: callers check [`LengthHeader::max_length`]).
    fn write(self, length: usize, out: &mut BytesMut) {
        match self {
            LengthHeader::Binary2 => out.put_u16(length as u16),
            LengthHeader::Binary3 => out.put_slice(&(length as u32).to_be_bytes()[1..]),
            LengthHeader::Binary4 => out.put_u32(length as u32),
            LengthHeader::Visa => {
                out.put_u16(length as u16);
                out.put_u16(0);
            }
            LengthHeader::Ascii2 | LengthHeader::Ascii3 | LengthHeader::Ascii4 => {
                let mut buf = [0u8; 4];
                let digits = &mut buf[..self.len()];
                let mut v = length;
                for d in digits.iter_mut().rev() {
                    *d = b'0' + (v % 10) as u8;
                    v /= 10;
                }
                out.put_slice(digits);
            }
            LengthHeader::Bcd2 => {
                let bcd = |v: usize| (((v / 10 % 10) << 4) | (v % 10)) as u8;
                out.put_slice(&[bcd(length / 100), bcd(length)]);
            }
        }
    }
}

impl fmt::Display for LengthHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A length header, whether it counts itself, and the largest body accepted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Framing {
    header: LengthHeader,
    includes_header: bool,
    max_frame: usize,
}

/// A frame could not be read or written. Reading: the connection must be closed (the stream
/// can no longer be trusted to be in step).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The header is not a number in its encoding (or a Visa header's reserved bytes are not
    /// zero).
    BadHeader {
        /// The header's framing.
        header: LengthHeader,
        /// The header's bytes.
        found: Vec<u8>,
    },
    /// A header that counts itself says less than its own size.
    ShorterThanHeader {
        /// The length read.
        length: usize,
        /// The header's size.
        header_len: usize,
    },
    /// The body would be longer than the configured maximum (nothing was allocated).
    Oversize {
        /// The body length the header announces (or the body to write).
        length: usize,
        /// The maximum.
        max: usize,
    },
    /// The stream ended inside a frame.
    Truncated {
        /// Bytes the frame needs (header and body), when the header was read.
        need: Option<usize>,
        /// Bytes that arrived.
        have: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadHeader { header, found } => {
                write!(f, "length header 0x")?;
                found.iter().try_for_each(|b| write!(f, "{b:02X}"))?;
                let what = match header {
                    LengthHeader::Ascii2 | LengthHeader::Ascii3 | LengthHeader::Ascii4 => {
                        "ASCII digits"
                    }
                    LengthHeader::Bcd2 => "a BCD number",
                    LengthHeader::Visa => "a Visa header (2-byte length, 2 zero bytes)",
                    _ => "a binary number",
                };
                write!(f, " is not {what} ({header} framing)")
            }
            FrameError::ShorterThanHeader { length, header_len } => write!(
                f,
                "length header says {length}, less than the {header_len} bytes of the header itself"
            ),
            FrameError::Oversize { length, max } => {
                write!(f, "frame of {length} bytes exceeds the maximum of {max}")
            }
            FrameError::Truncated {
                need: Some(need),
                have,
            } => write!(
                f,
                "connection closed inside a frame ({have} of {need} bytes)"
            ),
            FrameError::Truncated { need: None, have } => {
                write!(f, "connection closed inside a length header ({have} bytes)")
            }
        }
    }
}

impl std::error::Error for FrameError {}

impl Framing {
    /// A framing with `header`, not counting itself, accepting bodies up to `max_frame` bytes
    /// (clamped to what the header can express).
    pub fn new(header: LengthHeader, max_frame: usize) -> Framing {
        Framing {
            header,
            includes_header: false,
            max_frame,
        }
        .clamped()
    }

    /// Whether the header counts its own bytes.
    pub fn with_header_included(mut self, included: bool) -> Framing {
        self.includes_header = included;
        self.clamped()
    }

    fn clamped(mut self) -> Framing {
        let expressible = self.max_expressible();
        self.max_frame = self.max_frame.min(expressible);
        self
    }

    /// The largest body this header can carry at all.
    pub fn max_expressible(&self) -> usize {
        let max = self.header.max_length();
        if self.includes_header {
            max - self.header.len()
        } else {
            max
        }
    }

    /// The header.
    pub fn header(&self) -> LengthHeader {
        self.header
    }
    /// Whether the header counts itself.
    pub fn header_included(&self) -> bool {
        self.includes_header
    }
    /// The largest body accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Takes one whole frame off the front of `buf` and returns its body; `Ok(None)` when
    /// `buf` does not hold a whole frame yet (then nothing is consumed, and `buf` has been
    /// given room for the rest of the frame, never more than the maximum). An empty body is a
    /// keep-alive.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let header_len = self.header.len();
        let Some(raw) = buf.get(..header_len) else {
            return Ok(None);
        };
        let body = self.body_len(raw)?;
        let total = header_len + body;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(header_len);
        Ok(Some(buf.split_to(body)))
    }

    /// At the end of the stream: what is left in `buf` must be nothing or whole frames.
    pub fn decode_eof(&self, buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() => Ok(None),
            None => {
                let need = buf
                    .get(..self.header.len())
                    .and_then(|raw| self.body_len(raw).ok())
                    .map(|body| body + self.header.len());
                Err(FrameError::Truncated {
                    need,
                    have: buf.len(),
                })
            }
        }
    }

    fn body_len(&self, raw: &[u8]) -> Result<usize, FrameError> {
        let header_len = self.header.len();
        let length = self.header.read(raw).ok_or_else(|| FrameError::BadHeader {
            header: self.header,
            found: raw.to_vec(),
        })?;
        let body = if self.includes_header {
            length
                .checked_sub(header_len)
                .ok_or(FrameError::ShorterThanHeader { length, header_len })?
        } else {
            length
        };
        if body > self.max_frame {
            return Err(FrameError::Oversize {
                length: body,
                max: self.max_frame,
            });
        }
        Ok(body)
    }

    /// Appends a frame (header and `body`) to `out`.
    pub fn encode(&self, body: &[u8], out: &mut BytesMut) -> Result<(), FrameError> {
        if body.len() > self.max_frame {
            return Err(FrameError::Oversize {
                length: body.len(),
                max: self.max_frame,
            });
        }
        out.reserve(self.header.len() + body.len());
        let length = body.len()
            + if self.includes_header {
                self.header.len()
            } else {
                0
            };
        self.header.write(length, out);
        out.put_slice(body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [LengthHeader; 8] = LengthHeader::ALL;

    fn framed(f: &Framing, body: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        f.encode(body, &mut out).unwrap();
        out
    }

    #[test]
    fn headers_are_written_as_peers_write_them() {
        let body = vec![b'x'; 300];
        let cases: [(LengthHeader, &[u8]); 7] = [
            (LengthHeader::Binary2, &[0x01, 0x2c]),
            (LengthHeader::Binary3, &[0x00, 0x01, 0x2c]),
            (LengthHeader::Binary4, &[0, 0, 0x01, 0x2c]),
            (LengthHeader::Ascii3, b"300"),
            (LengthHeader::Ascii4, b"0300"),
            (LengthHeader::Bcd2, &[0x03, 0x00]),
            (LengthHeader::Visa, &[0x01, 0x2c, 0, 0]),
        ];
        for (h, header) in cases {
            let out = framed(&Framing::new(h, 8192), &body);
            assert_eq!(&out[..h.len()], header, "{h}");
            assert_eq!(&out[h.len()..], &body[..]);
        }
        let out = framed(
            &Framing::new(LengthHeader::Binary2, 8192).with_header_included(true),
            b"abc",
        );
        assert_eq!(&out[..], b"\x00\x05abc");
        let out = framed(&Framing::new(LengthHeader::Ascii2, 99), b"abc");
        assert_eq!(&out[..], b"03abc");
    }

    #[test]
    fn every_header_round_trips_byte_by_byte() {
        for h in ALL {
            for included in [false, true] {
                let f = Framing::new(h, 90).with_header_included(included);
                let mut wire = BytesMut::new();
                for body in [&b"0800 first"[..], b"", b"second"] {
                    f.encode(body, &mut wire).unwrap();
                }
                // Fed one byte at a time, frames come out whole and in order.
                let mut buf = BytesMut::new();
                let mut got = Vec::new();
                for &b in wire.iter() {
                    buf.put_u8(b);
                    while let Some(frame) = f.decode(&mut buf).unwrap() {
                        got.push(frame.to_vec());
                    }
                }
                assert_eq!(got, [&b"0800 first"[..], b"", b"second"], "{h} {included}");
                assert!(f.decode_eof(&mut buf).unwrap().is_none());
            }
        }
    }

    #[test]
    fn bad_headers_are_errors() {
        let bad = |h, included, bytes: &[u8]| {
            let f = Framing::new(h, 100).with_header_included(included);
            let err = f.decode(&mut BytesMut::from(bytes)).unwrap_err();
            err.to_string()
        };
        assert_eq!(
            bad(LengthHeader::Ascii4, false, b"00x1abc"),
            "length header 0x30307831 is not ASCII digits (4a framing)"
        );
        assert_eq!(
            bad(LengthHeader::Bcd2, false, &[0x0a, 0x00]),
            "length header 0x0A00 is not a BCD number (2bcd framing)"
        );
        assert_eq!(
            bad(LengthHeader::Visa, false, &[0x00, 0x03, 0x00, 0x01]),
            "length header 0x00030001 is not a Visa header (2-byte length, 2 zero bytes) (visa framing)"
        );
        assert_eq!(
            bad(LengthHeader::Binary2, true, &[0x00, 0x01]),
            "length header says 1, less than the 2 bytes of the header itself"
        );
        assert_eq!(
            bad(LengthHeader::Binary2, false, &[0xff, 0xff]),
            "frame of 65535 bytes exceeds the maximum of 100"
        );
        assert_eq!(
            bad(LengthHeader::Binary4, false, &[0xff, 0xff, 0xff, 0xff]),
            "frame of 4294967295 bytes exceeds the maximum of 100"
        );
    }

    #[test]
    fn oversize_is_refused_before_allocating() {
        let f = Framing::new(LengthHeader::Binary4, 1024);
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff, 1, 2][..]);
        assert!(matches!(
            f.decode(&mut buf),
            Err(FrameError::Oversize { max: 1024, .. })
        ));
        assert!(buf.capacity() < 1024);
        // A frame within the cap reserves exactly what it needs.
        let mut buf = BytesMut::from(&[0, 0, 3, 232, 1][..]);
        assert!(f.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() >= 1004);
        assert!(f.encode(&[0; 1025], &mut BytesMut::new()).is_err());
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_truncated() {
        let f = Framing::new(LengthHeader::Binary2, 100);
        let mut buf = BytesMut::from(&[0, 10, 1, 2, 3][..]);
        assert_eq!(
            f.decode_eof(&mut buf).unwrap_err().to_string(),
            "connection closed inside a frame (5 of 12 bytes)"
        );
        let mut buf = BytesMut::from(&[0][..]);
        assert_eq!(
            f.decode_eof(&mut buf).unwrap_err().to_string(),
            "connection closed inside a length header (1 bytes)"
        );
    }

    #[test]
    fn the_maximum_is_clamped_to_the_header() {
        assert_eq!(Framing::new(LengthHeader::Ascii2, 8192).max_frame(), 99);
        assert_eq!(
            Framing::new(LengthHeader::Binary2, 1 << 20)
                .with_header_included(true)
                .max_frame(),
            65533
        );
        for name in LengthHeader::NAMES {
            assert!(LengthHeader::parse(name).is_some(), "{name}");
        }
        for h in ALL {
            assert_eq!(LengthHeader::parse(h.name()), Some(h));
        }
    }
}
