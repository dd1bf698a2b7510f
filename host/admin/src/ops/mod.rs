//! Operator tools for the money-safe life cycle: `switchyard tranlog
//! search|show`, `switchyard saf list|retry`, `switchyard keys
//! status|rotate`, and the internal hosts' data ([`hosts`]: `switchyard
//! loyalty credit|balance`, `switchyard coupons issue|list`). [`Ops`]
//! answers them from the store's ports; a running switch serves it through
//! its admin API, and the CLI (`switchyard::operate::cli`) uses it directly
//! on the data directory of a stopped switch.

pub mod hosts;
pub mod views;

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use switchyard_engine::ports::{Keyring, KvStore, SafFilter, SafQueue, Tranlog, TxId, TxQuery};

use views::{KeysView, QueueView, RetryResult, RotationView, SafList, SafView, TxLife, TxView};

/// Most rows one search or listing returns.
pub const MAX_ROWS: usize = 10_000;

use crate::accounts::now_ms;

/// The operator tools over the store's ports.
#[derive(Clone)]
pub struct Ops {
    /// The tranlog.
    pub tranlog: Arc<dyn Tranlog>,
    /// The store-and-forward queue.
    pub saf: Arc<dyn SafQueue>,
    /// The keyring.
    pub keyring: Arc<dyn Keyring>,
    /// The plugins' key/value data (the loyalty and coupon hosts' state).
    pub kv: Arc<dyn KvStore>,
    /// Wakes the running switch's forwarders (`saf retry` is then sent at
    /// once); `None` on a stopped switch's data directory.
    pub wake: Option<switchyard_engine::lifecycle::SafWaker>,
}

impl Ops {
    /// The tools over one SQLite store (no switch to wake).
    pub fn of_store(store: &Arc<switchyard_store::SqliteStore>) -> Ops {
        Ops {
            tranlog: store.clone(),
            saf: store.clone(),
            keyring: store.clone(),
            kv: store.clone(),
            wake: None,
        }
    }

    /// `tranlog search`.
    pub async fn search(&self, mut query: TxQuery) -> anyhow::Result<Vec<TxView>> {
        query.limit = query.limit.clamp(1, MAX_ROWS);
        let rows = self.tranlog.search(query).await?;
        Ok(rows.iter().map(TxView::from).collect())
    }

    /// `tranlog show ID`.
    pub async fn show(&self, id: TxId) -> anyhow::Result<Option<TxLife>> {
        let Some(record) = self.tranlog.get(id).await? else {
            return Ok(None);
        };
        let (request, response) = self
            .tranlog
            .messages(id)
            .await
            .with_context(|| format!("decrypting transaction {id}"))?;
        let linked = self.tranlog.linked(id).await?;
        let saf = self.saf.entries_of(id).await?;
        let now = now_ms();
        Ok(Some(TxLife {
            transaction: TxView::from(&record),
            request_mti: request.mti_str().to_owned(),
            request: views::fields(&request),
            response: response.as_ref().map(views::fields),
            linked: linked.iter().map(TxView::from).collect(),
            saf: saf.iter().map(|e| SafView::new(e, now)).collect(),
        }))
    }

    /// `saf list`.
    pub async fn saf_list(&self, mut filter: SafFilter) -> anyhow::Result<SafList> {
        filter.limit = filter.limit.clamp(1, MAX_ROWS);
        let now = now_ms();
        let queues = self
            .saf
            .stats()
            .await?
            .iter()
            .filter(|(e, _)| filter.endpoint.as_ref().is_none_or(|f| f == e))
            .map(|(e, s)| QueueView::new(e, s, now))
            .collect();
        let entries = self
            .saf
            .list(filter)
            .await?
            .iter()
            .map(|e| SafView::new(e, now))
            .collect();
        Ok(SafList { queues, entries })
    }

    /// `saf retry ID`.
    pub async fn saf_retry(&self, id: i64) -> anyhow::Result<RetryResult> {
        let retried = self.saf.retry_now(id).await?;
        if retried && let Some(wake) = &self.wake {
            wake("");
        }
        Ok(RetryResult { id, retried })
    }

    /// `keys status`.
    pub async fn keys(&self) -> anyhow::Result<KeysView> {
        Ok(KeysView::new(&self.keyring.status().await?, now_ms()))
    }

    /// `keys rotate [--tenant T] [--kek]`.
    pub async fn rotate(&self, tenant: Option<String>, kek: bool) -> anyhow::Result<RotationView> {
        if kek {
            let new = self.keyring.rotate_kek().await?;
            tracing::info!(kek = %new, "key-encryption key rotated; every data key re-wrapped");
            return Ok(RotationView {
                new_data_keys: Vec::new(),
                new_kek: Some(new),
            });
        }
        let ids = self
            .keyring
            .rotate(tenant.clone())
            .await
            .map_err(|e| anyhow!("rotating data keys: {e}"))?;
        tracing::info!(tenant = tenant.as_deref().unwrap_or("(every tenant)"), keys = ?ids,
            "data keys rotated; older rows are re-encrypted in the background");
        Ok(RotationView {
            new_data_keys: ids,
            new_kek: None,
        })
    }
}
