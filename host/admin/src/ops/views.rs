//! What the operator tools show, as JSON documents (the admin API serves
//! them, `switchyard tranlog|saf|keys` print them) and as text. No card
//! data: the PAN masked, the expiry date hidden, track/PIN/chip data never
//! stored in the first place.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use switchyard_engine::ports::{DataKeyStatus, KeyringStatus, SafEntry, SafStats, TxRecord};
use switchyard_iso8583::{Message, mask_pan};

use switchyard_iso8583::UtcTime;

/// `2026-12-01T18:23:05.123Z` for ms since the Unix epoch.
pub fn utc(ms: i64) -> String {
    let t = UtcTime::from_unix(ms.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        ms.rem_euclid(1000)
    )
}

/// One tranlog row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TxView {
    /// Its id.
    pub id: i64,
    /// Tenant, listener and node.
    pub tenant: String,
    /// The listener.
    pub listener: String,
    /// The node that handled it.
    pub node: String,
    /// original, repeat, duplicate, reversal, completion, network, other.
    pub kind: String,
    /// The MTI.
    pub mti: String,
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
    /// The PAN, masked (first 6, last 4).
    pub pan: Option<String>,
    /// received, sent, answered, interrupted, reversal-queued, reversed.
    pub state: String,
    /// Result code.
    pub rc: Option<String>,
    /// DE38 on approval.
    pub approval: Option<String>,
    /// The endpoint it was switched out to.
    pub endpoint: Option<String>,
    /// What became of the upstream leg.
    pub upstream: Option<String>,
    /// When received (UTC).
    pub received: String,
    /// When received, ms since the Unix epoch.
    pub received_ms: i64,
    /// Time in the switch, ms.
    pub total_ms: Option<f64>,
    /// Time at the endpoint, ms.
    pub external_ms: Option<f64>,
    /// The profiler trace, compact (`parse-request=12 … end=100`, µs).
    pub trace: Option<String>,
    /// The row it repeats, reverses or completes.
    pub original: Option<i64>,
    /// Its first reversal.
    pub reversal: Option<i64>,
    /// Its first completion.
    pub completion: Option<i64>,
    /// The participants that committed it.
    pub participants: Vec<String>,
    /// A reply that arrived after the timeout: its code.
    pub late_rc: Option<String>,
    /// When it arrived (UTC).
    pub late_at: Option<String>,
    /// The data key of its encrypted fields.
    pub key_id: Option<i64>,
}

fn ms(us: Option<i64>) -> Option<f64> {
    us.map(|u| u as f64 / 1000.0)
}

impl From<&TxRecord> for TxView {
    fn from(r: &TxRecord) -> TxView {
        let c = &r.columns;
        TxView {
            id: r.id,
            tenant: r.tenant.clone(),
            listener: r.listener.clone(),
            node: r.node.clone(),
            kind: r.kind.name().into(),
            mti: r.mti.clone(),
            processing_code: c.processing_code.clone(),
            amount: c.amount.clone(),
            currency: c.currency.clone(),
            stan: c.stan.clone(),
            transmitted: c.transmitted.clone(),
            rrn: c.rrn.clone(),
            terminal: c.terminal.clone(),
            merchant: c.merchant.clone(),
            acquirer: c.acquirer.clone(),
            pan: r.pan_masked.clone(),
            state: r.state.name().into(),
            rc: r.rc.clone(),
            approval: r.approval.clone(),
            endpoint: r.endpoint.clone(),
            upstream: r.upstream.map(|u| u.name().into()),
            received: utc(r.received_ms),
            received_ms: r.received_ms,
            total_ms: ms(r.total_us),
            external_ms: ms(r.external_us),
            trace: r.trace.clone(),
            original: r.original,
            reversal: r.reversal,
            completion: r.completion,
            participants: r.participants.clone(),
            late_rc: r.late_reply.as_ref().and_then(|(rc, _)| rc.clone()),
            late_at: r.late_reply.as_ref().map(|(_, at)| utc(*at)),
            key_id: r.key_id,
        }
    }
}

