package memlimit

import (
	"errors"
	"sync"
	"time"
)

// DuckDB's allocator.
//
// DuckDB's Linux builds, the ones highwater links, allocate their data
// (vectors, string heaps, the buffer manager's blocks) through a jemalloc
// of their own, built with a decay of one second for freed pages and no
// background threads. Freed pages are then returned to the kernel only
// when a later allocation of DuckDB's happens to look at the decay, and
// not at all while DuckDB is idle: while an initial scan bigger than
// --buffer-budget is applied, 170-230 MiB of pages DuckDB had freed stayed
// resident between its MERGEs, outside both DuckDB's memory_limit and Go's
// soft limit (docs/BENCHMARKS.md). DuckDB reads its jemalloc options only
// from DUCKDB_JE_MALLOC_CONF, at the process's start, before main; so the
// decay is set at run time through jemalloc's mallctl instead.

// ErrNoDuckDBAllocator says that the process holds no DuckDB jemalloc: it
// was built without DuckDB (a test binary of a package that does not link
// it), for a platform where DuckDB uses the system allocator, or without
// cgo.
var ErrNoDuckDBAllocator = errors.New("no DuckDB jemalloc in this process")

// DuckDBDecay is the decay highwater gives DuckDB's jemalloc when a memory
// limit is known: pages DuckDB frees go back to the kernel at once
// (dirty_decay_ms and muzzy_decay_ms 0, which also skips jemalloc's lazy
// MADV_FREE step, whose pages the kernel still counts as resident until it
// needs them).
const DuckDBDecay = 0

// AllocatorStats are DuckDB's jemalloc's statistics of all its arenas, in
// bytes.
type AllocatorStats struct {
	// Allocated is what DuckDB holds.
	Allocated int64
	// Resident is what jemalloc holds in resident pages: allocated, its
	// metadata, and the freed pages not yet returned.
	Resident int64
	// Dirty is freed pages jemalloc keeps, not yet returned to the kernel.
	Dirty int64
	// Muzzy is freed pages jemalloc marked MADV_FREE: returned lazily, and
	// counted as resident until the kernel takes them.
	Muzzy int64
}

// SetDuckDBDecay sets how long DuckDB's jemalloc keeps pages freed by
// DuckDB before returning them to the kernel (dirty_decay_ms, and the same
// for muzzy_decay_ms), for its arenas now and for those it creates later;
// with d 0 it also returns to the kernel what it keeps already. It returns
// ErrNoDuckDBAllocator when there is no such allocator.
func SetDuckDBDecay(d time.Duration) error {
	return setDuckDBDecay(d.Milliseconds())
}

// DuckDBAllocatorStats reads DuckDB's jemalloc's statistics; it returns
// ErrNoDuckDBAllocator when there is no such allocator.
func DuckDBAllocatorStats() (AllocatorStats, error) {
	return duckDBAllocatorStats()
}

// DuckDBDecays reads the decays in force in DuckDB's jemalloc for the
// arenas it creates: how long freed dirty and muzzy pages are kept.
func DuckDBDecays() (dirty, muzzy time.Duration, err error) {
	d, m, err := duckDBDecays()
	return time.Duration(d) * time.Millisecond, time.Duration(m) * time.Millisecond, err
}

// returning counts the callers of ReturnDuckDBFreed that have not
// restored yet: the allocator is the process's, like its decay.
var returning struct {
	sync.Mutex
	n            int
	dirty, muzzy int64
}

// ReturnDuckDBFreed makes DuckDB's jemalloc return the pages DuckDB frees
// at once (SetDuckDBDecay(DuckDBDecay)) until restore is called, which
// puts back the decays in force before. Calls nest: the first sets the
// decay, the last restore puts it back. Returning pages at once costs
// DuckDB page faults on every large allocation (end to end about 13% more
// CPU per event), so highwater does it only while an initial scan is
// applied, when the pages DuckDB frees between its MERGEs would otherwise
// stay resident outside every share of the memory limit.
func ReturnDuckDBFreed() (restore func(), err error) {
	returning.Lock()
	defer returning.Unlock()
	if returning.n == 0 {
		d, m, err := duckDBDecays()
		if err != nil {
			return func() {}, err
		}
		if err := setDuckDBDecay(DuckDBDecay); err != nil {
			return func() {}, err
		}
		returning.dirty, returning.muzzy = d, m
	}
	returning.n++
	var once sync.Once
	return func() {
		once.Do(func() {
			returning.Lock()
			defer returning.Unlock()
			if returning.n--; returning.n == 0 {
				_ = setDuckDBDecays(returning.dirty, returning.muzzy)
			}
		})
	}, nil
}
