//! What a plugin implements: a participant, a group selector or an endpoint
//! formatter.

use crate::{Config, Env, Transaction};

/// A problem with a plugin's settings, found when the plugin is loaded
/// (contract 1.3.0, export `settings`): `switchyard check` and start-up
/// refuse the configuration with this message and the setting's path, so
/// that a mistyped limit is caught before any transaction gets RC 96.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SettingProblem {
    /// The setting's key, as in the plugin's settings table (`limit`,
    /// `"bin 4"`); empty for a problem of the settings as a whole.
    pub key: String,
    /// What is wrong and what is expected, in one sentence.
    pub message: String,
}

impl SettingProblem {
    /// A problem with the setting `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> SettingProblem {
        SettingProblem {
            key: key.into(),
            message: message.into(),
        }
    }
}

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
    /// With [`Outcome::PREPARED`] (joined): nothing to do in `commit`, only
    /// in `abort` (contract 1.4.0). The export glue adds it for a
    /// participant whose [`Participant::COMMITS`] is `false`; a host that
    /// knows it does not call `commit`, an older one ignores it.
    pub const ABORT_ONLY: u32 = 0x20;

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

    /// The bits `P`'s component returns for this outcome:
    /// [`Outcome::bits`], with [`Outcome::ABORT_ONLY`] when it joins and
    /// `P` has nothing to commit ([`Participant::COMMITS`]).
    pub fn bits_of<P: Participant + ?Sized>(self) -> u32 {
        if !P::COMMITS && self.joins() {
            self.bits() | Outcome::ABORT_ONLY
        } else {
            self.bits()
        }
    }
}

/// One step of a transaction pipeline: `prepare` in pipeline order, then
/// `commit` when every participant prepared, `abort` otherwise, for those
/// that joined; later, [`Participant::reverse`] when a transaction it
/// committed is reversed.
///
/// A component keeps one value of the implementing type per instance, built
/// on first use, so fields may carry state from one transaction to the next;
/// the host may run any number of instances.
pub trait Participant {
    /// Whether [`Participant::commit`] does anything. A participant that
    /// joins only to undo something in `abort` (local-auth clears the
    /// authorization code it set when a later participant aborts) sets it
    /// to `false`: since contract 1.4.0 the host then does not call
    /// `commit` at all, one crossing into the component less per
    /// transaction (the outcome bit [`Outcome::ABORT_ONLY`]).
    const COMMITS: bool = true;

