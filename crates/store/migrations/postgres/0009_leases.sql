-- Leases (clustered deployments): what one node of several must run alone, such as the alert
-- engine, is guarded by a named lease that its holder renews; another node takes it over once
-- it runs out. Times are microseconds since the epoch.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
