-- Data governance: partners, sharing agreements and their pseudonym keys, partner tokens,
-- sensor tags.

-- Organisations that are not tenants of this platform (a lab, a transport operator) and may
-- be granted data by agreements and hold partner tokens.
CREATE TABLE partners (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- One row per agreement at its current version; `document` is the native agreement JSON
-- (`beffroi_policy::Agreement`), `state` and `grantee` copy it for listings.
CREATE TABLE agreements (
    grantor TEXT NOT NULL REFERENCES tenants (id),
    id TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    state TEXT NOT NULL,
    -- 'public', 'tenant:<id>' or 'partner:<id>'
    grantee TEXT NOT NULL,
    document TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (grantor, id)
) WITHOUT ROWID;

CREATE INDEX agreements_grantee ON agreements (grantee);

-- Secret HMAC keys of pseudonymising agreements: one row per epoch, the current one has no
-- `retired_at`. Never returned by the API.
CREATE TABLE pseudonym_keys (
    grantor TEXT NOT NULL,
    agreement TEXT NOT NULL,
    epoch INTEGER NOT NULL CHECK (epoch >= 1),
    key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER,
    PRIMARY KEY (grantor, agreement, epoch),
    FOREIGN KEY (grantor, agreement) REFERENCES agreements (grantor, id)
) WITHOUT ROWID;

-- Tags set on sensors by their tenant (JSON array of slugs), targeted by agreements.
ALTER TABLE sensors ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';

-- Partner tokens: a `partner` column, role 'partner' exactly when it is set. SQLite cannot
-- change a CHECK constraint: the table is rebuilt (nothing references it).
CREATE TABLE api_tokens_next (
    id TEXT PRIMARY KEY NOT NULL,
    -- NULL: a platform or partner token
    tenant TEXT REFERENCES tenants (id),
    -- set: a partner token
    partner TEXT REFERENCES partners (id),
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    CHECK ((tenant IS NULL) = (role IN ('platform', 'partner'))),
    CHECK ((partner IS NOT NULL) = (role = 'partner'))
);

INSERT INTO api_tokens_next (id, tenant, partner, role, name, secret_sha256, created_at)
SELECT id, tenant, NULL, role, name, secret_sha256, created_at FROM api_tokens;

DROP TABLE api_tokens;

ALTER TABLE api_tokens_next RENAME TO api_tokens;
