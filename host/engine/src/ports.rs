//! The ports the store implements: what the switch keeps, as traits the
//! engine owns (hexagonal style). `switchyard-store` implements them on
//! SQLite (the embedded default); a PostgreSQL implementation for several
//! nodes sharing one database implements the same traits.
//!
//! - [`Tranlog`]: one row per decoded request, its life cycle, repeats and
//!   duplicates, links between originals and their reversals/completions;
//! - [`SafQueue`]: the store-and-forward queue of reversals and advices,
//!   claimed with leases so that two workers never send one entry at once;
//! - [`Keyring`]: envelope encryption (a key-encryption key wrapping
//!   per-tenant data keys), rotation, the keyed PAN token;
//! - [`KvStore`], [`CounterStore`]: the plugins' key/value data and
//!   windowed counters;
//! - [`SwapHistory`]: the record of plugin swaps.
//!
//! Writes that a transaction must see durable before it goes on (the
//! request before anything goes upstream, the outcome before the response
//! is written, a reversal before RC 91) return a [`PortFuture`] that
//! resolves once the write is on disk; an implementation batches the
//! writes of concurrent transactions into group commits.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use switchyard_iso8583::Message;

/// A tranlog row's id: unique across nodes and increasing with time.
pub type TxId = i64;

/// A store-and-forward entry's id.
pub type SafId = i64;

/// What a port call resolves to.
pub type PortFuture<T> = Pin<Box<dyn Future<Output = Result<T, PortError>> + Send + 'static>>;

/// A failure of the store behind a port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// The database failed (I/O, constraint, corruption); the message says
    /// which database and what.
    #[error("store: {0}")]
    Database(String),
    /// A stored value does not decrypt (tampered, moved to another row or
    /// tenant, or its key was destroyed).
    #[error("store: {0}")]
    Decrypt(String),
    /// A value or request the store refuses (too large, unknown id, …).
    #[error("store: {0}")]
    Invalid(String),
    /// The store is shut down.
    #[error("store: closed")]
    Closed,
}

/// What kind of request a tranlog row records, by MTI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxKind {
    /// An authorization or financial original (x100, x200).
    Original,
    /// A repeat of an original (x101, x201): answered from the record.
    Repeat,
    /// A second original with the key of one already recorded: RC 94.
    Duplicate,
    /// An acquirer reversal (x400, x401, x420, x421).
    Reversal,
    /// An acquirer completion / advice (x220, x221).
    Completion,
    /// Network management (x800).
    Network,
    /// Anything else (answered by the pipeline, usually RC 12).
    Other,
}

impl TxKind {
    /// The name stored and shown.
    pub const fn name(self) -> &'static str {
        match self {
            TxKind::Original => "original",
            TxKind::Repeat => "repeat",
            TxKind::Duplicate => "duplicate",
            TxKind::Reversal => "reversal",
            TxKind::Completion => "completion",
            TxKind::Network => "network",
            TxKind::Other => "other",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<TxKind> {
        Some(match name {
            "original" => TxKind::Original,
            "repeat" => TxKind::Repeat,
            "duplicate" => TxKind::Duplicate,
            "reversal" => TxKind::Reversal,
            "completion" => TxKind::Completion,
            "network" => TxKind::Network,
            "other" => TxKind::Other,
            _ => return None,
        })
    }
}

/// Where a transaction is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxState {
    /// Recorded; nothing went upstream yet.
    Received,
    /// Possibly sent upstream, not answered yet.
    Sent,
    /// Answered: the response was (or is about to be) written.
    Answered,
    /// The switch stopped (crash) after recording it and before answering
    /// it, without sending anything upstream.
    Interrupted,
    /// Its reversal is durably queued (timeout, link drop, crash, or the
    /// acquirer's reversal).
    ReversalQueued,
    /// Its reversal was acknowledged (or, for a local original, its
    /// effects were undone).
    Reversed,
}