    /// Decides whether the transaction may go on.
    fn prepare(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Outcome;

    /// Checks the participant's settings (contract 1.3.0, export
    /// `settings`), once, when the plugin is loaded by `switchyard check`,
    /// at start-up and before a hot swap goes live. Return every problem
    /// found; an empty list accepts the settings. The default accepts any.
    fn check_settings(&mut self, config: &impl Config) -> Vec<SettingProblem> {
        let _ = config;
        Vec::new()
    }

    /// The transaction is going to be committed. Not called (by a host
    /// that offers contract 1.4.0) when [`Participant::COMMITS`] is `false`.
    fn commit(&mut self, tx: &mut impl Transaction, env: &impl Env) {
        let _ = (tx, env);
    }

    /// The transaction is going to be aborted.
    fn abort(&mut self, tx: &mut impl Transaction, env: &impl Env) {
        let _ = (tx, env);
    }

    /// A transaction this participant committed was reversed (contract
    /// 1.2.0, export `reversible`): by the acquirer, or by the switch when
    /// the endpoint did not answer in time. Undo what it did: give back
    /// velocity counts, loyalty points, …
    ///
    /// `tx` holds the **original** request and the response it got, and
    /// the variables [`TRANLOG_ID`] (the original's tranlog row) and
    /// [`REVERSAL_REASON`] (DE39 of the reversal, e.g. `68`). Delivery is
    /// at least once — after a crash, or after this returned `Err`, the
    /// host calls it again for the same transaction — so undo each
    /// `TRANLOG_ID` once (a [`Kv::kv_compare_and_set`](crate::Kv::kv_compare_and_set)
    /// of a marker such as `rev:<TRANLOG_ID>`). `Err(reason)`: it could not
    /// undo now; the host logs the reason and calls again later.
    ///
    /// The default has nothing to undo.
    fn reverse(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Result<(), String> {
        let _ = (tx, env);
        Ok(())
    }
}

/// The variable naming a transaction's tranlog row, set by the host in
/// [`Participant::reverse`] and [`Formatter::format_saf`]: the key of
/// idempotency for at-least-once deliveries. Empty when the switch runs
/// without a tranlog.
pub const TRANLOG_ID: &str = "TRANLOG_ID";

/// The variable holding a reversal's reason (its DE39, e.g. `68`) in
/// [`Participant::reverse`].
pub const REVERSAL_REASON: &str = "REVERSAL_REASON";

/// A group selector (jPOS `GroupSelector`, OLS.Switch `CaseSwitch`): after a
/// successful `prepare`, names the groups to splice into the pipeline right
/// after it.
pub trait Selector: Participant {
    /// Names of the groups to run next, in order.
    fn select(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Vec<String>;

    /// Every group (or participant) name `select` may return under these
    /// settings (contract 1.3.0, export `settings`): the host refuses a
    /// configuration in which one names neither a group nor a participant.
    /// The default names none (nothing is checked).
    fn targets(&mut self, config: &impl Config) -> Vec<String> {
        let _ = config;
        Vec::new()
    }
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

/// What a store-and-forward message is (contract 1.2.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SafKind {
    /// The reversal of the transaction (ISO 8583: 0420, retransmitted as
    /// 0421): of one the endpoint did not answer in time, or the acquirer's.
    Reversal,
    /// An advice (ISO 8583: 0220, retransmitted as 0221) forwarding the
    /// acquirer's completion.
    Advice,
}

/// What [`Formatter::format_saf`] is asked to build.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SafRequest {
    /// A reversal or an advice.
    pub kind: SafKind,
    /// The message was sent before and is sent again (0421, 0221).
    pub retransmission: bool,
    /// DE39 of the message: the reversal's reason (`68`: no response in
    /// time, [`crate::rc::LATE_RESPONSE`]) or the advice's.
    pub reason: String,
}

impl SafRequest {
    /// A first reversal with `reason` as its DE39.
    pub fn reversal(reason: &str) -> SafRequest {
        SafRequest {
            kind: SafKind::Reversal,
            retransmission: false,
            reason: reason.to_owned(),
        }
    }

    /// A first advice with `reason` as its DE39.
    pub fn advice(reason: &str) -> SafRequest {
        SafRequest {
            kind: SafKind::Advice,
            retransmission: false,
            reason: reason.to_owned(),
        }
    }

    /// The same message as a retransmission.
    pub fn retransmitted(self) -> SafRequest {
        SafRequest {
            retransmission: true,
            ..self
        }
    }
}

/// An endpoint formatter: owns the endpoint's wire format, while the host
/// owns the link (connection, framing, multiplexing, timeouts).
///
/// Every key it makes (of a request, a store-and-forward message or a reply)
/// must tell a reply to the original from a reply to its reversal or advice
/// — include the response's MTI, for example — so that a late reply to the
/// original can never acknowledge its reversal.
pub trait Formatter {
    /// Checks the formatter's settings (contract 1.3.0, export
    /// `settings`), once, when the plugin is loaded by `switchyard check`,
    /// at start-up and before a hot swap goes live. Return every problem
    /// found; an empty list accepts the settings. The default accepts any.
    fn check_settings(&mut self, config: &impl Config) -> Vec<SettingProblem> {
        let _ = config;
        Vec::new()
    }

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
    /// response fields. Also reads the reply to a store-and-forward message:
    /// its result code says whether the endpoint acknowledged it.
    fn parse_response(
        &mut self,
        reply: &[u8],
        tx: &mut impl Transaction,
        env: &impl Env,
    ) -> Result<(), String>;

    /// Builds a store-and-forward message (contract 1.2.0, export
    /// `store-and-forward`): the reversal of the transaction in `tx`, or an
    /// advice. For a reversal, `tx` holds the **original** request (and the
    /// response it got, if any); for an advice, the acquirer's advice (0220)
    /// as received; the variable [`TRANLOG_ID`] names the transaction's
    /// tranlog row.
    ///
    /// The host sends the payload to the endpoint until it is acknowledged:
    /// the reply with the returned key is read by
    /// [`Formatter::parse_response`], and its result code decides (00, 21
    /// or 25 by default). The key must differ from the key of a reply to
    /// the original request.
    ///
    /// Required: an endpoint needs it to reverse a transaction that timed
    /// out. A format that has no reversals returns `Err` with the reason.
    fn format_saf(
        &mut self,
        request: &SafRequest,
        tx: &mut impl Transaction,
        env: &impl Env,
    ) -> Result<Outbound, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saf_requests_are_built_and_retransmitted() {
        let first = SafRequest::reversal("68");
        assert_eq!(
            (first.kind, first.retransmission, first.reason.as_str()),
            (SafKind::Reversal, false, "68")
        );
        let again = first.clone().retransmitted();
        assert!(again.retransmission);
        assert_eq!((again.kind, again.reason), (first.kind, first.reason));
        assert_eq!(SafRequest::advice("00").kind, SafKind::Advice);
    }

    #[test]
    fn the_default_reverse_has_nothing_to_undo() {
        struct Plain;
        impl Participant for Plain {
            fn prepare(&mut self, _: &mut impl Transaction, _: &impl Env) -> Outcome {
                Outcome::Prepared
            }
        }
        let mut tx = crate::mock::MockTransaction::new("0200");
        let env = crate::mock::MockEnv::new();
        assert_eq!(Plain.reverse(&mut tx, &env), Ok(()));
        assert_eq!(tx.calls(), 0, "no host call");
    }

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
