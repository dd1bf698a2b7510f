//! The transaction a participant runs for.

use std::borrow::Cow;

/// The transaction the host is running the participant for: the request
/// message, the response being built, context variables and the result code.
///
/// Field numbers are ISO 8583 data elements (2..=192). Values are the field's
/// content as the listener's spec decoded it: digits for `n` fields, text as
/// ASCII, binary fields as raw bytes, never a length prefix.
///
/// In a component every method is one call into the host: a participant asks
/// for exactly the fields it reads, and asks once. A native implementation may
/// lend its own buffers ([`Cow::Borrowed`]); a component's always owns them.
pub trait Transaction {
    /// The request's message type indicator, four ASCII digits, e.g. `"0200"`.
    fn request_mti(&self) -> Cow<'_, str>;

    /// The numbers of the data elements present in the request, ascending.
    fn request_fields(&self) -> Cow<'_, [u16]>;

    /// One request data element, or `None` when it is absent.
    fn request_field(&self, field: u16) -> Option<Cow<'_, [u8]>>;

    /// Several request values in one host call (contract 1.1.0): the values
    /// of `fields`, in order; number 0 is the MTI. Prefer this to a
    /// [`Transaction::request_field`] call per field.
    fn request_values(&self, fields: &[u16]) -> Values<'_> {
        Values::Parts(
            fields
                .iter()
                .map(|&f| {
                    if f == 0 {
                        Some(match self.request_mti() {
                            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
                        })
                    } else {
                        self.request_field(f)
                    }
                })
                .collect(),
        )
    }

    /// One data element of the response being built, or `None` when unset.
    fn response_field(&self, field: u16) -> Option<Cow<'_, [u8]>>;

    /// Sets a data element of the response. The host refuses (with a reason)
    /// fields its spec does not define, bitmaps, and 35, 45 and 52.
    fn set_response_field(&mut self, field: u16, value: &[u8]) -> Result<(), String>;

    /// Removes a data element from the response.
    fn clear_response_field(&mut self, field: u16);

    /// A context variable (`PORT`, `TENANT`, `LISTENER`, `MTI`, or one a
    /// participant set), or `None` when it is not set.
    fn var(&self, name: &str) -> Option<Cow<'_, str>>;

    /// Sets a context variable for the participants that follow.
    fn set_var(&mut self, name: &str, value: &str);

    /// The result code decided so far, e.g. `"00"`.
    fn result_code(&self) -> Option<Cow<'_, str>>;

    /// Decides the result code (DE39 of the response). A participant that
    /// aborts in `prepare` sets the reason here first.
    fn set_result_code(&mut self, code: &str);
}

impl<T: Transaction + ?Sized> Transaction for &mut T {
    fn request_mti(&self) -> Cow<'_, str> {
        (**self).request_mti()
    }
    fn request_fields(&self) -> Cow<'_, [u16]> {
        (**self).request_fields()
    }
    fn request_field(&self, field: u16) -> Option<Cow<'_, [u8]>> {
        (**self).request_field(field)
    }
    fn request_values(&self, fields: &[u16]) -> Values<'_> {
        (**self).request_values(fields)
    }
    fn response_field(&self, field: u16) -> Option<Cow<'_, [u8]>> {
        (**self).response_field(field)
    }
    fn set_response_field(&mut self, field: u16, value: &[u8]) -> Result<(), String> {
        (**self).set_response_field(field, value)
    }
    fn clear_response_field(&mut self, field: u16) {
        (**self).clear_response_field(field)
    }
    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        (**self).var(name)
    }
    fn set_var(&mut self, name: &str, value: &str) {
        (**self).set_var(name, value)
    }
    fn result_code(&self) -> Option<Cow<'_, str>> {
        (**self).result_code()
    }
    fn set_result_code(&mut self, code: &str) {
        (**self).set_result_code(code)
    }
}

/// Request values fetched together by [`Transaction::request_values`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Values<'a> {
    /// One value per requested field.
    Parts(Vec<Option<Cow<'a, [u8]>>>),
    /// The host's packed buffer: for each field a 2-byte big-endian length
    /// and the bytes, or `ff ff` when absent.
    Packed {
        /// The buffer.
        buf: Vec<u8>,
        /// (start, end) of each value in `buf`, or `None` when absent.
        spans: Vec<Option<(usize, usize)>>,
    },
}

impl Values<'_> {
    /// Parses the host's packed buffer for `count` requested fields; a
    /// malformed buffer yields absent values.
    pub fn packed(buf: Vec<u8>, count: usize) -> Values<'static> {
        let mut spans = Vec::with_capacity(count);
        let mut at = 0;
        for _ in 0..count {
            let Some(len) = buf.get(at..at + 2) else {
                spans.push(None);
                continue;
            };
            let len = u16::from_be_bytes([len[0], len[1]]);
            at += 2;
            if len == 0xFFFF || at + len as usize > buf.len() {
                spans.push(None);
            } else {
                spans.push(Some((at, at + len as usize)));
                at += len as usize;
            }
        }
        Values::Packed { buf, spans }
    }

    /// The `i`-th requested value (in request order), if present.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        match self {
            Values::Parts(p) => p.get(i)?.as_deref(),
            Values::Packed { buf, spans } => {
                spans.get(i).copied().flatten().map(|(a, b)| &buf[a..b])
            }
        }
    }

    /// The `i`-th requested value as text, if present and UTF-8.
    pub fn str(&self, i: usize) -> Option<&str> {
        std::str::from_utf8(self.get(i)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_values_parse_and_tolerate_garbage() {
        let v = Values::packed(vec![0, 4, b'0', b'2', b'0', b'0', 0xFF, 0xFF, 0, 0], 4);
        assert_eq!(v.str(0), Some("0200"));
        assert_eq!(v.get(1), None);
        assert_eq!(v.get(2), Some(&b""[..]));
        assert_eq!(v.get(3), None);
        let bad = Values::packed(vec![0, 9, 1], 2);
        assert_eq!(bad.get(0), None);
        assert_eq!(bad.get(1), None);
    }
}
