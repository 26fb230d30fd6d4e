#!/usr/bin/env bash
# The compose stack's topic job: creates the changefeed's topics ($TOPICS)
# with $PARTITIONS partitions before CockroachDB would auto-create them with
# one. An existing topic is left as it is, so running it again changes
# nothing.
set -euo pipefail
brokers="${BROKERS:-redpanda:9092}"
for t in $TOPICS; do
  # rpk reports each topic's outcome in its output; the exit status of an
  # "already exists" differs between versions, so read the outcome instead.
  out="$(rpk topic create "$t" --partitions "${PARTITIONS:-4}" --replicas 1 -X brokers="$brokers" 2>&1)" || true
  echo "$out"
  if ! grep -Eq "^$t[[:space:]]+(OK|TOPIC_ALREADY_EXISTS)" <<<"$out"; then
    echo "redpanda-topics: could not create $t" >&2
    exit 1
  fi
done
