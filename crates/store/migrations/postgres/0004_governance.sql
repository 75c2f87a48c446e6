-- Data governance: partners, sharing agreements and their pseudonym keys, partner tokens,
-- sensor tags.

-- Organisations that are not tenants of this platform (a lab, a transport operator) and may
-- be granted data by agreements and hold partner tokens.
CREATE TABLE partners (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- One row per agreement at its current version; `document` is the native agreement JSON
-- text (`beffroi_policy::Agreement`), `state` and `grantee` copy it for listings.
CREATE TABLE agreements (
    grantor TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    state TEXT NOT NULL,
    -- 'public', 'tenant:<id>' or 'partner:<id>'
    grantee TEXT COLLATE "C" NOT NULL,
    document TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (grantor, id)
);

CREATE INDEX agreements_grantee ON agreements (grantee);

-- Secret HMAC keys of pseudonymising agreements: one row per epoch, the current one has no
-- `retired_at`. Never returned by the API.
CREATE TABLE pseudonym_keys (
    grantor TEXT COLLATE "C" NOT NULL,
    agreement TEXT COLLATE "C" NOT NULL,
    epoch BIGINT NOT NULL CHECK (epoch >= 1),
    key BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    retired_at TIMESTAMPTZ,
    PRIMARY KEY (grantor, agreement, epoch),
    FOREIGN KEY (grantor, agreement) REFERENCES agreements (grantor, id)
);

-- Tags set on sensors by their tenant (JSON array of slugs), targeted by agreements.
ALTER TABLE sensors ADD COLUMN tags JSONB NOT NULL DEFAULT '[]';

-- Partner tokens: a `partner` column, role 'partner' exactly when it is set.
ALTER TABLE api_tokens ADD COLUMN partner TEXT COLLATE "C" REFERENCES partners (id);
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_scope;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scope
    CHECK ((tenant IS NULL) = (role IN ('platform', 'partner')));
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_partner
    CHECK ((partner IS NOT NULL) = (role = 'partner'));
