//! Envelope encryption: binding to the row, data key rotation while traffic
//! runs, KEK rotation and its crash steps, status.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use switchyard_engine::ports::{KeyState, Keyring, KvStore, PortError, Tranlog};

use super::{TEST_PAN, answered, open, options, request, wait};
use crate::kek::{self, KekStep};
use crate::{SqliteStore, StoreError};

fn db(dir: &std::path::Path) -> Connection {
    Connection::open(dir.join("data/switchyard.db")).unwrap()
}

#[test]
fn a_ciphertext_moved_to_another_row_or_tenant_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = wait(store.admit(request("acme", "0200", "000001")))
        .unwrap()
        .id;
    let b = wait(store.admit(request("acme", "0200", "000002")))
        .unwrap()
        .id;
    let c = wait(store.admit(request("other", "0200", "000003")))
        .unwrap()
        .id;
    for id in [a, b, c] {
        wait(store.finish(id, answered("00", None))).unwrap();
    }
    store.kv_set("acme", "loyalty", "k1", b"100").unwrap();
    store.kv_set("acme", "loyalty", "k2", b"200").unwrap();
    let conn = db(dir.path());
    conn.execute(
        "UPDATE tranlog SET request = (SELECT request FROM tranlog WHERE id = ?1) WHERE id = ?2",
        [a, b],
    )
    .unwrap();
    conn.execute(
        "UPDATE tranlog SET response = (SELECT response FROM tranlog WHERE id = ?1) WHERE id = ?2",
        [a, c],
    )
    .unwrap();
    conn.execute(
        "UPDATE kv SET value = (SELECT value FROM kv ORDER BY key_hash LIMIT 1)",
        [],
    )
    .unwrap();
    assert!(matches!(
        wait(store.messages(b)),
        Err(PortError::Decrypt(_))
    ));
    assert!(matches!(
        wait(store.messages(c)),
        Err(PortError::Decrypt(_))
    ));
    assert!(wait(store.messages(a)).is_ok());
    // One of the two kv values now carries the other's ciphertext.
    let results = [
        store.kv_get("acme", "loyalty", "k1"),
        store.kv_get("acme", "loyalty", "k2"),
    ];
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Err(PortError::Decrypt(_))))
            .count(),
        1
    );
    // A flipped bit fails too.
    let mut blob: Vec<u8> = conn
        .query_row("SELECT request FROM tranlog WHERE id = ?1", [a], |r| {
            r.get(0)
        })
        .unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 1;
    conn.execute(
        "UPDATE tranlog SET request = ?2 WHERE id = ?1",
        rusqlite::params![a, blob],
    )
    .unwrap();
    assert!(matches!(
        wait(store.messages(a)),
        Err(PortError::Decrypt(_))
    ));
}

#[test]
fn rotation_reencrypts_while_traffic_runs_and_destroys_retired_keys() {
    let store = SqliteStore::in_memory("node-1");
    let token = store.pan_token("acme", TEST_PAN).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (store, stop, failures, done) =
                (store.clone(), stop.clone(), failures.clone(), done.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let stan = format!("{:06}", w * 100_000 + i);
                    let id = match wait(store.admit(request("acme", "0200", &stan))) {
                        Ok(a) => a.id,
                        Err(_) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    };
                    mine.push(id);
                    let ok = wait(store.finish(id, answered("00", None))).is_ok()
                        && wait(store.messages(id)).is_ok_and(|(_, r)| r.is_some())
                        && store.kv_set("acme", "p", &stan, stan.as_bytes()).is_ok()
                        && store.kv_get("acme", "p", &stan).unwrap_or_default()
                            == Some(stan.clone().into_bytes());
                    // Re-read an older row: it may be mid-re-encryption.
                    let old = mine[(i as usize * 7) % mine.len()];
                    let ok = ok && wait(store.messages(old)).is_ok();
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    let mut new_keys = Vec::new();
    while start.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(400));
        new_keys.extend(wait(store.rotate(Some("acme".into()))).unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "decrypt or write failures"
    );
    assert!(done.load(Ordering::Relaxed) > 50);
    while wait(store.reencrypt(1000)).unwrap() > 0 {}
    let status = wait(store.status()).unwrap();
    let acme: Vec<_> = status
        .data_keys
        .iter()
        .filter(|k| k.tenant == "acme")
        .collect();
    assert_eq!(acme.len(), new_keys.len() + 1);
    let active: Vec<_> = acme
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id, *new_keys.last().unwrap());
    assert!(
        acme.iter()
            .filter(|k| k.state != KeyState::Active)
            .all(|k| k.state == KeyState::Destroyed && k.rows == 0)
    );
    assert!(active[0].rows > 0);
    assert_eq!(status.kek, store.keyring.kek().fingerprint);
    // Destroyed keys' material is gone from the database.
    let n: i64 = store
        .read(|c| {
            c.query_row(
                "SELECT count(*) FROM data_keys WHERE state = 'destroyed' AND wrapped IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .map_err(StoreError::sqlite("t"))
        })
        .unwrap();
    assert_eq!(n, 0);
    // Lookup keys are not rotated: the PAN token is stable.
    assert_eq!(store.pan_token("acme", TEST_PAN).unwrap(), token);
    // Every row still decrypts.
    let ids: Vec<i64> = store
        .read(|c| {
            c.prepare("SELECT id FROM tranlog")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(StoreError::sqlite("t"))
        })
        .unwrap();
    for id in ids {
        wait(store.messages(id)).unwrap();
    }
}