/// One field of a stored message, as an operator may see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FieldView {
    /// The data element.
    pub field: u16,
    /// Its value: the PAN masked, the expiry hidden, binary as hex.
    pub value: String,
}

/// The fields of a stored message, masked.
pub fn fields(m: &Message) -> Vec<FieldView> {
    m.fields()
        .map(|(f, v)| FieldView {
            field: f,
            value: match f {
                2 => mask_pan(&String::from_utf8_lossy(v)),
                14 => "****".into(),
                35 | 45 | 52 | 55 => "<redacted>".into(),
                _ if v.iter().all(|b| b.is_ascii_graphic() || *b == b' ') => {
                    String::from_utf8_lossy(v).into_owned()
                }
                _ => hex::encode_upper(v),
            },
        })
        .collect()
}

/// `tranlog show ID`: a transaction's life cycle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TxLife {
    /// The row.
    pub transaction: TxView,
    /// Its request (MTI and fields), masked.
    pub request_mti: String,
    /// The request's fields.
    pub request: Vec<FieldView>,
    /// Its response, masked, once answered.
    pub response: Option<Vec<FieldView>>,
    /// Its repeats, duplicates, reversals, completions.
    pub linked: Vec<TxView>,
    /// Its store-and-forward entries (reversals, advices, local reversals).
    pub saf: Vec<SafView>,
}

/// One store-and-forward entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SafView {
    /// Its id.
    pub id: i64,
    /// Its tenant.
    pub tenant: String,
    /// reversal, advice, local-reversal.
    pub kind: String,
    /// The endpoint (`(local)` for local reversals).
    pub endpoint: String,
    /// The transaction it reverses or completes.
    pub original: i64,
    /// The row its message is built from.
    pub source: i64,
    /// DE39 of its message.
    pub reason: String,
    /// pending or done.
    pub state: String,
    /// Sends so far.
    pub attempts: u32,
    /// When queued (UTC).
    pub queued: String,
    /// Age, seconds.
    pub age_s: i64,
    /// When the next attempt is due (UTC), while pending.
    pub next_attempt: Option<String>,
    /// When the last attempt started (UTC).
    pub last_attempt: Option<String>,
    /// What it got.
    pub last_result: Option<String>,
    /// Escalated after too many attempts.
    pub escalated: bool,
    /// When acknowledged (UTC).
    pub acked: Option<String>,
    /// An attempt in flight: who holds the entry, until when (UTC).
    pub leased_by: Option<String>,
}

impl SafView {
    /// The view of `e` at `now_ms`.
    pub fn new(e: &SafEntry, now_ms: i64) -> SafView {
        let pending = e.state == switchyard_engine::ports::SafState::Pending;
        SafView {
            id: e.id,
            tenant: e.tenant.clone(),
            kind: e.kind.name().into(),
            endpoint: e.endpoint.clone(),
            original: e.original,
            source: e.source,
            reason: e.reason.clone(),
            state: e.state.name().into(),
            attempts: e.attempts,
            queued: utc(e.created_ms),
            age_s: (now_ms - e.created_ms) / 1000,
            next_attempt: pending.then(|| utc(e.next_ms)),
            last_attempt: e.last_attempt_ms.map(utc),
            last_result: e.last_result.clone(),
            escalated: e.escalated,
            acked: e.acked_ms.map(utc),
            leased_by: e
                .lease
                .as_ref()
                .filter(|(_, until)| *until > now_ms)
                .map(|(owner, until)| format!("{owner} until {}", utc(*until))),
        }
    }
}

/// One endpoint's queue depth.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueueView {
    /// The endpoint.
    pub endpoint: String,
    /// Entries not acknowledged.
    pub pending: u64,
    /// Of them, escalated.
    pub escalated: u64,
    /// Age of the oldest pending entry, seconds.
    pub oldest_age_s: Option<i64>,
}

