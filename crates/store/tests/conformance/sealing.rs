//! Pseudonym keys sealed at rest (the store's `sealing` module): the stored bytes are not the
//! key, keys and pseudonyms are the same through another store (a reopen, another node), a
//! sealed key copied onto another row does not open, a store with another key-encryption key
//! reads no key sealed under the first (a clear error naming the agreement) but can rotate a
//! new one in (the way back from a lost KEK) and leaves keys in clear alone, a store without
//! one writes and reads no key, and keys written in clear under the schema before sealing are
//! sealed when a store opens with a KEK, giving the same pseudonyms.

use std::sync::Arc;

use beffroi_policy::{pseudonym, AgreementId, Grantee, PseudonymKey};
use beffroi_store::{Error, KeyEncryptionKey, Store};
use sqlx::Connection;

use crate::fixtures::{at, sensor, tenant, SEC, T0};
use crate::governance::agreement;
use crate::harness::{test_kek, Database};

/// A row of `pseudonym_keys` as stored: agreement, epoch, key, kek_id, nonce.
type StoredRow = (String, i64, Vec<u8>, Option<String>, Option<Vec<u8>>);

/// Every row of `pseudonym_keys`, read behind the store's back.
async fn stored_rows(db: &Database) -> Vec<StoredRow> {
    const SQL: &str = "SELECT agreement, epoch, key, kek_id, nonce FROM pseudonym_keys \
                       ORDER BY agreement, epoch";
    match db {
        Database::Sqlite { url } => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
            let rows = sqlx::query_as(SQL).fetch_all(&mut conn).await.expect(SQL);
            conn.close().await.expect("close");
            rows
        }
        Database::Postgres { .. } => {
            let mut conn = db.pg_connection().await;
            let rows = sqlx::query_as(SQL).fetch_all(&mut conn).await.expect(SQL);
            conn.close().await.expect("close");
            rows
        }
    }
}

/// The SQL literal of `bytes` on the backend of `db`.
fn sql_blob(db: &Database, bytes: &[u8]) -> String {
    match db {
        Database::Sqlite { .. } => format!("X'{}'", hex::encode(bytes)),
        Database::Postgres { .. } => format!("'\\x{}'::bytea", hex::encode(bytes)),
    }
}

/// A key no other byte pattern of the database repeats by chance.
fn key_bytes(seed: u8) -> [u8; 32] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ seed ^ 0xa5)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that every row is sealed under [`test_kek`], none holding its key `clear[i]`.
fn assert_sealed(rows: &[StoredRow], clear: &[[u8; 32]]) {
    assert_eq!(rows.len(), clear.len(), "{rows:?}");
    let mut nonces = Vec::new();
    for ((agreement, epoch, key, kek_id, nonce), clear) in rows.iter().zip(clear) {
        let at = format!("{agreement} epoch {epoch}");
        assert_eq!(key.len(), 48, "{at}: ciphertext and tag");
        assert!(!contains(key, clear), "{at}: the stored bytes hold the key");
        assert_eq!(kek_id.as_deref(), Some(test_kek().id()), "{at}");
        let nonce = nonce.clone().expect("a nonce");
        assert_eq!(nonce.len(), 24, "{at}");
        assert!(!nonces.contains(&nonce), "{at}: a nonce repeats");
        nonces.push(nonce);
    }
}

/// The current key of `grantor/id`, which must exist.
async fn current_key(store: &Arc<dyn Store>, grantor: &str, id: &str) -> PseudonymKey {
    store
        .pseudonym_key(&tenant(grantor), &agreement_id(id))
        .await
        .expect("read the key")
        .expect("a key")
}

fn agreement_id(id: &str) -> AgreementId {
    AgreementId::new(id).expect("agreement id")
}

/// The pseudonym of sensor `s1` for the public under `key`.
fn public_pseudonym(key: &PseudonymKey) -> String {
    pseudonym(key, &Grantee::Public, &sensor("s1"))
}

