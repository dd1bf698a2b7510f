//! The internal hosts' operations against the real store (and a kv store
//! that loses compare-and-sets), and the admin API's request bodies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use switchyard_engine::ports::{KvStore, PortError};
use switchyard_store::{SqliteStore, StoreOptions};

use super::values::{self, COUPON_LEN, COUPON_RANGE};
use super::*;

/// A Luhn-valid card of the loyalty range.
const CARD: &str = "6006490000000004";

fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(StoreOptions {
        db_path: dir.path().join("switchyard.db"),
        kek_path: dir.path().join("keys/kek.key"),
        node: "node-1".into(),
        duplicate_filter_mib: 0,
    })
    .unwrap();
    (dir, store)
}

fn scope(plugin: &str) -> Scope {
    Scope {
        tenant: "default".into(),
        plugin: plugin.into(),
    }
}

fn card(points: Option<i64>) -> CardRequest {
    CardRequest {
        scope: scope("loyalty"),
        card: CARD.into(),
        points,
    }
}

fn issue_request(count: u32, expires: &str) -> IssueRequest {
    IssueRequest {
        scope: scope("coupon"),
        value_minor: 2500,
        expires: expires.into(),
        count,
    }
}

/// A day well ahead.
fn later() -> String {
    let today = values::Day::today().to_string();
    let year: u16 = today[..4].parse().unwrap();
    format!("{}-06-30", year + 2)
}

/// A kv store in memory whose next `lose` compare-and-sets fail.
#[derive(Default)]
struct LosingKv {
    values: Mutex<HashMap<String, Vec<u8>>>,
    lose: AtomicUsize,
    attempts: AtomicUsize,
}

impl KvStore for LosingKv {
    fn kv_get(&self, _: &str, _: &str, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        Ok(self.values.lock().unwrap().get(key).cloned())
    }
    fn kv_set(&self, _: &str, _: &str, key: &str, value: &[u8]) -> Result<(), PortError> {
        self.values.lock().unwrap().insert(key.into(), value.into());
        Ok(())
    }
    fn kv_delete(&self, _: &str, _: &str, key: &str) -> Result<bool, PortError> {
        Ok(self.values.lock().unwrap().remove(key).is_some())
    }
    fn kv_compare_and_set(
        &self,
        _: &str,
        _: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, PortError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let lost = self
            .lose
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let mut values = self.values.lock().unwrap();
        if lost || values.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        values.insert(key.into(), value.into());
        Ok(true)
    }
}

fn ops_with(store: &Arc<SqliteStore>, kv: Arc<dyn KvStore>) -> Ops {
    Ops {
        kv,
        ..crate::ops::Ops::of_store(store)
    }
}

#[tokio::test]
async fn credit_then_balance_keeps_the_reversal_ids() {
    let (_dir, store) = store();
    let ops = crate::ops::Ops::of_store(&store);
    let zero = ops.loyalty_balance(card(None)).await.unwrap();
    assert_eq!((zero.balance_points, zero.balance.as_str()), (0, "0.00"));
    assert_eq!(zero.card, "600649******0004");

    let key = values::points_key(CARD);
    store
        .kv_set(
            "default",
            "loyalty",
            &key,
            b"-20 7401823476318208 7401823476318209",
        )
        .unwrap();
    let v = ops.loyalty_credit(card(Some(1520))).await.unwrap();
    assert_eq!(v.credited, Some(1520));
    assert_eq!((v.balance_points, v.balance.as_str()), (1500, "15.00"));
    let stored = store.kv_get("default", "loyalty", &key).unwrap().unwrap();
    assert_eq!(stored, b"1500 7401823476318208 7401823476318209");
    assert_eq!(
        ops.loyalty_balance(card(None))
            .await
            .unwrap()
            .balance_points,
        1500
    );

    // Another tenant's card is another balance.
    let mut other = card(None);
    other.scope.tenant = "acme".into();
    assert_eq!(ops.loyalty_balance(other).await.unwrap().balance_points, 0);
}

