//! TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, ±1 step of skew):
//! secrets, the `otpauth://` URI and its QR code, and the check that
//! never accepts a time step twice.

use totp_rs::{Algorithm, TOTP};

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// The issuer in the authenticator app.
pub const ISSUER: &str = "Switchyard";
/// Bytes of a new secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    let mut raw = vec![0u8; SECRET_BYTES];
    getrandom::getrandom(&mut raw).expect("the OS has randomness");
    raw
}

fn totp(secret: &[u8], account: &str) -> TOTP {
    TOTP::new_unchecked(
        Algorithm::SHA1,
        6,
        1,
        STEP_SECONDS,
        secret.to_vec(),
        Some(ISSUER.to_owned()),
        account.to_owned(),
    )
}

/// The `otpauth://totp/…` URI an authenticator app imports.
pub fn uri(secret: &[u8], account: &str) -> String {
    totp(secret, account).get_url()
}

/// The secret in base32 (for typing it in by hand).
pub fn base32(secret: &[u8]) -> String {
    totp(secret, "-").get_secret_base32()
}

/// The QR code of `uri` as an inline SVG document.
pub fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build()
            // Inline in HTML: no XML declaration.
            .split_once("<svg")
            .map_or_else(String::new, |(_, rest)| format!("<svg{rest}")),
        Err(_) => String::new(),
    }
}

/// The code of time step `step`.
pub fn code_at_step(secret: &[u8], step: u64) -> String {
    totp(secret, "-").generate(step * STEP_SECONDS)
}

/// The step of `now_ms`.
pub fn step_of(now_ms: i64) -> u64 {
    (now_ms.max(0) as u64 / 1000) / STEP_SECONDS
}

/// The step `code` is valid for at `now_ms` (within ±1 step) and later than
/// `last_step`; `None` when it is wrong or was already used.
pub fn accept(secret: &[u8], code: &str, now_ms: i64, last_step: i64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(now_ms);
    let mut found = None;
    for step in [now.saturating_sub(1), now, now + 1] {
        let ok = super::ct_eq(code_at_step(secret, step).as_bytes(), code.as_bytes());
        if ok && step as i64 > last_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The secret of a base32 string (as [`base32`] shows it).
pub fn secret_from_base32(s: &str) -> Option<Vec<u8>> {
    totp_rs::Secret::Encoded(s.trim().to_uppercase())
        .to_bytes()
        .ok()
}
