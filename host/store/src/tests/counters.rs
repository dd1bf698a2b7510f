//! Durable counters: what survives a restart, expiry and purge, exact adds
//! at a limit from many threads, and the write the response waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use switchyard_engine::ports::{CounterStore, PortError, Tranlog};

use super::{TEST_PAN, answered, open, request, wait};
use crate::counters::now_s;
use crate::{MAX_WINDOW_SECONDS, SqliteStore};

const DAY: u32 = 86_400;
const SCOPE: (&str, &str) = ("acme", "velocity");

fn db(dir: &std::path::Path) -> Connection {
    Connection::open(dir.join("data").join("switchyard.db")).unwrap()
}

fn rows(dir: &std::path::Path) -> i64 {
    db(dir)
        .query_row("SELECT count(*) FROM counters", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn adds_and_sums_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_s();
    {
        let s = open(dir.path());
        assert_eq!(s.counter_add(SCOPE, "count", TEST_PAN, 1, DAY), Ok(1));
        assert_eq!(s.counter_add(SCOPE, "count", TEST_PAN, 1, DAY), Ok(2));
        assert_eq!(
            s.counter_add(SCOPE, "amount", TEST_PAN, 12_000, DAY),
            Ok(12_000)
        );
        // Twenty days ago, in a 31-day window.
        let month = MAX_WINDOW_SECONDS;
        let then = now - 20 * u64::from(DAY);
        assert_eq!(
            s.counter_add_at(then, SCOPE, "amount", TEST_PAN, 5_000, month),
            Ok(5_000)
        );
        assert_eq!(
            s.counter_add(SCOPE, "amount", TEST_PAN, 700, month),
            Ok(5_700)
        );
        // Nothing written for a zero add or a sum.
        assert_eq!(s.counter_add(SCOPE, "count", "other", 0, DAY), Ok(0));
        assert_eq!(s.counter_sum(SCOPE, "count", TEST_PAN, DAY), Ok(2));
        // Closed without flushing: close writes what is queued.
    }
    let s = open(dir.path());
    assert_eq!(s.counter_sum(SCOPE, "count", TEST_PAN, DAY), Ok(2));
    assert_eq!(s.counter_sum(SCOPE, "amount", TEST_PAN, DAY), Ok(12_000));
    assert_eq!(
        s.counter_sum(SCOPE, "amount", TEST_PAN, MAX_WINDOW_SECONDS),
        Ok(5_700)
    );
    assert_eq!(
        s.counter_sum(("other", "velocity"), "count", TEST_PAN, DAY),
        Ok(0)
    );
    assert_eq!(s.counter_sum(SCOPE, "count", "other", DAY), Ok(0));
    // Adds go on from the restored sums, into the same rows.
    let before = rows(dir.path());
    assert_eq!(s.counter_add(SCOPE, "count", TEST_PAN, 1, DAY), Ok(3));
    s.flush_counters().unwrap();
    let after = rows(dir.path());
    assert!(after <= before + 1, "{before} rows, then {after}");
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.counter_sum(SCOPE, "count", TEST_PAN, DAY), Ok(3));
}

#[test]
fn rows_hold_keyed_hashes_with_their_scope_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.counter_add(SCOPE, "count", TEST_PAN, 1, DAY).unwrap();
    s.counter_add(SCOPE, "amount", TEST_PAN, 99, 3_600).unwrap();
    s.flush_counters().unwrap();
    let conn = db(dir.path());
    let mut statement = conn
        .prepare(
            "SELECT tenant, plugin, hex(counter), bucket, width_s, window_s, expires, total
             FROM counters ORDER BY id",
        )
        .unwrap();
    type Row = (String, String, String, i64, i64, i64, i64, i64);
    let found: Vec<Row> = statement
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(found.len(), 2);
    let (tenant, plugin, counter, bucket, width, window, expires, total) = &found[0];
    assert_eq!((tenant.as_str(), plugin.as_str()), SCOPE);
    assert_eq!(counter.len(), 64);
    assert_eq!((*width, *window, *total), (1440, i64::from(DAY), 1));
    assert_eq!(*expires, (bucket + 1) * width + window - 1);
    assert_eq!((found[1].4, found[1].5, found[1].7), (60, 3_600, 99));
    // Neither the PAN nor the counter's name is anywhere in the table.
    let pan_hex: String = TEST_PAN.bytes().map(|b| format!("{b:02X}")).collect();
    for row in &found {
        assert!(!row.2.contains(&pan_hex));
    }
    let anywhere: i64 = conn
        .query_row(
            "SELECT count(*) FROM counters
             WHERE instr(counter, ?1) OR instr(counter, 'count') OR tenant || plugin LIKE ?2",
            rusqlite::params![TEST_PAN.as_bytes(), format!("%{TEST_PAN}%")],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(anywhere, 0);
}

