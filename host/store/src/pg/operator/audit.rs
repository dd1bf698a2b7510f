//! [`AuditDb`] on PostgreSQL: one hash chain for every node, its appends
//! serialized by [`AUDIT_LOCK`], its head in `meta` as on SQLite.

use tokio_postgres::Row;

use super::{AUDIT_LOCK, PgOperator};
use crate::audit::{
    self, AuditRecord, COLUMNS, GENESIS, HEAD, ListFilter, NewRow, Verifier, VerifyReport,
};
use crate::error::SqlContext;
use crate::operator::{AuditDb, OpResult, actor_kind_of, alert_payload};

/// The rows [`AuditDb::verify`] reads at a time.
const VERIFY_PAGE: i64 = 5000;

fn record(r: &Row) -> AuditRecord {
    AuditRecord {
        seq: r.get(0),
        at_ms: r.get(1),
        actor: r.get(2),
        actor_kind: r.get(3),
        event: r.get(4),
        outcome: r.get(5),
        origin: r.get(6),
        resource: r.get(7),
        tenant: r.get(8),
        detail: r.get(9),
        prev_hash: r.get(10),
        hash: r.get(11),
    }
}

/// The head recorded in `meta`.
async fn head<C: tokio_postgres::GenericClient + Sync>(
    client: &C,
    what: &str,
) -> Result<Option<(i64, String)>, crate::StoreError> {
    let row = client
        .query_opt("SELECT value FROM meta WHERE name = $1", &[&HEAD])
        .await
        .what(what)?;
    Ok(row.and_then(|r| audit::parse_head(r.get::<_, &str>(0))))
}

impl AuditDb for PgOperator {
    fn count(&self) -> OpResult<i64> {
        let row = self.query_opt(
            "counting the audit rows",
            "SELECT count(*) FROM audit",
            args![],
        )?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    fn actor_kind(&self, actor: &str) -> OpResult<&'static str> {
        if actor == "system" {
            return Ok("system");
        }
        let row = self.query_opt(
            "reading an audit actor",
            "SELECT 'user'::TEXT FROM users WHERE name = $1
             UNION ALL SELECT 'api_client'::TEXT FROM api_clients WHERE name = $1 LIMIT 1",
            args![actor.to_owned()],
        )?;
        Ok(actor_kind_of(row.as_ref().map(|r| r.get::<_, &str>(0))))
    }

    fn append(
        &self,
        key: &[u8; 32],
        row: &NewRow<'_>,
        alert_tenant: Option<&str>,
    ) -> OpResult<AuditRecord> {
        let what = "appending an audit row";
        let (key, row, alert_tenant) = (
            *key,
            AuditRecord::unchained(row),
            alert_tenant.map(str::to_owned),
        );
        self.wait(move |s| async move {
            let mut client = s.client().await?;
            let tx = client.transaction().await.what(what)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
                .await
                .what("waiting for the audit trail's lock")?;
            let (last, prev) = head(&*tx, what).await?.unwrap_or((0, GENESIS.to_owned()));
            let seq = last + 1;
            let new = row.as_new();
            let hash = audit::chain_hash(&key, &prev, seq, &new);
            tx.execute(
                &format!(
                    "INSERT INTO audit ({COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ),
                &[
                    &seq,
                    &row.at_ms,
                    &row.actor,
                    &row.actor_kind,
                    &row.event,
                    &row.outcome,
                    &row.origin,
                    &row.resource,
                    &row.tenant,
                    &row.detail,
                    &prev,
                    &hash,
                ],
            )
            .await
            .what(what)?;
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                &[&HEAD, &format!("{seq} {hash}")],
            )
            .await
            .what("moving the audit trail's head")?;
            let rec = audit::record_of(seq, &new, prev, hash);
            if let Some(tenant) = &alert_tenant {
                let data = alert_payload(&rec);
                crate::pg::outbox::insert_event(&*tx, tenant, "audit.alert", &data).await?;
            }
            tx.commit().await.what(what)?;
            Ok(rec)
        })
    }

    fn list(&self, filter: &ListFilter) -> OpResult<Vec<AuditRecord>> {
        let rows = self.query(
            "reading the audit trail",
            format!(
                "SELECT {COLUMNS} FROM audit
                 WHERE ($1::TEXT IS NULL OR tenant = $1) AND ($2::TEXT IS NULL OR actor = $2)
                   AND ($3::TEXT IS NULL OR event = $3) AND ($4::BIGINT IS NULL OR at_ms >= $4)
                   AND ($5::BIGINT IS NULL OR at_ms < $5)
                 ORDER BY seq DESC LIMIT $6"
            ),
            args![
                filter.tenant.clone(),
                filter.actor.clone(),
                filter.event.clone(),
                filter.from_ms,
                filter.to_ms,
                filter.limit.min(i64::MAX as usize) as i64,
            ],
        )?;
        Ok(rows.iter().map(record).collect())
    }

    fn verify(&self, key: &[u8; 32], outside: Option<(i64, String)>) -> OpResult<VerifyReport> {
        let what = "verifying the audit trail";
        let key = *key;
        self.wait(move |s| async move {
            let mut client = s.client().await?;
            // One snapshot: the rows and the head as one append left them.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .what(what)?;
            let mut v = Verifier::new(&key, outside);
            let mut after = 0i64;
            loop {
                let rows = tx
                    .query(
                        &format!(
                            "SELECT {COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"
                        ),
                        &[&after, &VERIFY_PAGE],
                    )
                    .await
                    .what(what)?;
                for r in &rows {
                    let rec = record(r);
                    after = rec.seq;
                    v.push(&rec);
                }
                if (rows.len() as i64) < VERIFY_PAGE {
                    break;
                }
            }
            let recorded = head(&*tx, what).await?;
            tx.commit().await.what(what)?;
            Ok(v.finish(recorded))
        })
    }

    fn claim_key_fingerprint(&self, name: &str, fingerprint: &str) -> OpResult<String> {
        let what = "recording a key's fingerprint";
        let (row, fingerprint) = (format!("{name}_key_fingerprint"), fingerprint.to_owned());
        self.wait(move |s| async move {
            let client = s.client().await?;
            client
                .execute(
                    "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                    &[&row, &fingerprint],
                )
                .await
                .what(what)?;
            let recorded = client
                .query_one("SELECT value FROM meta WHERE name = $1", &[&row])
                .await
                .what(what)?;
            Ok(recorded.get(0))
        })
    }

    fn shared_key(&self, name: &str, candidate: &[u8; 32]) -> OpResult<Option<[u8; 32]>> {
        let (name, candidate) = (name.to_owned(), *candidate);
        self.wait(move |s| async move {
            crate::pg::shared_keys::shared_key(&s, &name, &candidate)
                .await
                .map(Some)
        })
    }
}