#[tokio::test]
async fn bad_cards_points_and_stored_values_are_refused() {
    let (_dir, store) = store();
    let ops = crate::ops::Ops::of_store(&store);
    let mut bad = card(Some(10));
    bad.card = "6006490000000009".into();
    let e = ops.loyalty_credit(bad).await.unwrap_err();
    assert!(
        matches!(e, HostsError::Invalid { ref field, .. } if field == "card"),
        "{e}"
    );
    assert!(!e.to_string().contains("6006490000000009"));
    for points in [Some(0), Some(-5), Some(MAX_AMOUNT + 1), None] {
        let e = ops.loyalty_credit(card(points)).await.unwrap_err();
        assert!(e.to_string().starts_with("points: "), "{e}");
    }
    let mut bad = card(None);
    bad.scope.tenant = String::new();
    assert!(ops.loyalty_balance(bad).await.is_err());

    let key = values::points_key(CARD);
    store.kv_set("default", "loyalty", &key, b"lots").unwrap();
    let e = ops.loyalty_credit(card(Some(10))).await.unwrap_err();
    assert!(matches!(e, HostsError::Corrupt(_)), "{e}");
    assert!(e.to_string().contains("600649******0004") && !e.to_string().contains(CARD));
    assert_eq!(
        store.kv_get("default", "loyalty", &key).unwrap().unwrap(),
        b"lots"
    );

    store
        .kv_set("default", "loyalty", &key, i64::MAX.to_string().as_bytes())
        .unwrap();
    assert!(ops.loyalty_credit(card(Some(1))).await.is_err(), "overflow");
}

#[tokio::test]
async fn a_lost_compare_and_set_is_retried_and_then_given_up() {
    let (_dir, store) = store();
    let kv = Arc::new(LosingKv::default());
    kv.lose.store(3, Ordering::SeqCst);
    let ops = ops_with(&store, kv.clone());
    assert_eq!(
        ops.loyalty_credit(card(Some(7)))
            .await
            .unwrap()
            .balance_points,
        7
    );
    assert_eq!(kv.attempts.load(Ordering::SeqCst), 4);

    kv.lose.store(usize::MAX, Ordering::SeqCst);
    let e = ops.loyalty_credit(card(Some(7))).await.unwrap_err();
    assert!(matches!(e, HostsError::Contended(_)), "{e}");
    assert_eq!(
        ops.loyalty_balance(card(None))
            .await
            .unwrap()
            .balance_points,
        7
    );

    // A coupon number already taken is drawn again.
    kv.lose.store(2, Ordering::SeqCst);
    let issued = ops.issue_coupons(issue_request(1, &later())).await.unwrap();
    assert_eq!((issued.coupons.len(), issued.error.as_deref()), (1, None));
    kv.lose.store(usize::MAX, Ordering::SeqCst);
    let issued = ops.issue_coupons(issue_request(2, &later())).await.unwrap();
    assert!(issued.coupons.is_empty() && issued.error.is_some());
}

#[tokio::test]
async fn issued_coupons_are_listed_masked_by_expiry() {
    let (_dir, store) = store();
    let ops = crate::ops::Ops::of_store(&store);
    let expires = later();
    let issued = ops.issue_coupons(issue_request(3, &expires)).await.unwrap();
    assert_eq!(issued.coupons.len(), 3);
    for c in &issued.coupons {
        assert!(c.number.len() == COUPON_LEN && c.number.starts_with(COUPON_RANGE));
        assert!(values::luhn_valid(&c.number));
        assert_eq!(
            (c.value.as_str(), c.expires.as_str()),
            ("25.00", expires.as_str())
        );
        assert!(!format!("{c:?}").contains(&c.number));
        let stored = store
            .kv_get("default", "coupon", &values::coupon_key(&c.number))
            .unwrap()
            .unwrap();
        assert_eq!(
            stored,
            format!("v1 {} 2500 {expires} open", c.number).as_bytes()
        );
    }
    // A redeemed one, an expired one, and a value that is no coupon.
    let set = |k: &str, v: &str| store.kv_set("default", "coupon", k, v.as_bytes()).unwrap();
    set(
        "coupon:6006501234567897",
        "v1 6006501234567897 1000 2026-01-01 redeemed:42",
    );
    set(
        "coupon:6006500000000000",
        "v1 6006500000000000 500 2025-01-31 open",
    );
    set("stats", "17");

    let list = ops.list_coupons(scope("coupon")).await.unwrap();
    assert_eq!((list.coupons.len(), list.other_values), (5, 1));
    let states: Vec<(&str, &str, &str)> = list
        .coupons
        .iter()
        .take(2)
        .map(|c| (c.number.as_str(), c.expires.as_str(), c.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("600650******0000", "2025-01-31", "expired"),
            ("600650******7897", "2026-01-01", "redeemed")
        ]
    );
    assert_eq!(list.coupons[1].redeemed_by.as_deref(), Some("42"));
    assert!(list.coupons[2..].iter().all(|c| c.state == "open"));
    let masked: Vec<&String> = list.coupons[2..].iter().map(|c| &c.number).collect();
    assert!(
        masked.windows(2).all(|w| w[0] <= w[1]),
        "sorted: {masked:?}"
    );
    for c in &issued.coupons {
        let text = serde_json::to_string(&list).unwrap();
        assert!(!text.contains(&c.number));
    }
    assert!(
        ops.list_coupons(scope("other"))
            .await
            .unwrap()
            .coupons
            .is_empty()
    );
}