#[test]
fn rotating_every_tenant_and_status_rows() {
    let store = SqliteStore::in_memory("node-1");
    for t in ["a", "b"] {
        let id = wait(store.admit(request(t, "0200", "000001"))).unwrap().id;
        wait(store.finish(id, answered("00", None))).unwrap();
    }
    let before = wait(store.status()).unwrap();
    assert_eq!(before.data_keys.len(), 2);
    assert!(
        before
            .data_keys
            .iter()
            .all(|k| k.rows == 1 && k.state == KeyState::Active)
    );
    assert!(before.kek_created_ms.is_some());
    assert!(before.kek_source.ends_with("kek.key"));
    let new = wait(store.rotate(None)).unwrap();
    assert_eq!(new.len(), 2);
    let mid = wait(store.status()).unwrap();
    assert_eq!(
        mid.data_keys
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .count(),
        2
    );
    // Background re-encryption runs on its own; wait for it.
    let start = Instant::now();
    loop {
        let s = wait(store.status()).unwrap();
        if s.data_keys.iter().all(|k| k.state != KeyState::Retired) {
            assert!(
                s.data_keys
                    .iter()
                    .filter(|k| new.contains(&k.id))
                    .all(|k| k.rows == 1)
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_some(store: &SqliteStore) -> i64 {
    store.kv_set("acme", "loyalty", TEST_PAN, b"42").unwrap();
    let id = wait(store.admit(request("acme", "0200", "000009")))
        .unwrap()
        .id;
    wait(store.finish(id, answered("00", None))).unwrap();
    id
}

fn readable(store: &SqliteStore, id: i64) {
    assert_eq!(
        store.kv_get("acme", "loyalty", TEST_PAN).unwrap(),
        Some(b"42".to_vec())
    );
    wait(store.messages(id)).unwrap();
}

#[test]
fn kek_rotation_survives_a_crash_after_every_step() {
    for step in [KekStep::NextWritten, KekStep::Rewrapped, KekStep::Renamed] {
        let dir = tempfile::tempdir().unwrap();
        let kek_path = options(dir.path()).kek_path;
        let (id, old, new) = {
            let store = open(dir.path());
            let id = write_some(&store);
            let old = store.keyring.kek().fingerprint.clone();
            let new = store.rotate_kek_until(step).unwrap();
            // A crash: nothing else of the rotation runs.
            store.close();
            (id, old, new)
        };
        assert_ne!(old, new);
        let store = open(dir.path());
        readable(&store, id);
        let fp = kek::read(&kek_path).unwrap().fingerprint;
        let expected = if step == KekStep::NextWritten {
            &old
        } else {
            &new
        };
        assert_eq!(&fp, expected, "{step:?}");
        assert_eq!(&wait(store.status()).unwrap().kek, expected);
        assert!(!kek::next_path(&kek_path).exists(), "{step:?}");
        // And a full rotation afterwards works.
        let newer = wait(store.rotate_kek()).unwrap();
        store.close();
        let store = open(dir.path());
        readable(&store, id);
        assert_eq!(store.keyring.kek().fingerprint, newer);
    }
}

#[test]
fn a_half_written_next_kek_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let kek_path = options(dir.path()).kek_path;
    let id = {
        let store = open(dir.path());
        write_some(&store)
    };
    std::fs::write(kek::next_path(&kek_path), b"short").unwrap();
    let store = open(dir.path());
    readable(&store, id);
    assert!(!kek::next_path(&kek_path).exists());
}

#[test]
fn a_wrong_or_missing_kek_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kek_path = options(dir.path()).kek_path;
    {
        let store = open(dir.path());
        write_some(&store);
    }
    let good = std::fs::read(&kek_path).unwrap();
    std::fs::write(&kek_path, [9u8; 32]).unwrap();
    let e = SqliteStore::open(options(dir.path())).unwrap_err();
    assert!(matches!(e, StoreError::KeyFile { .. }), "{e}");
    assert!(e.to_string().contains("kek.key"), "{e}");
    std::fs::remove_file(&kek_path).unwrap();
    let e = SqliteStore::open(options(dir.path())).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    assert!(
        !kek_path.exists(),
        "no new key is made for a database with keys"
    );
    std::fs::write(&kek_path, good).unwrap();
    // A key restored from a backup must be private again (0644 is refused).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kek_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    open(dir.path());
}
