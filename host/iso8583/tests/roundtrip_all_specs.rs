//! Property tests for every built-in spec: decode(encode(m)) == m for random valid messages;
//! random bytes (after a plausible MTI and bitmap, or not) decode to an error or to a message
//! that re-encodes, never to a panic.

mod common;

use proptest::prelude::*;
use switchyard_iso8583::{
    Bytes, ContentType, DataEncoding, LengthCounts, LengthKind, Message, Spec,
};

fn chars(spec: &Spec, n: u16) -> Option<&'static [u8]> {
    let f = spec.field(n).unwrap();
    Some(match f.content() {
        ContentType::N => b"0123456789",
        ContentType::A => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        ContentType::An => b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        ContentType::Ans => b" !\"#$%&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~",
        ContentType::Z if f.encoding() == DataEncoding::Bcd => b"0123456789D",
        ContentType::Z => b"0123456789=D:;<>?",
        ContentType::B => return None,
    })
}

fn field_value(spec: &Spec, n: u16) -> BoxedStrategy<Vec<u8>> {
    let f = spec.field(n).unwrap().clone();
    let chars = chars(spec, n);
    let value = move |len: usize| match chars {
        Some(c) => prop::collection::vec(prop::sample::select(c), len).boxed(),
        None => prop::collection::vec(any::<u8>(), len).boxed(),
    };
    if f.length() == LengthKind::Fixed {
        value(f.max_len() as usize)
    } else {
        let mut max = f.max_len() as usize;
        if f.length_counts() == LengthCounts::Wire && f.encoding() == DataEncoding::Hex {
            max /= 2;
        }
        (0..=max.min(48)).prop_flat_map(value).boxed()
    }
}

fn message(spec: Spec) -> impl Strategy<Value = Message> {
    common::message(
        spec,
        vec!["0100", "0200", "0210", "0800", "1100", "1200", "1804"],
        field_value,
    )
}

fn any_spec_and_message() -> impl Strategy<Value = (String, Message)> {
    prop::sample::select(Spec::builtin_names().to_vec()).prop_flat_map(|name| {
        (
            Just(name.to_string()),
            message(Spec::builtin(name).unwrap()),
        )
    })
}

fn check_reencodes(spec: &Spec, frame: Bytes) -> Result<(), TestCaseError> {
    if let Ok(m) = spec.decode(frame.clone()) {
        let again = spec.encode(&m).unwrap();
        prop_assert_eq!(spec.decode(again).unwrap(), m);
    }
    let _ = spec.decode_partial(frame);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn encode_then_decode_is_identity_in_every_spec((name, m) in any_spec_and_message()) {
        let spec = Spec::builtin(&name).unwrap();
        let wire = spec.encode(&m).unwrap();
        prop_assert_eq!(spec.decode(wire.clone()).unwrap(), m.clone(), "{}", name);
        // Every truncation fails.
        for cut in [0, wire.len() / 2, wire.len() - 1] {
            prop_assert!(spec.decode(wire.slice(..cut)).is_err());
        }
    }

    #[test]
    fn random_bytes_never_panic_in_any_spec(
        name in prop::sample::select(Spec::builtin_names().to_vec()),
        head in prop::sample::select(vec![&b"0200"[..], b"\x02\x00", b"\xf0\xf2\xf0\xf0", b""]),
        bitmap in any::<[u8; 16]>(),
        tail in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let spec = Spec::builtin(name).unwrap();
        let mut frame = head.to_vec();
        frame.extend_from_slice(&bitmap);
        frame.extend_from_slice(&tail);
        check_reencodes(&spec, Bytes::from(frame))?;
        check_reencodes(&spec, Bytes::from(tail))?;
    }

    #[test]
    fn mutated_frames_never_panic_in_any_spec(
        (name, m) in any_spec_and_message(),
        at in any::<prop::sample::Index>(),
        b in any::<u8>(),
    ) {
        let spec = Spec::builtin(&name).unwrap();
        let mut wire = spec.encode(&m).unwrap().to_vec();
        let i = at.index(wire.len());
        wire[i] = b;
        check_reencodes(&spec, Bytes::from(wire))?;
    }

    #[test]
    fn ber_tlv_never_panics_and_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let spec = Spec::iso87_ascii();
        let value = Bytes::from(bytes);
        if let Ok(tlv) = spec.decode_subfields(55, &value) {
            prop_assert_eq!(spec.encode_subfields(55, &tlv).unwrap(), value);
        }
    }
}
