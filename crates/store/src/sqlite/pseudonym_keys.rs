//! SQLite: the rows of `pseudonym_keys` (see `crate::sealing`): the one INSERT, which seals
//! the key, and, when the store opens with a key-encryption key, the sealing of the keys still
//! in clear.

use beffroi_protocol::Timestamp;
use sqlx::{Connection, SqliteConnection, SqlitePool};

use crate::governance::{seal_clear_key, warn_foreign_keys};
use crate::sealing::{seal, KeyRow};
use crate::{KeyEncryptionKey, Result};

/// Seals `key` under `kek` for `row` and inserts it: every pseudonym key is written here.
pub(super) async fn insert_key_row(
    conn: &mut SqliteConnection,
    kek: Option<&KeyEncryptionKey>,
    row: &KeyRow<'_>,
    key: &[u8; 32],
    at: Timestamp,
) -> Result<()> {
    let sealed = seal(kek, row, key)?;
    sqlx::query(
        "INSERT INTO pseudonym_keys (grantor, agreement, epoch, key, kek_id, nonce, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(row.grantor.as_str())
    .bind(row.agreement.as_str())
    .bind(i64::from(row.epoch))
    .bind(&sealed.ciphertext)
    .bind(&sealed.kek_id)
    .bind(&sealed.nonce[..])
    .bind(at.unix_micros())
    .execute(conn)
    .await?;
    Ok(())
}

/// Seals the keys still in clear under `kek`; returns how many. When keys sealed under
/// another KEK are found, warns (naming the first agreement) and seals nothing: this node's
/// KEK is probably not the one of the other nodes.
/// Other processes may do the same at the same time: a row is sealed only while it is still
/// in clear.
pub(super) async fn seal_at_open(pool: &SqlitePool, kek: &KeyEncryptionKey) -> Result<u64> {
    let foreign = sqlx::query(
        "SELECT grantor, agreement, epoch, kek_id, count(*) OVER () AS n FROM pseudonym_keys \
         WHERE kek_id <> ? ORDER BY grantor, agreement, epoch LIMIT 1",
    )
    .bind(kek.id())
    .fetch_optional(pool)
    .await?;
    if let Some(r) = foreign {
        warn_foreign_keys(&r, kek)?;
        return Ok(0);
    }
    let mut conn = pool.acquire().await?;
    let clear = sqlx::query(
        "SELECT grantor, agreement, epoch, key FROM pseudonym_keys WHERE kek_id IS NULL",
    )
    .fetch_all(&mut *conn)
    .await?;
    if clear.is_empty() {
        return Ok(0);
    }
    // The clear bytes are overwritten with zeros in the file, not left in freed space.
    sqlx::query("PRAGMA secure_delete = ON")
        .execute(&mut *conn)
        .await?;
    let mut tx = conn.begin().await?;
    let mut sealed_rows = 0;
    for r in &clear {
        let (ids, sealed) = seal_clear_key(r, kek)?;
        let row = ids.row();
        let done = sqlx::query(
            "UPDATE pseudonym_keys SET key = ?, kek_id = ?, nonce = ? \
             WHERE grantor = ? AND agreement = ? AND epoch = ? AND kek_id IS NULL",
        )
        .bind(&sealed.ciphertext)
        .bind(&sealed.kek_id)
        .bind(&sealed.nonce[..])
        .bind(row.grantor.as_str())
        .bind(row.agreement.as_str())
        .bind(i64::from(row.epoch))
        .execute(&mut *tx)
        .await?;
        sealed_rows += done.rows_affected();
    }
    tx.commit().await?;
    sqlx::query("PRAGMA secure_delete = OFF")
        .execute(&mut *conn)
        .await?;
    // The WAL still holds earlier images of the pages: copy the new ones into the file and
    // empty it.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut *conn)
        .await?;
    Ok(sealed_rows)
}
