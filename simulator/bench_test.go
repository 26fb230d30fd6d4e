package simulator

import (
	"context"
	"runtime"
	"runtime/debug"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchTable is a typical narrow changefeed table.
func benchTable() TableDef {
	return TableDef{Name: "orders", Columns: []ColumnDef{
		{Name: "id", Type: "INT8"}, {Name: "customer", Type: "STRING"}, {Name: "amount", Type: "DECIMAL(12,2)"},
		{Name: "status", Type: "STRING"}, {Name: "created", Type: "TIMESTAMPTZ"}, {Name: "qty", Type: "INT4"},
	}, PrimaryKey: []string{"id"}}
}

// BenchmarkProduce measures row events produced into an in-process kfake
// (encode with goavro, idempotent acks=all producer, resolved every 10k
// events), reported as events/s.
func BenchmarkProduce(b *testing.B) {
	for _, bc := range []struct {
		name string
		def  TableDef
		opts func(*Options)
	}{
		{"narrow", benchTable(), func(*Options) {}},
		{"narrow-diff-reorder", benchTable(), func(o *Options) { o.Diff, o.Reorder = true, true }},
		{"alltypes", AllTypesTable("all"), func(*Options) {}},
		// The same as narrow with GOGC=400: the oracle keeps every version
		// live, so the collector's marking dominates at the default 100.
		{"narrow-gogc400", benchTable(), func(*Options) {}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.name == "narrow-gogc400" {
				defer debug.SetGCPercent(debug.SetGCPercent(400))
			}
			e := newEnv(b)
			opts := e.opts(8)
			bc.opts(&opts)
			s := newSim(b, opts, bc.def)
			ctx := context.Background()
			b.ResetTimer()
			cpu0 := cpuTime()
			start := time.Now()
			if err := s.Run(ctx, Workload{Txns: b.N, KeysPerTable: 100_000, ResolveEvery: 10_000, DeleteProb: 0.05}); err != nil {
				b.Fatal(err)
			}
			el := time.Since(start)
			b.StopTimer()
			n := float64(s.Produced())
			b.ReportMetric(n/el.Seconds(), "events/s")
			// Process CPU (simulator, producer and in-process kfake) per
			// event: steadier than wall time on a shared machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/n, "cpu-µs/event")
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapAlloc)/n, "heap-B/event") // mostly the oracle, plus kfake's log
		})
	}
}
