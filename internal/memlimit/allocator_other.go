//go:build !linux || !cgo

package memlimit

func setDuckDBDecay(int64) error { return ErrNoDuckDBAllocator }

func setDuckDBDecays(int64, int64) error { return ErrNoDuckDBAllocator }

func duckDBDecays() (int64, int64, error) { return 0, 0, ErrNoDuckDBAllocator }

func duckDBAllocatorStats() (AllocatorStats, error) { return AllocatorStats{}, ErrNoDuckDBAllocator }