/// Writes `n` buckets whose window passed long ago, as an earlier run
/// would have left them.
fn expired_rows(dir: &std::path::Path, first_id: i64, n: i64) {
    let conn = db(dir);
    for id in first_id..first_id + n {
        conn.execute(
            "INSERT INTO counters (id, tenant, plugin, counter, bucket, width_s, window_s,
                expires, total)
             VALUES (?1, 'acme', 'velocity', randomblob(32), 1000, 1, 60, 1060, 1)",
            [id],
        )
        .unwrap();
    }
}

#[test]
fn expired_rows_are_not_read_back_and_are_purged_a_bounded_number_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        s.counter_add(SCOPE, "count", "live", 4, 60).unwrap();
        s.flush_counters().unwrap();
    }
    expired_rows(dir.path(), 1_000, 5);
    assert_eq!(rows(dir.path()), 6);
    let s = open(dir.path());
    assert_eq!(s.counters.buckets(), 1, "only the live bucket is read back");
    assert_eq!(s.counter_sum(SCOPE, "count", "live", 60), Ok(4));
    assert_eq!(s.purge_counters(2), Ok(2));
    assert_eq!(s.purge_counters(2), Ok(2));
    assert_eq!(s.purge_counters(2), Ok(1));
    assert_eq!(s.purge_counters(2), Ok(0));
    assert_eq!(rows(dir.path()), 1);
    drop(s);

    // The flush jobs of adds purge on their own.
    expired_rows(dir.path(), 2_000, 3);
    let s = open(dir.path());
    s.counter_add(SCOPE, "count", "live", 1, 60).unwrap();
    s.flush_counters().unwrap();
    // (The add may have opened a new bucket, with a new id above 2002, if
    // its bucket of time ended since the first add.)
    let left: i64 = db(dir.path())
        .query_row(
            "SELECT count(*) FROM counters WHERE id BETWEEN 2000 AND 2002",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(s.counter_sum(SCOPE, "count", "live", 60), Ok(5));
    // New buckets get ids above every row stored at open.
    s.counter_add(SCOPE, "count", "fresh", 1, 60).unwrap();
    s.flush_counters().unwrap();
    let max: i64 = db(dir.path())
        .query_row("SELECT max(id) FROM counters", [], |r| r.get(0))
        .unwrap();
    assert!(max > 2_002, "{max}");
}

