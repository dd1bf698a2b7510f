//! Response codes (DE39) of the default wire contract.
//!
//! Codes are strings, not an enum: endpoints pass their own codes through,
//! and the set grows without breaking anyone.

/// Approved.
pub const APPROVED: &str = "00";
/// Refer to card issuer (approve with ID) — unused by the default pipeline.
pub const DO_NOT_HONOUR: &str = "05";
/// Unsupported message type.
pub const UNSUPPORTED: &str = "12";
/// Invalid amount.
pub const INVALID_AMOUNT: &str = "13";
/// Invalid card number.
pub const INVALID_CARD: &str = "14";
/// Format error: undecodable, or a mandatory field missing.
pub const FORMAT_ERROR: &str = "30";
/// Not sufficient funds (endpoint simulator).
pub const INSUFFICIENT_FUNDS: &str = "51";
/// Expired card.
pub const EXPIRED_CARD: &str = "54";
/// Over the local-auth amount limit.
pub const OVER_LIMIT: &str = "61";
/// The endpoint did not answer in time or is unreachable.
pub const ISSUER_UNAVAILABLE: &str = "91";
/// A participant failed (trap, deadline, host error).
pub const SYSTEM_ERROR: &str = "96";
