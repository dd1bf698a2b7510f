//! The audit trail's table (issue 11, item 4; PCI DSS 10.2): append-only
//! rows in a hash chain, over a [`rusqlite::Connection`] the admin crate
//! opens on the store's file.
//!
//! - **Append-only**: triggers refuse every `UPDATE` and `DELETE` of a row
//!   (`audit rows are append-only`).
//! - **Hash chain**: each row's `hash` is HMAC-SHA256 under the audit key
//!   (`<data_dir>/keys/audit.key`, never in the database) of the previous
//!   row's hash and the canonical encoding of every column ([`canonical`]);
//!   the first row chains from [`GENESIS`]. Someone who can write the
//!   database file but not read the key cannot forge a row.
//! - **Checkpoint**: the head (seq, hash) is written to the `meta` row
//!   `audit_head` in the same transaction as the row, so deleting the
//!   newest rows (which leaves a valid chain) is detected too; the admin
//!   crate also keeps a copy beside the key ([`verify`] takes it).
//!
//! A caller appends inside its own `BEGIN IMMEDIATE` transaction
//! ([`append`]): appends of several processes (the switch, the CLI) are
//! serialized by SQLite's write lock.

use hmac::{Hmac, Mac};
use rusqlite::{Connection, OptionalExtension, Row, params};
use sha2::Sha256;

/// The tables of this module (schema v6), created idempotently.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    seq        INTEGER PRIMARY KEY,
    at_ms      INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    event      TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    origin     TEXT,
    resource   TEXT NOT NULL,
    tenant     TEXT,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_tenant ON audit (tenant, seq);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ms);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit rows are append-only');
END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit rows are append-only');
END;
";

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The `meta` row holding the head, `<seq> <hash>`.
pub const HEAD: &str = "audit_head";

/// The columns of a row, in [`AuditRecord`] order.
pub const COLUMNS: &str = "seq, at_ms, actor, actor_kind, event, outcome, origin, resource, tenant,
    detail, prev_hash, hash";

/// One row to append (the chain's columns are computed by [`append`]).
#[derive(Debug, Clone)]
pub struct NewRow<'a> {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// The user, API client, `system`, or the name tried at a failed login.
    pub actor: &'a str,
    /// `user`, `api_client`, `system` or `unknown`.
    pub actor_kind: &'a str,
    /// The event type (`login.failed`, `plugin.swap`, …).
    pub event: &'a str,
    /// `success` or `failure`.
    pub outcome: &'a str,
    /// The request's origin address, if any.
    pub origin: Option<&'a str>,
    /// The affected resource.
    pub resource: &'a str,
    /// The tenant of the resource, if any.
    pub tenant: Option<&'a str>,
    /// Free text (never card data).
    pub detail: &'a str,
}

/// One stored row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its place in the chain, from 1.
    pub seq: i64,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// `user`, `api_client`, `system` or `unknown`.
    pub actor_kind: String,
    /// The event type.
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// The origin address.
    pub origin: Option<String>,
    /// The affected resource.
    pub resource: String,
    /// The tenant.
    pub tenant: Option<String>,
    /// Free text.
    pub detail: String,
    /// The previous row's hash (hex), [`GENESIS`] for the first.
    pub prev_hash: String,
    /// This row's HMAC (hex).
    pub hash: String,
}

impl AuditRecord {
    /// `row` owned, before the chain gives it a place and a hash (to move
    /// it where the borrow cannot go, such as onto a store's runtime).
    pub(crate) fn unchained(row: &NewRow<'_>) -> AuditRecord {
        record_of(0, row, String::new(), String::new())
    }

    pub(crate) fn as_new(&self) -> NewRow<'_> {
        NewRow {
            at_ms: self.at_ms,
            actor: &self.actor,
            actor_kind: &self.actor_kind,
            event: &self.event,
            outcome: &self.outcome,
            origin: self.origin.as_deref(),
            resource: &self.resource,
            tenant: self.tenant.as_deref(),
            detail: &self.detail,
        }
    }
}

fn record(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.get(0)?,
        at_ms: r.get(1)?,
        actor: r.get(2)?,
        actor_kind: r.get(3)?,
        event: r.get(4)?,
        outcome: r.get(5)?,
        origin: r.get(6)?,
        resource: r.get(7)?,
        tenant: r.get(8)?,
        detail: r.get(9)?,
        prev_hash: r.get(10)?,
        hash: r.get(11)?,
    })
}

