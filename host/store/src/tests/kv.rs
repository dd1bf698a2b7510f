//! Plugin key/value data and swap history.

use switchyard_engine::ports::{Keyring, KvStore, PortError, SwapHistory, SwapRecord};

use super::{TEST_PAN, open, wait};
use crate::{MAX_VALUE_LEN, SqliteStore, StoreError};

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

#[test]
fn kv_values_lists_one_plugins_values_of_one_tenant_decrypted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        assert_eq!(
            s.kv_values("acme", "coupons").unwrap(),
            Vec::<Vec<u8>>::new()
        );
        for (k, v) in [
            ("C1", "10.00|2030-01"),
            ("C2", "5.00|2030-02"),
            ("C3", "used"),
        ] {
            s.kv_set("acme", "coupons", k, v.as_bytes()).unwrap();
        }
        s.kv_set("acme", "loyalty", TEST_PAN, b"1200").unwrap();
        s.kv_set("other", "coupons", "C1", b"elsewhere").unwrap();
    }
    let s = open(dir.path());
    let mut values = s.kv_values("acme", "coupons").unwrap();
    values.sort();
    assert_eq!(values, [&b"10.00|2030-01"[..], b"5.00|2030-02", b"used"]);
    assert_eq!(
        s.kv_values("other", "coupons").unwrap(),
        [b"elsewhere".to_vec()]
    );
    assert!(s.kv_values("nobody", "coupons").unwrap().is_empty());
    s.kv_delete("acme", "coupons", "C3").unwrap();
    assert_eq!(s.kv_values("acme", "coupons").unwrap().len(), 2);
    s.close();
    assert!(matches!(
        s.kv_values("acme", "coupons"),
        Err(StoreError::Closed)
    ));
}

/// A second store on the same files, as an operator tool in another
/// process would open them while the switch runs.
fn second(dir: &std::path::Path) -> std::sync::Arc<SqliteStore> {
    SqliteStore::open(super::options(dir)).unwrap()
}

#[test]
fn two_stores_on_one_database_compare_and_set_safely() {
    const PER_THREAD: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let switch = open(dir.path());
    switch.kv_set("acme", "coupons", "n", b"0").unwrap();
    let tool = second(dir.path());
    // Each increments through compare-and-set, retrying on a conflict.
    let workers: Vec<_> = [switch.clone(), tool.clone(), switch.clone(), tool.clone()]
        .into_iter()
        .map(|s| {
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    loop {
                        let old = s.kv_get("acme", "coupons", "n").unwrap().unwrap();
                        let n: u64 = std::str::from_utf8(&old).unwrap().parse().unwrap();
                        let new = (n + 1).to_string();
                        if s.kv_compare_and_set("acme", "coupons", "n", Some(&old), new.as_bytes())
                            .unwrap()
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let total = (4 * PER_THREAD).to_string().into_bytes();
    assert_eq!(
        switch.kv_get("acme", "coupons", "n").unwrap(),
        Some(total.clone())
    );
    assert_eq!(tool.kv_get("acme", "coupons", "n").unwrap(), Some(total));
    // Redeeming once: exactly one of the two wins.
    switch.kv_set("acme", "coupons", "C1", b"issued").unwrap();
    let wins = [&switch, &tool]
        .iter()
        .filter(|s| {
            s.kv_compare_and_set("acme", "coupons", "C1", Some(b"issued"), b"redeemed")
                .unwrap()
        })
        .count();
    assert_eq!(wins, 1);
}

#[test]
fn keys_one_store_creates_or_rotates_are_used_by_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let switch = open(dir.path());
    switch.kv_set("acme", "coupons", "C0", b"before").unwrap();
    let tool = second(dir.path());
    // A tenant only the tool knows: its keys are the switch's too.
    tool.kv_set("fresh", "coupons", "C1", b"issued").unwrap();
    assert_eq!(
        switch.kv_get("fresh", "coupons", "C1").unwrap(),
        Some(b"issued".to_vec())
    );
    assert_eq!(
        switch.kv_values("fresh", "coupons").unwrap(),
        [b"issued".to_vec()]
    );
    assert!(
        switch
            .kv_compare_and_set("fresh", "coupons", "C1", Some(b"issued"), b"redeemed")
            .unwrap()
    );
    assert_eq!(
        tool.kv_get("fresh", "coupons", "C1").unwrap(),
        Some(b"redeemed".to_vec())
    );
    let keys: i64 = rusqlite::Connection::open(dir.path().join("data/switchyard.db"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM data_keys WHERE tenant = 'fresh'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(keys, 3, "one set of keys for the tenant, not two");

    // The switch rotates acme's data key and destroys the old one; the
    // tool, which loaded the old one, seals with the new one.
    let new = wait(switch.rotate(Some("acme".into()))).unwrap()[0];
    while wait(switch.reencrypt(1_000)).unwrap() > 0 {}
    tool.kv_set("acme", "coupons", "C2", b"issued").unwrap();
    let key_of_c2: Vec<i64> = rusqlite::Connection::open(dir.path().join("data/switchyard.db"))
        .unwrap()
        .prepare("SELECT DISTINCT key_id FROM kv WHERE tenant = 'acme'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(key_of_c2, [new]);
    assert_eq!(
        switch.kv_get("acme", "coupons", "C2").unwrap(),
        Some(b"issued".to_vec())
    );
    assert_eq!(
        tool.kv_get("acme", "coupons", "C0").unwrap(),
        Some(b"before".to_vec())
    );
}