impl TxState {
    /// The name stored and shown.
    pub const fn name(self) -> &'static str {
        match self {
            TxState::Received => "received",
            TxState::Sent => "sent",
            TxState::Answered => "answered",
            TxState::Interrupted => "interrupted",
            TxState::ReversalQueued => "reversal-queued",
            TxState::Reversed => "reversed",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<TxState> {
        Some(match name {
            "received" => TxState::Received,
            "sent" => TxState::Sent,
            "answered" => TxState::Answered,
            "interrupted" => TxState::Interrupted,
            "reversal-queued" => TxState::ReversalQueued,
            "reversed" => TxState::Reversed,
            _ => return None,
        })
    }

    /// Still moving: not answered, interrupted or reversed.
    pub const fn in_flight(self) -> bool {
        matches!(self, TxState::Received | TxState::Sent)
    }
}

/// What became of the upstream leg of a switched-out transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// Authorized locally: nothing went upstream.
    Local,
    /// The endpoint could not be reached: nothing was written.
    NotSent,
    /// The endpoint answered in time.
    Answered,
    /// Written, no answer within the timeout.
    Timeout,
    /// The link dropped while the request waited for its answer.
    LinkDropped,
    /// The switch stopped (crash) after the request may have been sent
    /// and before its answer was recorded.
    Interrupted,
    /// The endpoint answered with a reply its formatter could not read:
    /// the outcome is unknown.
    Unreadable,
}

impl Upstream {
    /// The name stored and shown.
    pub const fn name(self) -> &'static str {
        match self {
            Upstream::Local => "local",
            Upstream::NotSent => "not-sent",
            Upstream::Answered => "answered",
            Upstream::Timeout => "timeout",
            Upstream::LinkDropped => "link-dropped",
            Upstream::Interrupted => "interrupted",
            Upstream::Unreadable => "unreadable",
        }
    }

    /// The upstream result named `name`.
    pub fn parse(name: &str) -> Option<Upstream> {
        Some(match name {
            "local" => Upstream::Local,
            "not-sent" => Upstream::NotSent,
            "answered" => Upstream::Answered,
            "timeout" => Upstream::Timeout,
            "link-dropped" => Upstream::LinkDropped,
            "interrupted" => Upstream::Interrupted,
            "unreadable" => Upstream::Unreadable,
            _ => return None,
        })
    }

    /// The request may have reached the endpoint and its answer is
    /// unknown: it must be reversed.
    pub const fn needs_reversal(self) -> bool {
        matches!(
            self,
            Upstream::Timeout
                | Upstream::LinkDropped
                | Upstream::Interrupted
                | Upstream::Unreadable
        )
    }
}

/// The fields of a request a tranlog row keeps in the clear (no card
/// data: the PAN only as a keyed token and masked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    /// DE3.
    pub processing_code: Option<String>,
    /// DE4.
    pub amount: Option<String>,
    /// DE49.
    pub currency: Option<String>,
    /// DE11.
    pub stan: Option<String>,
    /// DE7.
    pub transmitted: Option<String>,
    /// DE37.
    pub rrn: Option<String>,
    /// DE41.
    pub terminal: Option<String>,
    /// DE42.
    pub merchant: Option<String>,
    /// DE32.
    pub acquirer: Option<String>,
}

/// The key that finds a request's earlier sends: (tenant, message class,
/// DE32, DE41, DE11, DE7, DE37), as one string the store hashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MatchKey(pub String);

/// How a reversal or completion names its original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginalRef {
    /// From DE90: the original's MTI, STAN (DE11), DE7 and acquirer (DE32,
    /// leading zeros of the zero-filled DE90 part removed).
    De90 {
        /// Original MTI.
        mti: String,
        /// Original DE11.
        stan: String,
        /// Original DE7.
        transmitted: String,
        /// Original DE32 (empty when it had none).
        acquirer: String,
    },
    /// Without DE90: the request's own DE11, DE41 and DE37.
    StanTerminalRrn {
        /// DE11.
        stan: String,
        /// DE41.
        terminal: String,
        /// DE37 (empty when absent).
        rrn: String,
    },
}

