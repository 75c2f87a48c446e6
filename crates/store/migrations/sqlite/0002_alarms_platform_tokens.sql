-- Platform tokens, certificate expiry, rejected-message counts, latest readings, alarms.

-- API tokens of no tenant (platform operators): `tenant` becomes nullable, with role
-- 'platform' exactly when it is NULL. SQLite cannot drop a NOT NULL constraint: the table is
-- rebuilt (nothing references it, so its rows are simply copied).
CREATE TABLE api_tokens_next (
    id TEXT PRIMARY KEY NOT NULL,
    -- NULL: a platform token
    tenant TEXT REFERENCES tenants (id),
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    CHECK ((tenant IS NULL) = (role = 'platform'))
);

INSERT INTO api_tokens_next (id, tenant, role, name, secret_sha256, created_at)
SELECT id, tenant, role, name, secret_sha256, created_at FROM api_tokens;

DROP TABLE api_tokens;

ALTER TABLE api_tokens_next RENAME TO api_tokens;

-- Expiry of the gateway's last issued certificate.
ALTER TABLE gateways ADD COLUMN cert_not_after INTEGER;

-- Counts a gateway's quarantined messages when gateways are listed (an index-only count).
CREATE INDEX quarantine_gateway ON quarantine (tenant, gateway);

CREATE TABLE alarm_rules (
    tenant TEXT NOT NULL REFERENCES tenants (id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    severity TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    -- the rule's condition (JSON)
    condition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

-- Alarms outlive their rule: `rule` references nothing.
CREATE TABLE alarms (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants (id),
    rule TEXT NOT NULL,
    rule_name TEXT NOT NULL,
    severity TEXT NOT NULL,
    -- what the alarm is about (JSON), and its stable key
    subject TEXT NOT NULL,
    subject_key TEXT NOT NULL,
    zone TEXT,
    state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'cleared')),
    message TEXT NOT NULL,
    value REAL,
    opened_at INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    occurrences INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by_token TEXT,
    acknowledged_by_name TEXT,
    acknowledged_comment TEXT,
    cleared_at INTEGER,
    -- NULL (with cleared_by_name): cleared automatically, the condition ended
    cleared_by_token TEXT,
    cleared_by_name TEXT,
    cleared_comment TEXT,
    updated_at INTEGER NOT NULL,
    CHECK ((state = 'cleared') = (cleared_at IS NOT NULL)),
    CHECK (state <> 'open' OR acknowledged_at IS NULL),
    CHECK (state <> 'acknowledged' OR acknowledged_at IS NOT NULL)
);

-- At most one active (open or acknowledged) alarm per (tenant, rule, subject): the arbiter
-- of the raising upsert. Also serves the listing of every active alarm.
CREATE UNIQUE INDEX alarms_active ON alarms (tenant, rule, subject_key) WHERE state <> 'cleared';
CREATE INDEX alarms_tenant_opened ON alarms (tenant, opened_at);
