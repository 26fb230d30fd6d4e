package memlimit

import (
	"context"
	"runtime/debug"
	"sync"
	"time"
)

// Lending DuckDB's idle share to the Go heap.
//
// Under a steady ingest the Go heap's live data is mostly Badger's: its
// memtables and the table builders it keeps in a pool of eight (~28 MB
// each once they built a level-0 table; the pool's size is fixed inside
// badger.Open). With millions of events buffered under a 512 MiB limit
// that left 265-290 MB live against the Go share's 307 MiB, so the
// collector ran about 24 times a second and took 14% of the CPU
// (docs/BENCHMARKS.md). DuckDB's share meanwhile sits unused whenever no
// window or group is being applied. A Lender raises the Go soft limit by
// what DuckDB does not hold, up to half its share, once the warehouse has
// been idle for a moment, and takes it back before the next apply starts:
// the collector then finds garbage worth collecting, and the memory
// counted against the limit stays the same.

// Lending's tuning.
const (
	// LendIdle is how long the warehouse must have been idle before the
	// Go heap borrows: windows that follow each other closely (a feed
	// keeping up) never pay for a loan they would give back at once (one
	// forced collection and the pages returned to the kernel).
	LendIdle = time.Second
	// lendTick is how often an idle warehouse's DuckDB is looked at.
	lendTick = 250 * time.Millisecond
	// lendMostDiv: at most 1/lendMostDiv of DuckDB's share is lent. The
	// rest stays for what DuckDB does while idle (checkpoint reads, the
	// dead-letter table) and for the file-backed pages of Badger's
	// memory-mapped tables, which outgrow the plan's headroom with
	// millions of events buffered (10M events: 109-124 MiB).
	lendMostDiv = 2
)

// Lender lends the Go heap the part of a plan's DuckDB share that DuckDB
// does not hold, while the warehouse is idle. It is safe for concurrent
// use. Build it with NewLender, call Busy around every apply, and run Run.
type Lender struct {
	base  int64 // the plan's Go soft limit
	share int64 // the plan's DuckDB share
	most  int64
	idle  time.Duration
	// resident reads what DuckDB holds (DuckDBAllocatorStats); setLimit is
	// debug.SetMemoryLimit. Both are replaced by tests.
	resident func() (int64, error)
	setLimit func(int64) int64

	mu        sync.Mutex
	busy      int
	idleSince time.Time
	lent      int64
}

// NewLender returns the Lender of plan, or nil when there is nothing to
// lend: no limit, or no DuckDB allocator whose resident memory can be
// read (without it, what DuckDB holds is unknown).
func NewLender(plan Plan) *Lender {
	if plan.Total <= 0 || plan.DuckDBMemory <= 0 || plan.GoSoftLimit <= 0 {
		return nil
	}
	if _, err := duckDBAllocatorStats(); err != nil {
		return nil
	}
	return newLender(plan, func() (int64, error) {
		st, err := duckDBAllocatorStats()
		return st.Resident, err
	}, debug.SetMemoryLimit, time.Now())
}

func newLender(plan Plan, resident func() (int64, error), setLimit func(int64) int64, now time.Time) *Lender {
	return &Lender{
		base:      plan.GoSoftLimit,
		share:     plan.DuckDBMemory,
		most:      plan.DuckDBMemory / lendMostDiv,
		idle:      LendIdle,
		resident:  resident,
		setLimit:  setLimit,
		idleSince: now,
	}
}

// Busy takes back what is lent, before it returns, and lends nothing until
// the function it returns has been called and the warehouse has been idle
// for LendIdle. The processor calls it as a window or a group starts to be
// applied. Calls nest.
func (l *Lender) Busy() (done func()) {
	l.mu.Lock()
	l.busy++
	if l.lent != 0 {
		l.lent = 0
		l.setLimit(l.base)
	}
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			if l.busy--; l.busy == 0 {
				l.idleSince = time.Now()
			}
			l.mu.Unlock()
		})
	}
}

// Most returns the most the Go heap may borrow.
func (l *Lender) Most() int64 { return l.most }

// Lent returns what the Go soft limit holds above the plan's Go share now.
func (l *Lender) Lent() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lent
}

// Run adjusts the loan until ctx ends, then gives it back.
func (l *Lender) Run(ctx context.Context) {
	t := time.NewTicker(lendTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.mu.Lock()
			if l.lent != 0 {
				l.lent = 0
				l.setLimit(l.base)
			}
			l.mu.Unlock()
			return
		case now := <-t.C:
			l.tick(now)
		}
	}
}

// tick lends, at now, what DuckDB's share does not hold, up to l.most, if
// the warehouse has been idle long enough.
func (l *Lender) tick(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.busy > 0 || now.Sub(l.idleSince) < l.idle {
		return
	}
	loan := int64(0)
	if r, err := l.resident(); err == nil {
		// Whole MiB: the resident figure moves by pages from tick to tick.
		loan = min(max(l.share-r, 0), l.most) &^ (1<<20 - 1)
	}
	if loan != l.lent {
		l.lent = loan
		l.setLimit(l.base + loan)
	}
}