/// A decoded request, as the tranlog records it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Tenant of the listener.
    pub tenant: String,
    /// The listener's name.
    pub listener: String,
    /// Its kind, by MTI.
    pub kind: TxKind,
    /// The MTI.
    pub mti: String,
    /// The columns kept in the clear.
    pub columns: Columns,
    /// The full PAN (DE2), tokenized and masked by the store, never stored.
    pub pan: Option<String>,
    /// The match key (originals, repeats, reversals, completions).
    pub key: Option<MatchKey>,
    /// What a later reversal or advice needs of the request (every field
    /// but DE35, DE45, DE52 and DE55): stored encrypted.
    pub request: Message,
    /// When it was received, ms since the Unix epoch.
    pub received_ms: i64,
}

/// What the tranlog knows of an earlier request with the same key.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Its row.
    pub id: TxId,
    /// Its kind.
    pub kind: TxKind,
    /// Its state.
    pub state: TxState,
    /// The node that handled it.
    pub node: String,
    /// Its result code, once answered.
    pub rc: Option<String>,
    /// The response it got, once answered.
    pub response: Option<Message>,
    /// When it was received.
    pub received_ms: i64,
}

/// The answer to [`Tranlog::admit`].
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The new row of this request.
    pub id: TxId,
    /// The earlier row of the same class and key (received in the last
    /// 24 hours), if any: this request is its repeat or duplicate.
    pub matched: Option<Recorded>,
}

/// How a transaction ended, recorded before its response is written.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Its state now (answered, or reversal queued).
    pub state: TxState,
    /// Its kind, when admission changed it (a repeat answered from its
    /// original's record, a duplicate).
    pub kind: Option<TxKind>,
    /// The result code.
    pub rc: Option<String>,
    /// DE38 of the response, on approval.
    pub approval: Option<String>,
    /// The response (stored encrypted; a repeat is answered with it).
    pub response: Option<Message>,
    /// The endpoint it was switched out to.
    pub endpoint: Option<String>,
    /// What became of the upstream leg.
    pub upstream: Upstream,
    /// Time in the switch, from the frame's arrival.
    pub total: Duration,
    /// Time at the endpoint.
    pub external: Option<Duration>,
    /// The participants that committed (a later reversal tells them).
    pub participants: Vec<String>,
    /// The earlier row this one repeats, duplicates, reverses or completes.
    pub original: Option<TxId>,
    /// A reversal to queue atomically with this outcome.
    pub reversal: Option<NewSaf>,
    /// The profiler's trace in the compact form
    /// ([`crate::CompactTrace`]: step and participant names, µs; never
    /// card data).
    pub trace: Option<String>,
}

/// What the store did for an acquirer reversal or completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpOutcome {
    /// The original it names, when found.
    pub original: Option<TxId>,
    /// Whether this is the first reversal/completion of that original
    /// (false: an earlier one already took effect; nothing more is sent).
    pub first: bool,
    /// The store-and-forward entries queued.
    pub queued: Vec<SafId>,
}

/// A reversal or completion from an acquirer, to match and queue.
#[derive(Debug, Clone)]
pub struct FollowUp {
    /// Reversal or completion.
    pub kind: TxKind,
    /// Its tenant.
    pub tenant: String,
    /// How it names its original.
    pub original: OriginalRef,
    /// The reason forwarded to the endpoint (DE39 of the reversal).
    pub reason: String,
}

/// What a store-and-forward entry delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SafKind {
    /// A reversal (0420, retransmitted as 0421) to an endpoint.
    Reversal,
    /// An advice (0220, retransmitted as 0221) to an endpoint.
    Advice,
    /// A local original's effects to undo: its participants are told.
    LocalReversal,
}

