#!/usr/bin/env bash
# The compose stack's init job: creates the source tables (init.sql) and,
# unless one is already there, the changefeed (changefeed.sql). Running it
# again (docker compose up on an existing stack) changes nothing.
set -euo pipefail
url="${COCKROACH_URL:-postgresql://root@cockroach:26257/defaultdb?sslmode=disable}"
dir="$(dirname "$0")"
sql() { /cockroach/cockroach sql --url "$url" "$@"; }

sql -f "$dir/init.sql"
feeds="$(sql --format=csv -e "SELECT count(*) FROM [SHOW CHANGEFEED JOBS] WHERE status NOT IN ('canceled', 'failed', 'succeeded')" | tail -n 1)"
if [ "$feeds" = "0" ]; then
  sql -f "$dir/changefeed.sql"
  echo "changefeed created"
else
  echo "changefeed already running ($feeds job)"
fi
