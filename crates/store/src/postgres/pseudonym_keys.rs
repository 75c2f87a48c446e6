//! PostgreSQL: the rows of `pseudonym_keys` (see `crate::sealing`): the one INSERT, which
//! seals the key, and, when the store opens with a key-encryption key, the sealing of the keys
//! still in clear.

use beffroi_protocol::Timestamp;
use sqlx::{PgConnection, PgPool};

use super::ts;
use crate::governance::{seal_clear_key, warn_foreign_keys};
use crate::sealing::{seal, KeyRow};
use crate::{KeyEncryptionKey, Result};

/// Seals `key` under `kek` for `row` and inserts it: every pseudonym key is written here.
pub(super) async fn insert_key_row(
    conn: &mut PgConnection,
    kek: Option<&KeyEncryptionKey>,
    row: &KeyRow<'_>,
    key: &[u8; 32],
    at: Timestamp,
) -> Result<()> {
    let sealed = seal(kek, row, key)?;
    sqlx::query(&format!(
        "INSERT INTO pseudonym_keys (grantor, agreement, epoch, key, kek_id, nonce, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, {})",
        ts("$7")
    ))
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
/// Other nodes may do the same at the same time: a row is sealed only while it is still in
/// clear. After sealing, the table is rewritten (`VACUUM FULL`) so that the old row versions,
/// which hold the keys in clear, leave its files.
pub(super) async fn seal_at_open(pool: &PgPool, kek: &KeyEncryptionKey) -> Result<u64> {
    let foreign = sqlx::query(
        "SELECT grantor, agreement, epoch, kek_id, count(*) OVER () AS n FROM pseudonym_keys \
         WHERE kek_id <> $1 ORDER BY grantor, agreement, epoch LIMIT 1",
    )
    .bind(kek.id())
    .fetch_optional(pool)
    .await?;
    if let Some(r) = foreign {
        warn_foreign_keys(&r, kek)?;
        return Ok(0);
    }
    let clear = sqlx::query(
        "SELECT grantor, agreement, epoch, key FROM pseudonym_keys WHERE kek_id IS NULL",
    )
    .fetch_all(pool)
    .await?;
    if clear.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let mut sealed_rows = 0;
    for r in &clear {
        let (ids, sealed) = seal_clear_key(r, kek)?;
        let row = ids.row();
        let done = sqlx::query(
            "UPDATE pseudonym_keys SET key = $1, kek_id = $2, nonce = $3 \
             WHERE grantor = $4 AND agreement = $5 AND epoch = $6 AND kek_id IS NULL",
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
    sqlx::raw_sql("VACUUM FULL pseudonym_keys")
        .execute(pool)
        .await?;
    Ok(sealed_rows)
}
