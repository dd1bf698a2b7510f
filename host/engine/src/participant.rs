//! What a step of a pipeline is: the participant traits and their outcomes.

use std::fmt;

use futures::future::BoxFuture;

use crate::context::Context;

/// The outcome of `prepare`, as jPOS encodes it: bit 0 is *prepared*
/// (clear means aborted), `NO_JOIN` keeps the participant out of the commit
/// or abort phase, `READ_ONLY` promises it did not change the context.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Outcome(u32);

impl Outcome {
    /// The transaction must abort (set the result code first).
    pub const ABORTED: Outcome = Outcome(0);
    /// Prepared, and joins: gets `commit` or `abort` later.
    pub const PREPARED: Outcome = Outcome(Self::PREPARED_BIT);
    /// Prepared without changing the context; joins.
    pub const PREPARED_READ_ONLY: Outcome = Outcome(Self::PREPARED_BIT | Self::READ_ONLY_BIT);
    /// Prepared; not called again for this transaction.
    pub const NO_JOIN: Outcome = Outcome(Self::PREPARED_BIT | Self::NO_JOIN_BIT);

    /// Bit: prepared.
    pub const PREPARED_BIT: u32 = 1;
    /// Bit: do not join the second phase.
    pub const NO_JOIN_BIT: u32 = 0x40;
    /// Bit: did not modify the context.
    pub const READ_ONLY_BIT: u32 = 0x80;

    /// From the bits a participant returned; unknown bits are dropped.
    pub const fn from_bits(bits: u32) -> Outcome {
        Outcome(bits & (Self::PREPARED_BIT | Self::NO_JOIN_BIT | Self::READ_ONLY_BIT))
    }

    /// The bits, as the WIT contract carries them.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Prepared (not aborted).
    pub const fn is_prepared(self) -> bool {
        self.0 & Self::PREPARED_BIT != 0
    }

    /// Takes part in the commit / abort phase.
    pub const fn joins(self) -> bool {
        self.0 & Self::NO_JOIN_BIT == 0
    }
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_prepared() {
            "PREPARED"
        } else {
            "ABORTED"
        })?;
        if self.0 & Self::NO_JOIN_BIT != 0 {
            f.write_str("|NO_JOIN")?;
        }
        if self.0 & Self::READ_ONLY_BIT != 0 {
            f.write_str("|READONLY")?;
        }
        Ok(())
    }
}

/// Why a participant could not do its job. Every failure aborts the
/// transaction with RC 96; it never takes down the connection or the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The class of failure, for counters and logs.
    pub kind: FailureKind,
    /// What happened, for the log (never card data).
    pub message: String,
    /// Whether whoever raised it has logged it already (the runtime logs a
    /// plugin's traps and deadlines, rate-limited); the pipeline then does
    /// not log it again above debug.
    pub logged: bool,
}

/// Classes of participant failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The guest trapped (panic, unreachable, out-of-bounds, stack overflow).
    Trap,
    /// The call ran past its deadline.
    Deadline,
    /// The guest hit its memory cap.
    Memory,
    /// The participant reported an error it could not handle.
    Rejected,
    /// The host could not run the participant (no instance, bad wiring).
    Host,
    /// A group selector named a group the pipeline does not define.
    UnknownGroup,
    /// The plugin's circuit breaker is open (it failed too often lately):
    /// the call was refused without running it.
    CircuitOpen,
}

impl Failure {
    /// A failure of `kind` described by `message`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            logged: false,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Failure {}

/// A synchronous participant: native code or a WASM component.
pub trait Participant: Send + Sync {
    /// First phase. Returns whether the transaction can go on.
    fn prepare(&self, ctx: &mut Context) -> Result<Outcome, Failure>;

    /// jPOS `AbortParticipant`: called instead of `prepare` once an earlier
    /// participant aborted. `None` (the default) means "not an abort
    /// participant": skipped while aborting.
    fn prepare_for_abort(&self, _ctx: &mut Context) -> Option<Result<Outcome, Failure>> {
        None
    }

