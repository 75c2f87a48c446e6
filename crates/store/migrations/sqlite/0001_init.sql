-- Beffroi store, SQLite. Times are INTEGER microseconds since the Unix epoch (UTC).

CREATE TABLE tenants (
    -- a small integer key for the readings table
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE gateways (
    tenant TEXT NOT NULL REFERENCES tenants (id),
    id TEXT NOT NULL,
    key_id TEXT NOT NULL UNIQUE,
    public_key BLOB NOT NULL,
    cert_fingerprint TEXT,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    last_seen INTEGER,
    -- highest committed seq (NULL: none yet)
    last_committed_seq INTEGER,
    -- every seq <= ack_contiguous is committed or inside a reported gap (a lower bound)
    ack_contiguous INTEGER NOT NULL DEFAULT 0,
    -- highest seq inside a recorded gap
    gap_max INTEGER NOT NULL DEFAULT 0,
    -- last health report (JSON): spool, drops, gaps, version, rss
    health TEXT,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

CREATE INDEX gateways_revoked ON gateways (revoked) WHERE revoked <> 0;

CREATE TABLE sensors (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    unit TEXT,
    lat REAL,
    lon REAL,
    zone TEXT,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

CREATE INDEX sensors_zone ON sensors (tenant, zone);

CREATE TABLE zones (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    geometry TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

-- One row per committed batch: the dedupe key and the signature (never stored per reading).
CREATE TABLE batches (
    -- the batch's readings have ids `id << 16 | idx` (see readings.id)
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    gateway TEXT NOT NULL,
    seq INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    committed_at INTEGER NOT NULL,
    readings INTEGER NOT NULL,
    -- time range of its readings: finds them through the (tenant, time) index, so readings
    -- need no per-batch index (one index less on the hottest insert path)
    first_time INTEGER,
    last_time INTEGER,
    UNIQUE (tenant, gateway, seq)
);

-- The dictionary of series: one row per (tenant, sensor, metric, unit) ever ingested. Readings
-- carry its integer id instead of four text columns: a narrower row and integer index keys.
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants (id),
    sensor TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    UNIQUE (tenant, sensor, metric, unit)
);

-- `id` is `batches.id << 16 | idx` (idx: the position in the batch, at most 65535): a total
-- order among readings of the same time (keyset pagination), and the way back to the batch
-- (gateway, seq, signature) to re-encode it and verify its signature again. The
-- (tenant, time) index ends with it implicitly.
CREATE TABLE readings (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    tenant INTEGER NOT NULL,
    series INTEGER NOT NULL,
    value_num REAL,
    value_bool INTEGER,
    value_text TEXT
);

CREATE INDEX readings_series ON readings (series, time);
CREATE INDEX readings_tenant_time ON readings (tenant, time);

-- Gaps reported by gateways in their health messages (seqs that will never arrive).
CREATE TABLE gaps (
    tenant TEXT NOT NULL,
    gateway TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    batches INTEGER NOT NULL,
    readings INTEGER NOT NULL,
    reason TEXT NOT NULL,
    reported_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, gateway, first_seq, last_seq)
) WITHOUT ROWID;

CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY,
    tenant TEXT,
    gateway TEXT,
    topic TEXT NOT NULL,
    seq INTEGER,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    payload BLOB NOT NULL
);

CREATE INDEX quarantine_tenant ON quarantine (tenant, received_at);

CREATE TABLE security_events (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    tenant TEXT,
    gateway TEXT,
    address TEXT,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE INDEX security_events_tenant ON security_events (tenant, time);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    tenant TEXT NOT NULL REFERENCES tenants (id),
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
