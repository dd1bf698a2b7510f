//! The answer to a frame that does not decode: an RC 30 reply that echoes only what is safe to
//! echo, and the facts about the failure that may be logged.
//!
//! A frame that does not decode may have been misparsed before the error was found: a wrong
//! length prefix, or a bitmap that announces a field that is not there (or hides one that is),
//! moves the bytes of a PAN or a track into a neighbouring field. So the reply built here
//! echoes a field only when
//! - it decoded cleanly **and precedes the first error** in wire order (fields after a content
//!   error are read again by [`Spec::decode_partial`], but the frame is already suspect there);
//! - its value does not look like card data ([`looks_like_card_data`]: a run of 13 or more
//!   digits, which covers every PAN length, or a track-data separator or sentinel);
//! - echoing it does not put 13 or more digits in a row into the reply: fixed numeric fields
//!   sit side by side on the wire, and a shifted PAN split over DE3 and DE4 would otherwise be
//!   echoed whole. Fields are taken by how much an acquirer needs them to match the reply
//!   (STAN first, then terminal, RRN, transmission time …) until the next would make such a run;
//!   the rest are withheld.
//!
//! Nothing here logs; the caller logs [`RejectFacts`], which hold no byte of the frame beyond
//! the MTI and an echoed STAN.

use bytes::Bytes;
use switchyard_engine::rc;
use switchyard_engine::steps::complete_response;
use switchyard_iso8583::{DecodeError, DecodeErrorKind, LengthKind, Message, Mti, Spec};

/// How many digits in a row are taken for a PAN (the shortest PAN has 13).
pub const PAN_DIGITS: usize = 13;

/// The fields an RC 30 reply may echo, most useful to the acquirer first: the STAN and the
/// terminal match a reply to its request, the others help.
const ECHO_PRIORITY: [u16; 12] = [11, 41, 37, 7, 42, 3, 4, 12, 13, 49, 24, 70];

/// What to do with an undecodable frame.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The RC 30 reply; `None` when the frame has no readable request MTI or no STAN that can be
    /// echoed safely (the frame is then dropped).
    pub reply: Option<Message>,
    /// What may be logged about it.
    pub facts: RejectFacts,
}

/// What may be logged about an undecodable frame: where and why it failed, never its bytes.
#[derive(Debug, Clone)]
pub struct RejectFacts {
    /// The MTI, when it was readable (four digits).
    pub mti: Option<Mti>,
    /// The STAN, when the reply echoes it.
    pub stan: Option<String>,
    /// The data element at fault, if any (`None`: the MTI, a bitmap, trailing bytes).
    pub field: Option<u16>,
    /// Byte offset of the fault in the message.
    pub offset: usize,
    /// The length the fault is about (a length prefix's value), if any.
    pub length: Option<usize>,
    /// The frame's length in bytes.
    pub frame_len: usize,
    /// Why it failed ([`DecodeErrorKind`]'s Display carries no byte of the frame).
    pub reason: DecodeErrorKind,
    /// Fields the reply would normally echo but does not (after the error, or card-looking).
    pub withheld: Vec<u16>,
}

/// The answer to `frame`, which `spec` failed to decode with `error`.
pub fn reject(spec: &Spec, frame: &Bytes, error: &DecodeError) -> Rejection {
    let (partial, _) = spec.decode_partial(frame.clone());
    let mut facts = RejectFacts {
        mti: partial.as_ref().map(Message::mti),
        stan: None,
        field: error.field,
        offset: error.offset,
        length: error.kind.length(),
        frame_len: frame.len(),
        reason: error.kind.clone(),
        withheld: Vec::new(),
    };
    let Some(partial) = partial.filter(|m| m.mti().is_request()) else {
        return Rejection { reply: None, facts };
    };
    // Only what precedes the first error (by wire order: ascending field numbers), and a card
    // field that decoded but is not shaped like one (a track 2 without its separator, a PAN
    // failing Luhn) counts as the first error: the misparse started there.
    let cut = partial
        .fields()
        .find(|(n, v)| !card_field_well_formed(*n, v))
        .map(|(n, _)| n)
        .into_iter()
        .chain(error.field)
        .min();
    let mut clean = Message::new(partial.mti());
    for (n, v) in partial.fields() {
        if cut.is_none_or(|at| n < at) {
            clean.set(n, v.clone());
        }
    }
    let mut full = Message::default();
    complete_response(&partial, rc::FORMAT_ERROR, &mut full);
    let mut reply = Message::default();
    complete_response(&clean, rc::FORMAT_ERROR, &mut reply);
    let candidates: Vec<(u16, Bytes)> = reply
        .fields()
        .filter(|&(n, _)| n != 39)
        .map(|(n, v)| (n, v.clone()))
        .collect();
    for (n, _) in &candidates {
        reply.remove(*n);
    }
    let order = ECHO_PRIORITY
        .iter()
        .filter_map(|p| candidates.iter().find(|(n, _)| n == p))
        .chain(
            candidates
                .iter()
                .filter(|(n, _)| !ECHO_PRIORITY.contains(n)),
        );
    for (n, v) in order {
        if looks_like_card_data(v) {
            continue;
        }
        reply.set(*n, v.clone());
        if longest_digit_run(spec, &reply) >= PAN_DIGITS {
            reply.remove(*n);
        }
    }
    facts.withheld = full
        .field_numbers()
        .filter(|&n| n != 39 && !reply.contains(n))
        .collect();
    facts.stan = reply.get_str(11).map(str::to_owned);
    let reply = reply.contains(11).then_some(reply);
    Rejection { reply, facts }
}

