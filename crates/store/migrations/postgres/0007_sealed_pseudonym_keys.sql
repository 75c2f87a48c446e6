-- Pseudonym keys sealed at rest (see `src/sealing.rs`): `key` holds the key sealed with
-- XChaCha20-Poly1305 under the key-encryption key `kek_id`, with the random `nonce`. A row
-- without `kek_id` still holds its key in clear (written before this migration): the store
-- seals it when it opens with a key-encryption key.
ALTER TABLE pseudonym_keys ADD COLUMN kek_id TEXT COLLATE "C";
ALTER TABLE pseudonym_keys ADD COLUMN nonce BYTEA;
ALTER TABLE pseudonym_keys ADD CONSTRAINT pseudonym_keys_sealed
    CHECK ((kek_id IS NULL) = (nonce IS NULL));
