//! The admin API's credential: a random bearer token in a file only the
//! switch's user can read (mode 0600), created on first start.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::{Context as _, bail};

/// Bytes of randomness in a token (hex-encoded in the file).
const TOKEN_BYTES: usize = 32;

/// Reads the token in `path`, creating the file with a new random token
/// (mode 0600, written in full before it appears under its name) when there
/// is none.
pub fn load_or_create(path: &Path) -> anyhow::Result<String> {
    match read(path) {
        Ok(token) => {
            warn_if_readable_by_others(path);
            return Ok(token);
        }
        Err(e) if path.exists() => return Err(e),
        Err(_) => {}
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for the admin token: {e}"))?;
    let token = hex::encode(bytes);
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("admin.token"),
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    // A hard link appears atomically and never replaces: when another
    // switch sharing the directory got there first, use its token.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(file = %path.display(), "admin token created");
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// Reads the token in `path`.
pub fn read(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the admin token {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the admin token file {} is empty", path.display());
    }
    Ok(token.to_owned())
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(file = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the admin token file is readable by others; chmod 600 it");
    }
}

/// Whether `presented` is `expected`, in time independent of where they differ.
pub fn matches(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len()
        && presented
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("admin.token");
        let token = load_or_create(&path).unwrap();
        assert_eq!(token.len(), TOKEN_BYTES * 2);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&path).unwrap(), token);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(&other.path().join("t")).unwrap(), token);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn comparison() {
        assert!(matches(b"abc", b"abc"));
        assert!(!matches(b"abd", b"abc"));
        assert!(!matches(b"ab", b"abc"));
        assert!(!matches(b"", b"abc"));
    }
}