/// Whether `value` looks like card data: a run of [`PAN_DIGITS`] or more digits, or track data
/// (a `=` or `^` separator, a `;` or `%` start sentinel, or a `D` separator next to a digit as
/// BCD and EBCDIC tracks write it).
pub fn looks_like_card_data(value: &[u8]) -> bool {
    if max_digit_run(value) >= PAN_DIGITS {
        return true;
    }
    let digit = |i: Option<&u8>| i.is_some_and(u8::is_ascii_digit);
    value.iter().enumerate().any(|(i, &b)| match b {
        b'=' | b'^' | b';' | b'%' => true,
        b'D' | b'd' => {
            digit(i.checked_sub(1).and_then(|j| value.get(j))) || digit(value.get(i + 1))
        }
        _ => false,
    })
}

/// Whether field `n`'s value, if `n` carries card data, is shaped as that card data is: a PAN
/// (DE2, DE34) of 12 to 19 digits passing Luhn; a track 2 or 3 (DE35, DE36) of 12 to 19 digits,
/// a `=` or `D` separator, then at least expiry and service code (7 digits); a track 1 (DE45)
/// starting with `B` and holding two `^`. Other fields are always well formed.
pub fn card_field_well_formed(n: u16, value: &[u8]) -> bool {
    let digits = |v: &[u8]| !v.is_empty() && v.iter().all(u8::is_ascii_digit);
    match n {
        2 | 34 => (12..=19).contains(&value.len()) && digits(value) && luhn(value),
        35 | 36 => match value.iter().position(|b| matches!(b, b'=' | b'D' | b'd')) {
            Some(at) => {
                (12..=19).contains(&at)
                    && digits(&value[..at])
                    && value.len() - at > 7
                    && digits(&value[at + 1..at + 8])
            }
            None => false,
        },
        45 => value.first() == Some(&b'B') && value.iter().filter(|&&b| b == b'^').count() >= 2,
        _ => true,
    }
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                if d > 4 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The longest run of ASCII digits in `value`.
pub fn max_digit_run(value: &[u8]) -> usize {
    value
        .split(|b| !b.is_ascii_digit())
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0)
}

