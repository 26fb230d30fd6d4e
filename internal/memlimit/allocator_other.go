//go:build !linux || !cgo

package memlimit

func setDuckDBDecay(int64) error { return ErrNoDuckDBAllocator }

func duckDBAllocatorStats() (AllocatorStats, error) { return AllocatorStats{}, ErrNoDuckDBAllocator }
