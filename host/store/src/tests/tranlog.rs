//! Admission, matching, outcomes, durability, queries, purge, batching.

use std::sync::{Arc, Barrier};

use rusqlite::Connection;
use switchyard_engine::ports::{
    NewSaf, PortError, SafKind, SafQueue, Tranlog, TxKind, TxQuery, TxState, Upstream,
};

use super::{TEST_PAN, answered, open, request, wait};
use crate::SqliteStore;

#[test]
fn a_finished_row_is_durable_and_readable_by_a_fresh_connection() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = wait(store.admit(request("acme", "0200", "000001"))).unwrap();
    assert!(a.matched.is_none());
    wait(store.mark_sent(a.id, "xxx")).unwrap();
    wait(store.finish(a.id, answered("00", Some("xxx")))).unwrap();
    // Not through the store: another connection, as a crash-restart would.
    let conn = Connection::open(dir.path().join("data/switchyard.db")).unwrap();
    let (state, rc, endpoint, class, masked): (String, String, String, String, String) = conn
        .query_row(
            "SELECT state, rc, endpoint, class, pan_masked FROM tranlog WHERE id = ?1",
            [a.id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (state.as_str(), rc.as_str(), endpoint.as_str()),
        ("answered", "00", "xxx")
    );
    assert_eq!(class, "0200");
    assert_eq!(masked, "476173******0119");
    let token: Vec<u8> = conn
        .query_row("SELECT pan_token FROM tranlog WHERE id = ?1", [a.id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        token,
        switchyard_engine::ports::Keyring::pan_token(&*store, "acme", TEST_PAN).unwrap()
    );
    let record = wait(store.get(a.id)).unwrap().unwrap();
    assert_eq!(record.state, TxState::Answered);
    assert_eq!(record.upstream, Some(Upstream::Answered));
    assert_eq!(record.total_us, Some(1500));
    assert_eq!(record.external_us, Some(900));
    assert_eq!(record.approval.as_deref(), Some("AB1234"));
    let (req, resp) = wait(store.messages(a.id)).unwrap();
    assert_eq!(req.get(2), Some(TEST_PAN.as_bytes()));
    assert_eq!(resp.unwrap().get(39), Some(&b"00"[..]));
}

#[test]
fn a_repeat_gets_the_recorded_rc_node_and_response() {
    let store = SqliteStore::in_memory("node-1");
    let a = wait(store.admit(request("acme", "0200", "000002"))).unwrap();
    wait(store.finish(a.id, answered("05", None))).unwrap();
    let r = wait(store.admit(request("acme", "0201", "000002"))).unwrap();
    let m = r.matched.expect("the repeat finds its original");
    assert_eq!(m.id, a.id);
    assert_eq!(m.kind, TxKind::Original);
    assert_eq!(m.state, TxState::Answered);
    assert_eq!(m.rc.as_deref(), Some("05"));
    assert_eq!(m.node, "node-1");
    assert_eq!(m.response.unwrap().get(39), Some(&b"05"[..]));
    // Another tenant, another STAN: no match.
    assert!(
        wait(store.admit(request("other", "0201", "000002")))
            .unwrap()
            .matched
            .is_none()
    );
    assert!(
        wait(store.admit(request("acme", "0201", "000003")))
            .unwrap()
            .matched
            .is_none()
    );
}

#[test]
fn repeats_and_duplicates_are_never_candidates() {
    let store = SqliteStore::in_memory("node-1");
    // A repeat with nothing before it, then its original class arrives:
    let r = wait(store.admit(request("acme", "0201", "000004"))).unwrap();
    assert!(r.matched.is_none());
    let mut f = answered("00", None);
    f.kind = Some(TxKind::Repeat);
    wait(store.finish(r.id, f)).unwrap();
    assert!(
        wait(store.admit(request("acme", "0201", "000004")))
            .unwrap()
            .matched
            .is_none()
    );
    // A duplicate (recorded as such by finish) does not match a later one:
    // the later one matches the original.
    let a = wait(store.admit(request("acme", "0200", "000005"))).unwrap();
    wait(store.finish(a.id, answered("00", None))).unwrap();
    let d = wait(store.admit(request("acme", "0200", "000005"))).unwrap();
    assert_eq!(d.matched.as_ref().unwrap().id, a.id);
    let mut f = answered("94", None);
    f.kind = Some(TxKind::Duplicate);
    f.original = Some(a.id);
    wait(store.finish(d.id, f)).unwrap();
    let d2 = wait(store.admit(request("acme", "0200", "000005"))).unwrap();
    assert_eq!(d2.matched.unwrap().id, a.id);
    let linked = wait(store.linked(a.id)).unwrap();
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0].kind, TxKind::Duplicate);
}

