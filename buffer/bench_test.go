package buffer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/procstat"
)

// benchValue is a 150-byte payload, the size of a typical Avro row.
var benchValue = bytes.Repeat([]byte{'v'}, 150)

// benchFill writes n events spread over parts in batches of batchSize.
// Keys cycle over 100k row keys per partition; HLCs increase, with jitter
// (interleaved ranges) if jitter > 0.
func benchFill(tb testing.TB, s *Store, parts []Partition, start, n, batchSize int, jitter int64) {
	tb.Helper()
	ctx := context.Background()
	key := make([]byte, 0, 32)
	for i := start; i < start+n; {
		b := s.NewBatch()
		for j := 0; j < batchSize && i < start+n; j++ {
			p := parts[i%len(parts)]
			k := i / len(parts)
			key = strconv.AppendInt(append(key[:0], "row/"...), int64(k%100_000), 10)
			ts := hlc.Timestamp{WallTime: 1_700_000_000_000_000_000 + int64(k)*1000}
			if jitter > 0 {
				ts.WallTime -= int64(k%7) * jitter
			}
			b.Add(p, Event{Updated: ts, Table: "orders", Key: key, Offset: int64(k), Value: benchValue})
			b.SetConsumed(p, int64(k)+1)
			i++
		}
		if err := s.Write(ctx, b); err != nil {
			tb.Fatal(err)
		}
	}
}

