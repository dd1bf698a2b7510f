//! Framing + decode + reject, on the corpus of misparsed requests and on arbitrary bytes: no
//! reply and no error (Display or Debug) shows card data. The stable-Rust twin of the `reject`
//! fuzz target, so CI exercises the same path.

#[path = "support/card_corpus.rs"]
mod card_corpus;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use switchyard_iso8583::{LengthKind, Message, Spec};
use switchyard_net::framing::Framing;
use switchyard_net::reject::{PAN_DIGITS, looks_like_card_data, reject};
use tokio_util::codec::{Decoder, Encoder};

/// The frame through the default framing (2-byte header) and back, as the listener reads it.
fn framed(body: &[u8]) -> Bytes {
    let mut codec = Framing::Nac.codec(8192);
    let mut wire = BytesMut::new();
    codec
        .encode(Bytes::copy_from_slice(body), &mut wire)
        .unwrap();
    codec
        .decode(&mut wire)
        .unwrap()
        .expect("one whole frame")
        .freeze()
}

/// The digits-in-a-row of `m` as on the wire, length prefixes counted as digits.
fn wire_digit_run(spec: &Spec, m: &Message) -> usize {
    let (mut run, mut longest) = (0, 0);
    for (n, v) in m.fields() {
        if spec
            .field(n)
            .is_some_and(|f| f.length() != LengthKind::Fixed)
        {
            run += 2;
        }
        for &b in v.iter() {
            run = if b.is_ascii_digit() { run + 1 } else { 0 };
            longest = longest.max(run);
        }
        longest = longest.max(run);
    }
    longest
}

/// What must hold for any frame: returns whether it was answered.
fn check(spec: &Spec, body: &[u8], pan: Option<&str>) -> Result<bool, TestCaseError> {
    let frame = framed(body);
    let Err(error) = spec.decode(frame.clone()) else {
        return Ok(false);
    };
    let rejection = reject(spec, &frame, &error);
    let texts = [
        error.to_string(),
        format!("{error:?}"),
        format!("{:?}", rejection.facts),
        rejection.facts.reason.to_string(),
    ];
    for t in &texts {
        prop_assert!(
            switchyard_net::reject::max_digit_run(t.as_bytes()) < PAN_DIGITS,
            "{t}"
        );
        for sep in ['=', '^', ';', '%'] {
            prop_assert!(!t.contains(sep), "{t}");
        }
        if let Some(pan) = pan {
            prop_assert!(card_corpus::leak(t.as_bytes(), pan).is_none(), "{t}");
        }
    }
    let Some(reply) = rejection.reply else {
        return Ok(false);
    };
    prop_assert_eq!(reply.get_str(39), Some("30"));
    prop_assert!(reply.contains(11));
    for (n, v) in reply.fields() {
        prop_assert!(n == 39 || !looks_like_card_data(v), "DE{} {:?}", n, v);
        // Only fields that precede the first error.
        prop_assert!(n == 39 || error.field.is_none_or(|at| n < at));
    }
    prop_assert!(wire_digit_run(spec, &reply) < PAN_DIGITS);
    let reply = switchyard_net::listener::action_code(spec, &reply).unwrap_or(reply);
    let encoded = spec.encode(&reply).expect("an RC 30 reply encodes");
    if let Some(pan) = pan {
        let leak = card_corpus::leak(&encoded, pan);
        prop_assert!(leak.is_none(), "{:?} in the reply", leak);
    }
    Ok(true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn misparsed_requests_leak_no_card_data(seed in any::<u64>()) {
        let item = card_corpus::item(&mut card_corpus::Rng::new(seed));
        check(&Spec::iso87_ascii(), &item.frame, Some(item.pan))?;
    }

    #[test]
    fn arbitrary_frames_leak_nothing(
        spec in 0..Spec::builtin_names().len(),
        mti in prop::sample::select(vec![&b"0100"[..], b"0200", b"0800", b"1100", b"0420"]),
        body in prop::collection::vec(prop_oneof![
            4 => b'0'..=b'9',
            1 => any::<u8>(),
            1 => prop::sample::select(b"=D^;% ".to_vec()),
        ], 8..300),
    ) {
        let spec = Spec::builtin(Spec::builtin_names()[spec]).unwrap();
        let mut frame = mti.to_vec();
        frame.extend_from_slice(&body);
        check(&spec, &frame, None)?;
    }
}

/// The corpus is what it says: most items do not decode, and of those many are answered.
#[test]
fn the_corpus_exercises_both_outcomes() {
    let spec = Spec::iso87_ascii();
    let mut rng = card_corpus::Rng::new(9);
    let (mut undecodable, mut answered) = (0, 0);
    for _ in 0..2000 {
        let item = card_corpus::item(&mut rng);
        if spec.decode(framed(&item.frame)).is_err() {
            undecodable += 1;
            answered += usize::from(check(&spec, &item.frame, Some(item.pan)).unwrap());
        }
    }
    println!("2000 items: {undecodable} undecodable, {answered} answered with 30");
    assert!(undecodable > 1500, "{undecodable}");
    assert!(answered > 300, "{answered}");
}

/// The check can fail: echoing what `decode_partial` read, as the listener once did, puts the
/// card data of some corpus items into the reply.
#[test]
fn the_naive_echo_would_leak() {
    let spec = Spec::iso87_ascii();
    let mut rng = card_corpus::Rng::new(9);
    let mut leaks = 0;
    for _ in 0..2000 {
        let item = card_corpus::item(&mut rng);
        let (Some(partial), Err(_)) = spec.decode_partial(framed(&item.frame)) else {
            continue;
        };
        let mut naive = Message::default();
        switchyard_engine::steps::complete_response(&partial, "30", &mut naive);
        if let Ok(encoded) = spec.encode(&naive) {
            leaks += usize::from(card_corpus::leak(&encoded, item.pan).is_some());
        }
    }
    println!("the naive echo leaks card data in {leaks} of 2000 replies");
    assert!(leaks > 0);
}

/// Found by the `reject` fuzz target: seed bytes `2f2f006b6b6b6b6b`, byte 107 set to `k`.
#[test]
fn fuzz_regression_track_tail_in_an_echoed_field() {
    let mut rng = card_corpus::Rng::new(u64::from_le_bytes(*b"\x2f\x2f\x00kkkkk"));
    let item = card_corpus::item(&mut rng);
    let mut frame = item.frame.clone();
    if frame.len() > 107 {
        frame[107] = b'k';
    }
    let spec = Spec::iso87_ascii();
    check(&spec, &frame, Some(item.pan)).unwrap();
}
