//! ISO 8583 data element numbers used by the bundled participants.

/// DE2: primary account number (PAN).
pub const PAN: u16 = 2;
/// DE3: processing code.
pub const PROCESSING_CODE: u16 = 3;
/// DE4: amount, transaction, in minor units of DE49.
pub const AMOUNT: u16 = 4;
/// DE7: transmission date and time.
pub const TRANSMISSION_DATE_TIME: u16 = 7;
/// DE11: system trace audit number (STAN).
pub const STAN: u16 = 11;
/// DE14: expiration date, YYMM.
pub const EXPIRATION_DATE: u16 = 14;
/// DE35: track 2 data. Never returned to an acquirer, never logged.
pub const TRACK2: u16 = 35;
/// DE37: retrieval reference number.
pub const RRN: u16 = 37;
/// DE38: authorization identification response (6 characters).
pub const AUTH_ID: u16 = 38;
/// DE39: response code.
pub const RESPONSE_CODE: u16 = 39;
/// DE41: card acceptor terminal identification.
pub const TERMINAL_ID: u16 = 41;
/// DE42: card acceptor identification code.
pub const MERCHANT_ID: u16 = 42;
/// DE45: track 1 data. Never returned to an acquirer, never logged.
pub const TRACK1: u16 = 45;
/// DE49: currency code, transaction (ISO 4217 numeric).
pub const CURRENCY: u16 = 49;
/// DE52: PIN data. Never returned to an acquirer, never logged.
pub const PIN_BLOCK: u16 = 52;
/// DE70: network management information code.
pub const NETWORK_MANAGEMENT_CODE: u16 = 70;

/// Whether a field may never be logged or returned to an acquirer.
pub const fn is_sensitive(field: u16) -> bool {
    matches!(field, PAN | TRACK2 | TRACK1 | PIN_BLOCK)
}
