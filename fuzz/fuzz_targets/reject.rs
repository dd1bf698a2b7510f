//! Framing + decode + reject, as a listener meets an undecodable frame: no reply and no decode
//! error (Display or Debug) shows card data. The first byte picks the input: even — a corpus
//! request with a test PAN and track data (the next 8 bytes its seed), corrupted, then bytes
//! overwritten at the positions the rest of the input names; odd — the rest of the input as the
//! message, with a built-in spec the byte picks. The stable twin is
//! `host/net/tests/reject_props.rs`.
#![no_main]

#[path = "../../host/net/tests/support/card_corpus.rs"]
mod card_corpus;

use libfuzzer_sys::fuzz_target;
use switchyard_iso8583::framing::{Framing, LengthHeader};
use switchyard_iso8583::{BytesMut, LengthKind, Spec};
use switchyard_net::reject::{PAN_DIGITS, looks_like_card_data, max_digit_run, reject};

/// What of a corpus item's card data must not show.
#[derive(Clone, Copy)]
enum Secret {
    /// The PAN, track data, the cardholder name.
    Full(&'static str),
    /// The PAN (13 digits in a row of it).
    PanOnly(&'static str),
}
use Secret::{Full, PanOnly};

impl Secret {
    fn leak(self, text: &[u8]) -> Option<String> {
        match self {
            Full(pan) => card_corpus::leak(text, pan),
            PanOnly(pan) => pan
                .as_bytes()
                .windows(PAN_DIGITS)
                .find(|w| text.windows(PAN_DIGITS).any(|t| t == *w))
                .map(|w| String::from_utf8_lossy(w).into_owned()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (spec, body, pan) = if pick & 1 == 0 {
        let mut seed = [0u8; 8];
        let n = rest.len().min(8);
        seed[..n].copy_from_slice(&rest[..n]);
        let item = card_corpus::item(&mut card_corpus::Rng::new(u64::from_le_bytes(seed)));
        let mut frame = item.frame;
        let mut mutated = false;
        for pair in rest[n..].chunks_exact(2) {
            let at = pair[0] as usize;
            if at < frame.len() {
                frame[at] = pair[1];
                mutated = true;
            }
        }
        // Bytes overwritten at random can erase a track's separator: what is left of its
        // tail is then digits like any other, and only the PAN is checked for.
        let pan = if mutated {
            PanOnly(item.pan)
        } else {
            Full(item.pan)
        };
        (Spec::iso87_ascii(), frame, Some(pan))
    } else {
        let names = Spec::builtin_names();
        let spec = Spec::builtin(names[(pick >> 1) as usize % names.len()]).unwrap();
        (spec, rest.to_vec(), None)
    };
    // Through the default framing, as the listener reads it.
    let framing = Framing::new(LengthHeader::Binary2, 8192);
    let mut wire = BytesMut::new();
    if framing.encode(&body, &mut wire).is_err() {
        return;
    }
    let frame = framing.decode(&mut wire).unwrap().unwrap().freeze();
    let Err(error) = spec.decode(frame.clone()) else {
        return;
    };
    let rejection = reject(&spec, &frame, &error);
    for text in [
        error.to_string(),
        format!("{error:?}"),
        format!("{:?}", rejection.facts),
    ] {
        assert!(max_digit_run(text.as_bytes()) < PAN_DIGITS, "{text}");
        assert!(!text.contains(['=', '^', ';', '%']), "{text}");
        if let Some(secret) = pan {
            assert!(secret.leak(text.as_bytes()).is_none(), "{text}");
        }
    }
    let Some(reply) = rejection.reply else {
        return;
    };
    let mut run = 0;
    for (n, v) in reply.fields() {
        assert!(
            n == 39 || !looks_like_card_data(v),
            "DE{n} looks like card data"
        );
        assert!(
            n == 39 || error.field.is_none_or(|at| n < at),
            "DE{n} follows the error"
        );
        if spec
            .field(n)
            .is_some_and(|f| f.length() != LengthKind::Fixed)
        {
            run += 2;
        }
        for &b in v.iter() {
            run = if b.is_ascii_digit() { run + 1 } else { 0 };
            assert!(run < PAN_DIGITS, "13 digits in a row in the reply");
        }
    }
    if let (Some(secret), Ok(encoded)) = (pan, spec.encode(&reply)) {
        let leak = secret.leak(&encoded);
        assert!(leak.is_none(), "{leak:?} in the reply");
    }
});
