//! The accounts at library level: password policy, Argon2id, history,
//! expiry, lockout, TOTP, session expiry, CSRF, tokens hashed at rest.
//! The clock is a parameter (`now_ms`); no test sleeps.

use std::net::{IpAddr, Ipv4Addr};

use switchyard_store::operator::OperatorDb;

use switchyard_admin::accounts::{
    Accounts, AccountsError, Gate, HashCost, Login, Policy, Rule, SessionEnd, TotpLogin, password,
    sessions, totp,
};

const T0: i64 = 1_800_000_000_000;
const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;
const GOOD: &str = "correct horse 42 battery";
const ORIGIN: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn policy() -> Policy {
    Policy {
        hash_cost: HashCost::for_tests(),
        ..Policy::default()
    }
}

fn open(dir: &tempfile::TempDir, policy: Policy) -> Accounts {
    let db = dir.path().join("switchyard.db");
    let store = OperatorDb::sqlite(&db).expect("the operator tables");
    Accounts::open(&store, &dir.path().join("keys"), policy).expect("open")
}

fn setup() -> (tempfile::TempDir, Accounts) {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir, policy());
    a.add_user("alice", GOOD, "operator", None, false, T0)
        .unwrap();
    (dir, a)
}

fn token_of(login: Login) -> (String, Option<Gate>) {
    match login {
        Login::Ok { token, gate } => (token, gate),
        other => panic!("expected a session, got {other:?}"),
    }
}

#[test]
fn policy_lists_every_rule_broken() {
    let p = Policy::default();
    assert_eq!(
        password::check_strength(&p, "short"),
        vec![Rule::TooShort(12), Rule::NoDigit]
    );
    assert_eq!(
        password::check_strength(&p, "123456789012"),
        vec![Rule::NoLetter]
    );
    assert_eq!(
        password::check_strength(&p, "!!!!"),
        vec![Rule::TooShort(12), Rule::NoLetter, Rule::NoDigit]
    );
    assert_eq!(
        password::check_strength(&p, "abcdefghijkl"),
        vec![Rule::NoDigit]
    );
    assert!(password::check_strength(&p, "abcdefghijk1").is_empty());
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir, policy());
    let e = a
        .add_user("bob", "!!!!", "viewer", None, false, T0)
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, AccountsError::Policy(ref r) if r.len() == 3),
        "{msg}"
    );
    for rule in ["at least 12 characters", "letter", "digit"] {
        assert!(msg.contains(rule), "{msg}");
    }
}

#[test]
fn argon2id_round_trip_with_default_cost() {
    let phc = password::hash(&HashCost::default(), GOOD);
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(password::verify(&phc, GOOD));
    assert!(!password::verify(&phc, "correct horse 42 batterz"));
    assert!(!password::verify("not a hash", GOOD));
    // A random salt: the same password hashes differently.
    let again = password::hash(&HashCost::for_tests(), GOOD);
    assert_ne!(again, password::hash(&HashCost::for_tests(), GOOD));
}

#[test]
fn duplicate_user_unknown_role_and_bad_names_are_refused() {
    let (_dir, a) = setup();
    assert!(matches!(
        a.add_user("alice", GOOD, "viewer", None, false, T0),
        Err(AccountsError::Exists { .. })
    ));
    assert!(matches!(
        a.add_user("carol", GOOD, "nosuch", None, false, T0),
        Err(AccountsError::NotFound { kind: "role", .. })
    ));
    assert!(matches!(
        a.add_user("a b", GOOD, "viewer", None, false, T0),
        Err(AccountsError::BadName(_))
    ));
}

#[test]
fn a_password_is_none_of_the_last_four() {
    let (_dir, a) = setup();
    let pw = |i: u32| format!("password number {i}");
    a.change_password("alice", GOOD, &pw(2), T0).unwrap();
    a.change_password("alice", &pw(2), &pw(3), T0).unwrap();
    a.change_password("alice", &pw(3), &pw(4), T0).unwrap();
    // History: GOOD, 2, 3, 4 — each refused.
    for old in [GOOD.to_owned(), pw(2), pw(3), pw(4)] {
        let e = a.change_password("alice", &pw(4), &old, T0).unwrap_err();
        assert!(
            matches!(e, AccountsError::Policy(ref r) if r == &[Rule::Reused(4)]),
            "{e}"
        );
    }
    assert!(matches!(
        a.change_password("alice", "wrong current 1", &pw(5), T0),
        Err(AccountsError::WrongPassword)
    ));
    a.change_password("alice", &pw(4), &pw(5), T0).unwrap();
    // GOOD left the last four.
    a.change_password("alice", &pw(5), GOOD, T0).unwrap();
}