/// The canonical encoding of a row's columns (all but the hashes): the
/// seq and time as 8-byte big-endian integers, each text as a presence
/// byte (absent: `0`) then its length (8 bytes, big-endian) and UTF-8
/// bytes. Unambiguous: no two different rows encode alike.
pub fn canonical(seq: i64, row: &NewRow<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&row.at_ms.to_be_bytes());
    let texts = [
        Some(row.actor),
        Some(row.actor_kind),
        Some(row.event),
        Some(row.outcome),
        row.origin,
        Some(row.resource),
        row.tenant,
        Some(row.detail),
    ];
    for t in texts {
        match t {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                out.extend_from_slice(&(s.len() as u64).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    out
}

/// HMAC-SHA256 under `key` of `prev_hash` (its text) and the row's
/// [`canonical`] encoding, hex.
pub fn chain_hash(key: &[u8; 32], prev_hash: &str, seq: i64, row: &NewRow<'_>) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC takes a key of any length")
    };
    mac.update(prev_hash.as_bytes());
    mac.update(&canonical(seq, row));
    hex::encode(mac.finalize().into_bytes())
}

/// The head recorded in `meta`: `(seq, hash)`; `None` before the first
/// row.
pub fn head(conn: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE name = ?1", [HEAD], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(value.and_then(|v| parse_head(&v)))
}

/// Parses a head written as `<seq> <hash>`.
pub fn parse_head(text: &str) -> Option<(i64, String)> {
    let (seq, hash) = text.trim().split_once(' ')?;
    Some((seq.parse().ok()?, hash.to_owned()))
}

/// Appends `row` after the recorded head, inside the caller's transaction
/// (which should be `BEGIN IMMEDIATE`), and moves the head to it. Chains
/// from the checkpoint, not from the table's last row: after the newest
/// rows were deleted the next row leaves a gap that [`verify`] reports.
pub fn append(
    conn: &Connection,
    key: &[u8; 32],
    row: &NewRow<'_>,
) -> rusqlite::Result<AuditRecord> {
    let (last, prev) = head(conn)?.unwrap_or((0, GENESIS.to_owned()));
    let seq = last + 1;
    let hash = chain_hash(key, &prev, seq, row);
    conn.execute(
        &format!("INSERT INTO audit ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
        params![
            seq,
            row.at_ms,
            row.actor,
            row.actor_kind,
            row.event,
            row.outcome,
            row.origin,
            row.resource,
            row.tenant,
            row.detail,
            prev,
            hash
        ],
    )?;
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![HEAD, format!("{seq} {hash}")],
    )?;
    Ok(record_of(seq, row, prev, hash))
}

/// The stored row of `row` at `seq` after `prev` with `hash`.
pub fn record_of(seq: i64, row: &NewRow<'_>, prev_hash: String, hash: String) -> AuditRecord {
    AuditRecord {
        seq,
        at_ms: row.at_ms,
        actor: row.actor.to_owned(),
        actor_kind: row.actor_kind.to_owned(),
        event: row.event.to_owned(),
        outcome: row.outcome.to_owned(),
        origin: row.origin.map(str::to_owned),
        resource: row.resource.to_owned(),
        tenant: row.tenant.map(str::to_owned),
        detail: row.detail.to_owned(),
        prev_hash,
        hash,
    }
}

/// What [`list`] selects; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this tenant's rows.
    pub tenant: Option<String>,
    /// Only this actor's rows.
    pub actor: Option<String>,
    /// Only this event type.
    pub event: Option<String>,
    /// From this time, ms since the epoch (inclusive).
    pub from_ms: Option<i64>,
    /// Until this time, ms (exclusive).
    pub to_ms: Option<i64>,
    /// At most this many rows (newest first).
    pub limit: usize,
}

/// The rows `filter` selects, newest first.
pub fn list(conn: &Connection, filter: &ListFilter) -> rusqlite::Result<Vec<AuditRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit
         WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR actor = ?2)
           AND (?3 IS NULL OR event = ?3) AND (?4 IS NULL OR at_ms >= ?4)
           AND (?5 IS NULL OR at_ms < ?5)
         ORDER BY seq DESC LIMIT ?6"
    ))?;
    stmt.query_map(
        params![
            filter.tenant,
            filter.actor,
            filter.event,
            filter.from_ms,
            filter.to_ms,
            filter.limit.min(i64::MAX as usize) as i64
        ],
        record,
    )?
    .collect()
}

/// The number of rows.
pub fn count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The rows read.
    pub rows: u64,
    /// Whether the whole chain and its checkpoints hold.
    pub ok: bool,
    /// The first broken place: the seq and why (`changed`, `deleted`,
    /// `reordered`, `truncated`, …).
    pub first_bad: Option<(i64, String)>,
    /// The last row's (seq, hash).
    pub head: Option<(i64, String)>,
}

