-- Tamper-evident audit log (crate beffroi-audit): one hash chain per tenant, and the
-- checkpoints that sign its head. Append-only: the store never updates or deletes an entry.

-- The head of each tenant's chain: the seq and hash of its last entry. Every append starts
-- by upserting this row, which locks it: appends to one tenant serialize across nodes.
CREATE TABLE audit_heads (
    tenant TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants (id),
    seq BIGINT NOT NULL CHECK (seq >= 0),
    hash BYTEA NOT NULL CHECK (length(hash) = 32)
);

CREATE TABLE audit_entries (
    tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    -- 1, 2, 3… per tenant, no gaps
    seq BIGINT NOT NULL CHECK (seq >= 1),
    time TIMESTAMPTZ NOT NULL,
    -- `token:…`, `user:…`, `system:…` or `gateway:…`
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    -- canonical JSON text, byte for byte what was hashed (not JSONB, which would reorder
    -- members and rewrite numbers)
    detail TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (tenant, seq)
);

CREATE TABLE audit_checkpoints (
    tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    seq BIGINT NOT NULL CHECK (seq >= 0),
    head BYTEA NOT NULL,
    time TIMESTAMPTZ NOT NULL,
    key_id TEXT NOT NULL,
    -- Ed25519 over the checkpoint message (beffroi-audit)
    signature BYTEA NOT NULL,
    PRIMARY KEY (tenant, seq)
);
