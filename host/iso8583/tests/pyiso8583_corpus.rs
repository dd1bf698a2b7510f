//! Interop with pyiso8583 4.0.1 `specs.default`: 64 random messages with valid content for
//! every field it defines (except track data and PIN blocks), encoded by pyiso8583
//! (`tests/fixtures/pyiso8583_default.py` writes the fixture). Every one must decode with our
//! default spec to the same values, and our encoder must produce the same bytes.

use switchyard_iso8583::{Bytes, Spec};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn every_pyiso8583_message_decodes_and_re_encodes_identically() {
    let spec = Spec::iso87_ascii();
    let corpus = include_str!("fixtures/pyiso8583_default.txt");
    let mut count = 0;
    let mut seen = std::collections::BTreeSet::new();
    for (line_no, line) in corpus.lines().enumerate() {
        let mut parts = line.split(' ');
        let frame = Bytes::from(hex(parts.next().unwrap()));
        let m = spec
            .decode(frame.clone())
            .unwrap_or_else(|e| panic!("line {}: {e}", line_no + 1));
        let expected: Vec<(u16, Vec<u8>)> = parts
            .map(|p| {
                let (n, v) = p.split_once('=').unwrap();
                (n.parse().unwrap(), hex(v))
            })
            .collect();
        let got: Vec<(u16, Vec<u8>)> = m.fields().map(|(n, v)| (n, v.to_vec())).collect();
        assert_eq!(got, expected, "line {}", line_no + 1);
        assert_eq!(spec.encode(&m).unwrap(), frame, "line {}", line_no + 1);
        seen.extend(got.iter().map(|(n, _)| *n));
        count += 1;
    }
    assert_eq!(count, 64);
    // The corpus covers most fields, primary and secondary.
    assert!(seen.len() > 100, "only {} distinct fields", seen.len());
}
