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

// simulated is what simulateThenRun saw: simulate's log (it names the
// topics), run's error and output, and the DuckDB file run wrote.
type simulated struct {
	simLog string
	runErr error
	runLog string
	path   string
}

// simulateThenRun plays `highwater simulate` with simArgs on a fresh stack,
// then `highwater run` with runArgs on the same brokers and registry into a
// DuckDB file of its own, stopping at the simulator's final resolved
// timestamp. A failing simulate fails the test; run's error is returned.
func simulateThenRun(t *testing.T, simArgs, runArgs []string) simulated {
	t.Helper()
	stack := testfeed.Stack(t, devstack.Options{})
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, simLog bytes.Buffer
	common := []string{"--brokers", stack.Brokers()[0], "--registry", stack.RegistryURL()}
	if err := run(ctx, append(append([]string{"simulate"}, common...), simArgs...), &out, &simLog); err != nil {
		t.Fatalf("simulate: %v\n%s", err, simLog.String())
	}
	final := strings.TrimSpace(out.String())
	res := simulated{simLog: simLog.String(), path: filepath.Join(dir, "wh.duckdb")}
	args := append(append([]string{"run"}, common...), "--sink", "duckdb://"+res.path,
		"--buffer-dir", filepath.Join(dir, "buffer"), "--stop-at", final)
	var runLog bytes.Buffer
	res.runErr = run(ctx, append(args, runArgs...), &runLog, &runLog)
	res.runLog = runLog.String()
	return res
}