impl QueueView {
    /// The view of `stats` at `now_ms`.
    pub fn new(endpoint: &str, stats: &SafStats, now_ms: i64) -> QueueView {
        QueueView {
            endpoint: endpoint.into(),
            pending: stats.pending,
            escalated: stats.escalated,
            oldest_age_s: stats.oldest_ms.map(|o| (now_ms - o) / 1000),
        }
    }
}

/// `saf list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SafList {
    /// Depth per endpoint.
    pub queues: Vec<QueueView>,
    /// The entries.
    pub entries: Vec<SafView>,
}

/// `saf retry ID`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RetryResult {
    /// The entry.
    pub id: i64,
    /// Whether it was made due now (false: unknown or already done).
    pub retried: bool,
}

/// One data key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyView {
    /// Its id.
    pub id: i64,
    /// The tenant it encrypts for.
    pub tenant: String,
    /// active, retired, destroyed.
    pub state: String,
    /// When created (UTC).
    pub created: String,
    /// Age, days.
    pub age_days: f64,
    /// The KEK that wraps it (fingerprint).
    pub kek: String,
    /// Rows it encrypts.
    pub rows: u64,
}

/// `keys status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeysView {
    /// The KEK in use (fingerprint).
    pub kek: String,
    /// Where it is read from.
    pub kek_source: String,
    /// When it was created (UTC).
    pub kek_created: Option<String>,
    /// Every data key.
    pub data_keys: Vec<KeyView>,
}

impl KeysView {
    /// The view of `s` at `now_ms`.
    pub fn new(s: &KeyringStatus, now_ms: i64) -> KeysView {
        let key = |k: &DataKeyStatus| KeyView {
            id: k.id,
            tenant: k.tenant.clone(),
            state: k.state.name().into(),
            created: utc(k.created_ms),
            age_days: ((now_ms - k.created_ms) as f64 / 86_400_000.0 * 100.0).round() / 100.0,
            kek: k.kek.clone(),
            rows: k.rows,
        };
        KeysView {
            kek: s.kek.clone(),
            kek_source: s.kek_source.clone(),
            kek_created: s.kek_created_ms.map(utc),
            data_keys: s.data_keys.iter().map(key).collect(),
        }
    }
}

/// `keys rotate`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RotationView {
    /// New data keys (their ids), when data keys were rotated.
    pub new_data_keys: Vec<i64>,
    /// The new KEK's fingerprint, when the KEK was rotated.
    pub new_kek: Option<String>,
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

/// `tranlog search`: one line per row.
pub fn format_rows(rows: &[TxView]) -> String {
    let mut out = format!(
        "{:<20} {:<24} {:<4} {:<10} {:<6} {:<12} {:<8} {:<16} {:<3} {:<16} {:>8}\n",
        "ID",
        "RECEIVED",
        "MTI",
        "KIND",
        "STAN",
        "RRN",
        "TERMINAL",
        "PAN",
        "RC",
        "STATE",
        "TOTAL_MS"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<20} {:<24} {:<4} {:<10} {:<6} {:<12} {:<8} {:<16} {:<3} {:<16} {:>8}",
            r.id,
            r.received,
            r.mti,
            r.kind,
            opt(&r.stan),
            opt(&r.rrn),
            opt(&r.terminal),
            opt(&r.pan),
            opt(&r.rc),
            r.state,
            r.total_ms.map_or("-".into(), |t| format!("{t:.3}")),
        );
    }
    let _ = write!(out, "{} row(s)", rows.len());
    out
}

