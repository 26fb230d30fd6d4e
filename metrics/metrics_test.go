package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/duckdb"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

// statsSource serves whatever Stats and partitions it holds, as a running
// processor would.
type statsSource struct {
	s     atomic.Pointer[processor.Stats]
	parts atomic.Pointer[[]processor.PartitionStat]
}

func (f *statsSource) Stats() processor.Stats { return *f.s.Load() }

func (f *statsSource) PartitionStats() []processor.PartitionStat {
	if p := f.parts.Load(); p != nil {
		return *p
	}
	return nil
}

func serve(t *testing.T, src Source, opts ...Option) (get func(path string) (int, string), stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, src, zap.NewNop(), opts...) }()
	get = func(path string) (int, string) {
		t.Helper()
		var resp *http.Response
		var err error
		for i := 0; i < 100; i++ {
			if resp, err = http.Get("http://" + addr + path); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	return get, stop
}

func TestMetricsAndReadiness(t *testing.T) {
	src := &statsSource{}
	src.s.Store(&processor.Stats{Consumed: 42, Buffered: 3, Rebalances: 2, DeadLettersIngest: 1, DeadLettersApply: 2, Skipped: 4})
	get, stop := serve(t, src)
	defer stop()
	_, body := get("/metrics")
	for _, want := range []string{"highwater_records_consumed_total 42", "highwater_buffer_events 3", "highwater_rebalances_total 2",
		"highwater_decode_errors_total 7", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// /readyz and highwater_ready (what the NoMemberReady alert reads)
	// agree in every state.
	for _, c := range []struct {
		what  string
		stats processor.Stats
		code  int
	}{
		{"before any window", processor.Stats{}, http.StatusServiceUnavailable},
		{"with partitions but no frontier", processor.Stats{Partitions: 2}, http.StatusServiceUnavailable},
		{"with a frontier but no partitions", processor.Stats{Frontier: hlc.Timestamp{WallTime: time.Now().UnixNano()}}, http.StatusServiceUnavailable},
		{"after a window", processor.Stats{Partitions: 2, Frontier: hlc.Timestamp{WallTime: time.Now().UnixNano()}}, http.StatusOK},
	} {
		src.s.Store(&c.stats)
		if code, _ := get("/readyz"); code != c.code {
			t.Errorf("/readyz = %d %s, want %d", code, c.what, c.code)
		}
		_, body := get("/metrics")
		v, ok := sample(t, body, "highwater_ready", "")
		if want := b2f(c.code == http.StatusOK); !ok || v != want {
			t.Errorf("highwater_ready = %v (present %v) %s, want %v", v, ok, c.what, want)
		}
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
}

// sample returns the value of the series with exactly these labels.
func sample(t *testing.T, body, name, labels string) (float64, bool) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+labels) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

func TestPartitionGauges(t *testing.T) {
	src := &statsSource{}
	src.s.Store(&processor.Stats{})
	now := time.Now()
	src.parts.Store(&[]processor.PartitionStat{
		{Topic: "orders", Partition: 0, Resolved: hlc.Timestamp{WallTime: now.Add(-5 * time.Second).UnixNano()},
			Applied: hlc.Timestamp{WallTime: now.Add(-65 * time.Second).UnixNano()}, NextOffset: 90, HighWatermark: 100},
		// No resolved yet and nothing fetched: no lag series rather
		// than a lag since 1970.
		{Topic: "orders", Partition: 1},
	})
	get, stop := serve(t, src)
	defer stop()
	_, body := get("/metrics")
	check := func(name string, lo, hi float64) {
		t.Helper()
		v, ok := sample(t, body, name, `{partition="0",topic="orders"}`)
		if !ok || v < lo || v > hi {
			t.Errorf("%s = %v (present %v), want in [%v, %v]", name, v, ok, lo, hi)
		}
		if _, ok := sample(t, body, name, `{partition="1",topic="orders"}`); ok {
			t.Errorf("%s has a series for partition 1, which has nothing to report", name)
		}
	}
	// Bounds are loose: the scrape happens a moment after now.
	check("highwater_partition_resolved_lag_seconds", 5, 60)
	check("highwater_partition_applied_lag_seconds", 65, 120)
	check("highwater_consumer_lag_records", 10, 10)
}

func TestObserverCountsCommittedRowsAndFlushes(t *testing.T) {
	ctx := context.Background()
	w, err := duckdb.Open(ctx, "duckdb://"+filepath.Join(t.TempDir(), "wh.duckdb"), sinks.Options{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	obs := NewObserver()
	cw := obs.Writer(w)
	table := sinktest.Table("orders", []int{0}, sinktest.Col("id", model.KindInt), sinktest.Col("n", model.KindInt))
	h := func(i int64) hlc.Timestamp { return hlc.Timestamp{WallTime: 1659643584586630201 + i} }
	window := func(commit bool, changes ...sinks.Change) {
		t.Helper()
		tx, err := cw.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, table, changes); err != nil {
			t.Fatal(err)
		}
		if err := tx.Checkpoint(ctx, []sinks.Checkpoint{{Group: "g", Topic: "orders", Partition: 0, Resolved: h(100), NextOffset: 1}}); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	window(true,
		sinks.Change{Op: sinks.OpInsert, Updated: h(1), Values: []any{int64(1), int64(1)}},
		sinks.Change{Op: sinks.OpInsert, Updated: h(1), Values: []any{int64(2), int64(1)}},
		sinks.Change{Op: sinks.OpUpdate, Updated: h(2), Values: []any{int64(1), int64(2)}},
		sinks.Change{Op: sinks.OpDelete, Updated: h(3), Values: []any{int64(2), nil}})
	// A rolled-back window counts nothing: it will be written again.
	window(false, sinks.Change{Op: sinks.OpInsert, Updated: h(4), Values: []any{int64(3), int64(1)}})
	obs.WindowApplied(h(3), 30*time.Millisecond, 4)
	obs.WindowApplied(h(4), 2*time.Second, 0)

	src := &statsSource{}
	src.s.Store(&processor.Stats{})
	get, stop := serve(t, src, WithObserver(obs))
	defer stop()
	_, body := get("/metrics")
	for labels, want := range map[string]float64{
		`{op="insert",table="orders"}`: 2, `{op="update",table="orders"}`: 1, `{op="delete",table="orders"}`: 1,
	} {
		if v, ok := sample(t, body, "highwater_rows_written_total", labels); !ok || v != want {
			t.Errorf("highwater_rows_written_total%s = %v (present %v), want %v", labels, v, ok, want)
		}
	}
	if _, ok := sample(t, body, "highwater_rows_written_total", `{op="upsert",table="orders"}`); ok {
		t.Error("a series for upserts, of which there were none")
	}
	for labels, want := range map[string]float64{`{le="0.04"}`: 1, `{le="2.56"}`: 2, `{le="+Inf"}`: 2} {
		if v, ok := sample(t, body, "highwater_flush_duration_seconds_bucket", labels); !ok || v != want {
			t.Errorf("highwater_flush_duration_seconds_bucket%s = %v (present %v), want %v", labels, v, ok, want)
		}
	}
	if v, _ := sample(t, body, "highwater_flush_duration_seconds_count", ""); v != 2 {
		t.Errorf("flush count = %v, want 2", v)
	}
}

// TestMetricsDocMatchesTheRegistry checks that docs/METRICS.md lists
// exactly the highwater_ metrics the registry describes (from the start,
// even before they have a sample): dashboards and alerts are written from
// that page.
func TestMetricsDocMatchesTheRegistry(t *testing.T) {
	src := &statsSource{}
	src.s.Store(&processor.Stats{})
	reg := NewRegistry(src)
	described := map[string]bool{}
	ch := make(chan *prometheus.Desc, 256)
	go func() {
		reg.Describe(ch)
		close(ch)
	}()
	nameRE := regexp.MustCompile(`fqName: "(highwater_[a-z_]+)"`)
	for d := range ch {
		if m := nameRE.FindStringSubmatch(d.String()); m != nil {
			described[m[1]] = true
		}
	}
	doc, err := os.ReadFile("../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(highwater_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	for name := range described {
		if !documented[name] {
			t.Errorf("%s is exported but docs/METRICS.md has no row for it", name)
		}
	}
	for name := range documented {
		if !described[name] {
			t.Errorf("docs/METRICS.md documents %s, which is not exported", name)
		}
	}
	if len(described) < 20 {
		t.Errorf("only %d highwater metrics described: %v", len(described), described)
	}
}

// BenchmarkGather measures one scrape of the registry with 96 owned
// partitions (the per-partition collector dominates).
func BenchmarkGather(b *testing.B) {
	src := &statsSource{}
	src.s.Store(&processor.Stats{Partitions: 96})
	now := time.Now().UnixNano()
	parts := make([]processor.PartitionStat, 96)
	for i := range parts {
		parts[i] = processor.PartitionStat{Topic: "t" + strconv.Itoa(i%4), Partition: int32(i / 4),
			Resolved: hlc.Timestamp{WallTime: now}, Applied: hlc.Timestamp{WallTime: now}, NextOffset: 10, HighWatermark: 20}
	}
	src.parts.Store(&parts)
	reg := NewRegistry(src)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