#[test]
fn concurrent_adds_at_a_limit_are_exact_and_stay_exact_after_a_restart() {
    const THREADS: u64 = 8;
    const TRIES: u64 = 150;
    const LIMIT: i64 = 500;
    let dir = tempfile::tempdir().unwrap();
    let passed = Arc::new(AtomicU64::new(0));
    {
        let s = open(dir.path());
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (s, passed) = (s.clone(), passed.clone());
                std::thread::spawn(move || {
                    for _ in 0..TRIES {
                        // Reserve; give back when over the limit.
                        let sum = s.counter_add(SCOPE, "count", TEST_PAN, 1, DAY).unwrap();
                        if sum <= LIMIT {
                            passed.fetch_add(1, Ordering::Relaxed);
                        } else {
                            s.counter_add(SCOPE, "count", TEST_PAN, -1, DAY).unwrap();
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(passed.load(Ordering::Relaxed), LIMIT as u64);
        assert_eq!(s.counter_sum(SCOPE, "count", TEST_PAN, DAY), Ok(LIMIT));
    }
    let s = open(dir.path());
    assert_eq!(s.counter_sum(SCOPE, "count", TEST_PAN, DAY), Ok(LIMIT));
    let total: i64 = db(dir.path())
        .query_row("SELECT sum(total) FROM counters", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total, LIMIT);
}

#[test]
fn windows_go_up_to_31_days_and_bad_ones_are_refused_plainly() {
    let s = SqliteStore::in_memory("node-1");
    assert_eq!(
        s.counter_add(SCOPE, "count", "k", 1, MAX_WINDOW_SECONDS),
        Ok(1)
    );
    for bad in [0, MAX_WINDOW_SECONDS + 1] {
        match s.counter_add(SCOPE, "count", "k", 1, bad) {
            Err(PortError::Invalid(m)) => {
                assert_eq!(m, format!("window of {bad} seconds is outside 1..=2678400"));
            }
            other => panic!("{other:?}"),
        }
    }
    s.close();
    assert_eq!(
        s.counter_add(SCOPE, "count", "k", 1, 60),
        Err(PortError::Closed)
    );
}

#[test]
fn the_tranlog_write_a_response_waits_for_carries_the_counts_made_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    // Staged: the finish rides on the INSERT, which writes the counts.
    let a = wait(s.admit(request("acme", "0200", "000001"))).unwrap();
    s.counter_add(SCOPE, "count", TEST_PAN, 1, DAY).unwrap();
    wait(s.finish(a.id, answered("00", None))).unwrap();
    assert!(!s.counter_log.pending());
    assert_eq!(rows(dir.path()), 1);
    // Its own job (the row was written at mark_sent).
    let b = wait(s.admit(request("acme", "0200", "000002"))).unwrap();
    wait(s.mark_sent(b.id, "xxx")).unwrap();
    s.counter_add(SCOPE, "amount", TEST_PAN, 1_000, DAY)
        .unwrap();
    wait(s.finish(b.id, answered("00", Some("xxx")))).unwrap();
    assert!(!s.counter_log.pending());
    assert_eq!(rows(dir.path()), 2);
}

#[test]
fn counts_that_cannot_be_written_fail_the_finish_and_are_written_later() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.counter_add(SCOPE, "count", TEST_PAN, 1, DAY).unwrap();
    s.flush_counters().unwrap();
    // The table goes away under the store: writes of counts fail.
    db(dir.path()).execute_batch("DROP TABLE counters").unwrap();
    assert_eq!(s.counter_add(SCOPE, "count", TEST_PAN, 1, DAY), Ok(2));
    assert!(s.flush_counters().is_err());
    assert!(s.counter_log.pending(), "kept to be written again");
    let a = wait(s.admit(request("acme", "0200", "000001"))).unwrap();
    assert!(
        wait(s.finish(a.id, answered("00", None))).is_err(),
        "no approval with its counts unwritten"
    );
    let b = wait(s.admit(request("acme", "0200", "000002"))).unwrap();
    wait(s.mark_sent(b.id, "xxx")).unwrap();
    assert!(wait(s.finish(b.id, answered("00", Some("xxx")))).is_err());
    // Back: the deltas kept are written, once.
    db(dir.path())
        .execute_batch(crate::schema::COUNTERS)
        .unwrap();
    s.flush_counters().unwrap();
    assert!(!s.counter_log.pending());
    let c = wait(s.admit(request("acme", "0200", "000003"))).unwrap();
    wait(s.finish(c.id, answered("00", None))).unwrap();
    drop(s);
    let s = open(dir.path());
    // The first add's row went with the table; the second is back.
    assert_eq!(s.counter_sum(SCOPE, "count", TEST_PAN, DAY), Ok(1));
}

#[test]
fn adds_reach_the_disk_on_their_own_soon_after() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.counter_add(SCOPE, "count", TEST_PAN, 1, DAY).unwrap();
    // The flusher writes within FLUSH_EVERY (50 ms); allow a slow machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while rows(dir.path()) == 0 {
        assert!(std::time::Instant::now() < deadline, "never written");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Many waiting: an add queues the flush itself.
    for k in 0..crate::counter_log::FLUSH_AT + 10 {
        s.counter_add(SCOPE, "count", &format!("k{k}"), 1, DAY)
            .unwrap();
    }
    while rows(dir.path()) < crate::counter_log::FLUSH_AT as i64 {
        assert!(std::time::Instant::now() < deadline, "never written");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
