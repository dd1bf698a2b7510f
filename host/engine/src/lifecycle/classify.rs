//! What a request is, by its MTI, and the keys that find its earlier sends
//! and its original.

use switchyard_iso8583::{Message, Mti};

use crate::ports::{Columns, MatchKey, OriginalRef, TxKind};

/// Fields a tranlog never stores (track data, PIN block, chip data).
pub const NEVER_STORED: [u16; 4] = [35, 45, 52, 55];

/// The kind of a request, by its MTI (1987 `0xxx` and 1993 `1xxx` alike):
/// `x100`/`x200` originals, `x101`/`x201` their repeats, `x220`/`x221`
/// completions, `x400`/`x401`/`x420`/`x421` reversals, `x800` network
/// management; anything else (responses, issuer-originated messages,
/// other classes) is `Other`.
pub fn kind_of(mti: Mti) -> TxKind {
    let [_, class, function, origin] = *mti.as_bytes();
    let acquirer = matches!(origin, b'0' | b'1');
    let repeat = origin == b'1';
    match (class, function) {
        (b'1' | b'2', b'0') if acquirer => {
            if repeat {
                TxKind::Repeat
            } else {
                TxKind::Original
            }
        }
        (b'2', b'2') if acquirer => TxKind::Completion,
        (b'4', b'0' | b'2') if acquirer => TxKind::Reversal,
        (b'8', b'0') => TxKind::Network,
        _ => TxKind::Other,
    }
}

/// The message class a request is matched in: its MTI with the last digit
/// set to 0, so a repeat (`0201`) finds its original (`0200`) and a
/// retransmitted reversal (`0421`) the first one (`0420`).
pub fn class_of(mti: Mti) -> String {
    let mut class = mti.as_str().to_owned();
    class.replace_range(3..4, "0");
    class
}

fn text(m: &Message, field: u16) -> Option<String> {
    m.get_str(field).map(str::to_owned)
}

/// The clear columns of a request.
pub fn columns(request: &Message) -> Columns {
    Columns {
        processing_code: text(request, 3),
        amount: text(request, 4),
        currency: text(request, 49),
        stan: text(request, 11),
        transmitted: text(request, 7),
        rrn: text(request, 37),
        terminal: text(request, 41),
        merchant: text(request, 42),
        acquirer: text(request, 32),
    }
}

/// The match key of DESIGN.md: (tenant, class, DE32, DE41, DE11, DE7,
/// DE37), absent fields empty.
pub fn match_key(tenant: &str, request: &Message) -> MatchKey {
    let part = |f: u16| request.get_str(f).unwrap_or("");
    MatchKey(format!(
        "{tenant}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
        class_of(request.mti()),
        part(32),
        part(41),
        part(11),
        part(7),
        part(37)
    ))
}

/// The request without what may never be stored.
pub fn storable(request: &Message) -> Message {
    let mut m = request.clone();
    for f in NEVER_STORED {
        m.remove(f);
    }
    m
}

/// Why a reversal or completion cannot name its original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadReference(pub String);

