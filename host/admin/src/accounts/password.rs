//! Passwords: the strength rules of the policy, Argon2id hashes (random
//! salt, PHC strings), verification in constant time.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::Policy;

/// The Argon2id cost of new hashes (verification reads the cost from the
/// stored PHC string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for HashCost {
    /// OWASP's recommendation for Argon2id: m = 19 MiB, t = 2, p = 1.
    fn default() -> HashCost {
        HashCost {
            m_kib: 19 * 1024,
            t: 2,
            p: 1,
        }
    }
}

impl HashCost {
    /// The cheapest cost argon2 accepts (tests only: it is not a safe cost).
    pub fn for_tests() -> HashCost {
        HashCost {
            m_kib: 8,
            t: 1,
            p: 1,
        }
    }

    fn hasher(&self) -> Argon2<'static> {
        let params = Params::new(self.m_kib, self.t, self.p, None).unwrap_or_default();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

/// One rule of the policy a password breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Shorter than the minimum.
    TooShort(usize),
    /// No letter.
    NoLetter,
    /// No digit.
    NoDigit,
    /// One of the last passwords.
    Reused(usize),
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::TooShort(n) => write!(f, "at least {n} characters"),
            Rule::NoLetter => write!(f, "at least one letter"),
            Rule::NoDigit => write!(f, "at least one digit"),
            Rule::Reused(n) => write!(f, "not one of the last {n} passwords"),
        }
    }
}

/// The strength rules `password` breaks (empty: it passes); reuse is
/// checked separately ([`matches_any`]).
pub fn check_strength(policy: &Policy, password: &str) -> Vec<Rule> {
    let mut broken = Vec::new();
    if password.chars().count() < policy.min_length {
        broken.push(Rule::TooShort(policy.min_length));
    }
    if policy.letters_and_digits {
        if !password.chars().any(char::is_alphabetic) {
            broken.push(Rule::NoLetter);
        }
        if !password.chars().any(|c| c.is_ascii_digit()) {
            broken.push(Rule::NoDigit);
        }
    }
    broken
}

/// Hashes `password` with Argon2id and a random 16-byte salt: a PHC string.
pub fn hash(cost: &HashCost, password: &str) -> String {
    let mut raw = [0u8; 16];
    getrandom::getrandom(&mut raw).expect("the OS has randomness");
    let salt = SaltString::encode_b64(&raw).expect("16 bytes is a valid salt");
    cost.hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing with valid parameters does not fail")
        .to_string()
}

/// Whether `password` matches the PHC string `phc` (constant time in the
/// comparison; a malformed `phc` never matches).
pub fn verify(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Whether `password` matches any of `phcs` (each one is verified, so the
/// time does not tell which).
pub fn matches_any(phcs: &[String], password: &str) -> bool {
    phcs.iter()
        .fold(false, |hit, phc| verify(phc, password) | hit)
}
