//! Decode arbitrary bytes with every built-in spec (the first byte picks it): an error or a
//! message, never a panic; whatever decodes re-encodes and decodes the same. DE55 goes
//! through the BER-TLV layout the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_iso8583::{Bytes, Spec};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let names = Spec::builtin_names();
    let spec = Spec::builtin(names[pick as usize % names.len()]).unwrap();
    let frame = Bytes::copy_from_slice(frame);
    if let Ok(m) = spec.decode(frame.clone()) {
        let again = spec.encode(&m).expect("a decoded message re-encodes");
        assert_eq!(spec.decode(again).expect("and decodes again"), m);
        if let Some(de55) = m.get_bytes(55) {
            if let Ok(tlv) = spec.decode_subfields(55, de55) {
                assert_eq!(&spec.encode_subfields(55, &tlv).unwrap(), de55);
            }
        }
    }
    let _ = spec.decode_partial(frame);
});
