//! File modes of a running switch (the real binary): the data directory
//! and the plugin cache are 0700 (existing 0755 ones, and 0644 cached
//! plugins an older version wrote, are tightened), the
//! database, its `-wal` and `-shm` (while it runs), the key file, the
//! admin token, the lock and every cached plugin are 0600; a key file that
//! group or others may read refuses the start, naming the file, its mode
//! and the fix.

#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{free_ports_config, spawn_run};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A fresh directory holding `switchyard.toml` (free ports) whose state
/// and plugin cache live in `data` (so the cache's modes are this test's).
fn setup(name: &str) -> (PathBuf, PathBuf) {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("file-modes-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let text = free_ports_config("127.0.0.1:0");
    let start = text.find("cache_dir = ").unwrap();
    let end = start + text[start..].find('\n').unwrap() + 1;
    let text = format!(
        "{}{}",
        &text[..start],
        &text[end..].replace("data_dir = \"var\"", "data_dir = \"data\"")
    );
    let config = d.join("switchyard.toml");
    std::fs::write(&config, text).unwrap();
    (d, config)
}

/// Sends SIGTERM and waits (bounded) for the exit.
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the switch did not stop within 30 s of SIGTERM");
}

/// Runs the switch on `config` until it serves, then records the mode of
/// each file and directory of `data` with the mode it must have; stops it.
fn run_and_collect(config: &Path, data: &Path) -> Vec<(PathBuf, u32, u32)> {
    let (child, log) = spawn_run(config);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut serving = 0;
    while serving < 4 {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) if line.contains("serving") => serving += 1,
            Ok(_) => {}
            Err(e) => {
                stop(child);
                panic!("the switch did not serve within 300 s: {e}");
            }
        }
    }
    // While it runs: the WAL and its index exist, with the database's mode.
    let db = data.join("switchyard.db");
    let wal = data.join("switchyard.db-wal");
    let shm = data.join("switchyard.db-shm");
    let waited = Instant::now() + Duration::from_secs(10);
    while !(wal.exists() && shm.exists()) && Instant::now() < waited {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut found = Vec::new();
    for dir in [data.to_owned(), data.join("keys"), data.join("cache")] {
        found.push((dir.clone(), mode(&dir), 0o700));
    }
    for file in [
        db,
        wal,
        shm,
        data.join("keys/kek.key"),
        data.join("admin.token"),
        data.join("switchyard.lock"),
    ] {
        found.push((file.clone(), mode(&file), 0o600));
    }
    let cached: Vec<PathBuf> = std::fs::read_dir(data.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for file in &cached {
        found.push((file.clone(), mode(file), 0o600));
    }
    stop(child);
    assert!(cached.len() >= 9, "the plugin cache holds {cached:?}");
    found
}

fn assert_modes(found: &[(PathBuf, u32, u32)]) {
    for (path, got, want) in found {
        println!("{got:04o} {}", path.display());
        assert_eq!(got, want, "{} is {got:04o}, not {want:04o}", path.display());
    }
}

#[test]
fn state_is_private_and_a_readable_key_file_refuses_the_start() {
    let (d, config) = setup("modes");
    let data = d.join("data");
    let loosen = |path: &Path, m: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap()
    };
    std::fs::create_dir_all(&data).unwrap();
    loosen(&data, 0o755);
    assert_modes(&run_and_collect(&config, &data));

    // What an older version left (a 0755 data directory and cache, a
    // 0644 cached plugin) is tightened at the next start.
    loosen(&data, 0o755);
    loosen(&data.join("cache"), 0o755);
    let cached = std::fs::read_dir(data.join("cache"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    loosen(&cached, 0o644);
    assert_modes(&run_and_collect(&config, &data));

    // A key file group or others may read: refused, named, with the fix.
    let kek = data.join("keys/kek.key");
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(common::BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started with a 0644 key file: {text}"
    );
    for needle in [
        format!("key file {}", kek.display()),
        "mode 0644".to_owned(),
        format!("chmod 600 {}", kek.display()),
    ] {
        assert!(text.contains(&needle), "missing {needle:?} in:\n{text}");
    }
    assert_eq!(mode(&kek), 0o644, "the key file's mode was changed");
    std::fs::remove_dir_all(&d).unwrap();
}
