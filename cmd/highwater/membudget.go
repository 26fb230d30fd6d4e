package main

import (
	"math"
	"runtime/debug"

	"github.com/highwater-dev/highwater/internal/memlimit"
)

// bufferMemoryBudget is the buffer's memory front (buffer.Options.
// MemoryBudget): a fifth of the Go soft memory limit in force (set from
// --memory-limit's Go share, the default, or GOMEMLIMIT), or of the
// default limit when there is none. The rest of the Go heap is Badger's
// memtables and table builders, fetched records and the window being
// applied; a fifth of the default 300 MiB holds two to three windows of a
// 1M-event backlog, so that most events never reach Badger.
func bufferMemoryBudget() int64 {
	limit := debug.SetMemoryLimit(-1) // reads the limit without changing it
	if limit <= 0 || limit == math.MaxInt64 {
		limit = memlimit.DefaultGoSoftLimit
	}
	return limit / 5
}