    /// Second phase, when every participant prepared.
    fn commit(&self, _ctx: &mut Context) -> Result<(), Failure> {
        Ok(())
    }

    /// Second phase, when the transaction aborted.
    fn abort(&self, _ctx: &mut Context) -> Result<(), Failure> {
        Ok(())
    }

    /// A transaction this participant committed was reversed (by the
    /// acquirer, or by the switch): undo its effects. The context holds the
    /// original request and the response it got, and the variables
    /// `TRANLOG_ID` (the original's row, for idempotency: a reversal may be
    /// delivered more than once after a crash) and `REVERSAL_REASON`.
    /// `None` (the default): the participant keeps no effects to undo.
    fn reverse(&self, _ctx: &mut Context) -> Option<Result<(), Failure>> {
        None
    }

    /// Group selectors only: the groups to run next. `None` (the default)
    /// means "not a selector". Called after a successful `prepare`, and also
    /// while aborting so that the abort participants of the chosen groups
    /// (response building, sending) still run.
    fn select(&self, _ctx: &mut Context) -> Option<Result<Vec<String>, Failure>> {
        None
    }
}

/// A participant whose first phase waits on the outside world (an endpoint).
pub trait AsyncParticipant: Send + Sync {
    /// First phase.
    fn prepare<'a>(&'a self, ctx: &'a mut Context) -> BoxFuture<'a, Result<Outcome, Failure>>;

    /// See [`Participant::prepare_for_abort`].
    fn prepare_for_abort(&self, _ctx: &mut Context) -> Option<Result<Outcome, Failure>> {
        None
    }

    /// Second phase, commit.
    fn commit(&self, _ctx: &mut Context) -> Result<(), Failure> {
        Ok(())
    }

    /// Second phase, abort.
    fn abort(&self, _ctx: &mut Context) -> Result<(), Failure> {
        Ok(())
    }
}

/// A message for an endpoint, built by its formatter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The message bytes, without the link's length framing.
    pub payload: Vec<u8>,
    /// The key the endpoint's reply will carry.
    pub key: String,
}

/// What a store-and-forward message is for, as its formatter builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafMessage {
    /// A reversal (0420) or an advice (0220).
    pub kind: crate::ports::SafKind,
    /// A retransmission (0421, 0221): the entry was sent before.
    pub retransmission: bool,
    /// DE39 of the message: the reversal's reason (`68`: no response in
    /// time), or the advice's.
    pub reason: String,
}

/// An endpoint's wire format (a WASM formatter plugin, or native code).
pub trait Formatter: Send + Sync {
    /// Builds the endpoint request for the transaction.
    fn format_request(&self, ctx: &mut Context) -> Result<Outbound, Failure>;

    /// The matching key of a message received from the endpoint.
    fn reply_key(&self, reply: &[u8]) -> Result<String, Failure>;

    /// Reads the endpoint's reply into the transaction.
    fn parse_response(&self, ctx: &mut Context, reply: &[u8]) -> Result<(), Failure>;

    /// Builds a reversal or advice for the transaction in `ctx` (whose
    /// request is the original's, whose response the one it got); the
    /// reply is read with [`Formatter::parse_response`]. The default: this
    /// format has none.
    fn format_saf(&self, _ctx: &mut Context, message: &SafMessage) -> Result<Outbound, Failure> {
        Err(Failure::new(
            FailureKind::Host,
            format!(
                "this endpoint format builds no {} message",
                message.kind.name()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_bits_follow_jpos() {
        assert!(!Outcome::from_bits(0).is_prepared());
        assert!(Outcome::from_bits(0).joins());
        assert!(Outcome::from_bits(1).is_prepared());
        assert!(!Outcome::from_bits(0x41).joins());
        assert_eq!(
            Outcome::from_bits(0xFFFF_FF00 | 0x81),
            Outcome::PREPARED_READ_ONLY
        );
        assert_eq!(format!("{:?}", Outcome::NO_JOIN), "PREPARED|NO_JOIN");
    }
}
