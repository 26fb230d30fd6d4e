package processor

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// TestEarlyGroupLowersGoLimit: while a group is applied early, the Go
// soft memory limit is earlyGoLimitMul/earlyGoLimitDiv of the one in force
// (the warehouse's MERGEs grow outside it, the paused ingest needs little),
// in every transaction of the group, and it is restored afterwards, also
// when the group fails.
func TestEarlyGroupLowersGoLimit(t *testing.T) {
	const n = 400
	const limit = 400 << 20
	old := debug.SetMemoryLimit(limit)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	r := budgetedRig(t, func() []*kgo.Record { return scanFeed(n) })
	held := []sinks.Checkpoint{{Group: "g", Topic: r.part.Topic, Partition: r.part.Partition}}
	var during []int64
	var scanMem int // Config.ScanMemory's holders
	var scanMemDuring []int
	r.p.cfg.ScanMemory = func() func() {
		scanMem++
		return func() { scanMem-- }
	}
	r.p.cfg.WindowHook = func(s WindowStage, at hlc.Timestamp) {
		if s == WindowBegin || s == WindowCommit {
			during = append(during, debug.SetMemoryLimit(-1))
			scanMemDuring = append(scanMemDuring, scanMem)
		}
	}
	res := r.p.applyEarly(context.Background(), r.buf.TakeGroup([]buffer.Partition{r.part}, t1), held)
	if res.err != nil || res.rows != n {
		t.Fatalf("group applied early: %d rows, %v; want %d", res.rows, res.err, n)
	}
	if len(during) < 4 {
		t.Fatalf("the hook saw %d stages, want the begin and commit of several transactions", len(during))
	}
	want := int64(limit / earlyGoLimitDiv * earlyGoLimitMul)
	for i, l := range during {
		if l != want {
			t.Errorf("stage %d of the group: Go soft limit %d MiB, want %d MiB", i, l>>20, want>>20)
		}
	}
	if l := debug.SetMemoryLimit(-1); l != limit {
		t.Errorf("after the group: Go soft limit %d MiB, want %d MiB restored", l>>20, limit>>20)
	}
	for i, n := range scanMemDuring {
		if n != 1 {
			t.Errorf("stage %d of the group: Config.ScanMemory held %d times, want once", i, n)
		}
	}
	if scanMem != 0 {
		t.Errorf("after the group: Config.ScanMemory held %d times, want restored", scanMem)
	}

	// A failed group restores it too.
	ctx, cancel := context.WithCancel(context.Background())
	r.p.cfg.WindowHook = func(s WindowStage, at hlc.Timestamp) {
		if s == WindowCommit {
			cancel()
		}
	}
	r2 := budgetedRig(t, func() []*kgo.Record { return scanFeed(n) })
	r2.p.cfg.WindowHook = r.p.cfg.WindowHook
	if res := r2.p.applyEarly(ctx, r2.buf.TakeGroup([]buffer.Partition{r2.part}, t1), held); res.err == nil {
		t.Fatal("a group cancelled at its first commit succeeded")
	}
	if l := debug.SetMemoryLimit(-1); l != limit {
		t.Errorf("after a failed group: Go soft limit %d MiB, want %d MiB restored", l>>20, limit>>20)
	}
}

// TestLowerGoLimitNests: two groups applied at once in one process (two
// processors) lower the limit once, and it is restored when the last ends.
func TestLowerGoLimitNests(t *testing.T) {
	const limit = 400 << 20
	old := debug.SetMemoryLimit(limit)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	lowered := int64(limit / earlyGoLimitDiv * earlyGoLimitMul)
	a := lowerGoLimit()
	b := lowerGoLimit()
	if l := debug.SetMemoryLimit(-1); l != lowered {
		t.Fatalf("two groups: limit %d MiB, want %d MiB (lowered once)", l>>20, lowered>>20)
	}
	a()
	if l := debug.SetMemoryLimit(-1); l != lowered {
		t.Fatalf("one group ended, one going on: limit %d MiB, want %d MiB", l>>20, lowered>>20)
	}
	b()
	if l := debug.SetMemoryLimit(-1); l != limit {
		t.Fatalf("both ended: limit %d MiB, want %d MiB", l>>20, limit>>20)
	}
}