#[test]
fn rows_older_than_24_hours_do_not_match() {
    let store = SqliteStore::in_memory("node-1");
    let mut old = request("acme", "0200", "000006");
    old.received_ms -= 25 * 3600 * 1000;
    let a = wait(store.admit(old)).unwrap();
    wait(store.finish(a.id, answered("00", None))).unwrap();
    assert!(
        wait(store.admit(request("acme", "0200", "000006")))
            .unwrap()
            .matched
            .is_none()
    );
}

#[test]
fn of_identical_originals_admitted_at_once_exactly_one_is_matched_by_the_other() {
    let store = SqliteStore::in_memory("node-1");
    for round in 0..20 {
        let stan = format!("{:06}", 100 + round);
        let barrier = Arc::new(Barrier::new(2));
        let results: Vec<_> = (0..2)
            .map(|_| {
                let (store, barrier, stan) = (store.clone(), barrier.clone(), stan.clone());
                std::thread::spawn(move || {
                    let r = request("acme", "0200", &stan);
                    barrier.wait();
                    wait(store.admit(r)).unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let matched: Vec<_> = results.iter().filter(|r| r.matched.is_some()).collect();
        assert_eq!(matched.len(), 1, "round {round}");
        let other = results.iter().find(|r| r.matched.is_none()).unwrap();
        assert_eq!(matched[0].matched.as_ref().unwrap().id, other.id);
    }
    // 64 at once: one unmatched, 63 matched.
    let barrier = Arc::new(Barrier::new(64));
    let results: Vec<_> = (0..64)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                let r = request("acme", "0200", "999999");
                barrier.wait();
                wait(store.admit(r)).unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| r.matched.is_none()).count(), 1);
    // Everything committed leaves the pending map.
    wait(store.retry_now(0)).unwrap();
    assert_eq!(store.pending.len(), 0);
}

#[test]
fn finish_never_undoes_a_reversal_and_queues_its_own_once() {
    let store = SqliteStore::in_memory("node-1");
    let a = wait(store.admit(request("acme", "0200", "000007"))).unwrap();
    wait(store.mark_sent(a.id, "xxx")).unwrap();
    let mut timeout = answered("91", Some("xxx"));
    timeout.state = TxState::ReversalQueued;
    timeout.upstream = Upstream::Timeout;
    timeout.response = None;
    let reversal = NewSaf {
        kind: SafKind::Reversal,
        endpoint: "xxx".into(),
        source: a.id,
        original: a.id,
        reason: "68".into(),
    };
    timeout.reversal = Some(reversal.clone());
    let saf = wait(store.finish(a.id, timeout.clone())).unwrap().unwrap();
    let entry = wait(store.entry(saf)).unwrap().unwrap();
    assert_eq!(
        (entry.source, entry.original, entry.reason.as_str()),
        (a.id, a.id, "68")
    );
    assert_eq!(entry.tenant, "acme");
    // The same outcome again (a retry after a crash) queues nothing new.
    assert_eq!(wait(store.finish(a.id, timeout)).unwrap(), Some(saf));
    assert_eq!(wait(store.entries_of(a.id)).unwrap().len(), 1);
    // A late "answered" finish keeps the reversal state.
    wait(store.finish(a.id, answered("00", Some("xxx")))).unwrap();
    assert_eq!(
        wait(store.get(a.id)).unwrap().unwrap().state,
        TxState::ReversalQueued
    );
    wait(store.late_reply(a.id, Some("00".into()), 1234)).unwrap();
    assert_eq!(
        wait(store.get(a.id)).unwrap().unwrap().late_reply,
        Some((Some("00".into()), 1234))
    );
}

#[test]
fn a_failing_job_fails_alone_in_its_batch() {
    let store = SqliteStore::in_memory("node-1");
    let ids: Vec<_> = (0..50)
        .map(|i| {
            wait(store.admit(request("acme", "0200", &format!("{i:06}"))))
                .unwrap()
                .id
        })
        .collect();
    // Queue many finishes and, among them, ones for rows that do not exist
    // (they fail in the writer) and one with an invalid participant name
    // (refused before it is queued; its row stays as it was).
    let mut futures = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let mut f = answered("00", None);
        if i == 25 {
            f.participants = vec!["bad,name".into()];
        }
        futures.push((i, store.finish(*id, f)));
        if i % 10 == 0 {
            futures.push((usize::MAX, store.finish(-1, answered("00", None))));
        }
    }
    for (i, f) in futures {
        let r = wait(f);
        match i {
            usize::MAX => assert!(matches!(r, Err(PortError::Invalid(_))), "{r:?}"),
            25 => assert!(r.is_err()),
            _ => assert!(r.is_ok(), "{i}: {r:?}"),
        }
    }
    assert_eq!(
        wait(store.get(ids[25])).unwrap().unwrap().state,
        TxState::Received
    );
    assert_eq!(
        wait(store.get(ids[24])).unwrap().unwrap().state,
        TxState::Answered
    );
    let stats = store.writer_stats();
    assert!(stats.failed_jobs >= 5, "{stats:?}");
    assert!(stats.commits < stats.jobs, "batched: {stats:?}");
}

#[test]
fn ids_increase_across_restarts_and_search_finds_rows() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = open(dir.path());
        let a = wait(store.admit(request("acme", "0200", "000010"))).unwrap();
        wait(store.finish(a.id, answered("00", None))).unwrap();
        store.close();
        a.id
    };
    let store = open(dir.path());
    let b = wait(store.admit(request("acme", "0200", "000011"))).unwrap();
    assert!(b.id > first);
    wait(store.finish(b.id, answered("00", None))).unwrap();
    let all = wait(store.search(TxQuery {
        tenant: Some("acme".into()),
        pan_last4: Some("0119".into()),
        ..TxQuery::default()
    }))
    .unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![b.id, first]
    );
    let one = wait(store.search(TxQuery {
        stan: Some("000010".into()),
        from_ms: Some(crate::now_ms() - 60_000),
        limit: 5,
        ..TxQuery::default()
    }))
    .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].id, first);
    assert_eq!(one[0].pan_masked.as_deref(), Some("476173******0119"));
    assert!(
        wait(store.search(TxQuery {
            terminal: Some("nope".into()),
            ..TxQuery::default()
        }))
        .unwrap()
        .is_empty()
    );
}

