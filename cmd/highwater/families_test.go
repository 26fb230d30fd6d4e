package main

import (
	"database/sql"
	"strings"
	"testing"
)

// TestSimulateAndRunSplitColumnFamilies plays `highwater simulate
// --split-column-families` (the telemetry tables with two column families
// each) and applies it with `highwater run --split-column-families`: each
// source table must be a view over its families, with a row per node,
// every node's heartbeat (its own family, updated alone by most reports)
// and description (the primary family) in it.
func TestSimulateAndRunSplitColumnFamilies(t *testing.T) {
	topics := "features.primary,features.counters,nodes.primary,nodes.heartbeat"
	res := simulateThenRun(t, []string{"--split-column-families", "--partitions", "2", "--txns", "300", "--keys", "12", "--resolve-every", "50", "--duplicates", "0.1"},
		[]string{"--topics", topics, "--group", "families", "--split-column-families", "--changelog", "--log-level", "warn"})
	if !strings.Contains(res.simLog, topics) {
		t.Fatalf("simulate said %q, want the topics %s", res.simLog, topics)
	}
	if res.runErr != nil {
		t.Fatalf("run: %v\n%s", res.runErr, res.runLog)
	}
	path := res.path
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var nodes, heartbeats, described, features, versions int
	if err := db.QueryRow(`SELECT count(*), count(last_seen), count(cluster_id) FROM nodes`).Scan(&nodes, &heartbeats, &described); err != nil {
		t.Fatal(err)
	}
	if nodes != 12 || heartbeats != nodes || described != nodes {
		t.Errorf("nodes: %d rows, %d with last_seen, %d with cluster_id; want 12 each", nodes, heartbeats, described)
	}
	if err := db.QueryRow(`SELECT count(*) FROM features`).Scan(&features); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM nodes_changes WHERE _hw_family = 'heartbeat'`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if features == 0 || versions < 200 {
		t.Errorf("features has %d rows, nodes_changes %d heartbeat versions; want some and most of the 300 reports", features, versions)
	}
}
