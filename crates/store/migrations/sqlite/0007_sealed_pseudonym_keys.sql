-- Pseudonym keys sealed at rest (see `src/sealing.rs`): `key` holds the key sealed with
-- XChaCha20-Poly1305 under the key-encryption key `kek_id`, with the random `nonce`. A row
-- without `kek_id` still holds its key in clear (written before this migration): the store
-- seals it when it opens with a key-encryption key. Columns are added in place (no table
-- rebuild, which would leave the clear keys in the freed pages).
ALTER TABLE pseudonym_keys ADD COLUMN kek_id TEXT;
ALTER TABLE pseudonym_keys ADD COLUMN nonce BLOB CHECK ((kek_id IS NULL) = (nonce IS NULL));
