//! `switchyard plugin list/swap/rollback/history` against a running
//! `switchyard run`: readable output, the swap visible to the next
//! transaction (`send`), a refused component changing nothing, a wrong
//! token, and a switch that is not running.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use common::{field, free_ports_config, spawn_run};

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("admin-cli");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tag_wasm(version: &str) -> String {
    switchyard_bundled_plugins::plugin_path(&format!("test-tag-{version}"))
        .display()
        .to_string()
}

/// The default config on free ports, with plugin `tag` (version A) twice
/// in the pipeline, admin API on a free port, no deploy directory.
fn config_text(admin_bind: &str) -> String {
    free_ports_config(admin_bind)
        .replace("deploy_dir = \"deploy\"", "deploy_dir = \"\"")
        .replace(
            "participants = [\"validate\", \"by-mti\"]",
            "participants = [\"validate\", \"tag-1\", \"tag-2\", \"by-mti\"]",
        )
        + &format!(
            "\n[plugins.tag]\nfile = {:?}\n\n[participants.tag-1]\nplugin = \"tag\"\n\n\
             [participants.tag-2]\nplugin = \"tag\"\n",
            tag_wasm("a")
        )
}

struct Running {
    child: Child,
    port_5001: String,
    admin: String,
    token_file: String,
}

/// A failed assertion must not leave the switch running (it holds the
/// data directory's lock).
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start(config: &Path) -> Running {
    let (child, rx) = spawn_run(config);
    let (mut port_5001, mut admin, mut token_file) = (None, None, None);
    while port_5001.is_none() || admin.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the switch logs its addresses");
        if line.contains("admin API listening") {
            admin = field(&line, "addr=");
            token_file = field(&line, "token_file=");
        }
        if line.contains("serving") && line.contains("port=5001") {
            port_5001 = field(&line, "addr=").and_then(|a| Some(a.rsplit_once(':')?.1.to_owned()));
        }
    }
    std::thread::spawn(move || while rx.recv().is_ok() {});
    Running {
        child,
        port_5001: port_5001.unwrap(),
        admin: format!("https://{}", admin.unwrap()),
        token_file: token_file.unwrap(),
    }
}

fn run(args: &[&str]) -> (Output, String) {
    common::switchyard(args, None)
}

#[test]
fn plugin_list_swap_rollback_and_history_against_a_running_switch() {
    let dir = dir();
    let config = dir.join("switch.toml");
    std::fs::write(&config, config_text("127.0.0.1:0")).unwrap();
    let mut sw = start(&config);
    let flags = ["--url", &sw.admin, "--token-file", &sw.token_file];
    let de44 = |stan: &str| {
        let (out, text) = run(&["send", "--port", &sw.port_5001, "--stan", stan]);
        assert!(out.status.success(), "{text}");
        assert!(
            !text.contains("4761739001010119"),
            "full PAN printed: {text}"
        );
        text.lines()
            .find_map(|l| {
                let rest = l.trim().strip_prefix("DE044 ")?;
                Some(rest.split_whitespace().last()?.to_owned())
            })
            .unwrap_or_default()
    };
    assert_eq!(de44("1"), "AA");

    // list: every plugin, what runs now.
    let (out, text) = run(&[&["plugin", "list"][..], &flags].concat());
    assert!(out.status.success(), "{text}");
    for needle in [
        "generation 1, 10 plugin(s)",
        "tag  ",
        "  limits     memory 16.0 MiB, deadline 50 ms",
        "  calls      ",
        "  previous   (none)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    let a_version = text
        .lines()
        .find_map(|l| l.strip_prefix("tag  "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();

    // swap: the next transaction runs version B.
    let b = tag_wasm("b");
    let (out, text) = run(&[
        &["plugin", "swap", "tag", &b, "--actor", "cli-test"][..],
        &flags,
    ]
    .concat());
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("tag: swapped {a_version} → ")) && text.contains("by cli-test"),
        "{text}"
    );
    assert_eq!(de44("2"), "BB");

    // A file that is no component: refused with the load error, exit 1.
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"junk").unwrap();
    let (out, text) = run(&[
        &["plugin", "swap", "tag", junk.to_str().unwrap()][..],
        &flags,
    ]
    .concat());
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "swap refused, nothing changed: plugin tag: not a valid WebAssembly component: \
             the file is not WebAssembly (4 bytes without the \\0asm header)"
        ),
        "{text}"
    );
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text}");
    assert_eq!(de44("3"), "BB");

    // The config finds the API and the token: the same config with the
    // address the switch bound.
    let bound = sw.admin.trim_start_matches("https://").to_owned();
    let cli_config = dir.join("cli.toml");
    std::fs::write(&cli_config, config_text(&bound)).unwrap();
    let (out, text) = run(&[
        "plugin",
        "rollback",
        "tag",
        "--config",
        cli_config.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("→ {a_version}")), "{text}");
    assert!(text.contains("rolled back"), "{text}");
    assert_eq!(de44("4"), "AA");

    let (out, text) = run(&[&["plugin", "history", "--limit", "100"][..], &flags].concat());
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(" tag ") && l.contains("swap") && l.ends_with("by cli-test")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.contains("rollback")), "{text}");

    // A wrong token, a config that binds port 0: clear errors.
    let wrong = dir.join("wrong.token");
    std::fs::write(&wrong, "0123456789abcdef\n").unwrap();
    let (out, text) = run(&[
        "plugin",
        "list",
        "--url",
        &sw.admin,
        "--token-file",
        wrong.to_str().unwrap(),
        "--cert",
        &format!(
            "{}/admin/cert.pem",
            Path::new(&sw.token_file).parent().unwrap().display()
        ),
    ]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("refused the admin token"), "{text}");
    let (out, text) = run(&["plugin", "list", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("port 0"), "{text}");

    // Stopped: the CLI says the switch is not reachable.
    let status = Command::new("kill")
        .args(["-TERM", &sw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(sw.child.wait().unwrap().success());
    let (out, text) = run(&[&["plugin", "list"][..], &flags].concat());
    assert_eq!(out.status.code(), Some(1), "{text}");
    for needle in [
        format!("cannot reach the switch's admin API at {}", sw.admin),
        format!("(token file {})", sw.token_file),
        "Is the switch running".into(),
        "switchyard run [--config FILE]".into(),
    ] {
        assert!(text.contains(&needle), "{needle:?} missing from {text}");
    }
    // No switch has ever run with this configuration: which URL and token
    // file were tried, and what to do.
    let never = dir.join("never").join("switch.toml");
    std::fs::create_dir_all(never.parent().unwrap()).unwrap();
    std::fs::write(&never, config_text("127.0.0.1:5999")).unwrap();
    let (out, text) = run(&["plugin", "list", "--config", never.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for needle in [
        "tried the admin API at https://127.0.0.1:5999 with the token file",
        "admin.token",
        "no switch has run with this configuration yet",
        "switchyard run --config",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
}
