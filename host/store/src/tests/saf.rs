//! The store-and-forward queue: leases, attempts, backoff fields, queries.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use switchyard_engine::ports::{
    Attempt, NewSaf, SafFilter, SafKind, SafQueue, SafState, Tranlog, TxState,
};

use super::{answered, open, request, wait};
use crate::SqliteStore;

/// Queues a timeout reversal for a new switched-out row; returns (row, entry).
fn queued(store: &SqliteStore, stan: &str, endpoint: &str) -> (i64, i64) {
    let a = wait(store.admit(request("acme", "0200", stan))).unwrap().id;
    wait(store.mark_sent(a, endpoint)).unwrap();
    let mut f = answered("91", Some(endpoint));
    f.state = TxState::ReversalQueued;
    f.reversal = Some(NewSaf {
        kind: SafKind::Reversal,
        endpoint: endpoint.into(),
        source: a,
        original: a,
        reason: "68".into(),
    });
    (a, wait(store.finish(a, f)).unwrap().unwrap())
}

#[test]
fn two_workers_never_hold_one_entry() {
    let store = SqliteStore::in_memory("node-1");
    let ids: HashSet<i64> = (0..40)
        .map(|i| queued(&store, &format!("{:06}", 300 + i), "xxx").1)
        .collect();
    let now = crate::now_ms();
    let barrier = Arc::new(Barrier::new(8));
    let claims: Vec<Vec<i64>> = (0..8)
        .map(|w| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut mine = Vec::new();
                for _ in 0..10 {
                    let got =
                        wait(store.claim("xxx", &format!("w{w}"), now, Duration::from_secs(60), 3))
                            .unwrap();
                    mine.extend(got.iter().map(|e| e.id));
                }
                mine
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    // No entry is ever held twice, not even by the same worker.
    let all: Vec<i64> = claims.iter().flatten().copied().collect();
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "an entry was claimed twice");
    assert_eq!(unique, ids);
    // Leased by others until expiry; then claimable again, counting attempts.
    assert!(
        wait(store.claim("xxx", "w9", now + 59_000, Duration::from_secs(60), 100))
            .unwrap()
            .is_empty()
    );
    let again = wait(store.claim("xxx", "w9", now + 60_000, Duration::from_secs(60), 100)).unwrap();
    assert_eq!(again.len(), 40);
    assert!(
        again
            .iter()
            .all(|e| e.attempts == 2 && e.lease == Some(("w9".into(), now + 120_000)))
    );
    assert!(again.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
}

#[test]
fn attempts_record_backoff_escalation_and_acknowledgement_durably() {
    let dir = tempfile::tempdir().unwrap();
    let (row, id) = {
        let store = open(dir.path());
        let (row, id) = queued(&store, "000400", "xxx");
        let now = crate::now_ms();
        let c = wait(store.claim("xxx", "node-1", now, Duration::from_secs(30), 10)).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_attempt_ms, Some(now));
        store.close();
        (row, id)
    };
    // The claim (and its attempt count) survived the restart.
    let store = open(dir.path());
    let e = wait(store.entry(id)).unwrap().unwrap();
    assert_eq!(e.attempts, 1);
    wait(store.recover()).unwrap();
    let now = crate::now_ms();
    wait(store.attempted(
        id,
        Attempt::Failed {
            result: "timeout".into(),
            next_ms: now + 1000,
            escalate: true,
        },
    ))
    .unwrap();
    let e = wait(store.entry(id)).unwrap().unwrap();
    assert_eq!(
        (
            e.last_result.as_deref(),
            e.next_ms,
            e.escalated,
            e.lease.clone()
        ),
        (Some("timeout"), now + 1000, true, None)
    );
    assert_eq!(wait(store.next_due("xxx")).unwrap(), Some(now + 1000));
    assert!(
        wait(store.claim("xxx", "node-1", now, Duration::from_secs(30), 10))
            .unwrap()
            .is_empty()
    );
    // Escalation is never cleared.
    wait(store.attempted(
        id,
        Attempt::Failed {
            result: "96".into(),
            next_ms: now + 2000,
            escalate: false,
        },
    ))
    .unwrap();
    assert!(wait(store.entry(id)).unwrap().unwrap().escalated);
    let stats = wait(store.stats()).unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (
            stats[0].0.as_str(),
            stats[0].1.pending,
            stats[0].1.escalated
        ),
        ("xxx", 1, 1)
    );
    assert!(wait(store.retry_now(id)).unwrap());
    let c = wait(store.claim(
        "xxx",
        "node-1",
        crate::now_ms(),
        Duration::from_secs(30),
        10,
    ))
    .unwrap();
    assert_eq!(c[0].attempts, 2);
    wait(store.attempted(id, Attempt::Acked("00".into()))).unwrap();
    let e = wait(store.entry(id)).unwrap().unwrap();
    assert_eq!(e.state, SafState::Done);
    assert!(e.acked_ms.is_some());
    assert_eq!(
        wait(store.get(row)).unwrap().unwrap().state,
        TxState::Reversed
    );
    // Done: never claimed, retried or reopened again.
    assert!(!wait(store.retry_now(id)).unwrap());
    wait(store.attempted(
        id,
        Attempt::Failed {
            result: "x".into(),
            next_ms: 0,
            escalate: false,
        },
    ))
    .unwrap();
    assert_eq!(
        wait(store.entry(id)).unwrap().unwrap().state,
        SafState::Done
    );
    assert_eq!(wait(store.next_due("xxx")).unwrap(), None);
    assert!(wait(store.stats()).unwrap().is_empty());
    assert!(wait(store.attempted(9999, Attempt::Acked("00".into()))).is_err());
}

#[test]
fn lists_filter_by_endpoint_and_state() {
    let store = SqliteStore::in_memory("node-1");
    let (_, a) = queued(&store, "000500", "xxx");
    let (_, b) = queued(&store, "000501", "yyy");
    let (_, c) = queued(&store, "000502", "xxx");
    let now = crate::now_ms();
    let got = wait(store.claim("xxx", "n", now, Duration::from_secs(1), 1)).unwrap();
    assert_eq!(got[0].id, a);
    wait(store.attempted(a, Attempt::Acked("00".into()))).unwrap();
    let ids = |f: SafFilter| {
        wait(store.list(f))
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(SafFilter::default()), vec![b, c]);
    assert_eq!(
        ids(SafFilter {
            include_done: true,
            ..SafFilter::default()
        }),
        vec![a, b, c]
    );
    assert_eq!(
        ids(SafFilter {
            endpoint: Some("xxx".into()),
            include_done: true,
            limit: 1
        }),
        vec![a]
    );
    assert_eq!(
        ids(SafFilter {
            endpoint: Some("yyy".into()),
            ..SafFilter::default()
        }),
        vec![b]
    );
}