impl SafKind {
    /// The name stored and shown.
    pub const fn name(self) -> &'static str {
        match self {
            SafKind::Reversal => "reversal",
            SafKind::Advice => "advice",
            SafKind::LocalReversal => "local-reversal",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<SafKind> {
        Some(match name {
            "reversal" => SafKind::Reversal,
            "advice" => SafKind::Advice,
            "local-reversal" => SafKind::LocalReversal,
            _ => return None,
        })
    }
}

/// The pseudo-endpoint of [`SafKind::LocalReversal`] entries.
pub const LOCAL_ENDPOINT: &str = "(local)";

/// A store-and-forward entry to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSaf {
    /// What it delivers.
    pub kind: SafKind,
    /// The endpoint ([`LOCAL_ENDPOINT`] for local reversals).
    pub endpoint: String,
    /// The row whose request the message is built from (the original for
    /// a reversal, the acquirer's 0220 for an advice).
    pub source: TxId,
    /// The original transaction it reverses or completes.
    pub original: TxId,
    /// DE39 of the message (`68` for a timeout reversal).
    pub reason: String,
}

/// Whether a store-and-forward entry is still to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SafState {
    /// Not acknowledged yet.
    Pending,
    /// Acknowledged: never sent again.
    Done,
}

impl SafState {
    /// The name stored and shown.
    pub const fn name(self) -> &'static str {
        match self {
            SafState::Pending => "pending",
            SafState::Done => "done",
        }
    }
}

/// A store-and-forward entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafEntry {
    /// Its id.
    pub id: SafId,
    /// The tenant of its transaction.
    pub tenant: String,
    /// What it delivers.
    pub kind: SafKind,
    /// The endpoint.
    pub endpoint: String,
    /// The row its message is built from.
    pub source: TxId,
    /// The transaction it reverses or completes.
    pub original: TxId,
    /// DE39 of the message.
    pub reason: String,
    /// Pending or done.
    pub state: SafState,
    /// Sends started so far (a claim counts one).
    pub attempts: u32,
    /// When it was queued, ms since the Unix epoch.
    pub created_ms: i64,
    /// When it is due next.
    pub next_ms: i64,
    /// When its last send started.
    pub last_attempt_ms: Option<i64>,
    /// What the last attempt got (a response code, or why it failed).
    pub last_result: Option<String>,
    /// Escalated after too many attempts.
    pub escalated: bool,
    /// When it was acknowledged.
    pub acked_ms: Option<i64>,
    /// Who holds its lease, and until when.
    pub lease: Option<(String, i64)>,
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Acknowledged with this response code: done, never sent again.
    Acked(String),
    /// Not acknowledged (silence, an unacceptable code, a failure): try
    /// again at `next_ms`.
    Failed {
        /// What happened.
        result: String,
        /// When to try again.
        next_ms: i64,
        /// Mark the entry escalated.
        escalate: bool,
    },
}

/// Which entries [`SafQueue::list`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafFilter {
    /// Only this endpoint.
    pub endpoint: Option<String>,
    /// Include acknowledged entries.
    pub include_done: bool,
    /// At most this many, oldest first.
    pub limit: usize,
}

/// The queue's depth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafStats {
    /// Entries not acknowledged.
    pub pending: u64,
    /// Of them, escalated.
    pub escalated: u64,
    /// When the oldest pending entry was queued.
    pub oldest_ms: Option<i64>,
}

