#!/usr/bin/env bash
# A product-telemetry workload on the source tables, one transaction per
# tick: a batch of feature counters is bumped (the same keys again and again:
# update-heavy, so highwater has something to compact), a node heartbeats,
# and every tenth tick a node's features are deleted and it is marked
# decommissioned or back, in one transaction (which must land whole).
set -euo pipefail
url="${COCKROACH_URL:-postgresql://root@cockroach:26257/telemetry?sslmode=disable}"
interval="${WORKLOAD_INTERVAL:-1}"
batch="${WORKLOAD_BATCH:-40}"
sql() { /cockroach/cockroach sql --url "$url" -e "$1" >/dev/null; }

echo "workload: one transaction every ${interval}s, ${batch} feature upserts each"
i=0
while true; do
  i=$((i + 1))
  node=$((1 + i % 40))
  sql "
BEGIN;
INSERT INTO features (node_id, feature, usage_count, last_value, attrs, updated_at)
SELECT n, 'feature_' || floor(random() * 20)::INT8::STRING, 1, round((random() * 100)::DECIMAL, 4),
       jsonb_build_object('tick', $i, 'source', 'workload'), now()
FROM generate_series(1, $batch) AS n
ON CONFLICT (node_id, feature) DO UPDATE
SET usage_count = features.usage_count + 1, last_value = excluded.last_value,
    attrs = excluded.attrs, updated_at = excluded.updated_at;
UPDATE nodes SET heartbeat_at = now(), version = 'v1.' || ($i % 7)::STRING WHERE node_id = $node;
COMMIT;"
  if (( i % 10 == 0 )); then
    sql "
BEGIN;
DELETE FROM features WHERE node_id = $node;
UPDATE nodes SET decommissioned = NOT decommissioned WHERE node_id = $node;
COMMIT;"
  fi
  if (( i % 60 == 0 )); then
    echo "workload: $i transactions"
  fi
  sleep "$interval"
done
