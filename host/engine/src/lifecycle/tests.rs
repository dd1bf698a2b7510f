//! The life cycle against an in-memory tranlog that follows the port's
//! contract (the SQLite one is tested in `switchyard-store`).

use std::sync::Mutex as StdMutex;

use futures::executor::block_on;
use switchyard_iso8583::Mti;

use super::*;
use crate::ports::{
    Admitted, FollowUpOutcome, MatchKey, OriginalRef, PortFuture, Recovered, SafId, TxQuery,
    TxRecord,
};
use crate::{PipelineBuilder, UpstreamLeg};

#[derive(Debug, Clone)]
struct Row {
    kind: TxKind,
    key: Option<MatchKey>,
    candidate: bool,
    state: TxState,
    rc: Option<String>,
    response: Option<Message>,
    request: Message,
    original: Option<TxId>,
    reversal: Option<TxId>,
}

#[derive(Default)]
struct Fake {
    rows: StdMutex<Vec<Row>>,
    safs: StdMutex<Vec<NewSaf>>,
    fail: StdMutex<bool>,
    /// How many outcome writes fail from now on.
    failing_finishes: StdMutex<u32>,
}

fn ready<T: Send + 'static>(v: Result<T, PortError>) -> PortFuture<T> {
    Box::pin(async move { v })
}

impl Tranlog for Fake {
    fn admit(&self, r: Received) -> PortFuture<Admitted> {
        if *self.fail.lock().unwrap() {
            return ready(Err(PortError::Database("disk full".into())));
        }
        let mut rows = self.rows.lock().unwrap();
        let matched = r.key.as_ref().and_then(|k| {
            rows.iter().enumerate().rev().find_map(|(i, row)| {
                (row.candidate && row.key.as_ref() == Some(k)).then(|| Recorded {
                    id: i as TxId,
                    kind: row.kind,
                    state: row.state,
                    node: "n".into(),
                    rc: row.rc.clone(),
                    response: row.response.clone(),
                    received_ms: 0,
                })
            })
        });
        rows.push(Row {
            kind: r.kind,
            candidate: matched.is_none() && r.key.is_some(),
            key: r.key,
            state: TxState::Received,
            rc: None,
            response: None,
            request: r.request,
            original: None,
            reversal: None,
        });
        ready(Ok(Admitted {
            id: rows.len() as TxId - 1,
            matched,
        }))
    }
    fn mark_sent(&self, id: TxId, _endpoint: &str) -> PortFuture<()> {
        self.rows.lock().unwrap()[id as usize].state = TxState::Sent;
        ready(Ok(()))
    }
    fn finish(&self, id: TxId, f: Finished) -> PortFuture<Option<SafId>> {
        {
            let mut failing = self.failing_finishes.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return ready(Err(PortError::Database("connection lost".into())));
            }
        }
        let mut rows = self.rows.lock().unwrap();
        let row = &mut rows[id as usize];
        row.state = f.state;
        row.rc = f.rc;
        row.response = f.response;
        row.original = f.original;
        if let Some(k) = f.kind {
            row.kind = k;
        }
        let saf = f.reversal.map(|s| {
            let mut safs = self.safs.lock().unwrap();
            safs.push(s);
            safs.len() as SafId
        });
        ready(Ok(saf))
    }
    fn late_reply(&self, _: TxId, _: Option<String>, _: i64) -> PortFuture<()> {
        ready(Ok(()))
    }
    fn follow_up(&self, id: TxId, f: FollowUp) -> PortFuture<FollowUpOutcome> {
        let mut rows = self.rows.lock().unwrap();
        let found = rows.iter().position(|row| {
            row.kind == TxKind::Original
                && match &f.original {
                    OriginalRef::StanTerminalRrn { stan, terminal, .. } => {
                        row.request.get_str(11) == Some(stan)
                            && row.request.get_str(41) == Some(terminal)
                    }
                    OriginalRef::De90 { stan, .. } => row.request.get_str(11) == Some(stan),
                }
        });
        let Some(o) = found else {
            return ready(Ok(FollowUpOutcome {
                original: None,
                first: false,
                queued: vec![],
            }));
        };
        let first = rows[o].reversal.is_none();
        let mut queued = vec![];
        if first {
            rows[o].reversal = Some(id);
            rows[o].state = TxState::ReversalQueued;
            let mut safs = self.safs.lock().unwrap();
            safs.push(NewSaf {
                kind: SafKind::Reversal,
                endpoint: "xxx".into(),
                source: o as TxId,
                original: o as TxId,
                reason: f.reason,
            });
            queued.push(safs.len() as SafId);
        }
        ready(Ok(FollowUpOutcome {
            original: Some(o as TxId),
            first,
            queued,
        }))
    }
    fn recover(&self) -> PortFuture<Recovered> {
        ready(Ok(Recovered::default()))
    }
    fn messages(&self, id: TxId) -> PortFuture<(Message, Option<Message>)> {
        let rows = self.rows.lock().unwrap();
        let row = &rows[id as usize];
        ready(Ok((row.request.clone(), row.response.clone())))
    }
    fn get(&self, _: TxId) -> PortFuture<Option<TxRecord>> {
        ready(Ok(None))
    }
    fn linked(&self, _: TxId) -> PortFuture<Vec<TxRecord>> {
        ready(Ok(vec![]))
    }
    fn search(&self, _: TxQuery) -> PortFuture<Vec<TxRecord>> {
        ready(Ok(vec![]))
    }
    fn purge(&self, _: i64, _: usize) -> PortFuture<u64> {
        ready(Ok(0))
    }
}

