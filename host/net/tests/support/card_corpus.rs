//! A corpus of misparsed ISO 8583:1987 (ASCII, binary bitmap) requests carrying card data, made
//! at test time (no PAN is stored in a fixture), and the check that nothing of their card data
//! shows in a reply or a log line.
//!
//! Each item is a valid 0100 or 0200 with a published test PAN in DE2, track 2 in DE35 and
//! (sometimes) track 1 in DE45, then corrupted: a wrong length prefix on DE2, DE32, DE35 or
//! DE45, a truncated frame, a bitmap bit set for a field that is not there or cleared for one
//! that is, a non-digit in a numeric field, or two of these at once.
//!
//! Shared (by `#[path]`) by `host/net/tests/reject_props.rs`, `host/switchyard/tests/card_data.rs`
//! and the `reject` fuzz target.

#![allow(dead_code)]

/// Published test PANs (Visa, Mastercard, Amex, Discover, JCB).
pub const PANS: [&str; 6] = [
    "4761739001010119",
    "4111111111111111",
    "5555555555554444",
    "378282246310005",
    "6011000990139424",
    "3530111333300000",
];

/// The digits after the track 2 separator: expiry 2512, service code 201, discretionary data.
pub const TRACK2_TAIL: &str = "25122019988776655";
/// The cardholder name of track 1.
pub const TRACK1_NAME: &str = "TEST/CARDHOLDER";

/// A small deterministic generator (xorshift64*), so a failure names its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn digits(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| b'0' + self.below(10) as u8).collect()
    }
}

/// One field as it sits on the wire.
struct Wire {
    field: u16,
    /// Width of its length prefix (0: fixed).
    prefix: usize,
    bytes: Vec<u8>,
}

/// A corpus item: the frame body (no length header) and the card data it carries.
#[derive(Clone, Debug)]
pub struct Item {
    /// The message bytes.
    pub frame: Vec<u8>,
    /// The PAN in it.
    pub pan: &'static str,
    /// What was done to it.
    pub corruption: String,
}

fn llvar(field: u16, value: &[u8]) -> Wire {
    let mut bytes = format!("{:02}", value.len()).into_bytes();
    bytes.extend_from_slice(value);
    Wire {
        field,
        prefix: 2,
        bytes,
    }
}

fn fixed(field: u16, value: &[u8]) -> Wire {
    Wire {
        field,
        prefix: 0,
        bytes: value.to_vec(),
    }
}

/// A valid request's fields, in wire order.
fn request(rng: &mut Rng, pan: &str) -> (Vec<u8>, Vec<Wire>) {
    let mti = if rng.below(2) == 0 { b"0100" } else { b"0200" };
    let track2 = format!("{pan}={TRACK2_TAIL}");
    let mut fields = vec![
        llvar(2, pan.as_bytes()),
        fixed(3, b"000000"),
        fixed(4, &rng.digits(12)),
        fixed(7, b"1202120000"),
        fixed(11, &rng.digits(6)),
        fixed(12, b"120000"),
        fixed(13, b"1202"),
        fixed(14, b"2512"),
        fixed(22, b"051"),
        llvar(32, b"123456"),
        llvar(35, track2.as_bytes()),
        fixed(37, &rng.digits(12)),
        fixed(41, b"TERM0001"),
        fixed(42, b"MERCHANT0000001"),
    ];
    if rng.below(3) == 0 {
        let track1 = format!("B{pan}^{TRACK1_NAME}^{TRACK2_TAIL}");
        fields.push(llvar(45, track1.as_bytes()));
    }
    fields.push(fixed(49, b"978"));
    if rng.below(3) == 0 {
        fields.push(fixed(52, &[0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0]));
    }
    (mti.to_vec(), fields)
}

fn bitmap(fields: impl Iterator<Item = u16>) -> [u8; 8] {
    let mut word = 0u64;
    for n in fields {
        word |= 1 << (64 - n);
    }
    word.to_be_bytes()
}

fn assemble(mti: &[u8], map: [u8; 8], fields: &[Wire]) -> Vec<u8> {
    let mut f = mti.to_vec();
    f.extend_from_slice(&map);
    for w in fields {
        f.extend_from_slice(&w.bytes);
    }
    f
}

