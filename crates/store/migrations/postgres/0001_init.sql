-- Beffroi store, PostgreSQL (TimescaleDB DDL is applied in code when the extension exists).
-- Ids use COLLATE "C": bytewise order, the same as SQLite, and cheaper comparisons.

CREATE TABLE tenants (
    id TEXT COLLATE "C" PRIMARY KEY,
    -- a small fixed-width key for the readings table (its index compares integers, not text)
    key INTEGER GENERATED ALWAYS AS IDENTITY UNIQUE,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE gateways (
    tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id TEXT COLLATE "C" NOT NULL,
    key_id TEXT COLLATE "C" NOT NULL UNIQUE,
    public_key BYTEA NOT NULL,
    cert_fingerprint TEXT,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    last_seen TIMESTAMPTZ,
    -- highest committed seq (NULL: none yet)
    last_committed_seq BIGINT,
    -- every seq <= ack_contiguous is committed or inside a reported gap (a lower bound)
    ack_contiguous BIGINT NOT NULL DEFAULT 0,
    -- highest seq inside a recorded gap
    gap_max BIGINT NOT NULL DEFAULT 0,
    -- last health report: spool, drops, gaps, version, rss
    health JSONB,
    PRIMARY KEY (tenant, id)
);

CREATE INDEX gateways_revoked ON gateways (revoked) WHERE revoked;

CREATE TABLE sensors (
    tenant TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    unit TEXT,
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    zone TEXT COLLATE "C",
    PRIMARY KEY (tenant, id)
);

CREATE INDEX sensors_zone ON sensors (tenant, zone);

CREATE TABLE zones (
    tenant TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    name TEXT NOT NULL,
    geometry JSONB NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- One row per committed batch: the dedupe key and the signature (never stored per reading).
CREATE TABLE batches (
    tenant TEXT COLLATE "C" NOT NULL,
    gateway TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    -- the batch's readings have ids `id << 16 | idx` (see readings.id)
    id BIGINT GENERATED ALWAYS AS IDENTITY (CACHE 1000) UNIQUE,
    key_id TEXT COLLATE "C" NOT NULL,
    signature BYTEA NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    committed_at TIMESTAMPTZ NOT NULL,
    readings INTEGER NOT NULL,
    -- time range of its readings: finds them through the (tenant, time, id) index, so
    -- readings need no per-batch index (one index less on the hottest insert path)
    first_time TIMESTAMPTZ,
    last_time TIMESTAMPTZ,
    PRIMARY KEY (tenant, gateway, seq)
);

-- The dictionary of series: one row per (tenant, sensor, metric, unit) ever ingested. Readings
-- carry its integer id instead of four text columns: a narrower row, and indexes that compare
-- integers (text keys made B-tree maintenance the dominant cost of ingest).
CREATE TABLE series (
    id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    sensor TEXT COLLATE "C" NOT NULL,
    metric TEXT COLLATE "C" NOT NULL,
    unit TEXT COLLATE "C" NOT NULL,
    UNIQUE (tenant, sensor, metric, unit)
);

-- No primary key: a TimescaleDB hypertable's unique indexes must include the time column,
-- and batches already dedupe. `id` is `batches.id << 16 | idx` (idx: the position in the
-- batch, at most 65535): unique, a total order among readings of equal time (keyset
-- pagination), and the way back to the batch (gateway, seq, signature) to re-encode it and
-- verify its signature again.
CREATE TABLE readings (
    time TIMESTAMPTZ NOT NULL,
    id BIGINT NOT NULL,
    tenant INTEGER NOT NULL,
    series INTEGER NOT NULL,
    value_num DOUBLE PRECISION,
    value_bool BOOLEAN,
    value_text TEXT
);

CREATE INDEX readings_series ON readings (series, time);
CREATE INDEX readings_tenant_time ON readings (tenant, time, id);
-- Retention deletes by time across tenants; BRIN costs next to nothing on insert.
CREATE INDEX readings_time_brin ON readings USING brin (time);

-- Gaps reported by gateways in their health messages (seqs that will never arrive).
CREATE TABLE gaps (
    tenant TEXT COLLATE "C" NOT NULL,
    gateway TEXT COLLATE "C" NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    batches BIGINT NOT NULL,
    readings BIGINT NOT NULL,
    reason TEXT NOT NULL,
    reported_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, gateway, first_seq, last_seq)
);

CREATE TABLE quarantine (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant TEXT COLLATE "C",
    gateway TEXT COLLATE "C",
    topic TEXT NOT NULL,
    seq BIGINT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    payload BYTEA NOT NULL
);

CREATE INDEX quarantine_tenant ON quarantine (tenant, received_at);

CREATE TABLE security_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time TIMESTAMPTZ NOT NULL,
    tenant TEXT COLLATE "C",
    gateway TEXT COLLATE "C",
    address TEXT,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE INDEX security_events_tenant ON security_events (tenant, time);

CREATE TABLE api_tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_sha256 BYTEA NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);
