//! Acquirer reversals and completions: matching, queueing once, idempotency;
//! recovery at start-up.

use std::time::Duration;

use switchyard_engine::ports::{
    Attempt, FollowUp, LOCAL_ENDPOINT, NewSaf, OriginalRef, SafKind, SafQueue, Tranlog, TxId,
    TxKind, TxState, Upstream,
};

use super::{answered, open, request, wait};
use crate::SqliteStore;

fn de90(stan: &str, acquirer: &str) -> OriginalRef {
    OriginalRef::De90 {
        mti: "0200".into(),
        stan: stan.into(),
        transmitted: "0101120000".into(),
        acquirer: acquirer.into(),
    }
}

fn reversal(store: &SqliteStore, original: OriginalRef) -> (TxId, FollowUp) {
    let id = wait(store.admit(request("acme", "0420", "777777")))
        .unwrap()
        .id;
    (
        id,
        FollowUp {
            kind: TxKind::Reversal,
            tenant: "acme".into(),
            original,
            reason: "17".into(),
        },
    )
}

fn switched_out(store: &SqliteStore, stan: &str) -> TxId {
    let a = wait(store.admit(request("acme", "0200", stan))).unwrap();
    wait(store.mark_sent(a.id, "xxx")).unwrap();
    wait(store.finish(a.id, answered("00", Some("xxx")))).unwrap();
    a.id
}

#[test]
fn a_reversal_by_de90_queues_one_reversal_to_the_endpoint() {
    let store = SqliteStore::in_memory("node-1");
    let original = switched_out(&store, "000100");
    // DE90 zero-fills DE32 to 11 digits; the row has "00123".
    let (id, f) = reversal(&store, de90("000100", "00000000123"));
    let out = wait(store.follow_up(id, f.clone())).unwrap();
    assert_eq!(out.original, Some(original));
    assert!(out.first);
    assert_eq!(out.queued.len(), 1);
    let e = wait(store.entry(out.queued[0])).unwrap().unwrap();
    assert_eq!(e.kind, SafKind::Reversal);
    assert_eq!(
        (e.endpoint.as_str(), e.source, e.original),
        ("xxx", original, original)
    );
    assert_eq!(e.reason, "17");
    let o = wait(store.get(original)).unwrap().unwrap();
    assert_eq!(o.state, TxState::ReversalQueued);
    assert_eq!(o.reversal, Some(id));
    assert_eq!(
        wait(store.get(id)).unwrap().unwrap().original,
        Some(original)
    );
    // The same follow-up again (after a crash): nothing more.
    let again = wait(store.follow_up(id, f)).unwrap();
    assert_eq!(again.original, Some(original));
    assert!(!again.first && again.queued.is_empty());
    // A second reversal of the same original: 00 again, nothing sent.
    let (id2, f2) = reversal(&store, de90("000100", "123"));
    let second = wait(store.follow_up(id2, f2)).unwrap();
    assert_eq!(second.original, Some(original));
    assert!(!second.first && second.queued.is_empty());
    assert_eq!(wait(store.entries_of(original)).unwrap().len(), 1);
    // The acknowledgement marks the original reversed.
    let claimed = wait(store.claim(
        "xxx",
        "node-1",
        crate::now_ms(),
        Duration::from_secs(30),
        10,
    ))
    .unwrap();
    wait(store.attempted(claimed[0].id, Attempt::Acked("00".into()))).unwrap();
    assert_eq!(
        wait(store.get(original)).unwrap().unwrap().state,
        TxState::Reversed
    );
}

#[test]
fn a_reversal_without_de90_matches_stan_terminal_rrn() {
    let store = SqliteStore::in_memory("node-1");
    let original = switched_out(&store, "000101");
    let (id, f) = reversal(
        &store,
        OriginalRef::StanTerminalRrn {
            stan: "000101".into(),
            terminal: "T1".into(),
            rrn: String::new(),
        },
    );
    assert_eq!(
        wait(store.follow_up(id, f)).unwrap().original,
        Some(original)
    );
    let (id, f) = reversal(
        &store,
        OriginalRef::StanTerminalRrn {
            stan: "000101".into(),
            terminal: "T1".into(),
            rrn: "OTHER".into(),
        },
    );
    assert_eq!(wait(store.follow_up(id, f)).unwrap().original, None);
}

