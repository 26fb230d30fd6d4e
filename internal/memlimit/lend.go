package memlimit

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
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
// window or group is being applied. A Lender raises the Go soft limit, once
// the warehouse has been idle for a moment, by what DuckDB does not hold,
// up to half its share, and by no more than the whole process leaves
// unused below 90% of the limit; it takes the loan back before the next
// apply starts.
//
// The second bound keeps the process's peak near where it was: the plan's
// headroom does not always cover what neither share bounds (the
// file-backed pages of Badger's tables and of the binary, 100-125 MiB
// while an initial scan is ingested). Between the groups of an initial
// scan the processor holds Busy (processor.Config.Applying): a loan there
// raised a 2M-row scan's peak from 454-465 to 481-497 MiB.

// Lending's tuning.
const (
	// LendIdle is how long the warehouse must have been idle before the
	// Go heap borrows: windows that follow each other closely (a feed
	// keeping up) never pay for a loan they would give back at once (one
	// forced collection and the pages returned to the kernel).
	LendIdle = time.Second
	// lendTick is how often an idle process's memory is looked at.
	lendTick = 250 * time.Millisecond
	// lendMostDiv: at most 1/lendMostDiv of DuckDB's share is lent. The
	// rest stays for what DuckDB does while idle (checkpoint reads, the
	// dead-letter table).
	lendMostDiv = 2
	// lendTargetMul/lendTargetDiv of the limit is the most the whole
	// process may hold, as far as a loan goes: the rest is room for what
	// grows between two looks (a compaction reading tables, a fetch).
	lendTargetMul, lendTargetDiv = 9, 10
)

// usage is what a Lender looks at.
type usage struct {
	// duckDB is what DuckDB's allocator holds in resident pages.
	duckDB int64
	// process is the process's resident memory, file-backed pages
	// included (what VmHWM records).
	process int64
	// goHeld is what the Go runtime holds and has not returned to the
	// kernel: what its soft limit counts.
	goHeld int64
}

// Lender lends the Go heap the part of a plan's DuckDB share that neither
// DuckDB nor the rest of the process uses, while the warehouse is idle. It
// is safe for concurrent use. Build it with NewLender, call Busy around
// every apply, and run Run.
type Lender struct {
	base   int64 // the plan's Go soft limit
	share  int64 // the plan's DuckDB share
	most   int64
	target int64 // lendTargetMul/lendTargetDiv of the plan's total
	idle   time.Duration
	// measure reads the figures, setLimit is debug.SetMemoryLimit and
	// release debug.FreeOSMemory (see Busy); tests replace them.
	measure  func() (usage, error)
	setLimit func(int64) int64
	release  func()

	mu        sync.Mutex
	busy      int
	idleSince time.Time
	lent      int64
}

// NewLender returns the Lender of plan, or nil when there is nothing to
// lend: no limit, or a process whose use cannot be read (no DuckDB
// allocator whose resident memory is known, no /proc/self/statm).
func NewLender(plan Plan) *Lender {
	if plan.Total <= 0 || plan.DuckDBMemory <= 0 || plan.GoSoftLimit <= 0 {
		return nil
	}
	if _, err := measure(); err != nil {
		return nil
	}
	return newLender(plan, measure, debug.SetMemoryLimit, debug.FreeOSMemory, time.Now())
}

func newLender(plan Plan, measure func() (usage, error), setLimit func(int64) int64, release func(), now time.Time) *Lender {
	return &Lender{
		base:      plan.GoSoftLimit,
		share:     plan.DuckDBMemory,
		most:      plan.DuckDBMemory / lendMostDiv,
		target:    plan.Total / lendTargetDiv * lendTargetMul,
		idle:      LendIdle,
		measure:   measure,
		setLimit:  setLimit,
		release:   release,
		idleSince: now,
	}
}

// measure reads DuckDB's allocator's resident bytes, the process's
// resident set (/proc/self/statm) and what the Go runtime holds.
func measure() (usage, error) {
	st, err := duckDBAllocatorStats()
	if err != nil {
		return usage{}, err
	}
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return usage{}, err
	}
	fields := strings.Fields(string(data))
	if len(fields) < 2 {
		return usage{}, fmt.Errorf("/proc/self/statm: %q", data)
	}
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return usage{}, fmt.Errorf("/proc/self/statm: %w", err)
	}
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(samples)
	return usage{
		duckDB:  st.Resident,
		process: pages * int64(os.Getpagesize()),
		goHeld:  int64(samples[0].Value.Uint64() - samples[1].Value.Uint64()),
	}, nil
}

// Busy takes back what is lent, before it returns, and lends nothing until
// the function it returns has been called and the warehouse has been idle
// for LendIdle. The processor calls it as a window or a group starts to be
// applied. Calls nest.
//
// Taking a loan back also collects the heap and returns its free pages to
// the kernel at once (debug.FreeOSMemory): a lower limit alone makes the
// next collection come sooner, but the pages it frees stay resident until
// the runtime's scavenger, paced at about 1% of the CPU, gets to them,
// while the apply's MERGEs grow in DuckDB. It costs one collection per
// apply that follows an idle second, none while windows follow each other.
func (l *Lender) Busy() (done func()) {
	l.mu.Lock()
	l.busy++
	if l.giveBack() {
		l.release()
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
			l.giveBack()
			l.mu.Unlock()
			return
		case now := <-t.C:
			l.tick(now)
		}
	}
}

// giveBack puts the Go soft limit back at the plan's share if anything is
// lent, and reports whether it was. The caller holds l.mu.
func (l *Lender) giveBack() bool {
	if l.lent == 0 {
		return false
	}
	l.lent = 0
	l.setLimit(l.base)
	return true
}

// tick lends, at now, what DuckDB's share does not hold, up to l.most and
// within the room the process leaves below l.target, if the warehouse has
// been idle long enough.
func (l *Lender) tick(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.busy > 0 || now.Sub(l.idleSince) < l.idle {
		return
	}
	loan := int64(0)
	if u, err := l.measure(); err == nil {
		// What the rest of the process holds stays; the Go heap may grow
		// to the target around it.
		room := l.target - max(u.process-u.goHeld, 0) - l.base
		// Whole MiB: the figures move by pages from tick to tick.
		loan = max(min(l.share-u.duckDB, l.most, room), 0) &^ (1<<20 - 1)
	}
	if loan != l.lent {
		l.lent = loan
		l.setLimit(l.base + loan)
	}
}