/// A tranlog row as operators see it (no card data: PAN masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRecord {
    /// Its id.
    pub id: TxId,
    /// Tenant, listener and node.
    pub tenant: String,
    /// The listener that received it.
    pub listener: String,
    /// The node that handled it.
    pub node: String,
    /// Kind and MTI.
    pub kind: TxKind,
    /// The MTI.
    pub mti: String,
    /// The clear columns.
    pub columns: Columns,
    /// The masked PAN (first 6, last 4).
    pub pan_masked: Option<String>,
    /// Its state.
    pub state: TxState,
    /// Result and approval codes.
    pub rc: Option<String>,
    /// DE38.
    pub approval: Option<String>,
    /// Endpoint and what became of the upstream leg.
    pub endpoint: Option<String>,
    /// The upstream leg.
    pub upstream: Option<Upstream>,
    /// When received, ms since the Unix epoch.
    pub received_ms: i64,
    /// Total and external duration, µs.
    pub total_us: Option<i64>,
    /// External duration, µs.
    pub external_us: Option<i64>,
    /// The profiler's trace in the compact form
    /// (`parse-request=12 validate=4 … end=100 external=40`, µs).
    pub trace: Option<String>,
    /// The earlier row this one repeats, reverses or completes.
    pub original: Option<TxId>,
    /// Its first reversal and completion.
    pub reversal: Option<TxId>,
    /// Its first completion.
    pub completion: Option<TxId>,
    /// The participants that committed it.
    pub participants: Vec<String>,
    /// A reply that came after the timeout: its result code and time.
    pub late_reply: Option<(Option<String>, i64)>,
    /// The data key that encrypts its request and response.
    pub key_id: Option<i64>,
}

/// What [`Tranlog::search`] looks for; every given criterion must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxQuery {
    /// Tenant.
    pub tenant: Option<String>,
    /// DE11.
    pub stan: Option<String>,
    /// DE37.
    pub rrn: Option<String>,
    /// DE41.
    pub terminal: Option<String>,
    /// DE42.
    pub merchant: Option<String>,
    /// The PAN's last four digits.
    pub pan_last4: Option<String>,
    /// Received at or after, ms since the Unix epoch.
    pub from_ms: Option<i64>,
    /// Received before, ms since the Unix epoch.
    pub to_ms: Option<i64>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// What recovery did at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Possibly sent and not answered: reversals queued.
    pub reversals_queued: u64,
    /// Received and never sent or answered: marked interrupted.
    pub interrupted: u64,
    /// Store-and-forward leases of this node released.
    pub leases_released: u64,
}

/// The transaction log.
pub trait Tranlog: Send + Sync {
    /// Records a decoded request (a new row, not yet durable: the next
    /// durable write of the same transaction makes it so) and finds the
    /// earlier row of the same class and key, if any.
    fn admit(&self, request: Received) -> PortFuture<Admitted>;

    /// Records that the transaction is about to go to `endpoint`; resolves
    /// once durable (then it may be sent).
    fn mark_sent(&self, id: TxId, endpoint: &str) -> PortFuture<()>;

    /// Records how the transaction ended (and queues its reversal, when
    /// given, in the same write); resolves once durable. A row already
    /// reversed or with its reversal queued keeps that state.
    fn finish(&self, id: TxId, finished: Finished) -> PortFuture<Option<SafId>>;

    /// Records a reply that arrived after the transaction timed out.
    fn late_reply(&self, id: TxId, rc: Option<String>, at_ms: i64) -> PortFuture<()>;

    /// Matches an acquirer reversal or completion (row `id`) to its
    /// original and, the first time, links them and queues what must be
    /// delivered (the endpoint's reversal or advice; a local reversal for
    /// the participants of a local original); resolves once durable.
    fn follow_up(&self, id: TxId, follow_up: FollowUp) -> PortFuture<FollowUpOutcome>;

    /// At start-up: queues a reversal for every transaction of this node
    /// possibly sent and not answered, marks the ones never sent as
    /// interrupted, releases this node's store-and-forward leases.
    fn recover(&self) -> PortFuture<Recovered>;

    /// The request (and response) a row keeps, decrypted: what a reversal,
    /// an advice or a local reversal is built from.
    fn messages(&self, id: TxId) -> PortFuture<(Message, Option<Message>)>;