struct Setup {
    fake: Arc<Fake>,
    woken: Arc<StdMutex<Vec<String>>>,
    lifecycle: Arc<Lifecycle>,
    pipeline: Pipeline,
}

fn setup() -> Setup {
    let fake = Arc::new(Fake::default());
    let woken: Arc<StdMutex<Vec<String>>> = Arc::default();
    let w = woken.clone();
    let lifecycle = Arc::new(Lifecycle::new(
        fake.clone(),
        Arc::new(move |e: &str| w.lock().unwrap().push(e.to_owned())),
    ));
    let mut b = PipelineBuilder::new("p");
    b.participant("close", crate::Step::Sync(Arc::new(crate::steps::Close)))
        .unwrap();
    b.main(&["close"]);
    Setup {
        fake,
        woken,
        lifecycle,
        pipeline: b.build().unwrap(),
    }
}

fn request(mti: &str, stan: &str) -> Message {
    let mut m = Message::new(Mti::new(mti).unwrap());
    for (f, v) in [
        (2, "4761739001010119"),
        (3, "000000"),
        (4, "000000001000"),
        (7, "1201101010"),
        (11, stan),
        (35, "4761739001010119D2712"),
        (41, "TERM0001"),
    ] {
        m.set(f, v.as_bytes().to_vec());
    }
    m
}

fn ctx(m: Message) -> Context {
    Context::new("t".into(), "l".into(), 5001, m)
}

/// Admits and, when the pipeline is to run, runs it and finishes with
/// `code`; returns the response written.
fn transact(s: &Setup, m: Message, code: &str) -> Message {
    let mut c = ctx(m);
    match block_on(s.lifecycle.admit(&mut c)) {
        Admission::Respond(r) => r,
        Admission::Run => {
            c.set_result_code(code.to_owned());
            let d = block_on(s.pipeline.run(&mut c));
            c.respond = true;
            block_on(s.lifecycle.finish(&mut c, &d, &s.pipeline));
            std::mem::take(&mut c.response)
        }
    }
}

