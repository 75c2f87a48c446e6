-- Late readings not yet in the TimescaleDB continuous aggregates (see
-- `src/postgres/rollup.rs`): per gateway, the range of the readings it delivered older than
-- their batch's receipt by more than 30 s. A pushed-down aggregate query meeting a tenant's
-- range refreshes it and deletes the row. Only written on TimescaleDB.
CREATE TABLE aggregate_backlog (
    tenant TEXT COLLATE "C" NOT NULL,
    gateway TEXT COLLATE "C" NOT NULL,
    first_time TIMESTAMPTZ NOT NULL,
    last_time TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, gateway)
);
