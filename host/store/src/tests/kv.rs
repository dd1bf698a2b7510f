//! Plugin key/value data and swap history.

use switchyard_engine::ports::{KvStore, PortError, SwapHistory, SwapRecord};

use super::{TEST_PAN, open};
use crate::{MAX_VALUE_LEN, SqliteStore};

#[test]
fn kv_is_scoped_by_tenant_and_plugin_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        assert_eq!(s.kv_get("acme", "loyalty", TEST_PAN).unwrap(), None);
        s.kv_set("acme", "loyalty", TEST_PAN, b"120").unwrap();
        assert_eq!(
            s.kv_get("acme", "loyalty", TEST_PAN).unwrap(),
            Some(b"120".to_vec())
        );
        assert_eq!(s.kv_get("other", "loyalty", TEST_PAN).unwrap(), None);
        assert_eq!(s.kv_get("acme", "coupons", TEST_PAN).unwrap(), None);
    }
    let s = open(dir.path());
    assert_eq!(
        s.kv_get("acme", "loyalty", TEST_PAN).unwrap(),
        Some(b"120".to_vec())
    );
    assert!(s.kv_delete("acme", "loyalty", TEST_PAN).unwrap());
    assert!(!s.kv_delete("acme", "loyalty", TEST_PAN).unwrap());
    assert!(!s.kv_delete("nobody", "loyalty", TEST_PAN).unwrap());
}

#[test]
fn compare_and_set_is_atomic_per_expectation() {
    let s = SqliteStore::in_memory("node-1");
    assert!(s.kv_compare_and_set("t", "p", "k", None, b"1").unwrap());
    assert!(!s.kv_compare_and_set("t", "p", "k", None, b"2").unwrap());
    assert!(
        !s.kv_compare_and_set("t", "p", "k", Some(b"0"), b"2")
            .unwrap()
    );
    assert!(
        s.kv_compare_and_set("t", "p", "k", Some(b"1"), b"2")
            .unwrap()
    );
    assert_eq!(s.kv_get("t", "p", "k").unwrap(), Some(b"2".to_vec()));
    assert!(matches!(
        s.kv_set("t", "p", "k", &vec![0; MAX_VALUE_LEN + 1]),
        Err(PortError::Invalid(_))
    ));
    s.kv_set("t", "p", "k", &vec![7; MAX_VALUE_LEN]).unwrap();
    // Concurrent increments through compare-and-set lose nothing.
    s.kv_set("t", "p", "n", b"0").unwrap();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..10 {
                    loop {
                        let cur = s.kv_get("t", "p", "n").unwrap().unwrap();
                        let n: u32 = std::str::from_utf8(&cur).unwrap().parse().unwrap();
                        if s.kv_compare_and_set(
                            "t",
                            "p",
                            "n",
                            Some(&cur),
                            (n + 1).to_string().as_bytes(),
                        )
                        .unwrap()
                        {
                            break;
                        }
                    }
                }
            });
        }
    });
    assert_eq!(s.kv_get("t", "p", "n").unwrap(), Some(b"80".to_vec()));
    s.close();
    assert_eq!(s.kv_get("t", "p", "n"), Err(PortError::Closed));
    assert_eq!(s.kv_set("t", "p", "n", b"1"), Err(PortError::Closed));
}

#[test]
fn swaps_are_recorded_in_order() {
    let s = SqliteStore::in_memory("node-1");
    for (i, action) in ["swap", "rollback"].iter().enumerate() {
        s.record_swap(&SwapRecord {
            at_ms: i as i64,
            plugin: "validate".into(),
            action: action.to_string(),
            old_hash: "a".into(),
            new_hash: "b".into(),
            actor: "ops".into(),
        })
        .unwrap();
    }
    let all = s.swaps(10).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].action, "rollback");
    assert_eq!(s.swaps(1).unwrap()[0].action, "rollback");
}
