-- Tamper-evident audit log (crate beffroi-audit): one hash chain per tenant, and the
-- checkpoints that sign its head. Append-only: the store never updates or deletes an entry.

-- The head of each tenant's chain: the seq and hash of its last entry. Every append starts
-- by upserting this row, which takes the write lock before the head is read.
CREATE TABLE audit_heads (
    tenant TEXT PRIMARY KEY NOT NULL REFERENCES tenants (id),
    seq INTEGER NOT NULL CHECK (seq >= 0),
    hash BLOB NOT NULL CHECK (length(hash) = 32)
) WITHOUT ROWID;

CREATE TABLE audit_entries (
    tenant TEXT NOT NULL REFERENCES tenants (id),
    -- 1, 2, 3… per tenant, no gaps
    seq INTEGER NOT NULL CHECK (seq >= 1),
    time INTEGER NOT NULL,
    -- `token:…`, `user:…`, `system:…` or `gateway:…`
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    -- canonical JSON text, byte for byte what was hashed
    detail TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (tenant, seq)
) WITHOUT ROWID;

CREATE TABLE audit_checkpoints (
    tenant TEXT NOT NULL REFERENCES tenants (id),
    seq INTEGER NOT NULL CHECK (seq >= 0),
    head BLOB NOT NULL,
    time INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    -- Ed25519 over the checkpoint message (beffroi-audit)
    signature BLOB NOT NULL,
    PRIMARY KEY (tenant, seq)
) WITHOUT ROWID;