/// `tranlog show`: the life cycle, as text.
pub fn format_life(l: &TxLife) -> String {
    let t = &l.transaction;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "transaction {}  {} {}  tenant {}  listener {}  node {}",
        t.id, t.mti, t.kind, t.tenant, t.listener, t.node
    );
    let _ = writeln!(
        out,
        "  received {}  state {}  rc {}  approval {}  total {} ms",
        t.received,
        t.state,
        opt(&t.rc),
        opt(&t.approval),
        t.total_ms.map_or("-".into(), |v| format!("{v:.3}"))
    );
    if let Some(e) = &t.endpoint {
        let _ = writeln!(
            out,
            "  endpoint {e}  upstream {}  external {} ms",
            opt(&t.upstream),
            t.external_ms.map_or("-".into(), |v| format!("{v:.3}"))
        );
    }
    if let Some(rc) = &t.late_rc {
        let _ = writeln!(
            out,
            "  late reply rc {rc} at {} (not forwarded; reversed)",
            t.late_at.as_deref().unwrap_or("-")
        );
    }
    if !t.participants.is_empty() {
        let _ = writeln!(out, "  committed by {}", t.participants.join(", "));
    }
    if let Some(trace) = &t.trace {
        let _ = writeln!(out, "  trace (µs) {trace}");
    }
    let _ = writeln!(out, "  request {}", l.request_mti);
    for f in &l.request {
        let _ = writeln!(out, "    DE{:03} {}", f.field, f.value);
    }
    if let Some(resp) = &l.response {
        let _ = writeln!(out, "  response");
        for f in resp {
            let _ = writeln!(out, "    DE{:03} {}", f.field, f.value);
        }
    }
    for r in &l.linked {
        let _ = writeln!(
            out,
            "  {} {} {} at {}  rc {}",
            r.kind,
            r.id,
            r.mti,
            r.received,
            opt(&r.rc)
        );
    }
    for s in &l.saf {
        out.push_str(&format_entry(s));
    }
    out
}

fn format_entry(s: &SafView) -> String {
    format!(
        "  saf {} {} to {}  {}  attempts {}  queued {}  next {}  last {}{}\n",
        s.id,
        s.kind,
        s.endpoint,
        s.state,
        s.attempts,
        s.queued,
        s.next_attempt.as_deref().unwrap_or("-"),
        s.last_result.as_deref().unwrap_or("-"),
        if s.escalated { "  ESCALATED" } else { "" }
    )
}

/// `saf list`, as text.
pub fn format_saf(l: &SafList) -> String {
    let mut out = String::new();
    if l.queues.is_empty() {
        out.push_str("no store-and-forward entries pending\n");
    }
    for q in &l.queues {
        let _ = writeln!(
            out,
            "{}: {} pending, {} escalated, oldest {}",
            q.endpoint,
            q.pending,
            q.escalated,
            q.oldest_age_s.map_or("-".into(), |a| format!("{a} s"))
        );
    }
    for s in &l.entries {
        out.push_str(&format_entry(s));
    }
    out
}

/// `keys status`, as text.
pub fn format_keys(k: &KeysView) -> String {
    let mut out = format!(
        "key-encryption key {} ({}), created {}\n",
        k.kek,
        k.kek_source,
        k.kek_created.as_deref().unwrap_or("-")
    );
    for d in &k.data_keys {
        let _ = writeln!(
            out,
            "data key {:<4} tenant {:<12} {:<9} created {}  age {:.2} d  rows {}  wrapped by {}",
            d.id, d.tenant, d.state, d.created, d.age_days, d.rows, d.kek
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_milliseconds() {
        assert_eq!(utc(1_795_420_800_123), "2026-11-23T08:00:00.123Z");
    }

    #[test]
    fn stored_fields_are_shown_masked() {
        let mut m = Message::new(switchyard_iso8583::Mti::new("0200").unwrap());
        m.set(2, &b"4761739001010119"[..]);
        m.set(14, &b"2712"[..]);
        m.set(11, &b"000123"[..]);
        m.set(52, &b"\x01\x02"[..]);
        let shown = fields(&m);
        let text = format!("{shown:?}");
        assert!(text.contains("476173******0119"), "{text}");
        assert!(!text.contains("4761739001010119"));
        assert!(!text.contains("2712"));
        assert!(text.contains("000123"));
    }
}