#[test]
fn not_found_is_none_and_wrong_class_or_acquirer_does_not_match() {
    let store = SqliteStore::in_memory("node-1");
    switched_out(&store, "000102");
    for reference in [
        de90("000103", "123"),
        de90("000102", "124"),
        OriginalRef::De90 {
            mti: "0100".into(),
            stan: "000102".into(),
            transmitted: "0101120000".into(),
            acquirer: "123".into(),
        },
    ] {
        let (id, f) = reversal(&store, reference);
        let out = wait(store.follow_up(id, f)).unwrap();
        assert_eq!(out.original, None);
        assert!(!out.first && out.queued.is_empty());
    }
}

#[test]
fn a_local_approval_gets_a_local_reversal_and_a_decline_is_just_reversed() {
    let store = SqliteStore::in_memory("node-1");
    let a = wait(store.admit(request("acme", "0200", "000104")))
        .unwrap()
        .id;
    let mut f = answered("00", None);
    f.participants = vec!["velocity".into(), "loyalty".into()];
    wait(store.finish(a, f)).unwrap();
    let (id, fu) = reversal(&store, de90("000104", "123"));
    let out = wait(store.follow_up(id, fu)).unwrap();
    assert!(out.first);
    assert_eq!(out.queued.len(), 1);
    let e = wait(store.entry(out.queued[0])).unwrap().unwrap();
    assert_eq!(
        (e.kind, e.endpoint.as_str()),
        (SafKind::LocalReversal, LOCAL_ENDPOINT)
    );
    let record = wait(store.get(a)).unwrap().unwrap();
    assert_eq!(record.state, TxState::ReversalQueued);
    assert_eq!(record.participants, vec!["velocity", "loyalty"]);

    let d = wait(store.admit(request("acme", "0200", "000105")))
        .unwrap()
        .id;
    wait(store.finish(d, answered("51", None))).unwrap();
    let (id, fu) = reversal(&store, de90("000105", "123"));
    let out = wait(store.follow_up(id, fu)).unwrap();
    assert!(out.first && out.queued.is_empty());
    assert_eq!(
        wait(store.get(d)).unwrap().unwrap().state,
        TxState::Reversed
    );
}

#[test]
fn a_reversal_after_the_switchs_own_timeout_reversal_sends_nothing_more() {
    let store = SqliteStore::in_memory("node-1");
    let a = wait(store.admit(request("acme", "0200", "000106")))
        .unwrap()
        .id;
    wait(store.mark_sent(a, "xxx")).unwrap();
    let mut f = answered("91", Some("xxx"));
    f.state = TxState::ReversalQueued;
    f.upstream = Upstream::Timeout;
    f.reversal = Some(NewSaf {
        kind: SafKind::Reversal,
        endpoint: "xxx".into(),
        source: a,
        original: a,
        reason: "68".into(),
    });
    wait(store.finish(a, f)).unwrap();
    let (id, fu) = reversal(&store, de90("000106", "123"));
    let out = wait(store.follow_up(id, fu)).unwrap();
    assert_eq!(out.original, Some(a));
    assert!(!out.first && out.queued.is_empty());
    assert_eq!(wait(store.entries_of(a)).unwrap().len(), 1);
}

#[test]
fn a_not_sent_original_is_reversed_without_a_message() {
    let store = SqliteStore::in_memory("node-1");
    let a = wait(store.admit(request("acme", "0200", "000107")))
        .unwrap()
        .id;
    let mut f = answered("91", Some("xxx"));
    f.upstream = Upstream::NotSent;
    wait(store.finish(a, f)).unwrap();
    let (id, fu) = reversal(&store, de90("000107", "123"));
    let out = wait(store.follow_up(id, fu)).unwrap();
    assert!(out.first && out.queued.is_empty());
    assert_eq!(
        wait(store.get(a)).unwrap().unwrap().state,
        TxState::Reversed
    );
}

