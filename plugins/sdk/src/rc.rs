//! Response codes (DE39) of the default wire contract.

/// Approved.
pub const APPROVED: &str = "00";
/// Unsupported transaction (message type).
pub const UNSUPPORTED: &str = "12";
/// Invalid amount: DE4 zero or not numeric.
pub const INVALID_AMOUNT: &str = "13";
/// Invalid card number: DE2 not 12–19 digits or fails Luhn.
pub const INVALID_CARD: &str = "14";
/// Format error: undecodable, or a mandatory field missing.
pub const FORMAT_ERROR: &str = "30";
/// Expired card: DE14 before the current month.
pub const EXPIRED: &str = "54";
/// Over the local authorization amount limit.
pub const OVER_LIMIT: &str = "61";
/// Response received too late: the reason (DE39) of the reversal the switch
/// sends when an endpoint did not answer in time.
pub const LATE_RESPONSE: &str = "68";
/// The endpoint did not answer in time or is unreachable.
pub const TIMEOUT: &str = "91";
/// A participant failed (trap, deadline, bad configuration).
pub const SYSTEM_ERROR: &str = "96";
