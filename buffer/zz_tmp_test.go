package buffer

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
)

func TestZZHeap(t *testing.T) {
	if os.Getenv("ZZHEAP") == "" {
		t.Skip()
	}
	runtime.MemProfileRate = 4096
	s, _ := Open(Options{Dir: t.TempDir()})
	parts := make([]Partition, 8)
	for i := range parts {
		parts[i] = Partition{"orders", int32(i)}
	}
	benchFill(t, s, parts, 0, 2_000_000, 5000, 0)
	runtime.GC()
	f, _ := os.Create("/tmp/heap.out")
	pprof.WriteHeapProfile(f)
	f.Close()
	s.Close()
}