#[test]
fn network_rows_have_no_key_and_closed_stores_refuse() {
    let store = SqliteStore::in_memory("node-1");
    let mut r = request("acme", "0800", "000012");
    r.pan = None;
    let a = wait(store.admit(r)).unwrap();
    wait(store.finish(a.id, answered("00", None))).unwrap();
    let record = wait(store.get(a.id)).unwrap().unwrap();
    assert_eq!(record.kind, TxKind::Network);
    assert_eq!(record.pan_masked, None);
    store.close();
    assert!(matches!(
        wait(store.admit(request("acme", "0200", "1"))),
        Err(PortError::Closed)
    ));
    assert!(matches!(
        wait(store.finish(a.id, answered("00", None))),
        Err(PortError::Closed)
    ));
    assert!(matches!(wait(store.get(a.id)), Err(PortError::Closed)));
}

#[test]
fn purge_keeps_rows_a_pending_entry_needs() {
    let store = SqliteStore::in_memory("node-1");
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut r = request("acme", "0200", &format!("{:06}", 500 + i));
        r.received_ms -= 40 * 86_400_000;
        ids.push(wait(store.admit(r)).unwrap().id);
    }
    let mut f = answered("91", Some("xxx"));
    f.state = TxState::ReversalQueued;
    f.reversal = Some(NewSaf {
        kind: SafKind::Reversal,
        endpoint: "xxx".into(),
        source: ids[0],
        original: ids[0],
        reason: "68".into(),
    });
    wait(store.finish(ids[0], f)).unwrap();
    let recent = wait(store.admit(request("acme", "0200", "000600")))
        .unwrap()
        .id;
    wait(store.mark_sent(recent, "xxx")).unwrap();
    // Ids are time-ordered by admission: a cutoff of now purges old rows.
    let cutoff = crate::now_ms() - 86_400_000;
    assert_eq!(
        wait(store.purge(cutoff, 2)).unwrap(),
        0,
        "received_ms is recent for these ids"
    );
    // Rows whose received_ms is old but whose ids are recent are kept (ids
    // bound the scan): purge by a cutoff after their admission instead.
    let n = wait(store.purge(crate::now_ms() + 1, 3)).unwrap();
    assert_eq!(n, 3);
    let n = wait(store.purge(crate::now_ms() + 1, 100)).unwrap();
    assert_eq!(n, 2, "the pending reversal's row stays");
    assert!(wait(store.get(ids[0])).unwrap().is_some());
    assert!(wait(store.get(ids[1])).unwrap().is_none());
}

