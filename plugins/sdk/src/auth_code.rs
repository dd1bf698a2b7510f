//! Authorization codes (DE38) for participants that approve: six
//! characters of `0-9A-Z`, from the wall clock mixed with a per-instance
//! counter seeded from the monotonic clock, so two instances (or two
//! transactions in one millisecond) do not repeat each other.

use crate::Clock;

const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A source of authorization codes; keep one per plugin value.
#[derive(Clone, Debug, Default)]
pub struct AuthCodes {
    counter: Option<u64>,
}

impl AuthCodes {
    /// A new authorization code: six characters of `0-9A-Z`.
    pub fn next(&mut self, clock: &impl Clock) -> [u8; 6] {
        let counter = self
            .counter
            .get_or_insert_with(|| splitmix64(clock.monotonic_nanos()));
        *counter = counter.wrapping_add(1);
        let mut x = splitmix64(*counter ^ (clock.now_unix_millis() as u64).rotate_left(32));
        let mut code = [0u8; 6];
        for c in &mut code {
            *c = ALPHABET[(x % 36) as usize];
            x /= 36;
        }
        code
    }
}

/// SplitMix64's finalizer: a bijective mix of 64 bits.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockEnv;

    #[test]
    fn codes_are_six_alphanumerics_and_differ() {
        let env = MockEnv::new();
        let mut codes = AuthCodes::default();
        let (a, b) = (codes.next(&env), codes.next(&env));
        assert_ne!(a, b);
        assert!(a.iter().all(|c| ALPHABET.contains(c)));
    }
}
