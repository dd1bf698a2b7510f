//! Feed arbitrary bytes, in arbitrary chunks, to every length framing (the first byte picks
//! the header, whether it counts itself, and the chunk size): frames or a typed error, never a
//! panic, never a buffer beyond the cap; frames re-encode to the bytes they came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_iso8583::BytesMut;
use switchyard_iso8583::framing::{Framing, LengthHeader};

const HEADERS: [LengthHeader; 8] = LengthHeader::ALL;
const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, stream)) = data.split_first() else {
        return;
    };
    let framing = Framing::new(HEADERS[pick as usize % 8], MAX).with_header_included(pick & 8 != 0);
    let chunk = 1 + (pick as usize >> 4);
    let mut buf = BytesMut::new();
    let mut consumed = 0;
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match framing.decode(&mut buf) {
                Ok(Some(body)) => {
                    assert!(body.len() <= MAX);
                    let mut out = BytesMut::new();
                    framing.encode(&body, &mut out).unwrap();
                    let n = out.len();
                    // Headers are canonical except ASCII/BCD digits, which are always
                    // canonical too: the re-encoded frame is the consumed input.
                    assert_eq!(&out[..], &stream[consumed..consumed + n]);
                    consumed += n;
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = framing.decode_eof(&mut buf);
});