func benchOpen(b *testing.B) *Store {
	b.Helper()
	s, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkWrite measures ingest: one op is one event, written in batches
// of 5000 (about one fetch), 150-byte values, 100k row keys.
func BenchmarkWrite(b *testing.B) {
	for _, bc := range []struct {
		name   string
		parts  int
		jitter int64
	}{
		{"increasing-1part", 1, 0},
		{"increasing-8parts", 8, 0},
		// Several ranges emit to one partition: HLCs go back a little, so
		// about 6 in 7 events take the duplicate-lookup path.
		{"interleaved-8parts", 8, 1500},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := benchOpen(b)
			parts := make([]Partition, bc.parts)
			for i := range parts {
				parts[i] = Partition{"orders", int32(i)}
			}
			b.ResetTimer()
			start := time.Now()
			benchFill(b, s, parts, 0, b.N, 5000, bc.jitter)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// BenchmarkScan merges 1M events of 8 partitions; one op is one full scan.
func BenchmarkScan(b *testing.B) {
	const n = 1_000_000
	s := benchOpen(b)
	parts := make([]Partition, 8)
	for i := range parts {
		parts[i] = Partition{"orders", int32(i)}
	}
	benchFill(b, s, parts, 0, n, 10_000, 0)
	for _, reverse := range []bool{false, true} {
		b.Run(fmt.Sprintf("reverse=%v", reverse), func(b *testing.B) {
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			start := time.Now()
			var got int
			for b.Loop() {
				got = 0
				err := s.Scan(context.Background(), parts, maxHLC, ScanOptions{Reverse: reverse}, func(Partition, Event) error {
					got++
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			if got != n {
				b.Fatalf("scanned %d, want %d", got, n)
			}
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "events/s")
			// Process-wide: includes Badger's background compactions.
			b.ReportMetric(float64(ms.TotalAlloc-before)/float64(b.N*n), "B/event")
		})
	}
}

// BenchmarkTrim measures trimming a 200k-event window of 8 partitions
// (events and offset index); one op is one event.
func BenchmarkTrim(b *testing.B) {
	s := benchOpen(b)
	parts := make([]Partition, 8)
	for i := range parts {
		parts[i] = Partition{"orders", int32(i)}
	}
	const window = 200_000
	var elapsed time.Duration
	done := 0
	for i := 0; done < b.N; i++ {
		b.StopTimer()
		benchFill(b, s, parts, i*window, window, 10_000, 0)
		through := hlc.Timestamp{WallTime: 1_700_000_000_000_000_000 + int64((i+1)*window/len(parts)-1)*1000}
		b.StartTimer()
		start := time.Now()
		if err := s.Trim(context.Background(), parts, through); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		done += window
	}
	if u := s.Usage(); u.Events != 0 {
		b.Fatalf("%d events left after trims", u.Events)
	}
	b.ReportMetric(float64(done)/elapsed.Seconds(), "events/s")
}

// BenchmarkLowOffset measures LowOffset with 1M events buffered beyond a
// 10k-event window: it must cost the window, not the buffer.
func BenchmarkLowOffset(b *testing.B) {
	s := benchOpen(b)
	p := []Partition{{"orders", 0}}
	benchFill(b, s, p, 0, 1_010_000, 10_000, 0)
	through := hlc.Timestamp{WallTime: 1_700_000_000_000_000_000 + 9_999*1000}
	for b.Loop() {
		off, err := s.LowOffset(p[0], through)
		if err != nil || off != 10_000 {
			b.Fatalf("LowOffset = %d, %v; want 10000", off, err)
		}
	}
}

// BenchmarkWriteUnresolved writes b.N events that no resolved timestamp
// closes, as the bench's memory feed does: 8 partitions, 180-byte values,
// HLCs 100 µs apart (10k events a second of source time, so the buffer
// spans many epochs). One op is one event; -benchtime=10000000x gives the
// 10M figures in docs/BENCHMARKS.md, where compaction dominates.
func BenchmarkWriteUnresolved(b *testing.B) {
	s := benchOpen(b)
	parts := make([]Partition, 8)
	for i := range parts {
		parts[i] = Partition{"orders", int32(i)}
	}
	val := make([]byte, 180)
	for i := range val {
		val[i] = byte('a' + i%23)
	}
	offs := make([]int64, len(parts))
	key := make([]byte, 0, 32)
	ctx := context.Background()
	batch := s.NewBatch()
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	for i := 0; i < b.N; {
		batch.Reset()
		for j := 0; j < 5000 && i < b.N; j++ {
			p := i % len(parts)
			ts := hlc.Timestamp{WallTime: 1_700_000_000_000_000_000 + int64(i)*100_000}
			key = strconv.AppendInt(append(key[:0], "row/"...), int64(i*7919%1_000_000), 10)
			batch.Add(parts[p], Event{Updated: ts, Table: "orders", Key: key, Offset: offs[p], Value: val})
			offs[p]++
			batch.SetConsumed(parts[p], offs[p])
			i++
		}
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/1000/float64(b.N), "cpu-µs/event")
}

// BenchmarkBuffered2M writes 2M unresolved events (150-byte values, 8
// partitions) and reports the process's peak RSS and Go heap, the logical
// buffer size and the files on disk. It reports; it does not assert.
func BenchmarkBuffered2M(b *testing.B) {
	const n = 2_000_000
	parts := make([]Partition, 8)
	for i := range parts {
		parts[i] = Partition{"orders", int32(i)}
	}
	for b.Loop() {
		runtime.GC()
		// Reset the kernel's peak-RSS mark so it covers this run only.
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
		dir := b.TempDir()
		s, err := Open(Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		var peakHeap, peakSys uint64
		var peakAnon, peakFile int64
		var ms runtime.MemStats
		start := time.Now()
		for i := 0; i < n; i += 100_000 {
			benchFill(b, s, parts, i, 100_000, 5000, 0)
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
			peakSys = max(peakSys, ms.Sys)
			peakAnon = max(peakAnon, procStatus("RssAnon:"))
			peakFile = max(peakFile, procStatus("RssFile:")+procStatus("RssShmem:"))
		}
		elapsed := time.Since(start)
		u := s.Usage()
		// A full window flush over the 2M events, to see Scan's memory.
		cnt := 0
		if err := s.Scan(context.Background(), parts, maxHLC, ScanOptions{}, func(Partition, Event) error { cnt++; return nil }); err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapInuse)
		diskBefore, _ := procstat.DirSize(dir)
		trimStart := time.Now()
		if err := s.Trim(context.Background(), parts, maxHLC); err != nil {
			b.Fatal(err)
		}
		trimTime := time.Since(trimStart)
		b.ReportMetric(float64(n)/elapsed.Seconds(), "write-events/s")
		b.ReportMetric(float64(procStatus("VmHWM:"))/(1<<20), "peak-RSS-MiB")
		b.ReportMetric(float64(peakAnon)/(1<<20), "peak-anon-MiB")
		b.ReportMetric(float64(peakFile)/(1<<20), "peak-file-MiB")
		b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(peakSys)/(1<<20), "go-sys-MiB")
		b.ReportMetric(float64(u.Bytes)/(1<<20), "usage-MiB")
		b.ReportMetric(float64(diskBefore)/(1<<20), "disk-MiB")
		b.ReportMetric(trimTime.Seconds(), "trim-2M-s")
		if u.Events != n || cnt != n {
			b.Fatalf("buffered %d, scanned %d, want %d", u.Events, cnt, n)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// procStatus returns a kB field of /proc/self/status in bytes (0 if
// unknown): VmHWM is the peak RSS, RssAnon the anonymous memory (Go heap,
// stacks), RssFile the resident pages of mapped files (Badger mmaps its
// tables and logs; clean ones are page cache the kernel can reclaim).
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
