package files

import (
	"context"
	"fmt"
	"math/big"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// benchTable is the 5-column table of the DuckDB benchmark: BIGINT key,
// VARCHAR, BIGINT, DECIMAL(12,2), TIMESTAMPTZ.
func benchTable() *model.Table {
	return table("bench", []int{0}, col("id", model.KindInt), col("name", model.KindString), col("n", model.KindInt),
		model.Column{Name: "amount", Type: model.Type{Kind: model.KindDecimal, Precision: 12, Scale: 2}},
		col("at", model.KindTimestampTZ))
}

func benchChanges(n, offset int) []sinks.Change {
	out := make([]sinks.Change, n)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range out {
		k := int64(offset + i)
		out[i] = ch(sinks.OpUpsert, h(k/3), k, fmt.Sprintf("customer-%07d", k), k*7,
			model.Decimal{Unscaled: big.NewInt(k * 101), Scale: 2}, at.Add(time.Duration(k)*time.Millisecond))
	}
	return out
}

// writeWindow writes changes (in Write calls of 1,000, as the processor
// batches) and commits.
func writeWindow(b *testing.B, w *Writer, cps []sinks.Checkpoint, tb *model.Table, changes []sinks.Change) {
	ctx := context.Background()
	tx, err := w.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < len(changes); i += 1000 {
		if err := tx.Write(ctx, tb, changes[i:min(i+1000, len(changes))]); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Checkpoint(ctx, cps); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWrite measures a window of 100,000 changes, Write and Commit,
// into a local directory, per format and compression.
func BenchmarkWrite(b *testing.B) {
	const n = 100_000
	changes := benchChanges(n, 0)
	tb := benchTable()
	for _, tc := range []struct{ format, compression string }{
		{"parquet", "snappy"}, {"parquet", "zstd"}, {"parquet", "none"}, {"ndjson", "none"}, {"ndjson", "gzip"},
	} {
		b.Run(tc.format+"/"+tc.compression, func(b *testing.B) {
			w, err := OpenConfig(context.Background(), Config{Root: b.TempDir(), Format: Format(tc.format), Compression: tc.compression}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				writeWindow(b, w, []sinks.Checkpoint{cp(0, h(int64(n+i)), int64(i))}, tb, changes)
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkLargeWindow writes one window of 1,000,000 changes (about 90 MB
// as the writer encodes them) into 128 MiB Parquet files with a 16 MiB and
// the default 64 MiB memory limit, and reports the peak Go heap in use
// (garbage not yet collected included) while it ran: the window spills to
// sort runs instead of growing the heap.
func BenchmarkLargeWindow(b *testing.B) {
	for _, limit := range []int64{16 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("memory=%dMiB", limit>>20), func(b *testing.B) { benchLargeWindow(b, limit) })
	}
}

func benchLargeWindow(b *testing.B, limit int64) {
	const n, batch = 1_000_000, 10_000
	tb := benchTable()
	for i := 0; i < b.N; i++ {
		w, err := OpenConfig(context.Background(), Config{Root: b.TempDir(), MemoryLimit: limit}, nil)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var peak atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		})
		ctx := context.Background()
		start := time.Now()
		tx, err := w.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		// Changes are made batch by batch, as the processor decodes them,
		// so that the benchmark's own input does not sit in the heap.
		for off := 0; off < n; off += batch {
			if err := tx.Write(ctx, tb, benchChanges(batch, off)); err != nil {
				b.Fatal(err)
			}
		}
		spills := tx.(*Tx).nspill
		if err := tx.Checkpoint(ctx, []sinks.Checkpoint{cp(0, h(n), 1)}); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		close(stop)
		wg.Wait()
		w.Close()
		b.ReportMetric(float64(n)/took.Seconds(), "rows/s")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(spills), "sort-runs")
	}
}