#[test]
fn the_hot_and_recovery_queries_use_their_indexes() {
    let store = SqliteStore::in_memory("node-1");
    let plan = |sql: &str| -> String {
        store
            .read(|c| {
                let mut s = c
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .map_err(crate::StoreError::sqlite("plan"))?;
                let rows: Vec<String> = s
                    .query_map([], |r| r.get::<_, String>(3))
                    .and_then(|r| r.collect())
                    .map_err(crate::StoreError::sqlite("plan"))?;
                Ok(rows.join("; "))
            })
            .unwrap()
    };
    for (sql, index) in [
        (
            "SELECT id FROM tranlog WHERE stan IS '1' AND id >= 5 AND tenant = 'a' AND match_key = 'k'
               AND kind IN ('original', 'reversal', 'completion') AND received_ms >= 0
             ORDER BY id DESC LIMIT 1",
            "tranlog_stan (stan=? AND rowid>?)",
        ),
        (
            "SELECT id FROM tranlog WHERE kind = 'original' AND stan = '1' AND tenant = 'a'
               AND class = '0200' AND transmitted = 'x' ORDER BY id DESC LIMIT 1",
            "tranlog_stan",
        ),
        (
            "SELECT id FROM tranlog WHERE node = 'n' AND state IN ('received', 'sent') AND state = 'sent'",
            "tranlog_in_flight",
        ),
        ("SELECT id FROM tranlog WHERE key_id = 1", "tranlog_key"),
        (
            "SELECT id FROM tranlog WHERE original_id = 1 ORDER BY id",
            "tranlog_original",
        ),
        (
            "SELECT id FROM saf WHERE endpoint = 'x' AND state = 'pending' AND next_ms <= 5 ORDER BY id LIMIT 3",
            "saf_due",
        ),
        ("SELECT id FROM saf WHERE original = 1", "saf_original"),
    ] {
        let p = plan(sql);
        assert!(p.contains(index), "{sql}: {p}");
    }
}

#[test]
fn a_row_answered_before_the_writer_gets_to_it_is_written_once_in_its_final_state() {
    // A file store: its reads do not go through the writer held below.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Many transactions admitted and finished while the writer is held:
    // every finish finds its row still staged (however the machine
    // schedules the writer thread).
    // The tenant's keys are made (through the writer) by a first admission.
    let first = wait(store.admit(request("acme", "0200", "000499"))).unwrap();
    wait(store.finish(first.id, answered("00", None))).unwrap();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let held = store
        .writer
        .submit(
            false,
            move |_| {
                let _ = gate.recv();
                Ok(())
            },
            None,
        )
        .unwrap();
    let admitted: Vec<_> = (0..200)
        .map(|i| {
            wait(store.admit(request("acme", "0200", &format!("{:06}", 500 + i))))
                .unwrap()
                .id
        })
        .collect();
    let before = store.writer_stats();
    let finishes: Vec<_> = admitted
        .iter()
        .map(|id| store.finish(*id, answered("00", None)))
        .collect();
    release.send(()).unwrap();
    futures::executor::block_on(held).unwrap().unwrap();
    for f in finishes {
        wait(f).unwrap();
    }
    for id in &admitted {
        let row = wait(store.get(*id)).unwrap().unwrap();
        assert_eq!(row.state, TxState::Answered);
        assert_eq!(row.rc.as_deref(), Some("00"));
        let (_, response) = wait(store.messages(*id)).unwrap();
        assert!(response.is_some(), "the response was written with the row");
    }
    let after = store.writer_stats();
    assert!(
        after.rows - before.rows <= 200,
        "fewer row writes than an INSERT and an UPDATE each: {before:?} → {after:?}"
    );
    assert_eq!(store.staging.len(), 0, "nothing stays staged");
}

#[test]
fn a_send_and_an_outcome_after_the_insert_update_the_row() {
    let store = SqliteStore::in_memory("node-1");
    let a = wait(store.admit(request("acme", "0200", "000900"))).unwrap();
    // The send waits for the INSERT (with the send in it)...
    wait(store.mark_sent(a.id, "xxx")).unwrap();
    assert_eq!(wait(store.get(a.id)).unwrap().unwrap().state, TxState::Sent);
    // ... so the outcome is an UPDATE of the written row.
    wait(store.finish(a.id, answered("05", None))).unwrap();
    let row = wait(store.get(a.id)).unwrap().unwrap();
    assert_eq!(
        (row.state, row.rc.as_deref()),
        (TxState::Answered, Some("05"))
    );
    assert_eq!(row.endpoint.as_deref(), Some("xxx"));
    assert_eq!(store.staging.len(), 0);
}

#[test]
fn the_trace_is_recorded_with_the_outcome_whether_or_not_the_row_was_flushed() {
    let store = SqliteStore::in_memory("node-1");
    let trace = "parse-request=12 validate=4 local-auth=7 end=100";
    // Admitted then finished (the outcome may join the row's INSERT).
    let a = wait(store.admit(request("acme", "0200", "000031"))).unwrap();
    wait(store.finish(
        a.id,
        switchyard_engine::ports::Finished {
            trace: Some(trace.into()),
            ..answered("00", None)
        },
    ))
    .unwrap();
    let record = wait(store.get(a.id)).unwrap().unwrap();
    assert_eq!(record.trace.as_deref(), Some(trace));
    // A row finished without a trace keeps none.
    let b = wait(store.admit(request("acme", "0200", "000032"))).unwrap();
    wait(store.finish(b.id, answered("00", None))).unwrap();
    assert_eq!(wait(store.get(b.id)).unwrap().unwrap().trace, None);
}
