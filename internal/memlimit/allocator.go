package memlimit

import (
	"errors"
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
