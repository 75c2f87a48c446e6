-- Where each sensor stood, and since when (pooled sensor networks: a reading is placed where
-- its sensor stood when it was measured, so that a sensor moved across a commune boundary
-- changes sides at the move time). A row per move; NULL lat/lon: position unknown from then.
-- `since` is microseconds since the epoch.
CREATE TABLE sensor_placements (
    tenant TEXT NOT NULL,
    sensor TEXT NOT NULL,
    since BIGINT NOT NULL,
    lat DOUBLE,
    lon DOUBLE,
    PRIMARY KEY (tenant, sensor, since)
);

-- Sensors placed before this table existed stood where they stand since the epoch.
INSERT INTO sensor_placements (tenant, sensor, since, lat, lon)
SELECT tenant, id, 0, lat, lon FROM sensors WHERE lat IS NOT NULL AND lon IS NOT NULL;