#[test]
fn an_expired_password_must_be_changed_at_the_next_sign_in() {
    let (_dir, a) = setup();
    let (_, gate) = token_of(a.login("alice", GOOD, ORIGIN, T0 + 89 * DAY).unwrap());
    assert_eq!(gate, None);
    let later = T0 + 91 * DAY;
    let (token, gate) = token_of(a.login("alice", GOOD, ORIGIN, later).unwrap());
    assert_eq!(gate, Some(Gate::Password));
    let s = a.session(&token, later).unwrap();
    assert_eq!(s.gate, Some(Gate::Password));
    assert!(s.permissions.is_empty(), "no permissions before the change");
    a.change_password("alice", GOOD, "a new password 7", later)
        .unwrap();
    let s = a.session(&token, later + 1).unwrap();
    assert_eq!(s.gate, None);
    assert!(!s.permissions.is_empty());
}

#[test]
fn a_reset_forces_a_change_and_ends_sessions() {
    let (_dir, a) = setup();
    let (token, _) = token_of(a.login("alice", GOOD, ORIGIN, T0).unwrap());
    a.reset_password("alice", "temporary pass 1", T0).unwrap();
    assert_eq!(a.session(&token, T0).unwrap_err(), SessionEnd::Unknown);
    let (_, gate) = token_of(a.login("alice", "temporary pass 1", ORIGIN, T0).unwrap());
    assert_eq!(gate, Some(Gate::Password));
    assert!(a.get_user("alice", T0).unwrap().unwrap().must_change);
}

#[test]
fn ten_failures_lock_for_thirty_minutes_and_emit_an_event() {
    let (dir, a) = setup();
    for i in 1..=10 {
        let r = a
            .login("alice", "wrong password 1", ORIGIN, T0 + i)
            .unwrap();
        assert_eq!(
            r,
            Login::Failed {
                locked_now: i == 10
            },
            "attempt {i}"
        );
    }
    // Locked: even the right password is refused, until 30 minutes pass.
    assert_eq!(
        a.login("alice", GOOD, ORIGIN, T0 + 20 * MIN).unwrap(),
        Login::Locked(T0 + 10 + 30 * MIN)
    );
    let events: Vec<(String, String, String)> = {
        let c = rusqlite::Connection::open(dir.path().join("switchyard.db")).unwrap();
        let mut s = c
            .prepare("SELECT tenant, event_type, payload FROM webhook_events")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "default");
    assert_eq!(events[0].1, "user.locked_out");
    assert!(
        events[0].2.contains("\"user\":\"alice\""),
        "{}",
        events[0].2
    );
    let view = a.get_user("alice", T0 + 20 * MIN).unwrap().unwrap();
    assert_eq!(view.locked_until_ms, Some(T0 + 10 + 30 * MIN));
    let (_, gate) = token_of(a.login("alice", GOOD, ORIGIN, T0 + 31 * MIN).unwrap());
    assert_eq!(gate, None);
}

#[test]
fn an_unlock_lifts_the_lock_and_an_unknown_user_fails_alike() {
    let (_dir, a) = setup();
    for i in 0..10 {
        a.login("alice", "wrong password 1", ORIGIN, T0 + i)
            .unwrap();
    }
    a.unlock("alice").unwrap();
    token_of(a.login("alice", GOOD, ORIGIN, T0 + MIN).unwrap());
    assert_eq!(
        a.login("nobody", GOOD, ORIGIN, T0).unwrap(),
        Login::Failed { locked_now: false }
    );
    a.set_disabled("alice", true).unwrap();
    assert!(matches!(
        a.login("alice", GOOD, ORIGIN, T0).unwrap(),
        Login::Failed { .. }
    ));
}

fn enrol(a: &Accounts, user: &str, now: i64) -> Vec<u8> {
    let (uri, b32) = a.begin_totp(user).unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains("issuer=Switchyard"), "{uri}");
    let secret = totp::secret_from_base32(&b32).unwrap();
    assert_eq!(secret.len(), 20);
    // A wrong code does not enrol.
    let wrong = if totp::code_at_step(&secret, totp::step_of(now)) == "000000" {
        "000001"
    } else {
        "000000"
    };
    assert!(matches!(
        a.confirm_totp(user, wrong, now),
        Err(AccountsError::WrongCode)
    ));
    assert!(!a.get_user(user, now).unwrap().unwrap().totp);
    let code = totp::code_at_step(&secret, totp::step_of(now));
    a.confirm_totp(user, &code, now).unwrap();
    assert!(a.get_user(user, now).unwrap().unwrap().totp);
    secret
}

