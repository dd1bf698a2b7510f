//! `switchyard check` (the real binary): it proves a configuration — every
//! problem at once, each at its path; a selector target that is no group of
//! its pipeline; a listener spec that cannot encode its own responses — and
//! binds nothing and writes nothing.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use common::switchyard;
use switchyard::config::DEFAULT_CONFIG;

/// A fresh directory for one test, under the target's temporary directory.
fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("check-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The default config with `edit` applied, its state and cache in `dir`
/// (`data` and `cache`, which the test expects never to appear).
fn config(dir: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
    let text = DEFAULT_CONFIG.replace(
        "data_dir = \"var\"",
        &format!(
            "data_dir = {:?}\ncache_dir = {:?}",
            dir.join("data").display().to_string(),
            dir.join("cache").display().to_string()
        ),
    );
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

fn check(config: &Path) -> (bool, String) {
    let (out, text) = switchyard(&["check", "--config", &config.display().to_string()], None);
    (out.status.success(), text)
}

/// Every entry under `dir`, recursively (relative paths).
fn entries(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in read.map_while(Result::ok) {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn check_binds_nothing_and_writes_nothing() {
    let d = dir("writes-nothing");
    // Every address of the config is one this test holds: binding any of
    // them would fail.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let path = config(&d, |t| {
        t.replace("port = 5001 ", &format!("port = 5001\nbind = {addr:?} "))
            .replace("127.0.0.1:7002", &addr)
            .replace("127.0.0.1:7005", &addr)
            .replace("127.0.0.1:5080", &addr)
    });
    let (ok, text) = check(&path);
    assert!(ok, "check failed: {text}");
    assert!(text.contains("configuration ok"), "{text}");
    assert!(text.contains("plugin local-auth: version"), "{text}");
    assert!(!d.join("data").exists(), "check created the data directory");
    assert!(!d.join("cache").exists(), "check created the plugin cache");
    assert_eq!(entries(&d), vec!["switchyard.toml".to_owned()]);
    // The port is still ours and still answers.
    let _client = std::net::TcpStream::connect(&addr).unwrap();
    let _ = held.accept().unwrap();
}

#[test]
fn the_default_config_passes_and_leaves_the_directory_empty() {
    let d = dir("default");
    let (out, text) = switchyard(&["check"], Some(&d));
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("configuration ok: 4 listener(s), 2 endpoint(s)"),
        "{text}"
    );
    assert_eq!(
        entries(&d),
        Vec::<String>::new(),
        "check wrote into its cwd"
    );
}

#[test]
fn several_mistakes_are_reported_at_once_each_at_its_path() {
    let d = dir("several");
    let path = config(&d, |t| {
        t.replacen(
            "pipeline = \"acquirer\"\nframing",
            "pipeline = \"nowhere\"\nframing",
            1,
        )
        // listener[1]: an unknown key.
        .replacen("port = 5002\n", "port = 5002\nprot = 1\n", 1)
        // listener[2]: a spec without DE39 cannot answer anything.
        .replacen("port = 5003\n", "port = 5003\nspec = \"no-de39\"\n", 1)
        .replacen("deadline_ms = 50", "deadline_ms = 0", 1)
        .replace(
            "participants = [\"validate\", \"by-mti\"]",
            "participants = [\"validate\", \"by-mit\"]",
        )
        .replace("framing = \"rdw\"", "framing = \"rdw+crc\"")
            + "\n[specs.no-de39]\nextends = \"iso87-ascii\"\nremove = [39]\n"
    });
    let (ok, text) = check(&path);
    assert!(!ok, "check passed: {text}");
    for needle in [
        "6 problem(s)",
        "listener[0].pipeline: pipeline \"nowhere\" is not defined",
        "listener[1].prot: unknown key",
        "listener[2].spec: spec \"no-de39\" of listener \"routed\" has no DE39",
        "plugins.validate.deadline_ms: must be 1..=60000",
        "pipelines.acquirer.participants[1]: participant \"by-mit\" is not defined",
        "endpoints.yyy.framing: unknown framing \"rdw+crc\"",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("listener.1"), "two path syntaxes:\n{text}");
    assert!(!d.join("data").exists() && !d.join("cache").exists());
}

#[test]
fn a_listener_spec_too_short_for_its_response_codes_is_refused() {
    let d = dir("short-de39");
    let path = config(&d, |t| {
        t.replacen("spec = \"iso87-ascii\"", "spec = \"short\"", 1)
            + "\n[specs.short]\nextends = \"iso93-ascii\"\n\
               [specs.short.fields.39]\nlength = \"fixed\"\nlen = 1\ncontent = \"an\"\n"
    });
    let (ok, text) = check(&path);
    assert!(!ok, "check passed: {text}");
    assert!(
        text.contains(
            "listener[0].spec: listener \"local\" cannot encode its own 0110 response with DE39 \"00\""
        ),
        "{text}"
    );
}

#[test]
fn a_selector_target_that_is_no_group_of_its_pipeline_is_refused() {
    let d = dir("selector");
    // `auth` is a group of pipeline `other` only; `by-port` runs in
    // `acquirer`, where selecting it would fail every 5001 transaction.
    let path = config(&d, |t| {
        t.replace(
            "\"case 5001\" = \"local-auth close send\"",
            "\"case 5001\" = \"auth close send\"",
        ) + "\n[pipelines.other]\nparticipants = [\"validate\"]\n\
             [pipelines.other.groups]\nauth = [\"local-auth\"]\n"
    });
    let (ok, text) = check(&path);
    assert!(!ok, "check passed: {text}");
    for needle in [
        "participants.by-port.config: selector \"by-port\" (plugin case-switch) may select \"auth\", \
         which is neither a group of pipeline \"acquirer\" nor a participant",
        "pipelines.other.groups.auth: no selector of pipeline \"other\" selects this group",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!d.join("data").exists() && !d.join("cache").exists());
    // The same group in the selector's own pipeline is fine.
    let path = config(&d, |t| {
        t.replace(
            "\"case 5001\" = \"local-auth close send\"",
            "\"case 5001\" = \"auth close send\"",
        ) + "\n[pipelines.acquirer.groups]\nauth = [\"local-auth\"]\n"
    });
    let (ok, text) = check(&path);
    assert!(ok, "{text}");
}
