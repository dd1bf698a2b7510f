//! Helpers shared by the store's integration tests: a fresh database on
//! the PostgreSQL test server, nodes opened on it with one shared
//! key-encryption key, a plain SQL session of its own, and the clock.

#![allow(dead_code)] // each test binary uses its own share of these

use std::sync::Arc;
use std::time::Duration;

use switchyard_engine::iso8583::{Message, Mti};
use switchyard_engine::ports::{Columns, MatchKey, PortFuture, Received, TxKind};
use switchyard_store::{PgOptions, PgStore, StoreError};

/// A payment network's published test PAN.
pub const TEST_PAN: &str = "4761739001010119";

/// Waits for a port call; a failure fails the test.
pub fn wait<T>(f: PortFuture<T>) -> T {
    futures::executor::block_on(f).expect("a port call")
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A request of `tenant` and `mti` with STAN `stan` on terminal
/// `terminal`, its kind and match key as the engine would give them.
pub fn request(tenant: &str, mti: &str, stan: &str, terminal: &str) -> Received {
    let kind = match &mti[1..3] {
        "10" | "20" if mti.ends_with('1') => TxKind::Repeat,
        "10" | "20" => TxKind::Original,
        "22" => TxKind::Completion,
        "40" | "42" => TxKind::Reversal,
        _ => TxKind::Other,
    };
    let class = format!("{}0", &mti[..3]);
    let mut m = Message::new(Mti::new(mti).unwrap());
    m.set(2, TEST_PAN.as_bytes().to_vec());
    m.set(3, b"000000".to_vec());
    m.set(4, b"000000001000".to_vec());
    m.set(7, b"0101120000".to_vec());
    m.set(11, stan.as_bytes().to_vec());
    m.set(32, b"00123".to_vec());
    m.set(35, b"4761739001010119=2512".to_vec());
    m.set(37, b"RRN000000001".to_vec());
    m.set(41, terminal.as_bytes().to_vec());
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
            terminal: Some(terminal.into()),
            merchant: Some("M1".into()),
            acquirer: Some("00123".into()),
        },
        pan: Some(TEST_PAN.into()),
        key: Some(MatchKey(format!(
            "{tenant}|{class}|00123|{terminal}|{stan}|0101120000|RRN000000001"
        ))),
        request: m,
        received_ms: now_ms(),
    }
}

/// A plain session of its own on the test server (what another client or
/// an operator's psql would do), on a runtime that keeps its connection
/// running between statements.
pub struct Session {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Session {
    pub fn new(url: &str) -> Session {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connecting to the test server");
            tokio::spawn(conn);
            client
        });
        Session { rt, client }
    }

    /// Runs `statements`; the rows they return, every column as text.
    pub fn rows(&self, statements: &str) -> Vec<Vec<String>> {
        self.rt
            .block_on(self.client.simple_query(statements))
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or_default().to_owned())
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    }

    /// Runs `statements`; the first column of each row they return.
    pub fn sql(&self, statements: &str) -> Vec<String> {
        self.rows(statements)
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect()
    }
}

/// A fresh database on the test server, named for the test binary and
/// `name`, or `None` (skipped) where no server is set.
pub fn fresh_database(name: &str) -> Option<String> {
    let base = match std::env::var("SWITCHYARD_TEST_PG") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var("SWITCHYARD_PG_TESTS").as_deref() != Ok("required"),
                "SWITCHYARD_PG_TESTS=required but SWITCHYARD_TEST_PG is not set"
            );
            eprintln!("skipped: SWITCHYARD_TEST_PG not set");
            return None;
        }
    };
    let db = format!(
        "sy_{}_{name}_{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    );
    let session = Session::new(&base);
    session.sql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    session.sql(&format!("CREATE DATABASE {db}"));
    let (head, _) = base.rsplit_once('/').expect("a URL with a database");
    Some(format!("{head}/{db}"))
}

/// Nodes on one fresh database, sharing one key-encryption key file.
pub struct Nodes {
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Nodes {
    pub fn new(name: &str) -> Option<Nodes> {
        Some(Nodes {
            url: fresh_database(name)?,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    /// Node `node` with a heartbeat lease of `lease_ms`.
    pub fn open_leased(&self, node: &str, lease_ms: u64) -> Result<Arc<PgStore>, StoreError> {
        PgStore::open(PgOptions {
            url: self.url.clone(),
            // One KEK file: every node shares it.
            kek_path: self.dir.path().join("keys").join("kek.key"),
            node: node.into(),
            pool_size: 8,
            node_lease: Duration::from_millis(lease_ms),
            register: true,
            ca_file: None,
        })
    }

    /// Node `node` with a minute's lease.
    pub fn open(&self, node: &str) -> Arc<PgStore> {
        self.open_leased(node, 60_000)
            .expect("opening a PostgreSQL store")
    }

    pub fn session(&self) -> Session {
        Session::new(&self.url)
    }
}
