package simulator

import (
	"context"
	"fmt"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// TelemetryTables returns the demo feed: product telemetry like the feed
// CockroachDB streams to Snowflake. `features` counts feature usage per node
// (primary key (node, feature), deliberately not in column order, and a
// column named "timestamp" that CockroachDB quotes); `nodes` describes the
// reporting nodes.
func TelemetryTables() []TableDef {
	return []TableDef{
		{
			Name: "features",
			Columns: []ColumnDef{
				{Name: "feature", Type: "STRING"},
				{Name: "internal", Type: "BOOL", NotNull: true, Default: "false"},
				{Name: "node", Type: "INT8"},
				{Name: "timestamp", Type: "TIMESTAMPTZ"},
				{Name: "uptime", Type: "INTERVAL"},
				{Name: "uses", Type: "INT8"},
				{Name: "version", Type: "STRING"},
			},
			PrimaryKey: []string{"node", "feature"},
		},
		{
			Name: "nodes",
			Columns: []ColumnDef{
				{Name: "node", Type: "INT8"},
				{Name: "cluster_id", Type: "UUID"},
				{Name: "region", Type: "STRING"},
				{Name: "version", Type: "STRING"},
				{Name: "started", Type: "TIMESTAMPTZ"},
				{Name: "cpus", Type: "INT4"},
				{Name: "memory_bytes", Type: "INT8"},
				{Name: "last_seen", Type: "TIMESTAMPTZ"},
				{Name: "labels", Type: "JSONB"},
			},
			PrimaryKey: []string{"node"},
		},
	}
}

var telemetryFeatures = []string{
	"sql.schema.create_table", "sql.schema.alter_table.add_column", "sql.plan.cte", "sql.plan.lookup_join",
	"sql.plan.vectorized", "sql.txn.savepoint", "sql.multiregion.regional_by_row", "cdc.changefeed.create",
	"cdc.changefeed.avro", "cdc.changefeed.kafka", "sql.jsonb.inverted_index", "sql.stats.auto_create",
	"sql.schema.enum", "sql.plan.window", "sql.copy.from", "sql.session.prepared", "kv.follower_reads",
	"sql.schema.partial_index", "sql.plan.hash_join", "sql.ttl.row_level",
}

var telemetryRegions = []string{"us-east1", "us-west2", "europe-west1", "asia-southeast1"}

var telemetryVersions = []string{"v24.3.5", "v25.1.2", "v25.2.0"}

type telemetryNode struct {
	cluster string
	region  string
	version int
	started time.Time
	cpus    int64
	mem     int64
}

// RunTelemetry runs a realistic telemetry workload on the TelemetryTables:
// each transaction is one node reporting, which updates its `nodes` row and
// bumps the use counters of RowsPerTxn features (a delete with DeleteProb
// retires one). KeysPerTable is the number of nodes (default 10); Txns,
// ResolveEvery, RestartEvery and GapProb work as in Run.
func (s *Sim) RunTelemetry(ctx context.Context, w Workload) error {
	if _, err := s.table("features"); err != nil {
		return fmt.Errorf("simulator: RunTelemetry needs TelemetryTables: %w", err)
	}
	if _, err := s.table("nodes"); err != nil {
		return fmt.Errorf("simulator: RunTelemetry needs TelemetryTables: %w", err)
	}
	if w.KeysPerTable == 0 {
		w.KeysPerTable = 10
	}
	if err := w.defaults(); err != nil {
		return err
	}
	nodes := map[int64]*telemetryNode{}
	uses := map[[2]any]int64{}
	var resolved []hlc.Timestamp
	for i := 0; i < w.Txns; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := s.Txn(ctx, func(tx *Txn) error {
			rng := s.rng
			now := tx.ts.Time()
			id := int64(1 + rng.Intn(w.KeysPerTable))
			n := nodes[id]
			if n == nil {
				n = &telemetryNode{cluster: randomUUID(rng), region: telemetryRegions[rng.Intn(len(telemetryRegions))],
					version: rng.Intn(len(telemetryVersions)), started: now.Add(-time.Duration(rng.Int63n(int64(72 * time.Hour)))),
					cpus: int64(2 << rng.Intn(5)), mem: int64(4<<rng.Intn(6)) << 30}
				nodes[id] = n
			}
			if rng.Intn(500) == 0 && n.version < len(telemetryVersions)-1 {
				n.version++ // a rolling upgrade restarts the node
				n.started = now
			}
			version := telemetryVersions[n.version]
			if err := tx.Upsert("nodes", map[string]any{
				"node": id, "cluster_id": n.cluster, "region": n.region, "version": version,
				"started": n.started, "cpus": n.cpus, "memory_bytes": n.mem, "last_seen": now,
				"labels": fmt.Sprintf(`{"region": %q, "tier": %q}`, n.region, []string{"dev", "prod"}[id%2]),
			}); err != nil {
				return err
			}
			for r := 0; r < w.RowsPerTxn; r++ {
				f := telemetryFeatures[rng.Intn(len(telemetryFeatures))]
				k := [2]any{id, f}
				if rng.Float64() < w.DeleteProb {
					delete(uses, k)
					if err := tx.Delete("features", id, f); err != nil {
						return err
					}
					continue
				}
				uses[k] += 1 + rng.Int63n(50)
				uptime := now.Sub(n.started)
				if err := tx.Upsert("features", map[string]any{
					"feature": f, "internal": rng.Intn(10) == 0, "node": id, "timestamp": now,
					"uptime": model.Interval{Micros: uptime.Microseconds()}, "uses": uses[k], "version": version,
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := s.afterTxn(ctx, i, &w, &resolved); err != nil {
			return err
		}
	}
	_, err := s.Resolve(ctx)
	return err
}
