//! File modes and the absence of card data at rest.

use std::path::Path;

use switchyard_engine::ports::{KvStore, Tranlog};

use super::{TEST_PAN, answered, open, request, wait};

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn directories_are_0700_and_files_0600() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let store = open(dir.path());
    let id = wait(store.admit(request("acme", "0200", "000001")))
        .unwrap()
        .id;
    wait(store.finish(id, answered("00", None))).unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("keys")), 0o700);
    for f in [
        "switchyard.db",
        "switchyard.db-wal",
        "switchyard.db-shm",
        "keys/kek.key",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    store.close();
    // A fresh WAL after reopening takes the database's mode too.
    let store = open(dir.path());
    wait(store.admit(request("acme", "0200", "000002"))).unwrap();
    wait(store.mark_sent(id, "xxx")).unwrap();
    for f in ["switchyard.db", "switchyard.db-wal", "switchyard.db-shm"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
}

#[cfg(unix)]
#[test]
fn a_key_file_group_or_others_may_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).close();
    let kek = dir.path().join("data/keys/kek.key");
    for bad in [0o644, 0o640, 0o604, 0o620] {
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(bad)).unwrap();
        let err = match crate::SqliteStore::open(super::options(dir.path())) {
            Ok(_) => panic!("opened with a key file of mode {bad:o}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(&kek.display().to_string()), "{err}");
        assert!(err.contains(&format!("mode {bad:04o}")), "{err}");
        assert!(
            err.contains(&format!("chmod 600 {}", kek.display())),
            "{err}"
        );
        // Refused, not tightened behind the operator's back.
        assert_eq!(mode(&kek), bad);
    }
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o400)).unwrap();
    crate::SqliteStore::open(super::options(dir.path()))
        .unwrap()
        .close();
}

/// The PAN in the forms a scan of the files looks for.
fn forms() -> Vec<Vec<u8>> {
    let ascii = TEST_PAN.as_bytes().to_vec();
    let bcd: Vec<u8> = TEST_PAN
        .as_bytes()
        .chunks(2)
        .map(|p| ((p[0] - b'0') << 4) | (p[1] - b'0'))
        .collect();
    vec![
        ascii.clone(),
        hex::encode(&ascii).into_bytes(),
        hex::encode_upper(&ascii).into_bytes(),
        bcd.clone(),
        // The last 12 digits (a PAN without its BIN) in BCD and ASCII.
        bcd[2..].to_vec(),
        ascii[4..].to_vec(),
    ]
}

fn scan(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for (i, form) in forms().iter().enumerate() {
                if bytes.windows(form.len()).any(|w| w == &form[..]) {
                    found.push(format!("{} (form {i})", path.display()));
                }
            }
        }
    }
    found
}

#[test]
fn no_card_data_rests_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..50 {
        let mut r = request("acme", "0200", &format!("{i:06}"));
        // Track 2 where the engine should have stripped it: the store drops it.
        r.request
            .set(35, format!("{TEST_PAN}=25121010000012345678").into_bytes());
        r.request
            .set(52, vec![0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x01, 0x19]);
        let id = wait(store.admit(r)).unwrap().id;
        let mut f = answered("00", None);
        f.response
            .as_mut()
            .unwrap()
            .set(2, TEST_PAN.as_bytes().to_vec());
        wait(store.finish(id, f)).unwrap();
        let (req, _) = wait(store.messages(id)).unwrap();
        assert!(!req.contains(35) && !req.contains(52));
        assert_eq!(req.get(2), Some(TEST_PAN.as_bytes()));
    }
    store
        .kv_set("acme", "loyalty", TEST_PAN, TEST_PAN.as_bytes())
        .unwrap();
    assert!(dir.path().join("data/switchyard.db-wal").exists());
    assert_eq!(scan(dir.path()), Vec::<String>::new(), "while open (WAL)");
    store.close();
    assert_eq!(
        scan(dir.path()),
        Vec::<String>::new(),
        "after the checkpoint"
    );
    // The scan itself finds a planted PAN.
    std::fs::write(dir.path().join("planted"), format!("x{TEST_PAN}x")).unwrap();
    assert_eq!(scan(dir.path()).len(), 2, "ASCII, and its last 12 digits");
}
