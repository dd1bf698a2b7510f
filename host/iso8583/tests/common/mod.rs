//! What the property tests share: random messages of a spec.

use proptest::prelude::*;
use switchyard_iso8583::{Message, Mti, Spec};

/// A message of `spec`: up to 24 of its fields, each with a value from
/// `field_value`, and one of `mtis`.
pub fn message(
    spec: Spec,
    mtis: Vec<&'static str>,
    field_value: fn(&Spec, u16) -> BoxedStrategy<Vec<u8>>,
) -> impl Strategy<Value = Message> {
    let numbers: Vec<u16> = spec.fields().map(|(n, _)| n).collect();
    (
        prop::sample::subsequence(numbers, 0..=24),
        prop::sample::select(mtis),
    )
        .prop_flat_map(move |(fields, mti)| {
            let values: Vec<_> = fields.iter().map(|&n| field_value(&spec, n)).collect();
            (Just(fields), Just(mti), values)
        })
        .prop_map(|(fields, mti, values)| {
            let mut m = Message::new(Mti::new(mti).unwrap());
            for (n, v) in fields.into_iter().zip(values) {
                m.set(n, v);
            }
            m
        })
}