pub async fn keys_are_sealed_at_rest(store: Arc<dyn Store>, db: Database) {
    store
        .create_tenant(&tenant("lyon"), "Lyon")
        .await
        .expect("tenant");
    let keyed = agreement("keyed", "lyon", "public");
    store
        .create_agreement(&keyed, Some(&key_bytes(1)), at(T0))
        .await
        .expect("create with key");
    store
        .rotate_pseudonym_key(&tenant("lyon"), &keyed.id, &key_bytes(2), at(T0 + SEC))
        .await
        .expect("rotate");
    store
        .create_agreement(
            &agreement("other", "lyon", "public"),
            Some(&key_bytes(3)),
            at(T0),
        )
        .await
        .expect("another");
    assert_sealed(
        &stored_rows(&db).await,
        &[key_bytes(1), key_bytes(2), key_bytes(3)],
    );

    let key = current_key(&store, "lyon", "keyed").await;
    assert_eq!((key.epoch(), *key.expose_secret()), (2, key_bytes(2)));
    let expected = public_pseudonym(&PseudonymKey::new(key_bytes(2), 2));
    assert_eq!(public_pseudonym(&key), expected);
    let reopened = db.open_another().await;
    let again = current_key(&reopened, "lyon", "keyed").await;
    assert_eq!((again.epoch(), public_pseudonym(&again)), (2, expected));
    reopened.close().await;

    // The sealed key of `other` copied onto `keyed`'s current row: bound to its row, it
    // does not open there.
    db.execute(
        "UPDATE pseudonym_keys SET \
         key = (SELECT key FROM pseudonym_keys WHERE agreement = 'other'), \
         nonce = (SELECT nonce FROM pseudonym_keys WHERE agreement = 'other') \
         WHERE agreement = 'keyed' AND epoch = 2",
    )
    .await;
    let moved = store
        .pseudonym_key(&tenant("lyon"), &keyed.id)
        .await
        .expect_err("a moved key");
    assert!(
        matches!(&moved, Error::Corrupt { .. }) && moved.to_string().contains("lyon/keyed"),
        "{moved}"
    );
}

pub async fn a_wrong_kek_is_refused(store: Arc<dyn Store>, db: Database) {
    let other_kek = KeyEncryptionKey::from_bytes([0x77; 32]);
    store
        .create_tenant(&tenant("lyon"), "Lyon")
        .await
        .expect("tenant");
    let keyed = agreement("keyed", "lyon", "public");
    store
        .create_agreement(&keyed, Some(&key_bytes(1)), at(T0))
        .await
        .expect("create with key");
    // A key in clear, as a node of the previous version would still write it.
    db.execute(&format!(
        "INSERT INTO agreements (grantor, id, version, state, grantee, document, created_at, \
         updated_at) SELECT grantor, 'clear', version, state, grantee, document, created_at, \
         updated_at FROM agreements WHERE id = 'keyed'; \
         INSERT INTO pseudonym_keys (grantor, agreement, epoch, key, created_at) \
         SELECT grantor, 'clear', 1, {}, created_at FROM pseudonym_keys WHERE agreement = 'keyed'",
        sql_blob(&db, &key_bytes(9))
    ))
    .await;

    // Another KEK opens (warning), but reads no key sealed under the first, naming it.
    let other = db
        .open_with(Some(other_kek.clone()))
        .await
        .expect("another KEK opens");
    let error = other
        .pseudonym_key(&tenant("lyon"), &keyed.id)
        .await
        .expect_err("another KEK");
    match &error {
        Error::WrongKek {
            agreement,
            epoch,
            sealed_with,
            opened_with,
        } => {
            assert_eq!((agreement.as_str(), *epoch), ("lyon/keyed", 1));
            assert_eq!(
                (sealed_with.as_str(), opened_with.as_str()),
                (test_kek().id(), other_kek.id())
            );
        }
        other => panic!("expected WrongKek, got {other}"),
    }
    assert!(error.to_string().contains("lyon/keyed"), "{error}");
    let clear = stored_rows(&db).await;
    assert_eq!(
        (clear[0].0.as_str(), clear[0].3.as_deref()),
        ("clear", None),
        "left in clear for a store with the database's KEK"
    );

    // A key rotated in is sealed under the other KEK: it reads there, and only there.
    other
        .rotate_pseudonym_key(&tenant("lyon"), &keyed.id, &key_bytes(2), at(T0 + SEC))
        .await
        .expect("rotate under the other KEK");
    let rotated = current_key(&other, "lyon", "keyed").await;
    assert_eq!(
        (rotated.epoch(), *rotated.expose_secret()),
        (2, key_bytes(2))
    );
    assert!(matches!(
        store.pseudonym_key(&tenant("lyon"), &keyed.id).await,
        Err(Error::WrongKek { epoch: 2, .. })
    ));
    other.close().await;

    // Without a KEK: no key is read or written (nothing of the agreement either).
    let without = db.open_with(None).await.expect("without a KEK");
    assert!(matches!(
        without.pseudonym_key(&tenant("lyon"), &keyed.id).await,
        Err(Error::Unsupported(_))
    ));
    let unsealable = agreement("unsealable", "lyon", "public");
    assert!(matches!(
        without
            .create_agreement(&unsealable, Some(&key_bytes(3)), at(T0))
            .await,
        Err(Error::Unsupported(_))
    ));
    assert!(
        store
            .agreement(&tenant("lyon"), &unsealable.id)
            .await
            .expect("read")
            .is_none(),
        "nothing written"
    );
    without.close().await;
}

