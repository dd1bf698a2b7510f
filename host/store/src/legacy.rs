//! The v1 layout's secret, kept only to migrate old data directories: a
//! 32-byte master secret in `keys/store.key`, from which HKDF-SHA-256
//! derived a key-hashing key and a ChaCha20-Poly1305 value key
//! (`nonce ‖ ciphertext ‖ tag`, bound to `tenant \0 plugin \0 key hash`).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

const NONCE_LEN: usize = 12;

/// The v1 keys.
pub(crate) struct LegacySecret {
    /// The key that hashed plugin keys: imported as the kv lookup key.
    pub(crate) mac_key: [u8; 32],
    cipher: ChaCha20Poly1305,
}

impl LegacySecret {
    /// Derives the v1 keys from the master secret, exactly as v1 did.
    pub(crate) fn from_master(master: &[u8; 32]) -> LegacySecret {
        let hk = Hkdf::<Sha256>::new(Some(b"switchyard store v1"), master);
        let mut mac_key = [0u8; 32];
        let mut enc_key = [0u8; 32];
        hk.expand(b"key hashing", &mut mac_key)
            .expect("32 bytes is a valid HKDF output length");
        hk.expand(b"value encryption", &mut enc_key)
            .expect("32 bytes is a valid HKDF output length");
        LegacySecret {
            mac_key,
            cipher: ChaCha20Poly1305::new(Key::from_slice(&enc_key)),
        }
    }

    /// The v1 associated data of a kv value.
    pub(crate) fn aad(tenant: &str, plugin: &str, key_hash: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(tenant.len() + plugin.len() + 34);
        aad.extend_from_slice(tenant.as_bytes());
        aad.push(0);
        aad.extend_from_slice(plugin.as_bytes());
        aad.push(0);
        aad.extend_from_slice(key_hash);
        aad
    }

    /// Decrypts a v1 value.
    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
            .ok()
    }

    /// Encrypts as v1 did (tests build v1 directories with it).
    #[cfg(test)]
    pub(crate) fn seal(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        use chacha20poly1305::aead::{AeadCore, OsRng};
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, Payload { msg: plain, aad })
            .expect("in-memory encryption does not fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }
}
