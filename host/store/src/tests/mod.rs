//! Tests of the store against the design's rules, with helpers to build
//! requests and outcomes.

mod counters;
mod files;
mod followup;
mod keys;
mod kv;
mod migration;
mod saf;
mod tranlog;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use switchyard_engine::iso8583::{Message, Mti};
use switchyard_engine::ports::{
    Columns, Finished, MatchKey, PortFuture, Received, TxKind, TxState, Upstream,
};

use crate::{SqliteStore, StoreOptions};

pub(crate) const TEST_PAN: &str = "4761739001010119";

/// Waits for a port future.
pub(crate) fn wait<T>(f: PortFuture<T>) -> Result<T, switchyard_engine::ports::PortError> {
    futures::executor::block_on(f)
}

pub(crate) fn options(dir: &Path) -> StoreOptions {
    StoreOptions {
        db_path: dir.join("data").join("switchyard.db"),
        kek_path: dir.join("data").join("keys").join("kek.key"),
        node: "node-1".into(),
        duplicate_filter_mib: 4,
    }
}

pub(crate) fn open(dir: &Path) -> Arc<SqliteStore> {
    SqliteStore::open(options(dir)).unwrap()
}

/// A request of `mti` with STAN `stan` on terminal T1, with a PAN.
pub(crate) fn request(tenant: &str, mti: &str, stan: &str) -> Received {
    let kind = match &mti[1..3] {
        "10" | "20" if mti.ends_with('1') => TxKind::Repeat,
        "10" | "20" => TxKind::Original,
        "22" => TxKind::Completion,
        "40" | "42" => TxKind::Reversal,
        "80" => TxKind::Network,
        _ => TxKind::Other,
    };
    let class = crate::codec::class(mti);
    let mut m = Message::new(Mti::new(mti).unwrap());
    m.set(2, TEST_PAN.as_bytes().to_vec());
    m.set(3, b"000000".to_vec());
    m.set(4, b"000000001000".to_vec());
    m.set(7, b"0101120000".to_vec());
    m.set(11, stan.as_bytes().to_vec());
    m.set(32, b"00123".to_vec());
    m.set(37, b"RRN000000001".to_vec());
    m.set(41, b"T1".to_vec());
    Received {
        tenant: tenant.into(),
        listener: "l5002".into(),
        kind,
        mti: mti.into(),
        columns: Columns {
            processing_code: Some("000000".into()),
            amount: Some("000000001000".into()),
            currency: Some("978".into()),
            stan: Some(stan.into()),
            transmitted: Some("0101120000".into()),
            rrn: Some("RRN000000001".into()),
            terminal: Some("T1".into()),
            merchant: Some("M1".into()),
            acquirer: Some("00123".into()),
        },
        pan: Some(TEST_PAN.into()),
        key: (!matches!(kind, TxKind::Network | TxKind::Other)).then(|| {
            MatchKey(format!(
                "{tenant}|{class}|00123|T1|{stan}|0101120000|RRN000000001"
            ))
        }),
        request: m,
        received_ms: crate::now_ms(),
    }
}

/// An answered outcome with `rc`.
pub(crate) fn answered(rc: &str, endpoint: Option<&str>) -> Finished {
    let mut response = Message::new(Mti::new("0210").unwrap());
    response.set(39, rc.as_bytes().to_vec());
    response.set(38, b"AB1234".to_vec());
    Finished {
        state: TxState::Answered,
        kind: None,
        rc: Some(rc.into()),
        approval: Some("AB1234".into()),
        response: Some(response),
        endpoint: endpoint.map(str::to_string),
        upstream: if endpoint.is_some() {
            Upstream::Answered
        } else {
            Upstream::Local
        },
        total: Duration::from_micros(1500),
        external: endpoint.map(|_| Duration::from_micros(900)),
        participants: Vec::new(),
        original: None,
        reversal: None,
        trace: None,
    }
}
