-- Retention per tenant and metric class (see `crate::retention`): one row per class; a
-- metric is governed by the most specific class of its tenant that matches it. NULL days:
-- kept (up to the instance-wide retention).
CREATE TABLE retention_policies (
    tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    -- a metric pattern: `air.pm25`, `air.*` or `*`
    class TEXT COLLATE "C" NOT NULL,
    raw_days INTEGER CHECK (raw_days >= 1),
    aggregate_days INTEGER CHECK (aggregate_days >= 1),
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, class)
);
