//! The operator plane's keys on PostgreSQL: the admin key (it seals TOTP
//! secrets) and the audit key (the chain's HMAC key), kept in `meta`
//! wrapped by the key-encryption key every node already shares, so that a
//! TOTP secret sealed on one node opens on another and every node extends
//! and verifies one audit chain, with no key file to copy beyond the KEK.
//! Someone who can read the database but not the KEK file cannot unwrap
//! them (nor forge an audit row).

use super::PgStore;
use crate::StoreError;
use crate::error::SqlContext;

/// The `meta` row of operator key `name`.
fn row_name(name: &str) -> String {
    format!("{name}_key_wrapped")
}

/// What the wrap binds the key to (the KEK's associated data).
fn purpose(name: &str) -> String {
    format!("operator:{name}")
}

/// Operator key `name`: the one recorded, or `candidate` recorded now when
/// none is (the first node to ask decides; a race is settled by the row's
/// primary key).
pub(crate) async fn shared_key(
    store: &PgStore,
    name: &str,
    candidate: &[u8; 32],
) -> Result<[u8; 32], StoreError> {
    let kek = store.keyring.kek();
    let row = row_name(name);
    let purpose = purpose(name);
    let wrapped = hex::encode(kek.wrap(0, "", &purpose, candidate));
    let client = store.client().await?;
    client
        .execute(
            "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&row, &wrapped],
        )
        .await
        .what("recording an operator key")?;
    let recorded: String = client
        .query_one("SELECT value FROM meta WHERE name = $1", &[&row])
        .await
        .what("reading an operator key")?
        .get(0);
    let bytes = hex::decode(recorded.trim())
        .map_err(|_| StoreError::Corrupt(format!("meta row {row} is not hex")))?;
    kek.unwrap(0, "", &purpose, &bytes).map_err(|_| {
        StoreError::Decrypt(format!(
            "the {name} key in the database does not unwrap with key-encryption key {}",
            kek.fingerprint
        ))
    })
}