#[test]
fn a_completion_queues_one_advice_from_the_0220_row() {
    let store = SqliteStore::in_memory("node-1");
    let original = switched_out(&store, "000108");
    let completion = |store: &SqliteStore| {
        let id = wait(store.admit(request("acme", "0220", "888888")))
            .unwrap()
            .id;
        (
            id,
            FollowUp {
                kind: TxKind::Completion,
                tenant: "acme".into(),
                original: de90("000108", "123"),
                reason: "00".into(),
            },
        )
    };
    let (id, f) = completion(&store);
    let out = wait(store.follow_up(id, f.clone())).unwrap();
    assert!(out.first);
    let e = wait(store.entry(out.queued[0])).unwrap().unwrap();
    assert_eq!(
        (e.kind, e.source, e.original),
        (SafKind::Advice, id, original)
    );
    let again = wait(store.follow_up(id, f)).unwrap();
    assert!(!again.first && again.queued.is_empty());
    let (id2, f2) = completion(&store);
    assert!(!wait(store.follow_up(id2, f2)).unwrap().first);
    let o = wait(store.get(original)).unwrap().unwrap();
    assert_eq!(o.completion, Some(id));
    assert_eq!(o.state, TxState::Answered);
    // A local original: matched, nothing queued.
    let local = wait(store.admit(request("acme", "0200", "000109")))
        .unwrap()
        .id;
    wait(store.finish(local, answered("00", None))).unwrap();
    let id3 = wait(store.admit(request("acme", "0220", "888889")))
        .unwrap()
        .id;
    let out = wait(store.follow_up(
        id3,
        FollowUp {
            kind: TxKind::Completion,
            tenant: "acme".into(),
            original: de90("000109", "123"),
            reason: "00".into(),
        },
    ))
    .unwrap();
    assert_eq!(out.original, Some(local));
    assert!(out.first && out.queued.is_empty());
}

#[test]
fn recovery_reverses_what_was_sent_and_interrupts_what_was_not() {
    let dir = tempfile::tempdir().unwrap();
    let (sent, received, answered_id, other_node, leased) = {
        let store = open(dir.path());
        let sent = wait(store.admit(request("acme", "0200", "000200")))
            .unwrap()
            .id;
        wait(store.mark_sent(sent, "xxx")).unwrap();
        let received = wait(store.admit(request("acme", "0200", "000201")))
            .unwrap()
            .id;
        let answered_id = wait(store.admit(request("acme", "0200", "000202")))
            .unwrap()
            .id;
        wait(store.finish(answered_id, answered("00", None))).unwrap();
        // An entry leased by this node when it "crashed".
        let s = wait(store.admit(request("acme", "0200", "000203")))
            .unwrap()
            .id;
        let mut f = answered("91", Some("yyy"));
        f.state = TxState::ReversalQueued;
        f.reversal = Some(NewSaf {
            kind: SafKind::Reversal,
            endpoint: "yyy".into(),
            source: s,
            original: s,
            reason: "68".into(),
        });
        let leased = wait(store.finish(s, f)).unwrap().unwrap();
        wait(store.claim(
            "yyy",
            "node-1/forwarder",
            crate::now_ms(),
            Duration::from_secs(600),
            1,
        ))
        .unwrap();
        store.close();
        // Another node's row in flight, in the same database.
        let other = {
            let mut o = crate::tests::options(dir.path());
            o.node = "node-2".into();
            let store2 = SqliteStore::open(o).unwrap();
            let id = wait(store2.admit(request("acme", "0200", "000204")))
                .unwrap()
                .id;
            wait(store2.mark_sent(id, "xxx")).unwrap();
            store2.close();
            id
        };
        (sent, received, answered_id, other, leased)
    };
    let store = open(dir.path());
    let r = wait(store.recover()).unwrap();
    assert_eq!(
        (r.reversals_queued, r.interrupted, r.leases_released),
        (1, 1, 1)
    );
    let s = wait(store.get(sent)).unwrap().unwrap();
    assert_eq!(s.state, TxState::ReversalQueued);
    assert_eq!(s.upstream, Some(Upstream::Interrupted));
    let entries = wait(store.entries_of(sent)).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].reason.as_str(), entries[0].endpoint.as_str()),
        ("68", "xxx")
    );
    assert_eq!(
        wait(store.get(received)).unwrap().unwrap().state,
        TxState::Interrupted
    );
    assert_eq!(
        wait(store.get(answered_id)).unwrap().unwrap().state,
        TxState::Answered
    );
    assert_eq!(
        wait(store.get(other_node)).unwrap().unwrap().state,
        TxState::Sent
    );
    assert_eq!(wait(store.entry(leased)).unwrap().unwrap().lease, None);
    // Recovering again changes nothing.
    let again = wait(store.recover()).unwrap();
    assert_eq!((again.reversals_queued, again.interrupted), (0, 0));
    assert_eq!(wait(store.entries_of(sent)).unwrap().len(), 1);
}