#[tokio::test]
async fn bad_issues_are_refused() {
    let (_dir, store) = store();
    let ops = crate::ops::Ops::of_store(&store);
    for (request, field) in [
        (issue_request(1, "2020-01-01"), "expires"),
        (issue_request(1, "2027-02-30"), "expires"),
        (issue_request(0, &later()), "count"),
        (issue_request(MAX_ISSUE + 1, &later()), "count"),
        (
            IssueRequest {
                value_minor: 0,
                ..issue_request(1, &later())
            },
            "value_minor",
        ),
    ] {
        let e = ops.issue_coupons(request).await.unwrap_err();
        assert!(
            matches!(e, HostsError::Invalid { field: ref f, .. } if f == field),
            "{e}"
        );
    }
    assert!(
        ops.list_coupons(scope("coupon"))
            .await
            .unwrap()
            .coupons
            .is_empty()
    );
}

#[test]
fn request_bodies_name_the_bad_field() {
    let r = CardRequest::from_json(br#"{"card": "6006490000000004", "points": 5}"#, true).unwrap();
    assert_eq!(r.scope, scope("loyalty"));
    assert_eq!(r.points, Some(5));
    assert!(!format!("{r:?}").contains(CARD));
    let r = IssueRequest::from_json(
        br#"{"tenant": "acme", "plugin": "gifts", "value_minor": 2500, "expires": "2027-06-30"}"#,
    )
    .unwrap();
    assert_eq!(
        (r.scope.tenant.as_str(), r.scope.plugin.as_str(), r.count),
        ("acme", "gifts", 1)
    );
    for (body, credit, field) in [
        (
            &br#"{"card": 6006490000000004, "points": 5}"#[..],
            true,
            "card: a string",
        ),
        (br#"{"card": "6006490000000004"}"#, true, "points: missing"),
        (
            br#"{"card": "6006490000000004", "points": 1.5}"#,
            true,
            "points: a whole number",
        ),
        (
            br#"{"card": "6006490000000004", "pan": "1"}"#,
            false,
            "pan: unknown field",
        ),
        (br#"{"points": 5}"#, false, "points: unknown field"),
        (br#"{}"#, false, "card: missing"),
        (br#"{"tenant": 5, "card": "x"}"#, false, "tenant: a string"),
        (br#"["card"]"#, false, "body: a JSON object"),
        (br#"{"card": "#, false, "body: not JSON"),
    ] {
        let e = CardRequest::from_json(body, credit)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(field), "{e}");
    }
    for (body, field) in [
        (&br#"{"expires": "2027-06-30"}"#[..], "value_minor: missing"),
        (
            br#"{"value_minor": 1, "expires": "2027-06-30", "count": -1}"#,
            "count: 1 to",
        ),
        (
            br#"{"value_minor": "1", "expires": "2027-06-30"}"#,
            "value_minor: a whole",
        ),
        (br#"{"value_minor": 1}"#, "expires: missing"),
    ] {
        let e = IssueRequest::from_json(body).unwrap_err().to_string();
        assert!(e.starts_with(field), "{e}");
    }
}
