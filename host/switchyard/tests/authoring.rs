//! Plugin authoring through the real binary: `plugin new` creates a crate
//! that passes its tests and builds a component outside this repository,
//! and `plugin test` runs components against one message (exit 0 whatever
//! the plugin decides, 2 when it traps or overruns its deadline, 1 when it
//! cannot be loaded).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TEST_PAN: &str = "4761739001010119";

fn switchyard(args: &[&str], dir: &Path) -> (Output, String) {
    let (out, text) = common::switchyard(args, Some(dir));
    assert!(!text.contains(TEST_PAN), "full PAN printed: {text}");
    (out, text)
}

/// `cargo` in `dir`, with none of the outer cargo's settings, offline: the
/// crates a plugin needs are in the local cache once `plugins/` is built.
fn cargo(dir: &Path, target_dir: &Path, args: &[&str]) {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args);
    if args[0] != "fmt" {
        cmd.arg("--offline");
    }
    cmd.current_dir(dir).env("CARGO_TARGET_DIR", target_dir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR"
            || key.starts_with("RUST") && key != "RUSTUP_HOME" && key != "RUSTUP_TOOLCHAIN"
        {
            cmd.env_remove(&*key);
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?} in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A target directory shared by the scaffold builds of this test, kept
/// between runs (the plugin crates themselves are new each time).
fn scaffold_target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target")
}

#[test]
fn every_kind_of_new_plugin_builds_passes_its_tests_and_runs() {
    let root = tempfile::tempdir().unwrap();
    let target = scaffold_target_dir();
    let cases: [(&str, &str, &[&str], &[&str]); 3] = [
        (
            "participant",
            "no-refunds",
            &["--field", "3=200000"],
            &[
                "outcome    ABORTED (0x00)",
                "result     12",
                "INFO  no-refunds: refund declined",
            ],
        ),
        (
            "selector",
            "by-amount",
            &[
                "--amount",
                "2000.00",
                "--config",
                "high_value=review local-auth",
            ],
            &["role       selector", "groups     review local-auth"],
        ),
        (
            "formatter",
            "text-endpoint",
            &[],
            &["role       formatter", "key \"000001|TERM0001\""],
        ),
    ];
    for (kind, name, try_args, expected) in cases {
        let (out, text) = switchyard(&["plugin", "new", name, "--kind", kind], root.path());
        assert!(out.status.success(), "{text}");
        let dir = root.path().join(name);
        assert!(dir.join("vendor/switchyard-sdk/src/lib.rs").is_file());

        cargo(&dir, &target, &["fmt", "--check"]);
        cargo(&dir, &target, &["test", "--release"]);
        cargo(
            &dir,
            &target,
            &["build", "--release", "--target", "wasm32-wasip2"],
        );
        let wasm = target
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        let mut args = vec!["plugin", "test", wasm.to_str().unwrap()];
        args.extend_from_slice(try_args);
        let (out, text) = switchyard(&args, root.path());
        assert!(out.status.success(), "{kind}: {text}");
        for line in expected {
            assert!(text.contains(line), "{kind}: no {line:?} in\n{text}");
        }
    }
}