/// The longest run of digits in `m`'s fields as they follow each other on the wire, a
/// variable field's length prefix counted as digits.
fn longest_digit_run(spec: &Spec, m: &Message) -> usize {
    let (mut run, mut longest) = (0usize, 0usize);
    for (n, v) in m.fields() {
        let prefix = spec.field(n).map_or(0, |fs| match fs.length() {
            LengthKind::Fixed => 0,
            LengthKind::L => 1,
            LengthKind::LL => 2,
            LengthKind::LLL => 3,
            LengthKind::LLLL => 4,
            LengthKind::LLLLLL => 6,
        });
        run += prefix;
        longest = longest.max(run);
        for &b in v.iter() {
            run = if b.is_ascii_digit() { run + 1 } else { 0 };
            longest = longest.max(run);
        }
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAN: &str = "4761739001010119";

    /// "0200" + binary bitmap for `fields` + `body`.
    fn frame(fields: &[u16], body: &[u8]) -> Bytes {
        let mut words = [0u64; 2];
        for &n in fields {
            let i = (n - 1) as usize;
            words[i / 64] |= 1 << (63 - i % 64);
        }
        if words[1] != 0 {
            words[0] |= 1 << 63;
        }
        let mut f = b"0200".to_vec();
        f.extend_from_slice(&words[0].to_be_bytes());
        if words[1] != 0 {
            f.extend_from_slice(&words[1].to_be_bytes());
        }
        f.extend_from_slice(body);
        Bytes::from(f)
    }

    fn rejected(spec: &Spec, frame: &Bytes) -> Rejection {
        let error = spec.decode(frame.clone()).unwrap_err();
        reject(spec, frame, &error)
    }

    fn pan_in(bytes: &[u8]) -> bool {
        (0..=PAN.len() - PAN_DIGITS).any(|i| {
            let needle = &PAN.as_bytes()[i..i + PAN_DIGITS];
            bytes.windows(PAN_DIGITS).any(|w| w == needle)
        })
    }

    #[test]
    fn card_looking_values() {
        assert!(looks_like_card_data(PAN.as_bytes()));
        assert!(looks_like_card_data(b"4761739001010"));
        assert!(!looks_like_card_data(b"476173900101"));
        assert!(looks_like_card_data(b"=2512201"));
        assert!(looks_like_card_data(b"0119D2512"));
        assert!(looks_like_card_data(b";47617"));
        assert!(looks_like_card_data(b"%B4761"));
        assert!(!looks_like_card_data(b"TERM0001"));
        assert!(!looks_like_card_data(b"SHOP DE 12"));
    }

    #[test]
    fn card_fields_that_are_not_shaped_as_card_data_cut_the_echo() {
        assert!(card_field_well_formed(2, PAN.as_bytes()));
        assert!(!card_field_well_formed(2, b"4761739001010118"));
        assert!(card_field_well_formed(35, b"4761739001010119=25122019988"));
        assert!(!card_field_well_formed(35, b"476173900101011"));
        assert!(!card_field_well_formed(35, b"4761739001010119=25"));
        assert!(card_field_well_formed(
            45,
            b"B4761739001010119^TEST/CARD^2512201"
        ));
        assert!(card_field_well_formed(41, b"anything"));
        // DE35 cut short (prefix 15 for 34): DE37 after it would carry the track's tail.
        let spec = Spec::iso87_ascii();
        let mut body = b"000123".to_vec();
        body.extend_from_slice(b"15476173900101011");
        body.extend_from_slice(b"9=2512201998TERM0001");
        let r = rejected(&spec, &frame(&[11, 35, 37, 41, 42], &body));
        let reply = r.reply.unwrap();
        assert!(!reply.contains(37) && !reply.contains(41), "{:?}", r.facts);
    }

    #[test]
    fn echoes_only_what_precedes_the_first_error() {
        let spec = Spec::iso87_ascii();
        // DE3, DE11, DE41 fine; DE43 has a tab; DE49 after it.
        let mut body = b"000000000123TERM0001".to_vec();
        body.extend_from_slice(b"Cafe\tAmsterdam                          ");
        body.extend_from_slice(b"978");
        let f = frame(&[3, 11, 41, 43, 49], &body);
        let r = rejected(&spec, &f);
        let reply = r.reply.expect("a reply");
        assert_eq!(reply.mti().as_str(), "0210");
        assert_eq!(reply.get_str(39), Some("30"));
        assert_eq!(reply.get_str(11), Some("000123"));
        assert_eq!(reply.get_str(41), Some("TERM0001"));
        // DE3 sits next to DE11 on the wire: both with DE39 would make 14 digits in a row.
        assert!(!reply.contains(3));
        assert!(!reply.contains(49), "DE49 follows the error");
        assert_eq!(r.facts.withheld, [3, 49]);
        assert_eq!(r.facts.field, Some(43));
        assert_eq!(r.facts.stan.as_deref(), Some("000123"));
    }

    #[test]
    fn a_pan_split_over_two_echoed_fields_is_not_echoed() {
        let spec = Spec::iso87_ascii();
        // The acquirer set no bit for DE2 but sent it: DE3 reads "164761", DE4 the rest of
        // the PAN; DE11 is read from the real DE3, and DE35's prefix is then garbage.
        let mut body = b"16".to_vec();
        body.extend_from_slice(PAN.as_bytes());
        body.extend_from_slice(b"000000000000010000000123");
        body.extend_from_slice(b"x7");
        let f = frame(&[3, 4, 11, 35], &body);
        let r = rejected(&spec, &f);
        let reply = r.reply.expect("a reply: the STAN is readable");
        let encoded = spec.encode(&reply).unwrap();
        assert!(!pan_in(&encoded), "{:?}", String::from_utf8_lossy(&encoded));
        assert!(reply.contains(11));
        assert!(longest_digit_run(&spec, &reply) < PAN_DIGITS);
    }

    #[test]
    fn track_data_in_an_echoed_field_is_withheld() {
        let spec = Spec::iso87_ascii();
        // DE41 (ans 8) carries part of a track after a misparse; DE42 then fails.
        let f = frame(&[11, 41, 42], b"000123=2512201\x01");
        let r = rejected(&spec, &f);
        let reply = r.reply.unwrap();
        assert!(!reply.contains(41));
        assert!(r.facts.withheld.contains(&41));
    }

    #[test]
    fn no_stan_no_reply() {
        let spec = Spec::iso87_ascii();
        let r = rejected(&spec, &frame(&[3, 4], b"00000000000"));
        assert!(r.reply.is_none());
        assert_eq!(
            r.facts.mti.map(|m| m.as_str().to_owned()).as_deref(),
            Some("0200")
        );
        let r = rejected(&spec, &Bytes::from_static(b"02"));
        assert!(r.reply.is_none() && r.facts.mti.is_none());
        // A response is never answered.
        let mut f = frame(&[11, 4], b"000123").to_vec();
        f[2] = b'1';
        let r = rejected(&spec, &Bytes::from(f));
        assert!(r.reply.is_none());
    }
}
