package processor

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/internal/testfeed"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/simulator"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/duckdb"
)

// recordingObserver keeps every WindowApplied call.
type recordingObserver struct {
	mu      sync.Mutex
	windows []hlc.Timestamp
	took    []time.Duration
	rows    int
}

func (r *recordingObserver) WindowApplied(through hlc.Timestamp, took time.Duration, rows int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.windows = append(r.windows, through)
	r.took = append(r.took, took)
	r.rows += rows
}

// TestPartitionStatsAndObserver runs a member over a simulated feed and
// checks what the metrics read: every owned partition's resolved and
// applied timestamps and offsets, the rebalance count, and one Observer
// call per committed window.
func TestPartitionStatsAndObserver(t *testing.T) {
	stack := testfeed.Stack(t, devstack.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sim := testfeed.On(t, ctx, stack, simulator.Options{Partitions: 3, Diff: true, Seed: 11}, simulator.TelemetryTables()...)
	final := testfeed.Telemetry(t, ctx, sim, simulator.Workload{Txns: 400, KeysPerTable: 40, RowsPerTxn: 2, DeleteProb: 0.1, ResolveEvery: 100})
	reg, err := schemas.NewRegistry(stack.RegistryURL())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	buf, err := buffer.Open(buffer.Options{Dir: filepath.Join(dir, "buf")})
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	w, err := duckdb.Open(ctx, "duckdb://"+filepath.Join(dir, "wh.duckdb"), sinks.Options{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	obs := &recordingObserver{}
	p, err := New(Config{Brokers: stack.Brokers(), Topics: sim.Topics(), Group: "observe", Decoder: schemas.NewDecoder(reg),
		Buffer: buf, Writer: w, Observer: obs, SessionTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.PartitionStats(); len(got) != 0 {
		t.Fatalf("PartitionStats before Run = %v", got)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	want := 3 * len(sim.Topics())
	var seen []PartitionStat
	// Wait until every partition is applied through the feed's end; the
	// minute-long context bounds a broken run.
	for caughtUp := false; !caughtUp; {
		select {
		case err := <-done:
			t.Fatalf("Run ended early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		seen = p.PartitionStats()
		caughtUp = len(seen) == want
		for _, ps := range seen {
			caughtUp = caughtUp && !ps.Applied.Less(final)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	for i, ps := range seen {
		if i > 0 && (seen[i-1].Topic > ps.Topic || (seen[i-1].Topic == ps.Topic && seen[i-1].Partition >= ps.Partition)) {
			t.Errorf("PartitionStats not ordered: %v before %v", seen[i-1], ps)
		}
		if ps.Resolved.Less(final) {
			t.Errorf("%s[%d] resolved %v, want >= %v", ps.Topic, ps.Partition, ps.Resolved, final)
		}
		// The feed was complete before the run: everything was read.
		if ps.HighWatermark == 0 || ps.NextOffset != ps.HighWatermark {
			t.Errorf("%s[%d] next offset %d, high watermark %d: want equal and > 0", ps.Topic, ps.Partition, ps.NextOffset, ps.HighWatermark)
		}
	}
	s := p.Stats()
	if s.Rebalances < 1 {
		t.Errorf("Rebalances = %d, want >= 1 (the assignment)", s.Rebalances)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if int64(len(obs.windows)) != s.Windows || int64(obs.rows) != s.RowsApplied || s.Windows == 0 {
		t.Errorf("observer saw %d windows and %d rows; stats say %d and %d", len(obs.windows), obs.rows, s.Windows, s.RowsApplied)
	}
	for i := range obs.windows {
		if obs.took[i] <= 0 || (i > 0 && !obs.windows[i-1].Less(obs.windows[i])) {
			t.Errorf("window %d: through %v took %v (previous %v)", i, obs.windows[i], obs.took[i], obs.windows[max(0, i-1)])
		}
	}
}