pub async fn clear_keys_are_sealed_at_open(db: Database) {
    db.migrate_before("0007").await;
    // The rows the previous version wrote: keys in clear.
    let time = match db {
        Database::Sqlite { .. } => "0",
        Database::Postgres { .. } => "to_timestamp(0)",
    };
    let document = serde_json::to_string(&agreement("legacy", "lyon", "public")).expect("json");
    db.execute(&format!(
        "INSERT INTO tenants (id, name, created_at) VALUES ('lyon', 'Lyon', {time}); \
         INSERT INTO agreements (grantor, id, version, state, grantee, document, created_at, \
         updated_at) VALUES ('lyon', 'legacy', 1, 'draft', 'public', '{document}', {time}, \
         {time}); \
         INSERT INTO pseudonym_keys (grantor, agreement, epoch, key, created_at, retired_at) \
         VALUES ('lyon', 'legacy', 1, {}, {time}, {time}); \
         INSERT INTO pseudonym_keys (grantor, agreement, epoch, key, created_at) \
         VALUES ('lyon', 'legacy', 2, {}, {time})",
        sql_blob(&db, &key_bytes(1)),
        sql_blob(&db, &key_bytes(2)),
    ))
    .await;
    let expected = public_pseudonym(&PseudonymKey::new(key_bytes(2), 2));

    let store = db.open_another().await;
    let rows = stored_rows(&db).await;
    assert_sealed(&rows, &[key_bytes(1), key_bytes(2)]);
    let key = current_key(&store, "lyon", "legacy").await;
    assert_eq!((key.epoch(), public_pseudonym(&key)), (2, expected.clone()));
    store.close().await;
    if let Some(file) = db.sqlite_file() {
        // Nowhere in the database's files any more: not in freed space, not in the WAL.
        for path in [file.clone(), file.with_extension("db-wal")] {
            let bytes = std::fs::read(&path).unwrap_or_default();
            for clear in [key_bytes(1), key_bytes(2)] {
                assert!(!contains(&bytes, &clear), "{} holds a key", path.display());
            }
        }
    }

    // Opened again: nothing left to seal, the same pseudonyms.
    let reopened = db.open_another().await;
    assert_eq!(stored_rows(&db).await, rows, "sealed once");
    let key = current_key(&reopened, "lyon", "legacy").await;
    assert_eq!(public_pseudonym(&key), expected);
    reopened.close().await;
}
