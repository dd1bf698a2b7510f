//! The key-encryption key (KEK): 32 random bytes in a 0600 file, the only
//! key outside the database. It wraps every data key and lookup key
//! (AES-256-GCM, bound to the wrapped key's id, tenant and purpose).
//!
//! Rotation is crash-safe in three steps: the new key is written to
//! `kek.key.next` (0600, synced); one database transaction re-wraps every
//! key and records the new fingerprint; `kek.key.next` is renamed over
//! `kek.key`. At open, a `kek.key.next` left by a crash is either finished
//! (the database already names its fingerprint) or removed (it does not).

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use sha2::{Digest, Sha256};

use crate::StoreError;
use crate::files;

const NONCE_LEN: usize = 12;

/// A loaded KEK.
pub(crate) struct Kek {
    /// Hex of the first 8 bytes of SHA-256 over a domain tag and the key.
    pub(crate) fingerprint: String,
    material: [u8; 32],
    cipher: Aes256Gcm,
}

/// How far a KEK rotation went (tests stop it after each step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum KekStep {
    /// `kek.key.next` is written and synced.
    NextWritten,
    /// Every key is re-wrapped and the new fingerprint committed.
    Rewrapped,
    /// `kek.key.next` replaced `kek.key`.
    Renamed,
}

impl Kek {
    /// The KEK with this material.
    pub(crate) fn from_material(material: [u8; 32]) -> Kek {
        Kek {
            fingerprint: fingerprint(&material),
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&material)),
            material,
        }
    }

    /// A fresh random KEK.
    pub(crate) fn generate() -> Kek {
        Kek::from_material(crate::secret::random_key())
    }

    fn aad(id: i64, tenant: &str, purpose: &str) -> Vec<u8> {
        crate::keyring::aad(&[
            b"switchyard data key v1",
            &id.to_be_bytes(),
            tenant.as_bytes(),
            purpose.as_bytes(),
        ])
    }

    /// `key` wrapped: nonce ‖ ciphertext ‖ tag.
    pub(crate) fn wrap(&self, id: i64, tenant: &str, purpose: &str, key: &[u8; 32]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = Kek::aad(id, tenant, purpose);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: key,
                    aad: &aad,
                },
            )
            .expect("in-memory encryption does not fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// The key [`Kek::wrap`] wrapped for the same id, tenant and purpose.
    pub(crate) fn unwrap(
        &self,
        id: i64,
        tenant: &str,
        purpose: &str,
        wrapped: &[u8],
    ) -> Result<[u8; 32], StoreError> {
        let fail = || {
            StoreError::Decrypt(format!(
                "data key {id} does not unwrap with the key-encryption key {}",
                self.fingerprint
            ))
        };
        if wrapped.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, body) = wrapped.split_at(NONCE_LEN);
        let aad = Kek::aad(id, tenant, purpose);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| fail())?;
        plain.as_slice().try_into().map_err(|_| fail())
    }
}

/// The fingerprint of a KEK's material.
pub(crate) fn fingerprint(material: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"switchyard kek fingerprint v1\0");
    h.update(material);
    hex::encode(&h.finalize()[..8])
}

/// Where a rotation writes the next KEK.
pub(crate) fn next_path(kek_path: &Path) -> PathBuf {
    files::with_suffix(kek_path, ".next")
}

/// Reads the KEK in `path`.
pub(crate) fn read(path: &Path) -> Result<Kek, StoreError> {
    let bytes = std::fs::read(path).map_err(StoreError::io(path, "reading the key file"))?;
    let material: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::KeyFile {
            path: path.display().to_string(),
            reason: format!("expected 32 bytes, found {}", bytes.len()),
        })?;
    Ok(Kek::from_material(material))
}

/// At open: settles an interrupted rotation, then reads the KEK (creating
/// it when the database has no keys yet, `recorded` = `None`) and checks it
/// is the one the database's keys are wrapped with. True when created.
pub(crate) fn open(kek_path: &Path, recorded: Option<&str>) -> Result<(Kek, bool), StoreError> {
    let next = next_path(kek_path);
    if next.exists() {
        let candidate = read(&next).ok();
        match (candidate, recorded) {
            (Some(k), Some(fp)) if k.fingerprint == fp => {
                tracing::warn!(kek = %fp, "finishing an interrupted key-encryption key rotation");
                files::rename_synced(&next, kek_path)?;
            }
            _ => {
                tracing::warn!(
                    path = %next.display(),
                    "rolling back an interrupted key-encryption key rotation"
                );
                files::remove_synced(&next)?;
            }
        }
    }
    let mut created = false;
    if !kek_path.exists() {
        if let Some(fp) = recorded {
            return Err(StoreError::KeyFile {
                path: kek_path.display().to_string(),
                reason: format!(
                    "missing; the database's keys are wrapped by key-encryption key {fp}"
                ),
            });
        }
        let kek = Kek::generate();
        files::write_key_file(kek_path, &kek.material)?;
        tracing::info!(kek = %kek.fingerprint, path = %kek_path.display(), "created a key-encryption key");
        created = true;
    }
    files::require_private_key(kek_path)?;
    let kek = read(kek_path)?;
    if let Some(fp) = recorded
        && fp != kek.fingerprint
    {
        return Err(StoreError::KeyFile {
            path: kek_path.display().to_string(),
            reason: format!(
                "holds key-encryption key {}, the database's keys are wrapped by {fp}",
                kek.fingerprint
            ),
        });
    }
    Ok((kek, created))
}

/// Writes the next KEK (step 1 of a rotation).
pub(crate) fn write_next(kek_path: &Path, kek: &Kek) -> Result<(), StoreError> {
    let next = next_path(kek_path);
    if next.exists() {
        // A failed earlier attempt whose database transaction never
        // committed (an open settles crashes; this is a live retry).
        files::remove_synced(&next)?;
    }
    files::write_key_file(&next, &kek.material)
}

/// Puts the next KEK in place (step 3 of a rotation).
pub(crate) fn install_next(kek_path: &Path) -> Result<(), StoreError> {
    files::rename_synced(&next_path(kek_path), kek_path)
}
