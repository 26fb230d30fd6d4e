package main

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/internal/memlimit"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/duckdb"
)

// TestMemoryPlanSources: an empty --memory-limit takes the cgroup's limit,
// a set one wins over it, and 0 means none (today's defaults).
func TestMemoryPlanSources(t *testing.T) {
	root := t.TempDir()
	for name, content := range map[string]string{
		"proc/self/cgroup": "4:memory:/ctr\n",
		"sys/fs/cgroup/memory/ctr/memory.limit_in_bytes": "536870912\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		setting string
		total   int64
		source  string
	}{
		{"", 512 << 20, "memory.limit_in_bytes"},
		{"1GiB", 1 << 30, "memory-limit"},
		{"0", 0, ""},
	} {
		plan, err := memoryPlan(config.Config{MemoryLimit: tc.setting}, root)
		if err != nil {
			t.Fatal(err)
		}
		if plan.Total != tc.total || !strings.HasSuffix(plan.Source, tc.source) {
			t.Errorf("memory-limit %q: plan %+v, want total %d from ...%s", tc.setting, plan, tc.total, tc.source)
		}
		if tc.total == 0 && plan != (memlimit.Plan{GoSoftLimit: memlimit.DefaultGoSoftLimit}) {
			t.Errorf("memory-limit %q: plan %+v, want today's defaults", tc.setting, plan)
		}
	}
}

// TestDuckDBGetsItsShare: the DuckDB a run opens has the plan's memory_limit
// and threads, unless the sink URL sets them itself.
func TestDuckDBGetsItsShare(t *testing.T) {
	ctx := context.Background()
	plan := memlimit.Split(512<<20, 2)
	dir := t.TempDir()
	for _, tc := range []struct {
		query, memory, threads string
	}{
		{"", "102.0 MiB", "1"},
		{"?memory_limit=1GiB", "1.0 GiB", "1"},
		{"?threads=2", "102.0 MiB", "2"},
		{":memory:", "102.0 MiB", "1"},
	} {
		raw := "duckdb://" + filepath.Join(dir, "wh"+strings.TrimLeft(tc.query, "?=")+".duckdb") + tc.query
		if tc.query == ":memory:" {
			raw = "duckdb://:memory:"
		}
		w, err := openWriter(ctx, withDuckDBLimits(raw, plan), sinks.Options{}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		var memory, threads string
		err = w.(*duckdb.Writer).DB().QueryRowContext(ctx, `SELECT current_setting('memory_limit'), CAST(current_setting('threads') AS VARCHAR)`).Scan(&memory, &threads)
		_ = w.Close()
		if err != nil {
			t.Fatal(err)
		}
		if memory != tc.memory || threads != tc.threads {
			t.Errorf("sink %s: memory_limit %s, threads %s; want %s, %s", raw, memory, threads, tc.memory, tc.threads)
		}
	}
	// Other sinks are left alone.
	if u := withDuckDBLimits("postgres://u@h/db", plan); u != "postgres://u@h/db" {
		t.Errorf("postgres URL became %s", u)
	}
}

// TestLogPeakMemory: the process's own kernel high-water mark is logged, at
// least as large as memory it has touched.
func TestLogPeakMemory(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc/self/status (not Linux)")
	}
	touched := make([]byte, 64<<20)
	for i := range touched {
		touched[i] = 1
	}
	core, logs := observer.New(zap.InfoLevel)
	logPeakMemory(zap.New(core))
	entries := logs.FilterMessage("peak memory").All()
	if len(entries) != 1 {
		t.Fatalf("%d peak memory lines", len(entries))
	}
	if hwm := entries[0].ContextMap()["vm_hwm_bytes"].(int64); hwm < int64(len(touched)) {
		t.Fatalf("vm_hwm_bytes %d, below the %d bytes touched", hwm, len(touched))
	}
	runtime.KeepAlive(touched)
}

// TestDuckDBAllocatorReturnsFreed: under a memory limit the run makes
// DuckDB's jemalloc return what DuckDB frees at once while an initial scan
// is applied, unless the operator configured that allocator; the pages a
// query freed meanwhile are not kept, and DuckDB's decay is back after.
func TestDuckDBAllocatorReturnsFreed(t *testing.T) {
	if _, err := memlimit.DuckDBAllocatorStats(); errors.Is(err, memlimit.ErrNoDuckDBAllocator) {
		t.Skip("DuckDB uses the system allocator on this platform")
	}
	plan := memlimit.Split(512<<20, 2)
	env := func(conf string) func(string) string {
		return func(name string) string {
			if name == "DUCKDB_JE_MALLOC_CONF" {
				return conf
			}
			return ""
		}
	}
	log := zaptest.NewLogger(t)
	if got, hook := returnDuckDBFreed(plan, env("dirty_decay_ms:5000"), log); got != "DUCKDB_JE_MALLOC_CONF=dirty_decay_ms:5000" || hook != nil {
		t.Errorf("with DUCKDB_JE_MALLOC_CONF set: %q (hook %v)", got, hook != nil)
	}
	if got, hook := returnDuckDBFreed(memlimit.Split(0, 2), env(""), log); got != "DuckDB's defaults" || hook != nil {
		t.Errorf("without a limit: %q (hook %v)", got, hook != nil)
	}
	got, scanMemory := returnDuckDBFreed(plan, env(""), log)
	if got != "freed pages returned at once while an initial scan is applied" || scanMemory == nil {
		t.Fatalf("under a 512 MiB limit: %q (hook %v)", got, scanMemory != nil)
	}
	before, _, err := memlimit.DuckDBDecays()
	if err != nil {
		t.Fatal(err)
	}
	restore := scanMemory()
	db, err := sql.Open("duckdb", "?threads=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRowContext(context.Background(),
		`SELECT count(DISTINCT s) FROM (SELECT repeat('x', 100) || i::VARCHAR AS s FROM range(1000000) t(i) ORDER BY s DESC)`).Scan(&n); err != nil || n != 1000000 {
		t.Fatalf("query: %d, %v", n, err)
	}
	s, err := memlimit.DuckDBAllocatorStats()
	if err != nil {
		t.Fatal(err)
	}
	if kept := s.Dirty + s.Muzzy; kept > 4<<20 {
		t.Errorf("DuckDB's allocator keeps %d bytes of freed pages after a query (resident %d, allocated %d)", kept, s.Resident, s.Allocated)
	}
	// Once the scan is applied, DuckDB's own decay is back: returning pages
	// at once is too costly for every window.
	restore()
	if after, _, err := memlimit.DuckDBDecays(); err != nil || after != before {
		t.Errorf("decay after the scan %s, %v; want %s back", after, err, before)
	}
}
