package main

import (
	"strings"
	"testing"
)

// TestSimulateKeyColumnIsRefusedByRun plays the telemetry feed with
// `highwater simulate --key-column version` (the Kafka key is the nullable
// column version, as WITH key_column = 'version', unordered) and runs
// highwater on it: run must exit with an error naming key_column, not
// apply rows keyed by version.
func TestSimulateKeyColumnIsRefusedByRun(t *testing.T) {
	res := simulateThenRun(t, []string{"--partitions", "1", "--txns", "20", "--keys", "5", "--resolve-every", "10", "--key-column", "version"},
		[]string{"--topics", "features,nodes", "--log-level", "error"})
	err, out := res.runErr, res.runLog
	if err == nil || !strings.Contains(err.Error(), "WITH key_column") || !strings.Contains(err.Error(), `key field "version"`) {
		t.Fatalf("run: error %v, want the key_column refusal\n%s", err, out)
	}
}