    /// As [`Tranlog::messages`], once row `id` is no longer in flight on
    /// another node sharing the store (a repeat arrived here for it): such
    /// a store waits, bounded by the node lease, for that node's answer or
    /// takeover. A store of one node answers at once (a row not in flight
    /// here is settled).
    fn settled_messages(&self, id: TxId) -> PortFuture<(Message, Option<Message>)> {
        self.messages(id)
    }

    /// One row.
    fn get(&self, id: TxId) -> PortFuture<Option<TxRecord>>;

    /// The rows linked to `id` (its repeats, duplicates, reversals,
    /// completions), oldest first.
    fn linked(&self, id: TxId) -> PortFuture<Vec<TxRecord>>;

    /// Rows matching `query`, newest first.
    fn search(&self, query: TxQuery) -> PortFuture<Vec<TxRecord>>;

    /// Deletes rows received before `cutoff_ms`, except those a pending
    /// store-and-forward entry still needs; at most `limit` per call.
    fn purge(&self, cutoff_ms: i64, limit: usize) -> PortFuture<u64>;
}

/// The store-and-forward queue.
pub trait SafQueue: Send + Sync {
    /// Claims up to `limit` pending entries of `endpoint` due at `now_ms`
    /// and not leased by anyone else: leases them to `owner` until
    /// `now_ms + lease`, counts the attempt; resolves once durable.
    fn claim(
        &self,
        endpoint: &str,
        owner: &str,
        now_ms: i64,
        lease: Duration,
        limit: usize,
    ) -> PortFuture<Vec<SafEntry>>;

    /// Records an attempt's result and releases the lease; an
    /// acknowledgement also marks the original reversed (reversals);
    /// resolves once durable.
    fn attempted(&self, id: SafId, attempt: Attempt) -> PortFuture<()>;

    /// When the next pending entry of `endpoint` is due, if any.
    fn next_due(&self, endpoint: &str) -> PortFuture<Option<i64>>;

    /// Makes an entry due now (`saf retry`); false when it is unknown or
    /// done.
    fn retry_now(&self, id: SafId) -> PortFuture<bool>;

    /// One entry.
    fn entry(&self, id: SafId) -> PortFuture<Option<SafEntry>>;

    /// Entries of the transaction `original`, oldest first.
    fn entries_of(&self, original: TxId) -> PortFuture<Vec<SafEntry>>;

    /// Entries per `filter`, oldest first.
    fn list(&self, filter: SafFilter) -> PortFuture<Vec<SafEntry>>;

    /// The queue's depth, per endpoint.
    fn stats(&self) -> PortFuture<Vec<(String, SafStats)>>;
}

/// A data key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Encrypts new rows.
    Active,
    /// Decrypts only; its rows are being re-encrypted.
    Retired,
    /// Destroyed: no row needs it any more.
    Destroyed,
}

impl KeyState {
    /// The name stored and shown.
    pub const fn name(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Destroyed => "destroyed",
        }
    }
}

/// One data key, as `keys status` shows it (never its material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyStatus {
    /// Its id.
    pub id: i64,
    /// The tenant it encrypts for.
    pub tenant: String,
    /// Its state.
    pub state: KeyState,
    /// When it was created, ms since the Unix epoch.
    pub created_ms: i64,
    /// The key-encryption key that wraps it (fingerprint).
    pub kek: String,
    /// Rows it encrypts now.
    pub rows: u64,
}

/// The keyring's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringStatus {
    /// The key-encryption key in use (fingerprint) and where it lives.
    pub kek: String,
    /// Where the key-encryption key is read from.
    pub kek_source: String,
    /// When the key-encryption key was created, ms since the Unix epoch.
    pub kek_created_ms: Option<i64>,
    /// Every data key.
    pub data_keys: Vec<DataKeyStatus>,
}

/// Envelope encryption: rotation and status. Encryption itself happens
/// inside the store's implementation of the other ports.
pub trait Keyring: Send + Sync {
    /// Adds a new active data key for `tenant` (every tenant with a key
    /// when `None`), retiring the old one; its rows are re-encrypted in
    /// the background. Returns the new keys' ids.
    fn rotate(&self, tenant: Option<String>) -> PortFuture<Vec<i64>>;

