package memlimit

import (
	"context"
	"database/sql"
	"errors"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

// fakeLimit records what a Lender sets as the Go soft limit.
type fakeLimit struct {
	mu  sync.Mutex
	cur int64
	set []int64
}

func (f *fakeLimit) setLimit(v int64) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.cur
	if v >= 0 {
		f.cur = v
		f.set = append(f.set, v)
	}
	return old
}

func (f *fakeLimit) get() (int64, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur, len(f.set)
}

// TestLender: the Go limit borrows what DuckDB's share does not hold, up
// to half the share and within what the rest of the process leaves below
// 90% of the limit, only once the warehouse has been idle for LendIdle;
// Busy takes the loan back (and returns the free heap to the kernel)
// before it returns, and nothing is lent until the last Busy is done and
// the warehouse idle again; figures that cannot be read lend nothing.
func TestLender(t *testing.T) {
	const mib = 1 << 20
	plan := Split(512*mib, 2) // Go 307.2 MiB, DuckDB 102.4 MiB, target 460.8 MiB
	base, share := plan.GoSoftLimit, plan.DuckDBMemory
	u := usage{duckDB: 10 * mib, goHeld: 300 * mib, process: 350 * mib}
	var measureErr error
	lim := &fakeLimit{cur: base}
	t0 := time.Now()
	var released int
	l := newLender(plan, func() (usage, error) { return u, measureErr }, lim.setLimit, func() { released++ }, t0)

	want := func(what string, limit int64) {
		t.Helper()
		if got, _ := lim.get(); got != limit {
			t.Fatalf("%s: Go soft limit %.1f MiB, want %.1f MiB", what, float64(got)/mib, float64(limit)/mib)
		}
		if got := l.Lent(); got != limit-base {
			t.Fatalf("%s: Lent() %.1f MiB, want %.1f MiB", what, float64(got)/mib, float64(limit-base)/mib)
		}
	}
	half := share / 2 &^ (mib - 1) // 51 MiB

	l.tick(t0.Add(LendIdle / 2))
	want("idle for half of LendIdle", base)
	l.tick(t0.Add(LendIdle))
	want("idle for LendIdle, DuckDB holding 10 MiB, the rest of the process 50", base+half)

	u.duckDB = share - 30*mib - 12345 // holds most of its share
	l.tick(t0.Add(2 * LendIdle))
	want("DuckDB holding all but 30 MiB of its share", base+30*mib)
	u.duckDB = share + mib
	l.tick(t0.Add(3 * LendIdle))
	want("DuckDB over its share", base)
	u.duckDB = 0
	l.tick(t0.Add(4 * LendIdle))
	want("DuckDB holding nothing", base+half)

	// The rest of the process (file-backed pages, DuckDB, C) at 130 MiB
	// leaves 460.8 - 130 - 307.2 = 23.6 MiB below the target.
	u.process = u.goHeld + 130*mib
	l.tick(t0.Add(5 * LendIdle))
	want("the rest of the process holding 130 MiB", base+23*mib)
	u.process = u.goHeld + 160*mib
	l.tick(t0.Add(6 * LendIdle))
	want("the rest of the process holding 160 MiB", base)
	u.process = u.goHeld - 50*mib // Go holds pages it never touched
	l.tick(t0.Add(7 * LendIdle))
	want("the process below what Go holds", base+half)

	done := l.Busy()
	want("Busy returned", base)
	if released != 1 {
		t.Fatalf("taking the loan back returned the free heap to the kernel %d times, want once", released)
	}
	done2 := l.Busy()
	if released != 1 {
		t.Fatalf("a Busy with nothing lent returned the free heap to the kernel (%d times in all)", released)
	}
	far := time.Now().Add(time.Hour)
	l.tick(far)
	want("busy twice", base)
	done()
	done() // idempotent: the other Busy still holds
	l.tick(far)
	want("one Busy done, one holding", base)
	done2()
	l.tick(time.Now())
	want("both done, not idle long enough", base)
	l.tick(time.Now().Add(LendIdle))
	want("idle again for LendIdle", base+half)

	measureErr = errors.New("no statistics")
	l.tick(time.Now().Add(2 * LendIdle))
	want("figures unreadable", base)

	// Unchanged figures do not set the limit again.
	measureErr = nil
	l.tick(time.Now().Add(3 * LendIdle))
	_, n := lim.get()
	l.tick(time.Now().Add(4 * LendIdle))
	if _, n2 := lim.get(); n2 != n {
		t.Errorf("an unchanged loan set the limit %d more times", n2-n)
	}
}

// TestLenderRunGivesBack: Run lends while the warehouse is idle and gives
// the loan back when its context ends.
func TestLenderRunGivesBack(t *testing.T) {
	plan := Split(512<<20, 2)
	lim := &fakeLimit{cur: plan.GoSoftLimit}
	l := newLender(plan, func() (usage, error) { return usage{}, nil }, lim.setLimit, func() {}, time.Now())
	l.idle = 0
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); l.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for l.Lent() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run lent nothing in 10 s to an idle warehouse")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-ran
	if got, _ := lim.get(); got != plan.GoSoftLimit || l.Lent() != 0 {
		t.Errorf("after Run: Go soft limit %d MiB, lent %d MiB; want the plan's %d MiB, none lent",
			got>>20, l.Lent()>>20, plan.GoSoftLimit>>20)
	}
}

// TestNewLender: no limit, nothing to lend; under a limit, in a process
// with DuckDB's allocator, a Lender that reads what DuckDB really holds
// and sets the process's Go soft limit.
func TestNewLender(t *testing.T) {
	if l := NewLender(Split(0, 2)); l != nil {
		t.Error("a Lender without a memory limit")
	}
	db, err := sql.Open("duckdb", "?threads=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	churn(t, db) // DuckDB's arenas exist and hold something
	if _, err := DuckDBAllocatorStats(); errors.Is(err, ErrNoDuckDBAllocator) {
		if l := NewLender(Split(512<<20, 2)); l != nil {
			t.Error("a Lender without DuckDB's allocator, which cannot know what DuckDB holds")
		}
		t.Skip("DuckDB uses the system allocator on this platform")
	}
	plan := Split(512<<20, 2)
	l := NewLender(plan)
	if l == nil {
		t.Fatal("no Lender under a 512 MiB limit with DuckDB's allocator")
	}
	u, err := l.measure()
	if err != nil || u.duckDB <= 0 || u.process <= 0 || u.goHeld <= 0 {
		t.Fatalf("the process's figures: %+v, %v; want DuckDB's, the process's and Go's all > 0", u, err)
	}
	old := debug.SetMemoryLimit(plan.GoSoftLimit)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	l.tick(time.Now().Add(LendIdle))
	// The figures read again by tick may differ by a few pages.
	loan := debug.SetMemoryLimit(-1) - plan.GoSoftLimit
	room := l.target - max(u.process-u.goHeld, 0) - plan.GoSoftLimit
	wantLoan := max(min(plan.DuckDBMemory-u.duckDB, l.Most(), room), 0)
	if loan%(1<<20) != 0 || loan > l.Most() || loan < wantLoan-2<<20 || loan > wantLoan+1<<20 {
		t.Errorf("idle (%+v): Go soft limit raised by %d bytes, want about %d MiB in whole MiB", u, loan, wantLoan>>20)
	}
	l.Busy()()
	if got := debug.SetMemoryLimit(-1); got != plan.GoSoftLimit {
		t.Errorf("after Busy: Go soft limit %d MiB, want %d MiB", got>>20, plan.GoSoftLimit>>20)
	}
}
