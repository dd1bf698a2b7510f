//! Message type indicators of the default wire contract.

/// Authorization request.
pub const AUTHORIZATION: &str = "0100";
/// Financial transaction request.
pub const FINANCIAL: &str = "0200";
/// Network management request.
pub const NETWORK_MANAGEMENT: &str = "0800";

/// DE70 of an echo test.
pub const ECHO_TEST: &[u8] = b"301";

/// Whether the MTI moves money: an authorization or financial request.
pub fn is_financial(mti: &str) -> bool {
    mti == AUTHORIZATION || mti == FINANCIAL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_0100_and_0200_are_financial() {
        assert!(is_financial("0100"));
        assert!(is_financial("0200"));
        assert!(!is_financial("0800"));
        assert!(!is_financial("0400"));
        assert!(!is_financial("0110"));
    }
}