    /// Creates a new key-encryption key and re-wraps every data key with
    /// it. Returns the new key's fingerprint.
    fn rotate_kek(&self) -> PortFuture<String>;

    /// Re-encrypts up to `limit` rows still under a retired key and
    /// destroys retired keys no row needs any more. Returns the rows
    /// re-encrypted (0: nothing left to do).
    fn reencrypt(&self, limit: usize) -> PortFuture<u64>;

    /// Key ids, ages and rows per key.
    fn status(&self) -> PortFuture<KeyringStatus>;

    /// The keyed token of a PAN (HMAC-SHA-256 under the tenant's lookup
    /// key, separate from the encryption keys).
    fn pan_token(&self, tenant: &str, pan: &str) -> Result<[u8; 32], PortError>;
}

/// The plugins' key/value data, scoped by tenant and plugin. Keys are
/// stored only as keyed hashes, values encrypted.
pub trait KvStore: Send + Sync {
    /// The value under `key`.
    fn kv_get(&self, tenant: &str, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, PortError>;
    /// Stores `value` under `key`.
    fn kv_set(&self, tenant: &str, plugin: &str, key: &str, value: &[u8]) -> Result<(), PortError>;
    /// Removes `key`; true when it existed.
    fn kv_delete(&self, tenant: &str, plugin: &str, key: &str) -> Result<bool, PortError>;
    /// Stores `value` when the current value equals `expected` (`None`:
    /// absent), atomically; true when stored.
    fn kv_compare_and_set(
        &self,
        tenant: &str,
        plugin: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, PortError>;
    /// Every value `plugin` stored for `tenant`, in no particular order
    /// (keys may be stored only as hashes, so only values come back): what
    /// the operator's listings (`switchyard coupons list`) read. A store
    /// that cannot list answers an error.
    fn kv_values(&self, tenant: &str, plugin: &str) -> Result<Vec<Vec<u8>>, PortError> {
        let _ = (tenant, plugin);
        Err(PortError::Invalid(
            "listing is not supported by this store".into(),
        ))
    }
}

/// Windowed counters for velocity checks, scoped by tenant and plugin.
pub trait CounterStore: Send + Sync {
    /// Adds `delta` now and returns the sum over the last `window_seconds`.
    fn counter_add(
        &self,
        scope: (&str, &str),
        name: &str,
        key: &str,
        delta: i64,
        window_seconds: u32,
    ) -> Result<i64, PortError>;
    /// The sum over the last `window_seconds`, without adding.
    fn counter_sum(
        &self,
        scope: (&str, &str),
        name: &str,
        key: &str,
        window_seconds: u32,
    ) -> Result<i64, PortError>;
}

/// One plugin swap or rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapRecord {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The plugin's name in the config.
    pub plugin: String,
    /// `swap` or `rollback`.
    pub action: String,
    /// SHA-256 of the version replaced.
    pub old_hash: String,
    /// SHA-256 of the version now live.
    pub new_hash: String,
    /// Who asked (the credential's holder, `deploy-dir`, …).
    pub actor: String,
}

/// The history of plugin swaps.
pub trait SwapHistory: Send + Sync {
    /// Records a swap or rollback.
    fn record_swap(&self, record: &SwapRecord) -> Result<(), PortError>;
    /// The latest `limit` swaps, newest last.
    fn swaps(&self, limit: usize) -> Result<Vec<SwapRecord>, PortError>;
    /// Keeps the component whose SHA-256 is `digest`, so that other nodes
    /// sharing this store can load it when they follow a swap to it. A
    /// store of one node keeps nothing.
    fn keep_version(&self, digest: &str, wasm: &[u8]) -> Result<(), PortError> {
        let _ = (digest, wasm);
        Ok(())
    }
}

impl fmt::Display for TxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for TxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
