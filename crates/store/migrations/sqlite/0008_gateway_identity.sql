-- Gateway identity (docs/gateway-identity.md): one-time enrollment tokens, every signing key a
-- gateway ever had, and the time of its revocation. Times are INTEGER microseconds.

-- Enrollment tokens: only the SHA-256 (lowercase hex) of the secret is kept. The gateway may
-- not exist yet (first enrollment), so there is no foreign key to `gateways`.
CREATE TABLE enrollment_tokens (
    token_hash TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants (id),
    gateway TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    used_at INTEGER
) WITHOUT ROWID;

CREATE INDEX enrollment_tokens_pending ON enrollment_tokens (tenant, gateway)
    WHERE used_at IS NULL;

-- Every signing key ever registered, current (`retired_at` NULL, at most one per gateway) or
-- retired. `gateways.key_id` and `gateways.public_key` stay a copy of the current key.
CREATE TABLE gateway_keys (
    key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    gateway TEXT NOT NULL,
    public_key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER,
    FOREIGN KEY (tenant, gateway) REFERENCES gateways (tenant, id)
) WITHOUT ROWID;

CREATE INDEX gateway_keys_gateway ON gateway_keys (tenant, gateway);
CREATE UNIQUE INDEX gateway_keys_current ON gateway_keys (tenant, gateway)
    WHERE retired_at IS NULL;

INSERT INTO gateway_keys (key_id, tenant, gateway, public_key, created_at, retired_at)
    SELECT key_id, tenant, id, public_key, created_at, NULL FROM gateways;

-- When the gateway was revoked (NULL: it is not). `revoked` is kept, equal to
-- `revoked_at IS NOT NULL`. Gateways revoked before this migration get its time.
ALTER TABLE gateways ADD COLUMN revoked_at INTEGER;
UPDATE gateways SET revoked_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000000
    WHERE revoked <> 0;
