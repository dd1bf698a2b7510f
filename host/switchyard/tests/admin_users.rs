//! `switchyard admin user …` and `switchyard admin client …` on a data
//! directory no switch ran on yet: the first users and API clients, a
//! password that breaks the policy (every rule named), duplicates, and
//! tokens and passwords never stored in the clear.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::BIN;

/// A fresh directory with the default config in it (state in `var`).
fn fresh(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("admin-users")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("switchyard.toml"),
        switchyard::config::DEFAULT_CONFIG,
    )
    .unwrap();
    d
}

/// `switchyard admin ARGS --config DIR/switchyard.toml` with `stdin`: its
/// status, stdout and stderr.
fn admin(dir: &Path, args: &[&str], stdin: &str) -> (Output, String, String) {
    let config = dir.join("switchyard.toml");
    let mut child = Command::new(BIN)
        .arg("admin")
        .args(args)
        .arg("--config")
        .arg(&config)
        .env("NO_COLOR", "1")
        .env("USER", "tester")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

fn db_bytes(dir: &Path) -> Vec<u8> {
    let mut raw = Vec::new();
    for name in ["switchyard.db", "switchyard.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join("var").join(name)) {
            raw.extend(b);
        }
    }
    raw
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_cli_adds_users_and_clients() {
    let dir = fresh("add");
    let password = "first operator 2026";
    let (out, stdout, stderr) = admin(
        &dir,
        &[
            "user",
            "add",
            "alice",
            "--role",
            "admin",
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("user alice added"), "{stdout}");
    let (out, stdout, stderr) = admin(
        &dir,
        &[
            "user",
            "add",
            "bob",
            "--role",
            "viewer",
            "--tenant",
            "acme",
            "--password-stdin",
            "--must-change",
        ],
        "another passphrase 7\n",
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    let (out, stdout, _) = admin(&dir, &["user", "list", "--json"], "");
    assert!(out.status.success());
    let users: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 2, "{stdout}");
    assert_eq!(users[0]["name"], "alice");
    assert_eq!(users[0]["role"], "admin");
    assert_eq!(users[1]["tenant"], "acme");
    assert_eq!(users[1]["must_change"], true);
    let (out, table, _) = admin(&dir, &["user", "list"], "");
    assert!(out.status.success());
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("bob") && l.contains("acme")),
        "{table}"
    );

    let (out, stdout, stderr) = admin(
        &dir,
        &[
            "client", "add", "ci", "--role", "operator", "--tenant", "acme",
        ],
        "",
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    let token = stdout.trim();
    assert!(token.starts_with("sy_") && token.len() == 67, "{stdout}");
    assert!(stderr.contains("shown only now"), "{stderr}");
    let (out, list, _) = admin(&dir, &["client", "list"], "");
    assert!(out.status.success());
    assert!(
        list.lines()
            .any(|l| l.starts_with("ci") && l.contains("operator") && l.contains("active")),
        "{list}"
    );
    let raw = db_bytes(&dir);
    assert!(
        !contains(&raw, token.as_bytes()),
        "the token is stored in the clear"
    );
    assert!(
        !contains(&raw, password.as_bytes()),
        "the password is stored in the clear"
    );

    let (out, _, stderr) = admin(&dir, &["client", "revoke", "ci"], "");
    assert!(out.status.success(), "{stderr}");
    let (_, list, _) = admin(&dir, &["client", "list"], "");
    assert!(
        list.lines()
            .any(|l| l.starts_with("ci") && l.contains("revoked")),
        "{list}"
    );
    for cmd in ["unlock", "disable", "enable"] {
        let (out, stdout, stderr) = admin(&dir, &["user", cmd, "bob"], "");
        assert!(out.status.success(), "{cmd}: {stdout}{stderr}");
    }
    let (out, stdout, stderr) = admin(
        &dir,
        &["user", "reset", "alice", "--password-stdin"],
        "a temporary one 99\n",
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    let (_, stdout, _) = admin(&dir, &["user", "list", "--json"], "");
    let users: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(users[0]["must_change"], true);
}

#[test]
fn a_bad_password_names_every_rule_and_duplicates_are_refused() {
    let dir = fresh("refusals");
    let (out, stdout, stderr) = admin(
        &dir,
        &[
            "user",
            "add",
            "carol",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "!!!!\n",
    );
    assert!(!out.status.success(), "{stdout}");
    for rule in [
        "at least 12 characters",
        "at least one letter",
        "at least one digit",
    ] {
        assert!(stderr.contains(rule), "{rule}: {stderr}");
    }
    let add = |name: &str| {
        admin(
            &dir,
            &["user", "add", name, "--role", "viewer", "--password-stdin"],
            "good enough pass 1\n",
        )
    };
    let (out, _, stderr) = add("carol");
    assert!(out.status.success(), "{stderr}");
    let (out, _, stderr) = add("carol");
    assert!(!out.status.success());
    assert!(stderr.contains("user carol already exists"), "{stderr}");
    let (out, _, stderr) = admin(&dir, &["client", "add", "x", "--role", "viewer"], "");
    assert!(out.status.success(), "{stderr}");
    let (out, _, stderr) = admin(&dir, &["client", "add", "x", "--role", "viewer"], "");
    assert!(!out.status.success());
    assert!(stderr.contains("API client x already exists"), "{stderr}");
    let (out, _, stderr) = admin(&dir, &["client", "add", "y", "--role", "root"], "");
    assert!(!out.status.success());
    assert!(stderr.contains("no role named root"), "{stderr}");
    let (out, _, stderr) = admin(&dir, &["user", "unlock", "nobody"], "");
    assert!(!out.status.success());
    assert!(stderr.contains("no user named nobody"), "{stderr}");
}
