//! The store's secret: keyed hashing of plugin keys and encryption of
//! plugin values.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::StoreError;

const NONCE_LEN: usize = 12;

/// Keys derived from the switch's 32-byte master secret.
#[derive(Clone)]
pub struct Secret {
    mac_key: [u8; 32],
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// Derives the keys from `master`.
    pub fn from_master(master: &[u8; 32]) -> Secret {
        let hk = Hkdf::<Sha256>::new(Some(b"switchyard store v1"), master);
        let mut mac_key = [0u8; 32];
        let mut enc_key = [0u8; 32];
        hk.expand(b"key hashing", &mut mac_key)
            .expect("32 bytes is a valid HKDF output length");
        hk.expand(b"value encryption", &mut enc_key)
            .expect("32 bytes is a valid HKDF output length");
        Secret {
            mac_key,
            cipher: ChaCha20Poly1305::new(Key::from_slice(&enc_key)),
        }
    }

    /// A fresh random secret (tests, in-memory stores).
    pub fn random() -> Secret {
        let key = ChaCha20Poly1305::generate_key(&mut OsRng);
        let mut master = [0u8; 32];
        master.copy_from_slice(&key);
        Secret::from_master(&master)
    }

    /// Reads the master secret from `path`, creating it (mode 0600) first if
    /// it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Secret, StoreError> {
        let fail = |reason: String| StoreError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
            }
            let key = ChaCha20Poly1305::generate_key(&mut OsRng);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(path) {
                Ok(mut f) => f.write_all(&key).map_err(|e| fail(e.to_string()))?,
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(fail(e.to_string())),
            }
        }
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let master: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| fail(format!("expected 32 bytes, found {}", bytes.len())))?;
        Ok(Secret::from_master(&master))
    }

    /// The keyed hash of `parts` (length-prefixed, so `("ab","c")` and
    /// `("a","bc")` differ).
    pub fn hash(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key)
            .expect("HMAC takes any key length");
        for p in parts {
            mac.update(&(p.len() as u32).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// Encrypts `plain`, bound to `aad`: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, Payload { msg: plain, aad })
            .expect("ChaCha20-Poly1305 encryption does not fail for in-memory buffers");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts what [`Secret::seal`] produced with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, StoreError> {
        if sealed.len() < NONCE_LEN {
            return Err(StoreError::Decrypt);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
            .map_err(|_| StoreError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_are_bound_to_their_row() {
        let s = Secret::random();
        let sealed = s.seal(b"balance=100", b"row-1");
        assert_eq!(s.open(&sealed, b"row-1").unwrap(), b"balance=100");
        assert!(s.open(&sealed, b"row-2").is_err());
        assert!(Secret::random().open(&sealed, b"row-1").is_err());
        assert!(!sealed.windows(7).any(|w| w == b"balance"));
    }

    #[test]
    fn hashes_are_keyed_and_unambiguous() {
        let s = Secret::random();
        assert_eq!(s.hash(&[b"a", b"bc"]), s.hash(&[b"a", b"bc"]));
        assert_ne!(s.hash(&[b"ab", b"c"]), s.hash(&[b"a", b"bc"]));
        assert_ne!(Secret::random().hash(&[b"a"]), s.hash(&[b"a"]));
    }

    #[test]
    fn key_file_is_created_once_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/store.key");
        let a = Secret::load_or_create(&path).unwrap();
        let b = Secret::load_or_create(&path).unwrap();
        assert_eq!(a.hash(&[b"x"]), b.hash(&[b"x"]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(Secret::load_or_create(&path).is_err());
    }
}