#[test]
fn a_repeat_gets_the_recorded_answer_and_a_duplicate_94() {
    let s = setup();
    let first = transact(&s, request("0200", "000001"), "00");
    assert_eq!(first.get_str(39), Some("00"));
    let repeat = transact(&s, request("0201", "000001"), "05");
    assert_eq!(repeat.mti().as_str(), "0210");
    assert_eq!(
        repeat.get_str(39),
        Some("00"),
        "the recorded answer, not a new one"
    );
    let duplicate = transact(&s, request("0200", "000001"), "00");
    assert_eq!(duplicate.get_str(39), Some("94"));
    let rows = s.fake.rows.lock().unwrap();
    assert_eq!(
        rows.iter().map(|r| r.kind).collect::<Vec<_>>(),
        [TxKind::Original, TxKind::Repeat, TxKind::Duplicate]
    );
    assert_eq!(rows[1].original, Some(0));
    assert!(!rows[0].request.contains(35), "track data is never stored");
}

#[test]
fn a_repeat_without_original_runs_as_the_original() {
    let s = setup();
    let r = transact(&s, request("0201", "000002"), "00");
    assert_eq!(r.get_str(39), Some("00"));
    assert_eq!(s.fake.rows.lock().unwrap()[0].kind, TxKind::Original);
    let again = transact(&s, request("0201", "000002"), "51");
    assert_eq!(again.get_str(39), Some("00"));
}

