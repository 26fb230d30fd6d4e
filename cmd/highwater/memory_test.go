package main

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/internal/memlimit"
	"github.com/highwater-dev/highwater/internal/testfeed"
	"github.com/highwater-dev/highwater/simulator"
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

// TestApplyMemoryPlanLends: under a memory limit the plan lends the Go
// heap DuckDB's idle share, through a Lender whose Busy is the processor's
// Config.Applying, and says so in its log line; not when the operator set
// GOMEMLIMIT (the loan is made on the plan's Go share only) nor without a
// limit.
func TestApplyMemoryPlanLends(t *testing.T) {
	if _, err := memlimit.DuckDBAllocatorStats(); errors.Is(err, memlimit.ErrNoDuckDBAllocator) {
		t.Skip("DuckDB uses the system allocator on this platform")
	}
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	env := func(gomemlimit string) func(string) string {
		return func(name string) string {
			if name == "GOMEMLIMIT" {
				return gomemlimit
			}
			return ""
		}
	}
	// 4 GiB: what this test process already holds (earlier tests' DuckDBs,
	// brokers) leaves room below 90% of it for a loan.
	plan := memlimit.Split(4<<30, 2)
	core, logs := observer.New(zap.InfoLevel)
	mem := applyMemoryPlan(plan, env(""), zap.New(core))
	if mem.lender == nil || mem.applying() == nil {
		t.Fatal("no lender under a 4 GiB limit")
	}
	split := logs.FilterMessage("memory limit split").All()
	if len(split) != 1 || split[0].ContextMap()["go_borrows"] != "up to 409MiB of DuckDB's share while no window is applied" {
		t.Errorf("the split's log lines: %v", split)
	}
	if l := debug.SetMemoryLimit(-1); l != plan.GoSoftLimit {
		t.Fatalf("Go soft limit %d MiB, want the plan's %d MiB", l>>20, plan.GoSoftLimit>>20)
	}
	ctx, cancel := context.WithCancel(context.Background())
	lent := make(chan struct{})
	go func() { defer close(lent); mem.lender.Run(ctx) }()
	defer func() { cancel(); <-lent }()
	for deadline := time.Now().Add(10 * time.Second); mem.lender.Lent() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing lent in 10 s, DuckDB idle")
		}
	}
	if l := debug.SetMemoryLimit(-1); l != plan.GoSoftLimit+mem.lender.Lent() {
		t.Errorf("lent %d MiB: Go soft limit %d MiB", mem.lender.Lent()>>20, l>>20)
	}
	done := mem.applying()()
	if l := debug.SetMemoryLimit(-1); l != plan.GoSoftLimit {
		t.Errorf("Config.Applying left the Go soft limit at %d MiB, want the plan's %d MiB", l>>20, plan.GoSoftLimit>>20)
	}
	done()
	if mem := applyMemoryPlan(plan, env("400MiB"), zap.NewNop()); mem.lender != nil || mem.applying() != nil {
		t.Error("a lender although the operator set GOMEMLIMIT")
	}
	if mem := applyMemoryPlan(memlimit.Split(0, 2), env(""), zap.NewNop()); mem.lender != nil || mem.applying() != nil {
		t.Error("a lender without a memory limit")
	}
}

// TestRunLendsWhileIdle: a run under --memory-limit raises the Go soft
// limit while its warehouse is idle, takes the loan back when a window is
// applied, and leaves the plan's limit when it ends.
func TestRunLendsWhileIdle(t *testing.T) {
	if _, err := memlimit.DuckDBAllocatorStats(); errors.Is(err, memlimit.ErrNoDuckDBAllocator) {
		t.Skip("DuckDB uses the system allocator on this platform")
	}
	t.Setenv("GOMEMLIMIT", "")
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stack := testfeed.Stack(t, devstack.Options{})
	sim := testfeed.On(t, ctx, stack, simulator.Options{Partitions: 2, Seed: 5}, simulator.TelemetryTables()...)
	testfeed.Telemetry(t, ctx, sim, simulator.Workload{Txns: 40, KeysPerTable: 10, RowsPerTxn: 2})
	dir := t.TempDir()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	// 4 GiB, as in TestApplyMemoryPlanLends.
	base := memlimit.Split(4<<30, runtime.NumCPU()).GoSoftLimit
	debug.SetMemoryLimit(base) // what the run sets first: above it is a loan
	out := newSyncBuffer()
	ran := make(chan error, 1)
	go func() {
		ran <- run(runCtx, []string{"run", "--brokers", stack.Brokers()[0], "--registry", stack.RegistryURL(),
			"--topics", strings.Join(sim.Topics(), ","), "--group", "lend", "--sink", "duckdb://" + filepath.Join(dir, "wh.duckdb"),
			"--buffer-dir", filepath.Join(dir, "buffer"), "--memory-limit", "4GiB", "--log-format", "json"}, out, out)
	}()
	waitFor := func(what string, ok func(limit int64) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			l := debug.SetMemoryLimit(-1)
			if ok(l) {
				return
			}
			select {
			case err := <-ran:
				t.Fatalf("the run ended (%v) before %s; Go soft limit %d MiB\n%s", err, what, l>>20, out)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s in 30 s: Go soft limit %d MiB, the plan's %d MiB\n%s", what, l>>20, base>>20, out)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor("loan once the first window is applied", func(l int64) bool { return l > base })
	testfeed.Telemetry(t, ctx, sim, simulator.Workload{Txns: 40, KeysPerTable: 10, RowsPerTxn: 2})
	waitFor("loan taken back for the next window", func(l int64) bool { return l == base })
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if l := debug.SetMemoryLimit(-1); l != base {
		t.Errorf("after the run: Go soft limit %d MiB, want the plan's %d MiB", l>>20, base>>20)
	}
	if !strings.Contains(out.String(), "go_borrows") {
		t.Errorf("the run's logs do not say what the Go heap may borrow:\n%s", out)
	}
}
