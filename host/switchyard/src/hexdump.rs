//! Hex dumps of frames with the card data masked: the bytes that carry the
//! middle digits of a PAN (DE2, DE34), and every byte of the expiry, track
//! data, PIN block and chip data (DE14, DE35, DE36, DE45, DE52, DE55), print
//! as `**`.
//!
//! Which bytes those are is found without knowing the spec's layout: the
//! message is encoded a second time with those values changed (each digit
//! and letter moved on by one, binary bytes inverted) and every byte that
//! differs between the two encodings is masked. This holds for every
//! encoding the codec has (ASCII, BCD, EBCDIC, hex), because each of them
//! maps a changed character or byte to a changed byte at the same place.

use std::fmt::Write as _;

use bytes::Bytes;
use switchyard_iso8583::{ContentType, Message, Spec};

use crate::client::{CardData, card_data};

/// Which bytes of `encoded` (the encoding of `message` with `spec`) carry
/// card data ([`card_data`]: a PAN's middle digits, all of the others).
/// `None` when the message does not encode again the same way; the caller
/// then shows nothing of it.
pub fn secret_bytes(spec: &Spec, message: &Message, encoded: &[u8]) -> Option<Vec<bool>> {
    let mut secret = vec![false; encoded.len()];
    for (field, value) in message.fields() {
        let Some(kind) = card_data(field) else {
            continue;
        };
        let content = spec.field(field).map(|f| f.content());
        let chars = match content {
            Some(ContentType::B) => Kind::Binary,
            Some(ContentType::N | ContentType::Z) => Kind::Digits,
            _ => Kind::Text,
        };
        let changed = change(value, chars, kind == CardData::Pan);
        let mut other = message.clone();
        other.set(field, Bytes::from(changed));
        let again = spec.encode(&other).ok()?;
        if again.len() != encoded.len() {
            return None;
        }
        for (i, (a, b)) in encoded.iter().zip(again.iter()).enumerate() {
            if a != b {
                secret[i] = true;
            }
        }
    }
    Some(secret)
}

/// What a field may hold, so that a changed value still encodes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Any byte.
    Binary,
    /// Digits (and track separators, which stay).
    Digits,
    /// Characters.
    Text,
}

/// `value` with every digit moved on by one (`0`→`1`, `9`→`0`), letters too
/// in text (`A`→`B`, `Z`→`A`), or every byte inverted when binary; with
/// `keep_ends` the first 6 and last 4 characters stay as a masked PAN
/// shows them.
fn change(value: &[u8], kind: Kind, keep_ends: bool) -> Vec<u8> {
    let n = value.len();
    let (head, tail) = if keep_ends && n > 10 { (6, 4) } else { (0, 0) };
    value
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if i < head || i >= n - tail {
                b
            } else if kind == Kind::Binary {
                !b
            } else {
                match b {
                    b'0'..=b'8' => b + 1,
                    b'9' => b'0',
                    b'A'..=b'Y' | b'a'..=b'y' if kind == Kind::Text => b + 1,
                    b'Z' | b'z' if kind == Kind::Text => b - 25,
                    other => other,
                }
            }
        })
        .collect()
}

/// A hex dump of `bytes`, 16 a line with offset and a printable column;
/// the bytes marked in `secret` (offset by `skip`: the bytes of `bytes`
/// before the part `secret` describes) print as `**` and `*`.
pub fn dump(bytes: &[u8], secret: &[bool], skip: usize) -> Vec<String> {
    let masked = |i: usize| i >= skip && secret.get(i - skip).copied().unwrap_or(false);
    bytes
        .chunks(16)
        .enumerate()
        .map(|(row, chunk)| {
            let mut hex = String::new();
            let mut text = String::new();
            for (j, &b) in chunk.iter().enumerate() {
                let i = row * 16 + j;
                if masked(i) {
                    hex.push_str("** ");
                    text.push('*');
                } else {
                    let _ = write!(hex, "{b:02x} ");
                    text.push(if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    });
                }
            }
            format!("{:04x}  {hex:<48} |{text}|", row * 16)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RequestSpec;

    const PAN: &str = "4761739001010119";

    fn request(spec: &Spec) -> Message {
        let mut r = RequestSpec::financial("0200", PAN, 1000, 7);
        r.fields.push((35, format!("{PAN}D29121010000000000000")));
        r.fields
            .push((52, "\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\u{7}\u{8}".into()));
        r.build_for(spec).unwrap()
    }

    /// The printable columns of a dump, joined.
    fn printable(rows: &[String]) -> String {
        rows.iter()
            .map(|r| &r[r.find('|').unwrap() + 1..r.len() - 1])
            .collect()
    }

    #[test]
    fn no_card_digits_survive_in_any_built_in_spec() {
        for name in Spec::builtin_names() {
            let spec = Spec::builtin(name).unwrap();
            let m = request(&spec);
            let encoded = spec.encode(&m).expect(name);
            let secret = secret_bytes(&spec, &m, &encoded).expect(name);
            let rows = dump(&encoded, &secret, 0);
            let text = rows.join("\n") + &printable(&rows);
            // The dump's printable column shows ASCII; EBCDIC and BCD specs
            // never show the digits there, so check the hex of the middle.
            assert!(!text.contains("739001010"), "{name}: {text}");
            assert!(!text.contains("37 33 39 30 30 31"), "{name}: {text}");
            let masked = secret.iter().filter(|s| **s).count();
            assert!(masked >= 6, "{name}: only {masked} bytes masked");
        }
    }

    #[test]
    fn a_masked_pan_keeps_its_first_six_and_last_four() {
        let spec = Spec::iso87_ascii();
        let m = request(&spec);
        let encoded = spec.encode(&m).unwrap();
        let text = printable(&dump(
            &encoded,
            &secret_bytes(&spec, &m, &encoded).unwrap(),
            0,
        ));
        assert!(text.contains("476173******0119"), "{text}");
    }
}
