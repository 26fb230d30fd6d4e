package main

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/internal/testfeed"
)

// TestSimulateAndRunSplitColumnFamilies plays `highwater simulate
// --split-column-families` (the telemetry tables with two column families
// each) and applies it with `highwater run --split-column-families`: each
// source table must be a view over its families, with a row per node,
// every node's heartbeat (its own family, updated alone by most reports)
// and description (the primary family) in it.
func TestSimulateAndRunSplitColumnFamilies(t *testing.T) {
	stack := testfeed.Stack(t, devstack.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"simulate", "--brokers", stack.Brokers()[0], "--registry", stack.RegistryURL(),
		"--split-column-families", "--partitions", "2", "--txns", "300", "--keys", "12", "--resolve-every", "50", "--duplicates", "0.1"}, &out, &errOut); err != nil {
		t.Fatalf("simulate: %v\n%s", err, errOut.String())
	}
	topics := "features.primary,features.counters,nodes.primary,nodes.heartbeat"
	if !strings.Contains(errOut.String(), topics) {
		t.Fatalf("simulate said %q, want the topics %s", errOut.String(), topics)
	}
	final := strings.TrimSpace(out.String())
	dir := t.TempDir()
	path := filepath.Join(dir, "wh.duckdb")
	var runOut bytes.Buffer
	if err := run(ctx, []string{"run", "--brokers", stack.Brokers()[0], "--registry", stack.RegistryURL(),
		"--topics", topics, "--group", "families", "--sink", "duckdb://" + path, "--buffer-dir", filepath.Join(dir, "buffer"),
		"--split-column-families", "--changelog", "--stop-at", final, "--log-level", "warn"}, &runOut, &runOut); err != nil {
		t.Fatalf("run: %v\n%s", err, runOut.String())
	}
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
