//! A decode error shows no byte of its frame: not in its Display, not in its Debug, whatever
//! the frame and the spec. The corpus of misparsed requests with card data is shared with the
//! listener's tests.

#[path = "../../net/tests/support/card_corpus.rs"]
mod card_corpus;

use proptest::prelude::*;
use switchyard_iso8583::{Bytes, Spec};

fn digit_run(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

fn assert_clean(spec: &Spec, frame: Bytes, pan: Option<&str>) -> Result<(), TestCaseError> {
    let errors = [
        spec.decode(frame.clone()).err(),
        spec.decode_partial(frame).1.err(),
    ];
    for e in errors.into_iter().flatten() {
        for text in [e.to_string(), format!("{e:?}"), e.kind.to_string()] {
            prop_assert!(digit_run(&text) < 13, "{}", text);
            prop_assert!(!text.contains(['=', '^', ';', '%', '"']), "{}", text);
            if let Some(pan) = pan {
                prop_assert!(
                    card_corpus::leak(text.as_bytes(), pan).is_none(),
                    "{}",
                    text
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn misparsed_requests(seed in any::<u64>()) {
        let item = card_corpus::item(&mut card_corpus::Rng::new(seed));
        assert_clean(&Spec::iso87_ascii(), Bytes::from(item.frame), Some(item.pan))?;
    }

    #[test]
    fn arbitrary_frames_with_every_spec(
        spec in 0..Spec::builtin_names().len(),
        frame in prop::collection::vec(prop_oneof![
            3 => b'0'..=b'9',
            1 => any::<u8>(),
            1 => prop::sample::select(b"=D^;%\"".to_vec()),
        ], 0..300),
    ) {
        let spec = Spec::builtin(Spec::builtin_names()[spec]).unwrap();
        assert_clean(&spec, Bytes::from(frame), None)?;
    }
}