// TestScanWindowLowersGoLimit: the window through an initial scan's
// resolved timestamp, which holds what is left of a scan whose groups were
// applied early, runs under the lowered Go limit like the groups; the
// windows after it under the full one.
func TestScanWindowLowersGoLimit(t *testing.T) {
	const n = 400
	const limit = 400 << 20
	old := debug.SetMemoryLimit(limit)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	r, t3, t4 := scanRig(t, n)
	ctx := context.Background()
	limits := map[hlc.Timestamp][]int64{}
	r.p.cfg.WindowHook = func(s WindowStage, at hlc.Timestamp) {
		if s == WindowBegin {
			limits[at] = append(limits[at], debug.SetMemoryLimit(-1))
		}
	}
	stepApply(t, ctx, r, "the scan's group at t1, early")
	// A slow restore of the scan's other settings (Config.ScanMemory)
	// widens the gap a result sent before the restore would leave.
	var restored atomic.Int32
	r.p.cfg.ScanMemory = func() func() {
		return func() {
			time.Sleep(20 * time.Millisecond)
			restored.Add(1)
		}
	}
	stepApply(t, ctx, r, "the window through t3")
	// reapFlush has the window's result, so every setting is back
	// already: the window that starts next must not see the scan's.
	if l := debug.SetMemoryLimit(-1); l != limit || restored.Load() != 1 {
		t.Fatalf("once the window through the scan's resolved is reaped: Go soft limit %d MiB (want %d MiB), scan settings restored %d times (want 1)",
			l>>20, limit>>20, restored.Load())
	}
	afterScan(t, r, t4)
	stepApply(t, ctx, r, "the window after the scan")
	lowered := int64(limit / earlyGoLimitDiv * earlyGoLimitMul)
	if len(limits[t1]) < 2 {
		t.Fatalf("the scan's group took %d transactions, want several (limits seen: %v)", len(limits[t1]), limits)
	}
	for _, l := range limits[t1] {
		if l != lowered {
			t.Errorf("a transaction of the scan's group under a Go limit of %d MiB, want %d MiB", l>>20, lowered>>20)
		}
	}
	if got := limits[t3]; len(got) != 1 || got[0] != lowered {
		t.Errorf("the window through the scan's resolved %s under Go limits %v, want one at %d MiB", t3, got, lowered>>20)
	}
	var later []int64
	for at, ls := range limits {
		if t3.Less(at) {
			later = append(later, ls...)
		}
	}
	if len(later) != 1 || later[0] != limit {
		t.Errorf("the window after the scan under Go limits %v, want one at the full %d MiB", later, limit>>20)
	}
	if l := debug.SetMemoryLimit(-1); l != limit {
		t.Errorf("after the scan: Go soft limit %d MiB, want %d MiB", l>>20, limit>>20)
	}
}

