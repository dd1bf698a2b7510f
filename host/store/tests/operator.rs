//! The operator plane's ports (accounts, audit trail, webhooks' outbox) on
//! both backends through the public traits only, so that the SQLite file
//! and the shared PostgreSQL database answer alike; then what only several
//! nodes on one PostgreSQL database can show: a session made on one node
//! valid on the other, one audit chain from concurrent appends, each event
//! fanned out once and each delivery claimed by one node at a time.
//!
//! PostgreSQL: `SWITCHYARD_TEST_PG` names a server where the test may
//! create databases; without it the PostgreSQL half is skipped, unless
//! `SWITCHYARD_PG_TESTS=required`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_store::accounts::{ClientRow, SessionRow, UserRow};
use switchyard_store::audit::{ListFilter, NewRow};
use switchyard_store::operator::OperatorDb;
use switchyard_store::outbox::SubscriptionRow;
mod common;
use common::{Nodes, Session, now_ms};

const KEY: [u8; 32] = [9; 32];

/// How long a concurrent loop may run before the test gives up on it
/// (a guard against a hang, not a timing assertion).
const LOOP_GUARD: Duration = Duration::from_secs(120);

fn user(name: &str, tenant: Option<&str>) -> UserRow {
    UserRow {
        name: name.into(),
        password_hash: format!("$argon2id$hash-of-{name}"),
        password_changed_ms: 1_000,
        history: "[]".into(),
        role: "viewer".into(),
        tenant: tenant.map(str::to_owned),
        totp_secret: None,
        totp_pending: None,
        totp_last_step: 0,
        failed_logins: 0,
        locked_until_ms: 0,
        disabled: false,
        must_change: true,
        created_ms: 1_000,
    }
}

fn session(token_hash: &str, user: &str, created_ms: i64, last_seen_ms: i64) -> SessionRow {
    SessionRow {
        token_hash: token_hash.into(),
        user: user.into(),
        csrf: format!("csrf-{token_hash}"),
        created_ms,
        last_seen_ms,
        stage: "password".into(),
        origin: "127.0.0.1".into(),
    }
}

fn client(name: &str, token_hash: &str) -> ClientRow {
    ClientRow {
        name: name.into(),
        token_hash: token_hash.into(),
        role: "operator".into(),
        tenant: Some("acme".into()),
        created_ms: 2_000,
        last_used_ms: 0,
        disabled: false,
    }
}

fn subscription(source: &str, name: &str, tenant: &str, events: &str) -> SubscriptionRow {
    SubscriptionRow {
        id: 0,
        name: name.into(),
        url: format!("https://hooks.example/{name}"),
        secret: format!("whsec_{name}"),
        tenant: tenant.into(),
        events: events.into(),
        source: source.into(),
        disabled: false,
        created_ms: 0,
    }
}

fn audit_row<'a>(actor: &'a str, event: &'a str, tenant: Option<&'a str>) -> NewRow<'a> {
    NewRow {
        at_ms: 5_000,
        actor,
        actor_kind: "user",
        event,
        outcome: "success",
        origin: Some("10.0.0.1"),
        resource: "plugin:fraud",
        tenant,
        detail: "",
    }
}

/// Every port of `db`, on a fresh database.
fn operator_ports(db: &OperatorDb) {
    roles(db);
    users(db);
    sessions(db);
    clients(db);
    lockout(db);
    audit(db);
    outbox(db);
}

