//! Sans-I/O ISO 8583 codec for Switchyard.
//!
//! This crate owns the wire format of ISO 8583 messages and nothing else:
//!
//! - [`Mti`] and [`Message`]: the message type and the data elements of one message, as
//!   logical values (the characters of n/a/an/ans/z fields, the raw bytes of b fields);
//! - [`Spec`]: a message specification as *data* — a table of [`FieldSpec`] values plus the
//!   MTI and bitmap encodings — that decodes frames into messages and encodes them back;
//!   built-in specs ([`Spec::iso87_ascii`], byte-identical to pyiso8583's `specs.default`) and
//!   specs loaded from configuration (feature `serde`, [`Spec::from_toml_str`]);
//! - precise errors ([`DecodeError`], [`EncodeError`]) that name the field, the byte offset and
//!   the reason, and never echo a PAN, track data or a PIN block;
//! - [`mask_pan`], the one way a PAN may appear in a log.
//!
//! ```
//! use switchyard_iso8583::{Message, Mti, Spec};
//!
//! let spec = Spec::iso87_ascii();
//! let mut echo = Message::new(Mti::new("0800")?);
//! echo.set(7, "1123101010");
//! echo.set(11, "000007");
//! echo.set(70, "301");
//! let frame = spec.encode(&echo)?; // the bytes pyiso8583 produces for the same fields
//!
//! let request = spec.decode(frame)?;
//! assert_eq!(request.get_str(70), Some("301"));
//! let mut response = Message::new(request.mti().response().unwrap()); // 0810
//! response.set(39, "00");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! It knows nothing of sockets, tokio, framing on a stream, or WebAssembly. Decoding never
//! panics on any input, never allocates based on a length read from the input beyond the
//! input's own size, and for ASCII and binary fields borrows the field values from the frame
//! instead of copying them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builtin;
mod charset;
pub mod cobol;
pub mod composite;
#[cfg(feature = "serde")]
mod config;
mod decode;
mod encode;
pub mod framing;
mod iso87;
mod iso93;
mod message;
mod mti;
mod redact;
mod spec;
mod time;
pub mod tpdu;

pub use bytes::{Bytes, BytesMut};
#[cfg(feature = "serde")]
pub use config::SpecError;
pub use decode::{BitmapLevel, DecodeError, DecodeErrorKind};
pub use encode::{EncodeError, EncodeErrorKind};
pub use message::{FieldNumberError, Message};
pub use mti::{Mti, MtiError};
pub use redact::mask_pan;
pub use spec::{
    BitmapEncoding, CodePage, ContentType, DataEncoding, FieldSpec, FieldSpecError, LengthCounts,
    LengthEncoding, LengthKind, MtiEncoding, Pad, Spec,
};
pub use time::UtcTime;
