package main

import (
	"database/sql"
	"regexp"
	"testing"
)

// TestSimulateAndRunRestoreTheHeadersColumn plays the telemetry feed with
// `highwater simulate --headers-json-column labels` (nodes.labels travels as
// Kafka headers, features gets a labels column that stays NULL) and applies
// it with `highwater run --headers-json-column labels`: every nodes row must
// have its labels back, features none.
func TestSimulateAndRunRestoreTheHeadersColumn(t *testing.T) {
	res := simulateThenRun(t, []string{"--partitions", "2", "--txns", "40", "--keys", "8", "--resolve-every", "10", "--headers-json-column", "labels"},
		[]string{"--topics", "features,nodes", "--headers-json-column", "labels", "--log-level", "error"})
	if res.runErr != nil {
		t.Fatalf("run: %v\n%s", res.runErr, res.runLog)
	}
	path := res.path
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var nodes, labelled, features, featureLabels int
	if err := db.QueryRow(`SELECT count(*), count(labels) FROM nodes`).Scan(&nodes, &labelled); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*), count(labels) FROM features`).Scan(&features, &featureLabels); err != nil {
		t.Fatal(err)
	}
	if nodes == 0 || labelled != nodes || features == 0 || featureLabels != 0 {
		t.Fatalf("nodes %d (%d with labels), features %d (%d with labels): want every node labelled, no feature", nodes, labelled, features, featureLabels)
	}
	var labels string
	if err := db.QueryRow(`SELECT CAST(labels AS VARCHAR) FROM nodes ORDER BY node LIMIT 1`).Scan(&labels); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\{"region": "[a-z0-9-]+", "tier": "(dev|prod)"\}$`).MatchString(labels) {
		t.Errorf("labels %s, want the simulator's {\"region\": ..., \"tier\": ...}", labels)
	}
}
