//! Files the store owns and their modes: directories 0700, the database,
//! its `-wal` and `-shm`, and key files 0600 (on Unix).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Creates `dir` (and its parents) if needed and makes it 0700.
pub(crate) fn private_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(StoreError::io(dir, "creating the directory"))?;
    set_mode(dir, 0o700)
}

/// Creates `path` empty with mode 0600 if it does not exist, and makes an
/// existing one 0600.
pub(crate) fn private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map_err(StoreError::io(path, "creating the file"))?;
    set_mode(path, 0o600)
}

/// Refuses a key file that group or others may read or write: its mode is
/// not tightened behind the operator's back, since the key may already have
/// been copied; the error names the file, its mode and the fix.
pub(crate) fn require_private_key(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(StoreError::io(path, "reading the mode"))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::KeyFile {
                path: path.display().to_string(),
                reason: format!(
                    "mode {mode:04o} lets group or others read or write the key-encryption key; \
                     refusing to start: `chmod 600 {}` (and consider the key exposed)",
                    path.display()
                ),
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Makes `path` 0600 when it exists (SQLite's `-wal` and `-shm`).
pub(crate) fn tighten_if_present(path: &Path) -> Result<(), StoreError> {
    if path.exists() {
        set_mode(path, 0o600)?;
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name (`db` → `db-wal`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Writes a new key file (mode 0600, created exclusively), syncs it and
/// its directory.
pub(crate) fn write_key_file(path: &Path, material: &[u8]) -> Result<(), StoreError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(StoreError::io(path, "creating the key file"))?;
    file.write_all(material)
        .and_then(|()| file.sync_all())
        .map_err(StoreError::io(path, "writing the key file"))?;
    sync_parent(path)
}

/// Renames `from` over `to` and syncs the directory.
pub(crate) fn rename_synced(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::rename(from, to).map_err(StoreError::io(from, "renaming the key file"))?;
    sync_parent(to)
}

/// Removes `path` and syncs its directory.
pub(crate) fn remove_synced(path: &Path) -> Result<(), StoreError> {
    std::fs::remove_file(path).map_err(StoreError::io(path, "removing the file"))?;
    sync_parent(path)
}

/// Syncs the directory holding `path` (a rename or creation is durable).
pub(crate) fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(dir, "syncing the directory"))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)
        .map_err(StoreError::io(path, "reading the mode"))?
        .permissions()
        .mode()
        & 0o777;
    if current != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(StoreError::io(path, "setting the mode"))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), StoreError> {
    Ok(())
}