/// One corrupted request, drawn from `rng`.
pub fn item(rng: &mut Rng) -> Item {
    let pan = PANS[rng.below(PANS.len())];
    let (mti, mut fields) = request(rng, pan);
    let mut map = bitmap(fields.iter().map(|w| w.field));
    let mut done = Vec::new();
    let mut truncate = None;
    for _ in 0..1 + rng.below(2) {
        match rng.below(6) {
            // A wrong length prefix on a variable field.
            0 | 1 => {
                let vars: Vec<usize> = (0..fields.len())
                    .filter(|&i| fields[i].prefix > 0)
                    .collect();
                let i = vars[rng.below(vars.len())];
                let w = &mut fields[i];
                let len = w.bytes.len() - w.prefix;
                let wrong = match rng.below(3) {
                    0 => len.saturating_sub(1 + rng.below(8)),
                    1 => len + 1 + rng.below(12),
                    _ => rng.below(100),
                }
                .min(99);
                w.bytes[..2].copy_from_slice(format!("{wrong:02}").as_bytes());
                done.push(format!("DE{} prefix {len}→{wrong}", w.field));
            }
            // A bit for a field that is not there.
            2 => {
                let absent: Vec<u16> = (2..=64)
                    .filter(|n| !fields.iter().any(|w| w.field == *n))
                    .collect();
                let n = absent[rng.below(absent.len())];
                map[(n as usize - 1) / 8] |= 0x80 >> ((n - 1) % 8);
                done.push(format!("bit {n} set, DE{n} absent"));
            }
            // No bit for a field that is there.
            3 => {
                let w = &fields[rng.below(fields.len())];
                let n = w.field;
                map[(n as usize - 1) / 8] &= !(0x80 >> ((n - 1) % 8));
                done.push(format!("bit {n} cleared, DE{n} present"));
            }
            // A non-digit in a numeric field.
            4 => {
                let numeric = [2u16, 3, 4, 7, 11, 12, 13, 14, 22, 32];
                let candidates: Vec<usize> = (0..fields.len())
                    .filter(|&i| numeric.contains(&fields[i].field))
                    .collect();
                let i = candidates[rng.below(candidates.len())];
                let w = &mut fields[i];
                let at = w.prefix + rng.below(w.bytes.len() - w.prefix);
                w.bytes[at] = b"X=D ^;"[rng.below(6)];
                done.push(format!("DE{} byte {at} not a digit", w.field));
            }
            // Truncated.
            _ => truncate = Some(rng.next()),
        }
    }
    let mut frame = assemble(&mti, map, &fields);
    if let Some(r) = truncate {
        let at = 4 + (r as usize % (frame.len() - 4));
        frame.truncate(at);
        done.push(format!("truncated to {at} bytes"));
    }
    Item {
        frame,
        pan,
        corruption: done.join(", "),
    }
}

/// What of `pan`'s card data `text` shows, if anything: 13 digits in a row of the PAN, the
/// track 2 data after its separator (8 digits in a row of it), a separator followed by the
/// expiry, or the track 1 name.
pub fn leak(text: &[u8], pan: &str) -> Option<String> {
    let windows = |s: &str, n: usize| -> Vec<Vec<u8>> {
        s.as_bytes().windows(n).map(<[u8]>::to_vec).collect()
    };
    let mut secrets = windows(pan, 13);
    secrets.extend(windows(TRACK2_TAIL, 8));
    for sep in ["=", "D", "^"] {
        secrets.push(format!("{sep}{}", &TRACK2_TAIL[..4]).into_bytes());
    }
    secrets.push(TRACK1_NAME.as_bytes().to_vec());
    secrets
        .into_iter()
        .find(|s| text.windows(s.len()).any(|w| w == &s[..]))
        .map(|s| String::from_utf8_lossy(&s).into_owned())
}

/// Any card data of any corpus PAN in `text`.
pub fn leak_any(text: &[u8]) -> Option<String> {
    PANS.iter().find_map(|pan| leak(text, pan))
}