/// How a reversal or completion names its original: DE90 (original MTI 4,
/// STAN 6, DE7 10, DE32 11 and DE33 11 digits, zero-filled), or else its
/// own DE11 + DE41 + DE37. A DE90 of zeros counts as absent.
pub fn original_ref(request: &Message) -> Result<OriginalRef, BadReference> {
    if let Some(de90) = request.get_str(90).filter(|v| v.bytes().any(|b| b != b'0')) {
        if de90.len() != 42 || !de90.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadReference(format!(
                "DE90 must be 42 digits (original MTI, STAN, DE7, DE32, DE33); it has {} characters",
                de90.len()
            )));
        }
        let acquirer = de90[20..31].trim_start_matches('0').to_owned();
        return Ok(OriginalRef::De90 {
            mti: de90[0..4].to_owned(),
            stan: de90[4..10].to_owned(),
            transmitted: de90[10..20].to_owned(),
            acquirer,
        });
    }
    match (request.get_str(11), request.get_str(41)) {
        (Some(stan), Some(terminal)) => Ok(OriginalRef::StanTerminalRrn {
            stan: stan.to_owned(),
            terminal: terminal.to_owned(),
            rrn: request.get_str(37).unwrap_or("").to_owned(),
        }),
        _ => Err(BadReference(
            "neither DE90 nor DE11 and DE41 name the original".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mti(s: &str) -> Mti {
        Mti::new(s).unwrap()
    }

    #[test]
    fn kinds_by_mti() {
        for (m, k) in [
            ("0100", TxKind::Original),
            ("0200", TxKind::Original),
            ("1200", TxKind::Original),
            ("0101", TxKind::Repeat),
            ("0201", TxKind::Repeat),
            ("0220", TxKind::Completion),
            ("0221", TxKind::Completion),
            ("0400", TxKind::Reversal),
            ("0401", TxKind::Reversal),
            ("0420", TxKind::Reversal),
            ("0421", TxKind::Reversal),
            ("1420", TxKind::Reversal),
            ("0800", TxKind::Network),
            ("0210", TxKind::Other),
            ("0202", TxKind::Other),
            ("0300", TxKind::Other),
            ("0120", TxKind::Other),
        ] {
            assert_eq!(kind_of(mti(m)), k, "{m}");
        }
    }

    #[test]
    fn classes_drop_the_repeat_digit() {
        assert_eq!(class_of(mti("0201")), "0200");
        assert_eq!(class_of(mti("0421")), "0420");
        assert_eq!(class_of(mti("0400")), "0400");
    }

    fn message(mti_text: &str, fields: &[(u16, &str)]) -> Message {
        let mut m = Message::new(mti(mti_text));
        for (f, v) in fields {
            m.set(*f, v.as_bytes().to_vec());
        }
        m
    }

    #[test]
    fn a_repeat_has_its_originals_key_and_a_reversal_its_own() {
        let f = [(11, "000123"), (7, "1201101010"), (41, "TERM0001")];
        let original = match_key("t", &message("0200", &f));
        assert_eq!(original, match_key("t", &message("0201", &f)));
        assert_ne!(original, match_key("t", &message("0420", &f)));
        assert_ne!(original, match_key("u", &message("0200", &f)));
        assert_eq!(
            match_key("t", &message("0420", &f)),
            match_key("t", &message("0421", &f))
        );
    }

    #[test]
    fn de90_names_the_original() {
        let m = message(
            "0420",
            &[
                (90, "020000012312011010100000012345600000000000"),
                (11, "000999"),
            ],
        );
        assert_eq!(
            original_ref(&m).unwrap(),
            OriginalRef::De90 {
                mti: "0200".into(),
                stan: "000123".into(),
                transmitted: "1201101010".into(),
                acquirer: "123456".into(),
            }
        );
        let short = message("0420", &[(90, "0200000123")]);
        assert!(original_ref(&short).unwrap_err().0.contains("42 digits"));
    }

    #[test]
    fn without_de90_stan_terminal_and_rrn_name_it() {
        let m = message(
            "0420",
            &[(11, "000123"), (41, "TERM0001"), (37, "123456789012")],
        );
        assert_eq!(
            original_ref(&m).unwrap(),
            OriginalRef::StanTerminalRrn {
                stan: "000123".into(),
                terminal: "TERM0001".into(),
                rrn: "123456789012".into(),
            }
        );
        let zeros = message("0420", &[(90, &"0".repeat(42)), (11, "000123"), (41, "T1")]);
        assert!(matches!(
            original_ref(&zeros).unwrap(),
            OriginalRef::StanTerminalRrn { .. }
        ));
        assert!(original_ref(&message("0420", &[(11, "1")])).is_err());
    }

    #[test]
    fn track_pin_and_chip_data_are_never_storable() {
        let m = message(
            "0200",
            &[
                (2, "4761739001010119"),
                (35, "x"),
                (45, "y"),
                (52, "z"),
                (55, "w"),
            ],
        );
        let s = storable(&m);
        assert!(s.contains(2));
        for f in NEVER_STORED {
            assert!(!s.contains(f));
        }
    }
}