#[test]
fn totp_accepts_a_code_once_within_one_step_of_skew() {
    let (dir, a) = setup();
    let secret = enrol(&a, "alice", T0);
    let s0 = totp::step_of(T0);
    let at = |step: u64| step as i64 * 30_000 + 1;
    let code = |step: u64| totp::code_at_step(&secret, step);

    // The enrolment's code is used: it does not sign in.
    let (token, gate) = token_of(a.login("alice", GOOD, ORIGIN, at(s0)).unwrap());
    assert_eq!(gate, Some(Gate::Totp));
    assert_eq!(
        a.login_totp(&token, &code(s0), ORIGIN, at(s0)).unwrap(),
        TotpLogin::Failed { locked_now: false }
    );
    // Five steps on: one step behind is accepted …
    let now = at(s0 + 5);
    assert_eq!(
        a.login_totp(&token, &code(s0 + 4), ORIGIN, now).unwrap(),
        TotpLogin::Ok(None)
    );
    assert_eq!(a.session(&token, now).unwrap().gate, None);
    // … never twice, and not two steps behind; one step ahead is.
    let (t2, _) = token_of(a.login("alice", GOOD, ORIGIN, now).unwrap());
    for stale in [s0 + 4, s0 + 3] {
        assert_eq!(
            a.login_totp(&t2, &code(stale), ORIGIN, now).unwrap(),
            TotpLogin::Failed { locked_now: false }
        );
    }
    assert_eq!(
        a.login_totp(&t2, &code(s0 + 6), ORIGIN, now).unwrap(),
        TotpLogin::Ok(None)
    );
    let (t3, _) = token_of(a.login("alice", GOOD, ORIGIN, now).unwrap());
    assert_eq!(
        a.login_totp(&t3, &code(s0 + 5), ORIGIN, now).unwrap(),
        TotpLogin::Failed { locked_now: false },
        "a step before the last one accepted"
    );
    // The secret is sealed at rest.
    let raw = db_bytes(&dir);
    assert!(!contains(&raw, &secret));
    assert!(!contains(&raw, totp::base32(&secret).as_bytes()));
}

#[test]
fn required_totp_gates_the_first_sign_in_on_enrolment() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(
        &dir,
        Policy {
            require_totp: true,
            ..policy()
        },
    );
    a.add_user("bob", GOOD, "viewer", Some("t1"), false, T0)
        .unwrap();
    let (token, gate) = token_of(a.login("bob", GOOD, ORIGIN, T0).unwrap());
    assert_eq!(gate, Some(Gate::Enrol));
    assert_eq!(a.session(&token, T0).unwrap().gate, Some(Gate::Enrol));
    enrol(&a, "bob", T0);
    a.mark_totp_passed(&token).unwrap();
    let s = a.session(&token, T0 + 1).unwrap();
    assert_eq!(s.gate, None);
    assert_eq!(s.tenant.as_deref(), Some("t1"));
}

#[test]
fn an_idle_session_ends_and_logout_deletes_it() {
    let (_dir, a) = setup();
    let (token, _) = token_of(a.login("alice", GOOD, ORIGIN, T0).unwrap());
    let s = a.session(&token, T0 + 14 * MIN).unwrap();
    assert_eq!(s.user, "alice");
    assert_eq!(s.role, "operator");
    // 14 minutes after the last request: still on; 16: ended.
    a.session(&token, T0 + 28 * MIN).unwrap();
    assert_eq!(
        a.session(&token, T0 + 44 * MIN + 1).unwrap_err(),
        SessionEnd::Expired
    );
    assert_eq!(
        a.session(&token, T0 + 44 * MIN + 2).unwrap_err(),
        SessionEnd::Unknown
    );
    let (t2, _) = token_of(a.login("alice", GOOD, ORIGIN, T0).unwrap());
    assert_eq!(a.logout(&t2).unwrap().as_deref(), Some("alice"));
    assert_eq!(a.session(&t2, T0).unwrap_err(), SessionEnd::Unknown);
}

#[test]
fn a_session_ends_after_twelve_hours_however_busy() {
    let (_dir, a) = setup();
    let (token, _) = token_of(a.login("alice", GOOD, ORIGIN, T0).unwrap());
    let mut now = T0;
    while now <= T0 + 12 * 60 * MIN {
        a.session(&token, now).unwrap();
        now += 10 * MIN;
    }
    assert_eq!(a.session(&token, now).unwrap_err(), SessionEnd::Expired);
}

