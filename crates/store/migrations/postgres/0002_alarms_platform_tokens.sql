-- Platform tokens, certificate expiry, rejected-message counts, latest readings, alarms.

-- API tokens of no tenant (platform operators): role 'platform' exactly when tenant is NULL.
ALTER TABLE api_tokens ALTER COLUMN tenant DROP NOT NULL;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scope
    CHECK ((tenant IS NULL) = (role = 'platform'));

-- Expiry of the gateway's last issued certificate.
ALTER TABLE gateways ADD COLUMN cert_not_after TIMESTAMPTZ;

-- Counts a gateway's quarantined messages when gateways are listed.
CREATE INDEX quarantine_gateway ON quarantine (tenant, gateway);

CREATE TABLE alarm_rules (
    tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id TEXT COLLATE "C" NOT NULL,
    name TEXT NOT NULL,
    severity TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    condition JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- Alarms outlive their rule: `rule` references nothing.
CREATE TABLE alarms (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    rule TEXT COLLATE "C" NOT NULL,
    rule_name TEXT NOT NULL,
    severity TEXT NOT NULL,
    -- what the alarm is about, and its stable key
    subject JSONB NOT NULL,
    subject_key TEXT COLLATE "C" NOT NULL,
    zone TEXT COLLATE "C",
    state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'cleared')),
    message TEXT NOT NULL,
    value DOUBLE PRECISION,
    opened_at TIMESTAMPTZ NOT NULL,
    last_at TIMESTAMPTZ NOT NULL,
    occurrences BIGINT NOT NULL,
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by_token TEXT,
    acknowledged_by_name TEXT,
    acknowledged_comment TEXT,
    cleared_at TIMESTAMPTZ,
    -- NULL (with cleared_by_name): cleared automatically, the condition ended
    cleared_by_token TEXT,
    cleared_by_name TEXT,
    cleared_comment TEXT,
    updated_at TIMESTAMPTZ NOT NULL,
    CHECK ((state = 'cleared') = (cleared_at IS NOT NULL)),
    CHECK (state <> 'open' OR acknowledged_at IS NULL),
    CHECK (state <> 'acknowledged' OR acknowledged_at IS NOT NULL)
);

-- At most one active (open or acknowledged) alarm per (tenant, rule, subject): the arbiter
-- of the raising upsert, so nodes raising the same alarm at once open it once. Also serves
-- the listing of every active alarm.
CREATE UNIQUE INDEX alarms_active ON alarms (tenant, rule, subject_key) WHERE state <> 'cleared';
CREATE INDEX alarms_tenant_opened ON alarms (tenant, opened_at, id);
