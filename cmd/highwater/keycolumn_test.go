package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/internal/testfeed"
)

// TestSimulateKeyColumnIsRefusedByRun plays the telemetry feed with
// `highwater simulate --key-column version` (the Kafka key is the nullable
// column version, as WITH key_column = 'version', unordered) and runs
// highwater on it: run must exit with an error naming key_column, not
// apply rows keyed by version.
func TestSimulateKeyColumnIsRefusedByRun(t *testing.T) {
	stack := testfeed.Stack(t, devstack.Options{})
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"simulate", "--brokers", stack.Brokers()[0], "--registry", stack.RegistryURL(),
		"--partitions", "1", "--txns", "20", "--keys", "5", "--resolve-every", "10", "--key-column", "version"}, &out, &errOut); err != nil {
		t.Fatalf("simulate: %v\n%s", err, errOut.String())
	}
	final := strings.TrimSpace(out.String())
	out.Reset()
	err := run(ctx, []string{"run", "--brokers", stack.Brokers()[0], "--registry", stack.RegistryURL(),
		"--topics", "features,nodes", "--sink", "duckdb://" + filepath.Join(dir, "wh.duckdb"), "--buffer-dir", filepath.Join(dir, "buffer"),
		"--stop-at", final, "--log-level", "error"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "WITH key_column") || !strings.Contains(err.Error(), `key field "version"`) {
		t.Fatalf("run: error %v, want the key_column refusal\n%s", err, out.String())
	}
}
