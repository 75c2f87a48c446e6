-- Gateway identity (docs/gateway-identity.md): one-time enrollment tokens, every signing key a
-- gateway ever had, and the time of its revocation.

-- Enrollment tokens: only the SHA-256 (lowercase hex) of the secret is kept. The gateway may
-- not exist yet (first enrollment), so there is no foreign key to `gateways`.
CREATE TABLE enrollment_tokens (
    token_hash TEXT COLLATE "C" PRIMARY KEY,
    tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    gateway TEXT COLLATE "C" NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_by TEXT NOT NULL,
    used_at TIMESTAMPTZ
);

CREATE INDEX enrollment_tokens_pending ON enrollment_tokens (tenant, gateway)
    WHERE used_at IS NULL;

-- Every signing key ever registered, current (`retired_at` NULL, at most one per gateway) or
-- retired. `gateways.key_id` and `gateways.public_key` stay a copy of the current key.
CREATE TABLE gateway_keys (
    key_id TEXT COLLATE "C" PRIMARY KEY,
    tenant TEXT COLLATE "C" NOT NULL,
    gateway TEXT COLLATE "C" NOT NULL,
    public_key BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    retired_at TIMESTAMPTZ,
    FOREIGN KEY (tenant, gateway) REFERENCES gateways (tenant, id)
);

CREATE INDEX gateway_keys_gateway ON gateway_keys (tenant, gateway);
CREATE UNIQUE INDEX gateway_keys_current ON gateway_keys (tenant, gateway)
    WHERE retired_at IS NULL;

INSERT INTO gateway_keys (key_id, tenant, gateway, public_key, created_at, retired_at)
    SELECT key_id, tenant, id, public_key, created_at, NULL FROM gateways;

-- When the gateway was revoked (NULL: it is not). `revoked` is kept, equal to
-- `revoked_at IS NOT NULL`. Gateways revoked before this migration get its time.
ALTER TABLE gateways ADD COLUMN revoked_at TIMESTAMPTZ;
UPDATE gateways SET revoked_at = now() WHERE revoked;