// TestApplyingWrapsEveryApply: Config.Applying (a memlimit.Lender's Busy
// in highwater run) holds through every transaction of a group applied
// early and of every window, scan or not; it is taken before the Go limit
// is lowered for a scan and given back after it is restored, so a lender
// that takes back its loan in Applying leaves the scan's lowered limit
// computed from the plan's share, not from the loan; it is given back
// before the result is reaped; and once a group of an initial scan is
// applied early, it is held until the window through the scan is, so that
// nothing is lent between the scan's groups.
func TestApplyingWrapsEveryApply(t *testing.T) {
	const n = 400
	const limit = 400 << 20
	const loan = 40 << 20
	old := debug.SetMemoryLimit(limit + loan)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	r, t3, t4 := scanRig(t, n)
	ctx := context.Background()
	var busy, calls atomic.Int32
	r.p.cfg.Applying = func() func() {
		calls.Add(1)
		busy.Add(1)
		debug.SetMemoryLimit(limit) // the loan is taken back
		return func() {
			time.Sleep(10 * time.Millisecond) // widens a gap before the reap
			busy.Add(-1)
		}
	}
	type seen struct {
		at    hlc.Timestamp
		busy  int32
		limit int64
	}
	var stages []seen
	r.p.cfg.WindowHook = func(s WindowStage, at hlc.Timestamp) {
		if s == WindowBegin || s == WindowCommit {
			stages = append(stages, seen{at, busy.Load(), debug.SetMemoryLimit(-1)})
		}
	}
	var held int32 // Config.Applying's holders expected between applies
	step := func(what string) {
		t.Helper()
		stepApply(t, ctx, r, what)
		if b := busy.Load(); b != held {
			t.Fatalf("%s reaped with Config.Applying held %d times, want %d", what, b, held)
		}
		if l := debug.SetMemoryLimit(-1); l != limit {
			t.Fatalf("%s reaped: Go soft limit %d MiB, want the plan's %d MiB", what, l>>20, limit>>20)
		}
		if held == 0 {
			debug.SetMemoryLimit(limit + loan) // lent again while idle
		}
	}
	held = 1 // by the scan, until its window
	step("the scan's group")
	held = 0
	step("the window through the scan's resolved")
	afterScan(t, r, t4)
	step("the window after the scan")
	if c := calls.Load(); c != 4 {
		t.Errorf("Config.Applying called %d times, want once per apply and once for the scan (4)", c)
	}
	lowered := int64(limit / earlyGoLimitDiv * earlyGoLimitMul)
	var sawLater bool
	for _, s := range stages {
		wantBusy := int32(1) // the apply
		if s.at == t3 {
			wantBusy = 2 // and the scan
		}
		if s.busy != wantBusy {
			t.Errorf("a transaction through %s ran with Config.Applying held %d times, want %d", s.at, s.busy, wantBusy)
		}
		want := lowered
		if t3.Less(s.at) {
			want, sawLater = limit, true
		}
		if s.limit != want {
			t.Errorf("a transaction through %s under a Go limit of %d MiB, want %d MiB", s.at, s.limit>>20, want>>20)
		}
	}
	if len(stages) < 6 || !sawLater {
		t.Fatalf("the hook saw %d stages (the window after the scan: %v), want the scan's group, its window and the next", len(stages), sawLater)
	}
}

// scanRig is a budgetedRig fed an initial scan of n rows at t1, an update
// at t2 and a resolved timestamp at t3; t4 is an HLC after t3 for the feed
// that follows the scan (afterScan).
func scanRig(t *testing.T, n int) (r *rig, t3, t4 hlc.Timestamp) {
	t.Helper()
	t3 = hlc.Timestamp{WallTime: t2.WallTime + 1e9}
	t4 = hlc.Timestamp{WallTime: t3.WallTime + 1e9}
	r = budgetedRig(t, func() []*kgo.Record {
		return append(scanFeed(n),
			&kgo.Record{Key: keyOfT(7), Value: valueOfT(7, "updated", t2)},
			&kgo.Record{Value: resolvedOf(t3, idResolved)})
	})
	return r, t3, t4
}

// afterScan ingests an update at t4 and a resolved timestamp past it.
func afterScan(t *testing.T, r *rig, t4 hlc.Timestamp) {
	t.Helper()
	if err := r.ingest(t, &kgo.Record{Key: keyOfT(8), Value: valueOfT(8, "later", t4)},
		&kgo.Record{Value: resolvedOf(hlc.Timestamp{WallTime: t4.WallTime + 1}, idResolved)}); err != nil {
		t.Fatal(err)
	}
}

// stepApply starts the next window or group of r and waits for its
// result to be reaped.
func stepApply(t *testing.T, ctx context.Context, r *rig, what string) {
	t.Helper()
	if err := r.p.maybeFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if r.p.inflight == nil {
		t.Fatalf("%s: no window or group started", what)
	}
	if err := r.p.reapFlush(ctx, true, false); err != nil {
		t.Fatal(err)
	}
}
