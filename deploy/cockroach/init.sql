-- Source database of the docker compose stack: a product-telemetry schema
-- like the one highwater's demo simulates. Safe to run again.

-- Changefeeds need rangefeeds (self-hosted clusters have them off).
SET CLUSTER SETTING kv.rangefeed.enabled = true;

CREATE DATABASE IF NOT EXISTS telemetry;

CREATE TABLE IF NOT EXISTS telemetry.nodes (
    node_id        INT8 PRIMARY KEY,
    region         STRING NOT NULL,
    version        STRING,
    heartbeat_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    decommissioned BOOL NOT NULL DEFAULT false
);

-- Update-heavy: the workload bumps the same (node_id, feature) counters
-- over and over, which is what highwater compacts to one row per window.
CREATE TABLE IF NOT EXISTS telemetry.features (
    node_id     INT8 NOT NULL,
    feature     STRING NOT NULL,
    usage_count INT8 NOT NULL DEFAULT 0,
    last_value  DECIMAL(18,4),
    attrs       JSONB,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, feature)
);

INSERT INTO telemetry.nodes (node_id, region, version)
SELECT n, (ARRAY['us-east1', 'europe-west1', 'asia-southeast1'])[1 + n % 3], 'v1.0'
FROM generate_series(1, 40) AS n
ON CONFLICT (node_id) DO NOTHING;
