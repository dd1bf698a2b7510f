//! The deploy directory (jPOS Q2's `deploy/` is the model): a component
//! dropped there as `NAME.wasm` is swapped in as plugin NAME.
//!
//! The directory is scanned every `deploy_poll_ms` on the swap thread. A
//! file is taken once its size, modification time and SHA-256 are the same
//! on two scans in a row (so a copy still in progress is never loaded;
//! writing to a temporary name and renaming is quickest). Then:
//! - its SHA-256 is the live version's: nothing to do;
//! - it loads and passes the checks: it is swapped in (actor `deploy-dir`)
//!   and stays where it is, the record of what was deployed; it is not
//!   applied again until its content changes (a rollback through the API
//!   is not undone by the file still being there);
//! - it does not (not a component, refused imports or exports, no plugin of
//!   that name): it is renamed `NAME.wasm.bad`, the reason written to
//!   `NAME.wasm.bad.txt` and logged; nothing changes.
//!
//! Removing a file changes nothing (roll back through the API). Files
//! already there when the switch starts are applied like new ones. Other
//! names (`*.bad`, `*.txt`, dot files) are ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
use switchyard_runtime::Registry;
use tokio_util::sync::CancellationToken;

use super::swapper::Swapper;

/// The actor recorded for swaps from the deploy directory.
pub const DEPLOY_ACTOR: &str = "deploy-dir";

/// What a file looked like at the last scan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    sha256: String,
}

#[derive(Debug)]
struct Seen {
    fingerprint: Fingerprint,
    /// Handled (applied, already live, or refused) at this fingerprint.
    done: bool,
}

/// The deploy directory's watcher (its state between scans).
pub struct DeployWatcher {
    dir: PathBuf,
    registry: Arc<Registry>,
    seen: HashMap<String, Seen>,
    last_error: Option<String>,
}

impl DeployWatcher {
    /// Watches `dir` (created if missing) for `registry`'s plugins.
    pub fn new(dir: PathBuf, registry: Arc<Registry>) -> std::io::Result<DeployWatcher> {
        std::fs::create_dir_all(&dir)?;
        Ok(DeployWatcher {
            dir,
            registry,
            seen: HashMap::new(),
            last_error: None,
        })
    }

    /// Scans every `poll` on `swapper`'s thread until `shutdown`.
    pub async fn run(mut self, swapper: Swapper, poll: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match swapper
                .run(move || {
                    self.scan();
                    self
                })
                .await
            {
                Ok(w) => self = w,
                Err(e) => {
                    tracing::error!(error = %e, "deploy directory: no longer watched");
                    return;
                }
            }
        }
    }

    /// One scan: applies every `NAME.wasm` that is new or changed and stable.
    pub fn scan(&mut self) {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => {
                self.last_error = None;
                e
            }
            Err(e) => {
                let e = e.to_string();
                if self.last_error.as_ref() != Some(&e) {
                    tracing::error!(dir = %self.dir.display(), error = %e, "deploy directory: cannot read it");
                    self.last_error = Some(e);
                }
                return;
            }
        };
        let mut present = Vec::new();
        for entry in entries.flatten() {
            let Ok(file_name) = entry.file_name().into_string() else {
                continue;
            };
            let Some(plugin) = file_name.strip_suffix(".wasm") else {
                continue;
            };
            if plugin.is_empty() || file_name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let Some((fingerprint, bytes)) = read(&path) else {
                continue;
            };
            present.push(file_name.clone());
            let ready = match self.seen.get_mut(&file_name) {
                Some(seen) if seen.fingerprint == fingerprint => !seen.done,
                Some(seen) => {
                    *seen = Seen {
                        fingerprint,
                        done: false,
                    };
                    false
                }
                None => {
                    self.seen.insert(
                        file_name.clone(),
                        Seen {
                            fingerprint,
                            done: false,
                        },
                    );
                    false
                }
            };
            if ready {
                let seen = self.seen.get_mut(&file_name).expect("just seen");
                seen.done = true;
                let sha256 = seen.fingerprint.sha256.clone();
                self.apply(plugin, &path, &bytes, &sha256);
                if !path.exists() {
                    present.pop(); // refused and renamed
                }
            }
        }
        self.seen.retain(|name, _| present.contains(name));
    }

    /// Swaps `bytes` in as `plugin`, or refuses the file.
    fn apply(&self, plugin: &str, path: &Path, bytes: &[u8], sha256: &str) {
        let Some(slot) = self.registry.slot(plugin) else {
            let configured: Vec<String> =
                self.registry.list().into_iter().map(|p| p.name).collect();
            refuse(
                path,
                sha256,
                &format!(
                    "no plugin {plugin} is configured (configured: {}); a deployed file replaces a configured plugin",
                    configured.join(", ")
                ),
            );
            return;
        };
        if self.registry.current().plugin(slot).digest() == sha256 {
            tracing::info!(plugin, file = %path.display(), version = &sha256[..12],
                "deploy directory: already live, nothing to do");
            return;
        }
        match self.registry.swap(plugin, bytes, DEPLOY_ACTOR) {
            Ok(outcome) => {
                tracing::info!(plugin, file = %path.display(),
                    old = &outcome.record.old_hash[..12], new = &outcome.record.new_hash[..12],
                    generation = outcome.generation, "deploy directory: swapped in");
            }
            Err(e) => refuse(path, sha256, &e.to_string()),
        }
    }
}

/// The file's fingerprint and bytes, or `None` when it is not a readable
/// regular file (a symbolic link to one is followed).
fn read(path: &Path) -> Option<(Fingerprint, Vec<u8>)> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    Some((
        Fingerprint {
            modified: meta.modified().ok(),
            len: meta.len(),
            sha256: hex::encode(Sha256::digest(&bytes)),
        },
        bytes,
    ))
}

/// Renames a refused file `NAME.wasm.bad`, with the reason beside it.
fn refuse(path: &Path, sha256: &str, reason: &str) {
    let bad = path.with_extension("wasm.bad");
    let note = path.with_extension("wasm.bad.txt");
    let renamed = std::fs::rename(path, &bad);
    let _ = std::fs::write(
        &note,
        format!(
            "{} was refused; nothing changed.\nsha256: {sha256}\nreason: {reason}\n",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ),
    );
    match renamed {
        Ok(()) => tracing::warn!(file = %path.display(), renamed = %bad.display(), %reason,
            "deploy directory: refused; nothing changed"),
        Err(e) => tracing::error!(file = %path.display(), %reason, error = %e,
            "deploy directory: refused, and it could not be renamed .bad"),
    }
}
