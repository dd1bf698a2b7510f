//! Property tests: every valid message of the default spec survives encode → decode, no input
//! makes the decoder panic, and no truncation of a valid frame decodes.

mod common;

use proptest::prelude::*;
use switchyard_iso8583::{Bytes, ContentType, LengthKind, Message, Spec};

fn value_for(content: ContentType, len: usize) -> BoxedStrategy<Vec<u8>> {
    let chars: &'static [u8] = match content {
        ContentType::N => b"0123456789",
        ContentType::A => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        ContentType::An => b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        ContentType::Ans => b" !\"#$%&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~",
        ContentType::Z => b"0123456789=D:;<>?",
        _ => return prop::collection::vec(any::<u8>(), len).boxed(),
    };
    prop::collection::vec(prop::sample::select(chars), len).boxed()
}

/// A valid value for field `n` of `spec`.
fn field_value(spec: &Spec, n: u16) -> BoxedStrategy<Vec<u8>> {
    let f = spec.field(n).unwrap().clone();
    let content = f.content();
    if f.length() == LengthKind::Fixed {
        value_for(content, f.max_len() as usize)
    } else {
        // Keep LLL fields short-ish so cases stay fast, but test the maximum too.
        let max = f.max_len() as usize;
        prop_oneof![
            (0..=max.min(40)).prop_flat_map(move |len| value_for(content, len)),
            value_for(content, max),
        ]
        .boxed()
    }
}

fn message_strategy() -> impl Strategy<Value = Message> {
    common::message(
        Spec::iso87_ascii(),
        vec!["0100", "0110", "0200", "0210", "0400", "0800", "1200"],
        field_value,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_is_identity(m in message_strategy()) {
        let spec = Spec::iso87_ascii();
        let wire = spec.encode(&m).unwrap();
        prop_assert_eq!(spec.decode(wire.clone()).unwrap(), m.clone());
        let (partial, result) = spec.decode_partial(wire);
        prop_assert!(result.is_ok());
        prop_assert_eq!(partial, Some(m));
    }

    #[test]
    fn every_truncation_of_a_valid_frame_fails(m in message_strategy()) {
        let spec = Spec::iso87_ascii();
        let wire = spec.encode(&m).unwrap();
        for cut in 0..wire.len() {
            let frame = wire.slice(..cut);
            prop_assert!(spec.decode(frame.clone()).is_err(), "cut at {}", cut);
            let (_, result) = spec.decode_partial(frame);
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let spec = Spec::iso87_ascii();
        let frame = Bytes::from(bytes);
        let _ = spec.decode(frame.clone());
        let _ = spec.decode_partial(frame);
    }

    /// Random bytes after a plausible MTI and bitmap reach deep into field decoding.
    #[test]
    fn random_fields_never_panic(
        bitmap in any::<[u8; 16]>(),
        tail in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let spec = Spec::iso87_ascii();
        let mut frame = b"0200".to_vec();
        frame.extend_from_slice(&bitmap);
        frame.extend_from_slice(&tail);
        let frame = Bytes::from(frame);
        if let Ok(m) = spec.decode(frame.clone()) {
            // Whatever decodes is valid: it re-encodes, and decodes the same again.
            let again = spec.encode(&m).unwrap();
            prop_assert_eq!(spec.decode(again).unwrap(), m);
        }
        let _ = spec.decode_partial(frame);
    }

    /// Mutating one byte of a valid frame never panics, and what still decodes is valid.
    #[test]
    fn mutated_frames_never_panic(m in message_strategy(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let spec = Spec::iso87_ascii();
        let mut wire = spec.encode(&m).unwrap().to_vec();
        let i = at.index(wire.len());
        wire[i] = b;
        let frame = Bytes::from(wire);
        if let Ok(m) = spec.decode(frame.clone()) {
            let again = spec.encode(&m).unwrap();
            prop_assert_eq!(spec.decode(again).unwrap(), m);
        }
        let _ = spec.decode_partial(frame);
    }
}