/// Walks the chain in seq order under `key` and checks it against the
/// `meta` checkpoint and `outside` (the head kept outside the database,
/// which may lag the database by the rows whose copy a crash lost).
pub fn verify(
    conn: &Connection,
    key: &[u8; 32],
    outside: Option<(i64, String)>,
) -> rusqlite::Result<VerifyReport> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut v = Verifier::new(key, outside);
    while let Some(r) = rows.next()? {
        v.push(&record(r)?);
    }
    Ok(v.finish(head(conn)?))
}

/// The chain check of [`verify`], fed one row at a time in seq order
/// (a backend reads the rows its own way).
pub struct Verifier<'k> {
    key: &'k [u8; 32],
    outside: Option<(i64, String)>,
    expect_seq: i64,
    prev: String,
    read: u64,
    first_bad: Option<(i64, String)>,
    at_outside: Option<String>,
}

impl<'k> Verifier<'k> {
    /// A walk from the genesis under `key`, with the head kept outside the
    /// database.
    pub fn new(key: &'k [u8; 32], outside: Option<(i64, String)>) -> Verifier<'k> {
        Verifier {
            key,
            outside,
            expect_seq: 1,
            prev: GENESIS.to_owned(),
            read: 0,
            first_bad: None,
            at_outside: None,
        }
    }

    /// The next row, in seq order.
    pub fn push(&mut self, rec: &AuditRecord) {
        self.read += 1;
        if let Some((s, _)) = &self.outside
            && *s == rec.seq
        {
            self.at_outside = Some(rec.hash.clone());
        }
        if self.first_bad.is_none() {
            self.first_bad = check_row(self.key, rec, self.expect_seq, &self.prev);
        }
        self.expect_seq = rec.seq + 1;
        self.prev.clone_from(&rec.hash);
    }

    /// The report, given the database's checkpoint (`meta`).
    pub fn finish(self, recorded: Option<(i64, String)>) -> VerifyReport {
        let Verifier {
            outside,
            expect_seq,
            prev,
            read,
            mut first_bad,
            at_outside,
            ..
        } = self;
        let last = (expect_seq > 1).then(|| (expect_seq - 1, prev));
        if first_bad.is_none() {
            first_bad = check_head(last.as_ref(), recorded, "the database's checkpoint");
        }
        if first_bad.is_none()
            && let Some((s, h)) = &outside
        {
            let last_seq = last.as_ref().map_or(0, |l| l.0);
            first_bad = if *s > last_seq {
                Some((
                    last_seq + 1,
                    format!(
                        "truncated: the rows up to seq {s} (the key directory's checkpoint) are gone"
                    ),
                ))
            } else if at_outside.as_deref() != Some(h.as_str()) {
                Some((
                    *s,
                    "changed: it does not match the key directory's checkpoint".into(),
                ))
            } else {
                None
            };
        }
        VerifyReport {
            rows: read,
            ok: first_bad.is_none(),
            first_bad,
            head: last,
        }
    }
}

fn check_row(
    key: &[u8; 32],
    rec: &AuditRecord,
    expect_seq: i64,
    prev: &str,
) -> Option<(i64, String)> {
    if rec.seq > expect_seq {
        let what = if expect_seq + 1 == rec.seq {
            format!("deleted: seq {expect_seq} is missing")
        } else {
            format!("deleted: seq {expect_seq} to {} are missing", rec.seq - 1)
        };
        return Some((expect_seq, what));
    }
    if chain_hash(key, &rec.prev_hash, rec.seq, &rec.as_new()) != rec.hash {
        return Some((
            rec.seq,
            "changed: its hash does not match its contents".into(),
        ));
    }
    if rec.prev_hash != prev {
        return Some((
            rec.seq,
            "reordered: its prev_hash is not the previous row's hash".into(),
        ));
    }
    None
}

fn check_head(
    last: Option<&(i64, String)>,
    recorded: Option<(i64, String)>,
    whose: &str,
) -> Option<(i64, String)> {
    match (last, recorded) {
        (None, None) => None,
        (Some((s, _)), None) => Some((*s, format!("truncated: {whose} is missing"))),
        (None, Some((s, _))) => Some((
            1,
            format!("truncated: every row up to seq {s} ({whose}) is gone"),
        )),
        (Some((ls, lh)), Some((hs, hh))) => {
            if hs > *ls {
                Some((
                    ls + 1,
                    format!("truncated: the rows up to seq {hs} ({whose}) are gone"),
                ))
            } else if hs < *ls || hh != *lh {
                Some((hs, format!("changed: the last rows do not match {whose}")))
            } else {
                None
            }
        }
    }
}