#[test]
fn csrf_token_is_checked_per_session() {
    let (_dir, a) = setup();
    let (token, _) = token_of(a.login("alice", GOOD, ORIGIN, T0).unwrap());
    let (other, _) = token_of(a.login("alice", GOOD, ORIGIN, T0).unwrap());
    let csrf = a.session(&token, T0).unwrap().csrf;
    assert_eq!(csrf.len(), 64);
    assert!(a.check_csrf(&token, &csrf));
    assert!(!a.check_csrf(&token, ""));
    assert!(!a.check_csrf(&token, &csrf[..63]));
    assert!(!a.check_csrf(&other, &csrf), "another session's token");
    assert!(!a.check_csrf("no such session", &csrf));
    // What the layer reads: the form field, the header, the cookie.
    let body = format!("name=x&csrf={csrf}&role=viewer");
    assert_eq!(
        sessions::form_field(&body, "csrf").as_deref(),
        Some(csrf.as_str())
    );
    assert_eq!(
        sessions::form_field("a=b%20c+d", "a").as_deref(),
        Some("b c d")
    );
    let mut h = axum::http::HeaderMap::new();
    h.insert(
        "cookie",
        format!("x=1; sy_session={token}; y=2").parse().unwrap(),
    );
    assert_eq!(sessions::session_token(&h).as_deref(), Some(token.as_str()));
    let cookie = sessions::set_cookie(&token);
    let cookie = cookie.to_str().unwrap();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
}

fn db_bytes(dir: &tempfile::TempDir) -> Vec<u8> {
    let mut raw = Vec::new();
    for name in ["switchyard.db", "switchyard.db-wal"] {
        if let Ok(b) = std::fs::read(dir.path().join(name)) {
            raw.extend(b);
        }
    }
    raw
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn api_client_tokens_are_hashed_at_rest_and_revocable() {
    let (dir, a) = setup();
    let token = a.add_client("ci", "viewer", Some("t1"), T0).unwrap();
    assert!(token.starts_with("sy_"), "{token}");
    let (name, role, perms, tenant) = a.client_of_token(&token, T0).unwrap();
    assert_eq!(
        (name.as_str(), role.as_str(), tenant.as_deref()),
        ("ci", "viewer", Some("t1"))
    );
    assert!(perms.contains(&switchyard_admin::Permission::SafView));
    assert!(matches!(
        a.add_client("ci", "viewer", None, T0),
        Err(AccountsError::Exists { .. })
    ));
    let (session, _) = token_of(a.login("alice", GOOD, ORIGIN, T0).unwrap());
    let raw = db_bytes(&dir);
    assert!(
        !contains(&raw, token.as_bytes()),
        "the API token is in the DB"
    );
    assert!(
        !contains(&raw, session.as_bytes()),
        "the session token is in the DB"
    );
    assert!(
        !contains(&raw, GOOD.as_bytes()),
        "the password is in the DB"
    );
    a.revoke_client("ci").unwrap();
    assert!(a.client_of_token(&token, T0).is_none());
    assert!(a.list_clients().unwrap()[0].revoked);
    a.ensure_cli_client("cli", "cafe0123").unwrap();
    let (_, role, perms, _) = a.client_of_token("cafe0123", T0).unwrap();
    assert_eq!(role, "admin");
    assert_eq!(perms.len(), switchyard_admin::Permission::ALL.len());
}

#[test]
fn roles_are_data_and_built_ins_are_fixed() {
    let (_dir, a) = setup();
    let roles = a.list_roles().unwrap();
    let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    for b in ["admin", "operator", "security", "viewer"] {
        assert!(names.contains(&b), "{names:?}");
    }
    assert!(matches!(
        a.add_role("admin", &["saf.view"]),
        Err(AccountsError::Builtin(_))
    ));
    assert!(matches!(
        a.add_role("auditor", &["audit.view", "nope"]),
        Err(AccountsError::UnknownPermissions(ref u)) if u == &["nope".to_owned()]
    ));
    a.add_role("auditor", &["audit.view", "dashboard.view"])
        .unwrap();
    a.set_role("alice", "auditor").unwrap();
    let (token, _) = token_of(a.login("alice", GOOD, ORIGIN, T0).unwrap());
    let s = a.session(&token, T0).unwrap();
    assert_eq!(s.permissions.len(), 2);
    let viewer = a.permissions_of("viewer").unwrap();
    let operator = a.permissions_of("operator").unwrap();
    assert!(viewer.iter().all(|p| operator.contains(p)));
    assert!(!viewer.contains(&switchyard_admin::Permission::SafRetry));
}

#[test]
fn the_enrolment_qr_code_is_inline_svg() {
    let svg = totp::qr_svg("otpauth://totp/Switchyard:alice?secret=ABC&issuer=Switchyard");
    assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
    assert!(svg.ends_with("</svg>"));
}
