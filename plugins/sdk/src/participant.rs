//! What a plugin implements: a participant, a group selector or an endpoint
//! formatter.

use crate::{Env, Transaction};

/// The outcome of [`Participant::prepare`], as in jPOS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The transaction must not go on. Set the result code first.
    Aborted,
    /// Joined: the participant gets `commit` or `abort` later.
    Prepared,
    /// Joined, and promises not to have changed the context.
    PreparedReadOnly,
    /// Prepared, and not called again for this transaction.
    NoJoin,
}

impl Outcome {
    /// `prepare` failed.
    pub const ABORTED: u32 = 0;
    /// `prepare` succeeded.
    pub const PREPARED: u32 = 1;
    /// With [`Outcome::PREPARED`]: do not call `commit` or `abort`.
    pub const NO_JOIN: u32 = 0x40;
    /// With [`Outcome::PREPARED`]: the context was not changed.
    pub const READ_ONLY: u32 = 0x80;

    /// The outcome bits of the WIT `prepare` function.
    pub const fn bits(self) -> u32 {
        match self {
            Outcome::Aborted => Outcome::ABORTED,
            Outcome::Prepared => Outcome::PREPARED,
            Outcome::PreparedReadOnly => Outcome::PREPARED | Outcome::READ_ONLY,
            Outcome::NoJoin => Outcome::PREPARED | Outcome::NO_JOIN,
        }
    }

    /// Reads outcome bits the way the host does: unknown bits are ignored,
    /// no-join wins over read-only (a participant that does not join is
    /// never asked again either way).
    pub const fn from_bits(bits: u32) -> Outcome {
        if bits & Outcome::PREPARED == 0 {
            Outcome::Aborted
        } else if bits & Outcome::NO_JOIN != 0 {
            Outcome::NoJoin
        } else if bits & Outcome::READ_ONLY != 0 {
            Outcome::PreparedReadOnly
        } else {
            Outcome::Prepared
        }
    }

    /// Whether the transaction may go on.
    pub const fn is_prepared(self) -> bool {
        !matches!(self, Outcome::Aborted)
    }

    /// Whether the participant gets `commit` or `abort` later.
    pub const fn joins(self) -> bool {
        matches!(self, Outcome::Prepared | Outcome::PreparedReadOnly)
    }
}

/// One step of a transaction pipeline: `prepare` in pipeline order, then
/// `commit` when every participant prepared, `abort` otherwise, for those
/// that joined.
///
/// A component keeps one value of the implementing type per instance, built
/// on first use, so fields may carry state from one transaction to the next;
/// the host may run any number of instances.
pub trait Participant {
    /// Decides whether the transaction may go on.
    fn prepare(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Outcome;

    /// The transaction is going to be committed.
    fn commit(&mut self, tx: &mut impl Transaction, env: &impl Env) {
        let _ = (tx, env);
    }

    /// The transaction is going to be aborted.
    fn abort(&mut self, tx: &mut impl Transaction, env: &impl Env) {
        let _ = (tx, env);
    }
}

/// A group selector (jPOS `GroupSelector`, OLS.Switch `CaseSwitch`): after a
/// successful `prepare`, names the groups to splice into the pipeline right
/// after it.
pub trait Selector: Participant {
    /// Names of the groups to run next, in order.
    fn select(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Vec<String>;
}

/// A request for an endpoint, built by [`Formatter::format_request`].
#[derive(Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The bytes of one message, without the link's length framing.
    pub payload: Vec<u8>,
    /// The key that the endpoint's reply will carry.
    pub key: String,
}

impl std::fmt::Debug for Outbound {
    // The payload carries card data: only its size is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("payload_len", &self.payload.len())
            .field("key", &self.key)
            .finish()
    }
}

/// An endpoint formatter: owns the endpoint's wire format, while the host
/// owns the link (connection, framing, multiplexing, timeouts).
pub trait Formatter {
    /// Builds the endpoint's request from the transaction.
    fn format_request(
        &mut self,
        tx: &mut impl Transaction,
        env: &impl Env,
    ) -> Result<Outbound, String>;

    /// The matching key of a message received from the endpoint. Runs outside
    /// any transaction.
    fn reply_key(&mut self, reply: &[u8], env: &impl Env) -> Result<String, String>;

    /// Reads the endpoint's reply into the transaction: result code and
    /// response fields.
    fn parse_response(
        &mut self,
        reply: &[u8],
        tx: &mut impl Transaction,
        env: &impl Env,
    ) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_bits_match_the_contract() {
        assert_eq!(Outcome::Aborted.bits(), 0);
        assert_eq!(Outcome::Prepared.bits(), 1);
        assert_eq!(Outcome::PreparedReadOnly.bits(), 0x81);
        assert_eq!(Outcome::NoJoin.bits(), 0x41);
    }

    #[test]
    fn outcome_bits_round_trip_and_ignore_unknown_bits() {
        for outcome in [
            Outcome::Aborted,
            Outcome::Prepared,
            Outcome::PreparedReadOnly,
            Outcome::NoJoin,
        ] {
            assert_eq!(Outcome::from_bits(outcome.bits()), outcome);
            assert_eq!(Outcome::from_bits(outcome.bits() | 0x100), outcome);
        }
        assert_eq!(Outcome::from_bits(0x40), Outcome::Aborted);
        assert_eq!(Outcome::from_bits(0xC1), Outcome::NoJoin);
    }

    #[test]
    fn only_prepared_outcomes_join() {
        assert!(Outcome::Prepared.joins());
        assert!(Outcome::PreparedReadOnly.joins());
        assert!(!Outcome::NoJoin.joins());
        assert!(!Outcome::Aborted.joins());
        assert!(Outcome::NoJoin.is_prepared());
        assert!(!Outcome::Aborted.is_prepared());
    }
}