#[test]
fn new_refuses_bad_names_and_existing_crates() {
    let root = tempfile::tempdir().unwrap();
    let (out, text) = switchyard(&["plugin", "new", "No_Refunds"], root.path());
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("is not a plugin name"), "{text}");

    let dir = root.path().join("mine");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let (out, text) = switchyard(
        &["plugin", "new", "blocklist", "--dir", dir.to_str().unwrap()],
        root.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("already exists and is not empty"), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.join("keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn test_prints_the_outcome_result_response_and_masks_the_card() {
    let here = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (out, text) = switchyard(
        &["plugin", "test", "builtin:local-auth", "--amount", "25.00"],
        here,
    );
    assert!(out.status.success(), "{text}");
    for line in [
        "request    0200 stan 000001 pan 476173******0119 amount 000000002500",
        "role       participant",
        "outcome    PREPARED (0x01)",
        "result     00",
        "response   DE038 ",
        "failure    (none)",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    assert!(
        text.contains("prepare ") && text.contains("commit "),
        "{text}"
    );

    let (out, text) = switchyard(
        &[
            "plugin",
            "test",
            "builtin:local-auth",
            "--amount",
            "25.00",
            "--config",
            "limit=20.00",
        ],
        here,
    );
    assert!(out.status.success(), "a decline is not a failure: {text}");
    assert!(text.contains("result     61"), "{text}");
    assert!(text.contains("abort "), "{text}");
}

#[test]
fn test_takes_a_whole_message_as_hex_or_a_file() {
    let here = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let spec = switchyard_iso8583::Spec::builtin("iso87-ascii").unwrap();
    let message =
        switchyard::client::RequestSpec::financial("0200", "4761739001010119", 999_999, 42)
            .build()
            .unwrap();
    let bytes = spec.encode(&message).unwrap();
    let hex = hex::encode(&bytes);

    let (out, text) = switchyard(
        &["plugin", "test", "builtin:local-auth", "--message", &hex],
        here,
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("request    0200 stan 000042 pan 476173******0119 amount 000000999999"),
        "{text}"
    );
    assert!(
        text.contains("result     61"),
        "over the 5000.00 limit: {text}"
    );
    assert!(
        !text.contains("4761739001010119"),
        "full PAN printed: {text}"
    );

    // The raw bytes in a file, with a field overridden on top.
    let file = here.join("request-0200.bin");
    std::fs::write(&file, &bytes).unwrap();
    let at = format!("@{}", file.display());
    let (out, text) = switchyard(
        &[
            "plugin",
            "test",
            "builtin:local-auth",
            "--message",
            &at,
            "--field",
            "4=000000001000",
        ],
        here,
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("amount 000000001000"), "{text}");
    assert!(text.contains("result     00"), "{text}");
    std::fs::remove_file(&file).unwrap();

    let (out, text) = switchyard(
        &["plugin", "test", "builtin:local-auth", "--message", "02zz"],
        here,
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("--message: not hex"), "{text}");
    let (out, text) = switchyard(
        &[
            "plugin",
            "test",
            "builtin:local-auth",
            "--message",
            "30323030",
        ],
        here,
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("--message: not a message in spec iso87-ascii"),
        "{text}"
    );
}

#[test]
fn test_exits_2_when_the_plugin_traps_or_overruns_its_deadline() {
    let faulty = switchyard_bundled_plugins::plugin_path("test-faulty");
    let here = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (mode, failure) in [
        ("trap", "failure    Trap: "),
        ("loop", "failure    Deadline: "),
    ] {
        let (out, text) = switchyard(
            &[
                "plugin",
                "test",
                faulty.to_str().unwrap(),
                "--amount",
                "10.13",
                "--config",
                &format!("mode={mode}"),
                "--deadline-ms",
                "20",
            ],
            here,
        );
        assert_eq!(out.status.code(), Some(2), "{mode}: {text}");
        assert!(text.contains(failure), "{mode}: {text}");
        assert!(
            text.contains("result     96 (set by the host: the plugin failed)"),
            "{mode}: {text}"
        );
    }
}

#[test]
fn test_exits_1_when_the_plugin_cannot_be_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm not a component").unwrap();
    let (out, text) = switchyard(&["plugin", "test", junk.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("plugin junk: not a valid WebAssembly component"),
        "{text}"
    );
    let (out, text) = switchyard(&["plugin", "test", "missing.wasm"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("cannot read"), "{text}");
}

#[test]
fn test_runs_the_c_example_like_any_component() {
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/c-plugin/blocklist.wasm");
    let here = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let wasm = wasm.to_str().unwrap();
    let (out, text) = switchyard(&["plugin", "test", wasm, "--config", "bins=476173"], here);
    assert!(out.status.success(), "{text}");
    for line in [
        "plugin     blocklist ",
        "outcome    ABORTED (0x00)",
        "result     62",
        "INFO  blocklist: BIN 476173 is blocked: 62",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    let (out, text) = switchyard(&["plugin", "test", wasm, "--config", "bins=400000"], here);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("outcome    PREPARED|NO_JOIN (0x41)"),
        "{text}"
    );
}