#[test]
fn a_repeat_while_the_original_is_in_flight_waits_for_its_answer() {
    let s = setup();
    let mut original = ctx(request("0200", "000003"));
    assert!(matches!(
        block_on(s.lifecycle.admit(&mut original)),
        Admission::Run
    ));
    let lifecycle = s.lifecycle.clone();
    let repeat = std::thread::spawn(move || {
        let mut c = ctx(request("0201", "000003"));
        match block_on(lifecycle.admit(&mut c)) {
            Admission::Respond(r) => r,
            Admission::Run => panic!("a repeat in flight must not run"),
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    original.set_result_code("00");
    let d = block_on(s.pipeline.run(&mut original));
    original.respond = true;
    block_on(s.lifecycle.finish(&mut original, &d, &s.pipeline));
    let r = repeat.join().unwrap();
    assert_eq!(r.get_str(39), Some("00"));
    assert_eq!(r.mti().as_str(), "0210");
}

#[test]
fn acquirer_reversals_are_matched_queued_and_answered_00_or_25() {
    let s = setup();
    transact(&s, request("0200", "000004"), "00");
    let r = transact(&s, request("0420", "000004"), "");
    assert_eq!(r.mti().as_str(), "0430");
    assert_eq!(r.get_str(39), Some("00"));
    assert_eq!(s.fake.safs.lock().unwrap().len(), 1);
    assert_eq!(s.fake.safs.lock().unwrap()[0].reason, "68");
    assert_eq!(*s.woken.lock().unwrap(), [""]);
    // The same reversal again: its recorded answer, nothing queued.
    let again = transact(&s, request("0421", "000004"), "");
    assert_eq!(again.get_str(39), Some("00"));
    assert_eq!(again.mti().as_str(), "0430");
    assert_eq!(s.fake.safs.lock().unwrap().len(), 1);
    let unknown = transact(&s, request("0420", "999999"), "");
    assert_eq!(unknown.get_str(39), Some("25"));
    let mut bad = request("0420", "000007");
    bad.set(90, b"0200".to_vec());
    assert_eq!(transact(&s, bad, "").get_str(39), Some("30"));
}

#[test]
fn no_answer_from_the_endpoint_queues_the_reversal_before_91() {
    let s = setup();
    let mut c = ctx(request("0200", "000005"));
    assert!(matches!(
        block_on(s.lifecycle.admit(&mut c)),
        Admission::Run
    ));
    block_on(s.lifecycle.before_upstream(c.tranlog_id, "xxx")).unwrap();
    assert_eq!(s.fake.rows.lock().unwrap()[0].state, TxState::Sent);
    c.upstream = Some(UpstreamLeg {
        endpoint: "xxx".into(),
        result: Upstream::Timeout,
    });
    c.set_result_code(rc::ISSUER_UNAVAILABLE);
    let d = block_on(s.pipeline.run(&mut c));
    c.respond = true;
    block_on(s.lifecycle.finish(&mut c, &d, &s.pipeline));
    let safs = s.fake.safs.lock().unwrap();
    assert_eq!(safs.len(), 1);
    assert_eq!(
        (safs[0].kind, safs[0].reason.as_str()),
        (SafKind::Reversal, "68")
    );
    assert_eq!(
        s.fake.rows.lock().unwrap()[0].state,
        TxState::ReversalQueued
    );
    assert_eq!(*s.woken.lock().unwrap(), ["xxx"]);
}

#[test]
fn a_store_failure_is_answered_96_and_nothing_runs() {
    let s = setup();
    *s.fake.fail.lock().unwrap() = true;
    let mut c = ctx(request("0200", "000006"));
    match block_on(s.lifecycle.admit(&mut c)) {
        Admission::Respond(r) => assert_eq!(r.get_str(39), Some("96")),
        Admission::Run => panic!("must not run unrecorded"),
    }
}

/// Runs one original through `s` that went upstream with `result` and
/// whose outcome write fails; returns the response written.
fn unrecorded_outcome(s: &Setup, stan: &str, result: Upstream) -> Message {
    let mut c = ctx(request("0200", stan));
    assert!(matches!(
        block_on(s.lifecycle.admit(&mut c)),
        Admission::Run
    ));
    if result != Upstream::Local {
        block_on(s.lifecycle.before_upstream(c.tranlog_id, "xxx")).unwrap();
        c.upstream = Some(UpstreamLeg {
            endpoint: "xxx".into(),
            result,
        });
    }
    c.set_result_code(rc::APPROVED);
    let d = block_on(s.pipeline.run(&mut c));
    c.respond = true;
    *s.fake.failing_finishes.lock().unwrap() = 1;
    block_on(s.lifecycle.finish(&mut c, &d, &s.pipeline));
    std::mem::take(&mut c.response)
}

#[test]
fn an_unrecorded_outcome_after_an_upstream_send_is_answered_96_and_its_reversal_owed() {
    let owed: Arc<StdMutex<Vec<(TxId, Finished)>>> = Arc::default();
    let mut s = setup();
    let o = owed.clone();
    s.lifecycle = Arc::new(
        Lifecycle::new(s.fake.clone(), Arc::new(|_: &str| {}))
            .with_owed_reversals(Arc::new(move |id, f| o.lock().unwrap().push((id, f)))),
    );
    // The endpoint approved, the outcome did not record: the acquirer is
    // told 96, so the approval must be reversed.
    let r = unrecorded_outcome(&s, "000011", Upstream::Answered);
    assert_eq!(r.get_str(39), Some("96"));
    // Authorized locally: nothing upstream to reverse.
    unrecorded_outcome(&s, "000012", Upstream::Local);
    let owed = std::mem::take(&mut *owed.lock().unwrap());
    assert_eq!(owed.len(), 1, "only the transaction that went upstream");
    let (id, f) = owed.into_iter().next().unwrap();
    assert_eq!(id, 0);
    assert_eq!(f.state, TxState::ReversalQueued);
    assert_eq!(f.rc.as_deref(), Some("96"));
    assert_eq!(f.response.as_ref().and_then(|m| m.get_str(39)), Some("96"));
    let saf = f.reversal.clone().expect("a reversal");
    assert_eq!(
        (saf.kind, saf.endpoint.as_str(), saf.source),
        (SafKind::Reversal, "xxx", 0)
    );
    // Recorded later (the store works again): the row and its reversal.
    block_on(s.fake.finish(id, f)).unwrap();
    assert_eq!(
        s.fake.rows.lock().unwrap()[0].state,
        TxState::ReversalQueued
    );
    assert_eq!(s.fake.safs.lock().unwrap().len(), 1);
}