fn roles(db: &OperatorDb) {
    let a = &db.accounts;
    a.upsert_builtin_role("admin", r#"["old"]"#).unwrap();
    a.upsert_builtin_role("admin", r#"["*"]"#).unwrap();
    assert!(a.insert_role("auditor", r#"["audit.view"]"#).unwrap());
    assert!(!a.insert_role("auditor", r#"["other"]"#).unwrap(), "taken");
    assert!(!a.insert_role("admin", "[]").unwrap(), "a built-in's name");
    let admin = a.get_role("admin").unwrap().unwrap();
    assert_eq!(
        (admin.permissions.as_str(), admin.builtin),
        (r#"["*"]"#, true)
    );
    let auditor = a.get_role("auditor").unwrap().unwrap();
    assert_eq!(
        (auditor.permissions.as_str(), auditor.builtin),
        (r#"["audit.view"]"#, false)
    );
    assert!(a.get_role("nobody").unwrap().is_none());
    assert!(a.insert_role("billing", "[]").unwrap());
    let names: Vec<String> = a
        .list_roles()
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["admin", "auditor", "billing"], "built-ins first");
}

fn users(db: &OperatorDb) {
    let a = &db.accounts;
    let ann = user("ann", None);
    assert!(a.insert_user(&ann).unwrap());
    assert!(!a.insert_user(&user("ann", Some("acme"))).unwrap(), "taken");
    assert!(a.insert_user(&user("bob", Some("acme"))).unwrap());
    assert_eq!(a.get_user("ann").unwrap().as_ref(), Some(&ann));
    assert!(a.get_user("nobody").unwrap().is_none());
    let names: Vec<String> = a
        .list_users()
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["ann", "bob"]);

    assert!(a.set_failures("ann", 4, 99_000).unwrap());
    assert!(!a.set_failures("nobody", 1, 0).unwrap());
    let u = a.get_user("ann").unwrap().unwrap();
    assert_eq!((u.failed_logins, u.locked_until_ms), (4, 99_000));
    assert!(
        a.set_password("ann", "$argon2id$new", r#"["old"]"#, 7_000, false)
            .unwrap()
    );
    assert!(!a.set_password("nobody", "h", "[]", 1, false).unwrap());
    let u = a.get_user("ann").unwrap().unwrap();
    assert_eq!(
        (
            u.password_hash.as_str(),
            u.history.as_str(),
            u.password_changed_ms,
            u.must_change
        ),
        ("$argon2id$new", r#"["old"]"#, 7_000, false)
    );
    assert_eq!(
        (u.failed_logins, u.locked_until_ms),
        (0, 0),
        "a new password clears the failures and the lock"
    );
    assert!(a.set_role("ann", "admin").unwrap());
    assert!(!a.set_role("nobody", "admin").unwrap());
    assert!(a.set_disabled("ann", true).unwrap());
    assert!(!a.set_disabled("nobody", true).unwrap());
    let u = a.get_user("ann").unwrap().unwrap();
    assert_eq!((u.role.as_str(), u.disabled), ("admin", true));
    assert!(a.set_disabled("ann", false).unwrap());
    assert!(!a.get_user("ann").unwrap().unwrap().disabled);

    // TOTP: pending → active → steps used once → cleared.
    assert!(!a.activate_totp("ann", 100).unwrap(), "nothing pending");
    assert!(a.set_totp_pending("ann", b"sealed-secret").unwrap());
    assert!(!a.set_totp_pending("nobody", b"x").unwrap());
    let u = a.get_user("ann").unwrap().unwrap();
    assert_eq!(u.totp_pending.as_deref(), Some(&b"sealed-secret"[..]));
    assert!(u.totp_secret.is_none());
    assert!(a.activate_totp("ann", 100).unwrap());
    let u = a.get_user("ann").unwrap().unwrap();
    assert_eq!(u.totp_secret.as_deref(), Some(&b"sealed-secret"[..]));
    assert_eq!((u.totp_pending, u.totp_last_step), (None, 100));
    assert!(!a.advance_totp_step("ann", 100).unwrap(), "a replayed code");
    assert!(!a.advance_totp_step("ann", 99).unwrap(), "an older code");
    assert!(a.advance_totp_step("ann", 101).unwrap());
    assert!(!a.advance_totp_step("ann", 101).unwrap(), "used once");
    assert_eq!(a.get_user("ann").unwrap().unwrap().totp_last_step, 101);
    assert!(a.clear_totp("ann").unwrap());
    assert!(!a.clear_totp("nobody").unwrap());
    let u = a.get_user("ann").unwrap().unwrap();
    assert_eq!(
        (u.totp_secret, u.totp_pending, u.totp_last_step),
        (None, None, 0)
    );
}

fn sessions(db: &OperatorDb) {
    let a = &db.accounts;
    let s1 = session("s1", "ann", 10_000, 10_000);
    a.insert_session(&s1).unwrap();
    a.insert_session(&session("s2", "ann", 10_000, 10_000))
        .unwrap();
    a.insert_session(&session("s3", "bob", 10_000, 10_000))
        .unwrap();
    a.insert_session(&session("old", "bob", 1_000, 50_000))
        .unwrap();
    a.insert_session(&session("idle", "bob", 40_000, 2_000))
        .unwrap();
    assert_eq!(a.get_session("s1").unwrap().as_ref(), Some(&s1));
    assert!(a.get_session("nothing").unwrap().is_none());
    assert!(a.insert_session(&s1).is_err(), "one session per token");

    a.touch_session("s1", 12_000).unwrap();
    a.set_session_stage("s1", "full").unwrap();
    let s = a.get_session("s1").unwrap().unwrap();
    assert_eq!((s.last_seen_ms, s.stage.as_str()), (12_000, "full"));

    assert!(a.delete_session("s1").unwrap());
    assert!(!a.delete_session("s1").unwrap(), "already ended");
    assert_eq!(a.delete_user_sessions("ann").unwrap(), 1);
    assert!(a.get_session("s2").unwrap().is_none());
    assert_eq!(a.delete_user_sessions("ann").unwrap(), 0);
    // `old` was created too long ago, `idle` was idle too long.
    assert_eq!(a.purge_sessions(5_000, 5_000).unwrap(), 2);
    assert!(a.get_session("old").unwrap().is_none());
    assert!(a.get_session("idle").unwrap().is_none());
    assert!(a.get_session("s3").unwrap().is_some());
    assert_eq!(a.delete_user_sessions("bob").unwrap(), 1);
}

fn clients(db: &OperatorDb) {
    let a = &db.accounts;
    let cli = client("cli", "hash-1");
    assert!(a.insert_client(&cli).unwrap());
    assert!(
        !a.insert_client(&client("cli", "hash-other")).unwrap(),
        "taken"
    );
    assert!(a.insert_client(&client("batch", "hash-2")).unwrap());
    assert_eq!(a.get_client("cli").unwrap().as_ref(), Some(&cli));
    assert_eq!(
        a.client_by_token_hash("hash-1").unwrap().as_ref(),
        Some(&cli)
    );
    assert!(a.client_by_token_hash("hash-other").unwrap().is_none());
    assert!(a.get_client("nobody").unwrap().is_none());

    a.touch_client("cli", 3_000).unwrap();
    assert_eq!(a.get_client("cli").unwrap().unwrap().last_used_ms, 3_000);
    assert!(a.revoke_client("cli").unwrap());
    assert!(!a.revoke_client("cli").unwrap(), "no longer live");
    assert!(!a.revoke_client("nobody").unwrap());
    assert!(a.get_client("cli").unwrap().unwrap().disabled);

    // The CLI's own client, from its token file: a new token, live again.
    let mut renewed = client("cli", "hash-3");
    renewed.role = "admin".into();
    renewed.tenant = None;
    renewed.disabled = true;
    a.upsert_client(&renewed).unwrap();
    let c = a.get_client("cli").unwrap().unwrap();
    assert_eq!(
        (
            c.token_hash.as_str(),
            c.role.as_str(),
            c.tenant.as_deref(),
            c.disabled
        ),
        ("hash-3", "admin", None, false)
    );
    assert!(a.client_by_token_hash("hash-1").unwrap().is_none());
    a.upsert_client(&client("fresh", "hash-4")).unwrap();
    let names: Vec<String> = a
        .list_clients()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["batch", "cli", "fresh"]);
}

/// `carl` (tenant `acme`) fails three times at a limit of 3: locked, his
/// sessions ended, one `user.locked_out` event (checked by [`outbox`]).
fn lockout(db: &OperatorDb) {
    let a = &db.accounts;
    assert!(a.insert_user(&user("carl", Some("acme"))).unwrap());
    a.insert_session(&session("c1", "carl", 10_000, 10_000))
        .unwrap();
    a.insert_session(&session("c2", "carl", 10_000, 10_000))
        .unwrap();
    for failures in 1..=2 {
        assert!(!a.record_failure("carl", 3, 777_000, "10.1.1.1").unwrap());
        let u = a.get_user("carl").unwrap().unwrap();
        assert_eq!((u.failed_logins, u.locked_until_ms), (failures, 0));
    }
    assert!(a.get_session("c1").unwrap().is_some(), "not locked yet");
    assert!(a.record_failure("carl", 3, 777_000, "10.1.1.1").unwrap());
    let u = a.get_user("carl").unwrap().unwrap();
    assert_eq!((u.failed_logins, u.locked_until_ms), (0, 777_000));
    assert!(a.get_session("c1").unwrap().is_none(), "sessions ended");
    assert!(a.get_session("c2").unwrap().is_none());
    assert!(!a.record_failure("nobody", 3, 777_000, "10.1.1.1").unwrap());
    assert!(a.get_user("nobody").unwrap().is_none());
}

fn audit(db: &OperatorDb) {
    let au = &db.audit;
    assert_eq!(au.count().unwrap(), 0);
    assert_eq!(au.actor_kind("system").unwrap(), "system");
    assert_eq!(au.actor_kind("ann").unwrap(), "user");
    assert_eq!(au.actor_kind("batch").unwrap(), "api_client");
    assert_eq!(au.actor_kind("mallory").unwrap(), "unknown");
    let empty = au.verify(&KEY, None).unwrap();
    assert!(empty.ok && empty.rows == 0 && empty.head.is_none());

    let r1 = au
        .append(&KEY, &audit_row("ann", "plugin.swap", None), None)
        .unwrap();
    let r2 = au
        .append(
            &KEY,
            &audit_row("bob", "login.failed", Some("acme")),
            Some("acme"),
        )
        .unwrap();
    let r3 = au
        .append(&KEY, &audit_row("ann", "user.created", Some("acme")), None)
        .unwrap();
    assert_eq!((r1.seq, r2.seq, r3.seq), (1, 2, 3));
    assert_eq!(r1.prev_hash, switchyard_store::audit::GENESIS);
    assert_eq!((&r2.prev_hash, &r3.prev_hash), (&r1.hash, &r2.hash));
    assert_eq!(
        (r2.actor.as_str(), r2.event.as_str(), r2.tenant.as_deref()),
        ("bob", "login.failed", Some("acme"))
    );
    assert_eq!(au.count().unwrap(), 3);

    let all = au
        .list(&ListFilter {
            limit: 100,
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(all, [r3.clone(), r2.clone(), r1.clone()], "newest first");
    let seqs = |f: ListFilter| -> Vec<i64> { au.list(&f).unwrap().iter().map(|r| r.seq).collect() };
    let f = |limit| ListFilter {
        limit,
        ..ListFilter::default()
    };
    assert_eq!(
        seqs(ListFilter {
            tenant: Some("acme".into()),
            ..f(100)
        }),
        [3, 2]
    );
    assert_eq!(
        seqs(ListFilter {
            actor: Some("ann".into()),
            ..f(100)
        }),
        [3, 1]
    );
    assert_eq!(
        seqs(ListFilter {
            event: Some("login.failed".into()),
            ..f(100)
        }),
        [2]
    );
    assert_eq!(
        seqs(ListFilter {
            from_ms: Some(5_000),
            to_ms: Some(5_001),
            ..f(100)
        }),
        [3, 2, 1]
    );
    assert!(
        seqs(ListFilter {
            to_ms: Some(5_000),
            ..f(100)
        })
        .is_empty(),
        "to_ms is exclusive"
    );
    assert_eq!(seqs(f(2)), [3, 2]);

    let report = au.verify(&KEY, None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.rows, 3);
    assert_eq!(report.head, Some((3, r3.hash.clone())));
    assert!(au.verify(&KEY, Some((2, r2.hash.clone()))).unwrap().ok);
    let outside_wrong = au.verify(&KEY, Some((2, r1.hash.clone()))).unwrap();
    assert!(!outside_wrong.ok, "a checkpoint that does not match");
    let wrong_key = au.verify(&[8; 32], None).unwrap();
    assert_eq!(wrong_key.first_bad.map(|b| b.0), Some(1), "another key");

    assert_eq!(au.claim_key_fingerprint("audit", "fp-1").unwrap(), "fp-1");
    assert_eq!(
        au.claim_key_fingerprint("audit", "fp-2").unwrap(),
        "fp-1",
        "the first key's fingerprint stays"
    );
    assert_eq!(au.claim_key_fingerprint("admin", "fp-9").unwrap(), "fp-9");
}

/// After [`lockout`] and [`audit`]: two events are waiting (`user.locked_out`
/// and `audit.alert`, both of `acme`).
fn outbox(db: &OperatorDb) {
    let o = &db.outbox;
    let lockouts = o
        .upsert_subscription(&subscription(
            "api",
            "lockouts",
            "acme",
            r#"["user.locked_out"]"#,
        ))
        .unwrap();
    assert_eq!(
        o.upsert_subscription(&subscription(
            "api",
            "lockouts",
            "acme",
            r#"["user.locked_out"]"#
        ))
        .unwrap(),
        lockouts,
        "one row per (source, name)"
    );
    let alerts = o
        .upsert_subscription(&subscription("api", "alerts", "*", r#"["audit.alert"]"#))
        .unwrap();
    let other_tenant = o
        .upsert_subscription(&subscription("api", "globex", "globex", r#"["*"]"#))
        .unwrap();

    // The config's subscriptions: written, then one of them dropped.
    let everything = subscription("config", "everything", "*", r#"["*"]"#);
    let gone = subscription("config", "gone", "acme", r#"["*"]"#);
    o.sync_config(&[everything.clone(), gone.clone()]).unwrap();
    let names = |o: &Arc<dyn switchyard_store::operator::OutboxDb>| -> Vec<(String, String)> {
        o.subscriptions()
            .unwrap()
            .into_iter()
            .map(|s| (s.source, s.name))
            .collect()
    };
    let pair = |s: &str, n: &str| (s.to_string(), n.to_string());
    assert_eq!(
        names(o),
        [
            pair("api", "lockouts"),
            pair("api", "alerts"),
            pair("api", "globex"),
            pair("config", "everything"),
            pair("config", "gone"),
        ]
    );
    o.sync_config(std::slice::from_ref(&everything)).unwrap();
    assert_eq!(
        names(o),
        [
            pair("api", "lockouts"),
            pair("api", "alerts"),
            pair("api", "globex"),
            pair("config", "everything"),
        ],
        "what left the config is deleted"
    );
    let all = o.subscriptions().unwrap();
    let everything_id = all.iter().find(|s| s.name == "everything").unwrap().id;
    let row = o.subscription_by_id(everything_id).unwrap().unwrap();
    assert_eq!(
        (row.url.as_str(), row.tenant.as_str(), row.disabled),
        ("https://hooks.example/everything", "*", false)
    );
    assert!(
        o.subscription_by_id(everything_id + 1000)
            .unwrap()
            .is_none()
    );

    let shipped = o
        .insert_event("acme", "order.shipped", r#"{"n":1}"#)
        .unwrap();
    assert!(shipped.starts_with("msg_"));
    let e = o.event(&shipped).unwrap().unwrap();
    assert_eq!(
        (e.tenant.as_str(), e.event_type.as_str(), e.payload.as_str()),
        ("acme", "order.shipped", r#"{"n":1}"#)
    );
    assert!(e.seq > 0);
    assert!(o.event("msg_none").unwrap().is_none());

    // Fan-out: the lockout, the alert and the shipment, once.
    assert_eq!(o.fan_out(100, 0).unwrap(), 3);
    assert_eq!(o.fan_out(100, 0).unwrap(), 0, "fanned out once");
    let of = |sub: i64| o.deliveries(Some(sub), 100).unwrap();
    let locked = of(lockouts);
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert_eq!(
        (
            locked[0].event_type.as_str(),
            locked[0].tenant.as_str(),
            locked[0].state.as_str(),
            locked[0].attempts
        ),
        ("user.locked_out", "acme", "pending", 0)
    );
    let event = o.event(&locked[0].event_id).unwrap().unwrap();
    let data: serde_json::Value = serde_json::from_str(&event.payload).unwrap();
    assert_eq!(
        (
            &data["user"],
            &data["tenant"],
            &data["failures"],
            &data["origin"]
        ),
        (
            &serde_json::json!("carl"),
            &serde_json::json!("acme"),
            &serde_json::json!(3),
            &serde_json::json!("10.1.1.1")
        )
    );
    let alerted = of(alerts);
    assert_eq!(alerted.len(), 1, "{alerted:?}");
    assert_eq!(alerted[0].event_type, "audit.alert");
    let alert = o.event(&alerted[0].event_id).unwrap().unwrap();
    assert_eq!(alert.tenant, "acme");
    let data: serde_json::Value = serde_json::from_str(&alert.payload).unwrap();
    assert_eq!(
        (&data["seq"], &data["actor"]),
        (&serde_json::json!(2), &serde_json::json!("bob"))
    );
    assert!(of(other_tenant).is_empty(), "another tenant's");
    let types: HashSet<String> = of(everything_id)
        .into_iter()
        .map(|d| d.event_type)
        .collect();
    assert_eq!(
        types,
        HashSet::from([
            "user.locked_out".into(),
            "audit.alert".into(),
            "order.shipped".into()
        ])
    );
    assert_eq!(o.deliveries(None, 100).unwrap().len(), 5);

    // Claims: every due delivery once, again only after the lease.
    let far = now_ms() + 10_000;
    let claimed = o.claim_due(far, far + 60_000, 100).unwrap();
    assert_eq!(claimed.len(), 5);
    let ids: HashSet<i64> = claimed.iter().map(|c| c.0).collect();
    assert_eq!(ids.len(), 5);
    assert!(claimed.iter().all(|c| c.3 == 0), "no attempt yet");
    assert!(
        o.claim_due(far, far + 60_000, 100).unwrap().is_empty(),
        "leased"
    );
    assert_eq!(o.next_due().unwrap(), Some(far + 60_000));
    let again = o.claim_due(far + 60_000, far + 120_000, 2).unwrap();
    assert_eq!(again.len(), 2, "the lease passed; the limit holds");
    assert_eq!(
        o.claim_due(far + 60_000, far + 120_000, 100).unwrap().len(),
        3
    );

    // An attempt, then a 410 that disables `everything`.
    let lock_delivery = locked[0].id;
    o.record_attempt(lock_delivery, "delivered", 0, Some(200), None)
        .unwrap();
    let d = &of(lockouts)[0];
    assert_eq!(
        (
            d.state.as_str(),
            d.attempts,
            d.last_status,
            d.last_error.as_deref()
        ),
        ("delivered", 1, Some(200), None)
    );
    let alert_delivery = alerted[0].id;
    o.record_attempt(
        alert_delivery,
        "pending",
        far + 500,
        Some(503),
        Some("HTTP 503"),
    )
    .unwrap();
    let d = &of(alerts)[0];
    assert_eq!(
        (
            d.state.as_str(),
            d.attempts,
            d.next_ms,
            d.last_status,
            d.last_error.as_deref()
        ),
        ("pending", 1, far + 500, Some(503), Some("HTTP 503"))
    );
    assert_eq!(o.next_due().unwrap(), Some(far + 500));

    let first = of(everything_id).last().unwrap().id;
    let sub = o.disable_after(first, everything_id, 410).unwrap().unwrap();
    assert_eq!((sub.id, sub.disabled), (everything_id, true));
    let ds = of(everything_id);
    assert!(ds.iter().all(|d| d.state == "disabled"), "{ds:?}");
    let d = ds.iter().find(|d| d.id == first).unwrap();
    assert_eq!(
        (d.attempts, d.last_status, d.last_error.as_deref()),
        (1, Some(410), Some("HTTP 410"))
    );
    assert!(ds.iter().filter(|d| d.id != first).all(|d| d.attempts == 0));
    assert_eq!(
        o.next_due().unwrap(),
        Some(far + 500),
        "only the alert is left"
    );

    // The same URL and secret keep it disabled; a new secret enables it.
    o.sync_config(std::slice::from_ref(&everything)).unwrap();
    assert!(
        o.subscription_by_id(everything_id)
            .unwrap()
            .unwrap()
            .disabled
    );
    let mut rotated = everything.clone();
    rotated.secret = "whsec_rotated".into();
    assert_eq!(o.upsert_subscription(&rotated).unwrap(), everything_id);
    let row = o.subscription_by_id(everything_id).unwrap().unwrap();
    assert_eq!(
        (row.secret.as_str(), row.disabled),
        ("whsec_rotated", false)
    );

    // A deleted subscription's pending deliveries become `disabled`.
    let later = o.insert_event("acme", "order.shipped", "{}").unwrap();
    assert_eq!(o.fan_out(100, 1_000).unwrap(), 1);
    let newest = &of(everything_id)[0];
    assert_eq!(
        (newest.event_id.as_str(), newest.state.as_str()),
        (later.as_str(), "pending")
    );
    assert!(o.delete_subscription(everything_id).unwrap());
    assert!(
        !o.delete_subscription(everything_id).unwrap(),
        "gone already"
    );
    assert!(o.subscription_by_id(everything_id).unwrap().is_none());
    let left = of(everything_id);
    assert_eq!(left[0].id, newest.id);
    assert_eq!(left[0].state, "disabled");
    assert_eq!(
        left[0].tenant, "acme",
        "the event's tenant once the subscription is gone"
    );
    assert!(o.delete_subscription(alerts).unwrap());
    assert_eq!(of(alerts)[0].state, "disabled", "pending → disabled");
    assert_eq!(
        of(lockouts)[0].state,
        "delivered",
        "delivered stays delivered"
    );
    assert_eq!(o.next_due().unwrap(), None);

    let newest_two = o.deliveries(None, 2).unwrap();
    assert_eq!(newest_two.len(), 2);
    assert!(newest_two[0].id > newest_two[1].id, "newest first");
    assert_eq!(newest_two[0].id, newest.id);
}

#[test]
fn the_operator_ports_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = OperatorDb::sqlite(&dir.path().join("switchyard.db")).unwrap();
    // One node: the operator keys are the process's key files.
    assert_eq!(db.audit.shared_key("admin", &[7; 32]).unwrap(), None);
    assert!(!db.shared);
    operator_ports(&db);
}

#[test]
fn the_operator_ports_on_postgres() {
    let Some(nodes) = Nodes::new("ports") else {
        return;
    };
    let store = nodes.open("a");
    let db = OperatorDb::postgres(&store);
    assert!(db.shared);
    operator_ports(&db);
    store.close();
    assert!(
        matches!(
            db.accounts.get_user("ann"),
            Err(switchyard_store::StoreError::Closed)
        ),
        "a closed store answers Closed"
    );
}

#[test]
fn sessions_and_the_audit_chain_span_nodes() {
    let Some(nodes) = Nodes::new("chain") else {
        return;
    };
    let (a, b) = (nodes.open("a"), nodes.open("b"));
    let (da, db) = (OperatorDb::postgres(&a), OperatorDb::postgres(&b));
    da.accounts.insert_user(&user("ann", None)).unwrap();
    let s = session("tok", "ann", 1_000, 1_000);
    da.accounts.insert_session(&s).unwrap();
    assert_eq!(db.accounts.get_session("tok").unwrap().as_ref(), Some(&s));
    db.accounts.delete_user_sessions("ann").unwrap();
    assert!(da.accounts.get_session("tok").unwrap().is_none());

    // The operator keys: the first node's candidate, for every node.
    let first = da.audit.shared_key("admin", &[7; 32]).unwrap();
    assert_eq!(first, Some([7; 32]));
    assert_eq!(db.audit.shared_key("admin", &[9; 32]).unwrap(), first);
    assert_eq!(
        db.audit.shared_key("audit", &[9; 32]).unwrap(),
        Some([9; 32])
    );
    // Kept wrapped by the KEK, never in the clear.
    let stored =
        Session::new(&nodes.url).sql("SELECT value FROM meta WHERE name = 'admin_key_wrapped'");
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(&hex::encode([7u8; 32])), "{stored:?}");

    // One thread per node, 50 appends each: one chain of 100.
    let deadline = Instant::now() + LOOP_GUARD;
    std::thread::scope(|sc| {
        for (node, d) in [("a", &da), ("b", &db)] {
            sc.spawn(move || {
                for i in 0..50 {
                    assert!(Instant::now() < deadline, "appends on {node} hung");
                    let detail = format!("{node}-{i}");
                    let row = NewRow {
                        detail: &detail,
                        ..audit_row("system", "node.append", None)
                    };
                    d.audit.append(&KEY, &row, None).unwrap();
                }
            });
        }
    });
    assert_eq!(da.audit.count().unwrap(), 100);
    let rows = db
        .audit
        .list(&ListFilter {
            limit: 1_000,
            ..ListFilter::default()
        })
        .unwrap();
    let mut seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    seqs.reverse();
    assert_eq!(seqs, (1..=100).collect::<Vec<i64>>());
    for d in [&da, &db] {
        let report = d.audit.verify(&KEY, None).unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.rows, 100);
        assert_eq!(report.head.map(|h| h.0), Some(100));
    }
    for detail in ["a-49", "b-49"] {
        assert!(rows.iter().any(|r| r.detail == detail), "{detail} appended");
    }
    a.close();
    b.close();
}

#[test]
fn events_are_fanned_out_and_deliveries_claimed_once_across_nodes() {
    let Some(nodes) = Nodes::new("fan_out") else {
        return;
    };
    let (a, b) = (nodes.open("a"), nodes.open("b"));
    let (da, db) = (OperatorDb::postgres(&a), OperatorDb::postgres(&b));
    da.outbox
        .upsert_subscription(&subscription("api", "all", "*", r#"["*"]"#))
        .unwrap();
    db.outbox
        .upsert_subscription(&subscription("api", "acme", "acme", r#"["order.shipped"]"#))
        .unwrap();
    db.outbox
        .upsert_subscription(&subscription("api", "none", "globex", r#"["*"]"#))
        .unwrap();
    for i in 0..200 {
        let d = if i % 2 == 0 { &da } else { &db };
        d.outbox
            .insert_event("acme", "order.shipped", &format!("{{\"n\":{i}}}"))
            .unwrap();
    }

    // Both nodes fan out in small batches until neither finds an event.
    let deadline = Instant::now() + LOOP_GUARD;
    let fanned: Vec<usize> = std::thread::scope(|sc| {
        let runs: Vec<_> = [("a", &da), ("b", &db)]
            .into_iter()
            .map(|(node, d)| {
                sc.spawn(move || {
                    let mut total = 0;
                    for _ in 0..10_000 {
                        assert!(Instant::now() < deadline, "fan-out on {node} hung");
                        match d.outbox.fan_out(7, 0).unwrap() {
                            0 => return total,
                            n => total += n,
                        }
                    }
                    panic!("fan-out on {node} did not finish");
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(fanned.iter().sum::<usize>(), 200, "{fanned:?}");
    let sql = Session::new(&nodes.url);
    assert_eq!(
        sql.sql(
            "SELECT count(*) FROM webhook_deliveries;
             SELECT count(DISTINCT (event_id, subscription)) FROM webhook_deliveries;
             SELECT count(*) FROM webhook_events WHERE NOT fanned;
             SELECT count(*) FROM webhook_deliveries d JOIN webhook_subscriptions s
                 ON s.id = d.subscription WHERE s.name = 'none'"
        ),
        ["400", "400", "0", "0"],
        "one delivery per event and matching subscription"
    );
    assert_eq!(da.outbox.fan_out(100, 0).unwrap(), 0);

    // Both nodes claim concurrently: no delivery is claimed twice.
    let far = now_ms() + 10_000;
    let claims: Vec<Vec<i64>> = std::thread::scope(|sc| {
        let runs: Vec<_> = [("a", &da), ("b", &db)]
            .into_iter()
            .map(|(node, d)| {
                sc.spawn(move || {
                    let mut ids = Vec::new();
                    for _ in 0..10_000 {
                        assert!(Instant::now() < deadline, "claims on {node} hung");
                        let got = d.outbox.claim_due(far, far + 600_000, 13).unwrap();
                        if got.is_empty() {
                            return ids;
                        }
                        ids.extend(got.into_iter().map(|c| c.0));
                    }
                    panic!("claims on {node} did not finish");
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let total: usize = claims.iter().map(Vec::len).sum();
    let distinct: HashSet<i64> = claims.iter().flatten().copied().collect();
    assert_eq!((total, distinct.len()), (400, 400), "each claimed once");
    assert!(
        da.outbox
            .claim_due(far, far + 600_000, 1_000)
            .unwrap()
            .is_empty()
    );
    assert_eq!(db.outbox.next_due().unwrap(), Some(far + 600_000));
    a.close();
    b.close();
}
