package processor

import (
	"context"
	"runtime/metrics"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// forcedGCs reads how many collections the process has forced
// (runtime.GC, debug.FreeOSMemory).
func forcedGCs() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestEarlyGroupReturnsGoGarbageFirst: a group applied early returns the
// Go heap's garbage to the kernel (a forced collection and scavenge)
// before its first transaction begins: the ingest that filled the buffer
// left the heap at its soft limit, and the warehouse's first MERGE would
// otherwise grow on top of it, the peak of an initial scan's memory.
func TestEarlyGroupReturnsGoGarbageFirst(t *testing.T) {
	const n = 400
	r := budgetedRig(t, func() []*kgo.Record { return scanFeed(n) })
	held := []sinks.Checkpoint{{Group: "g", Topic: r.part.Topic, Partition: r.part.Partition}}
	before := forcedGCs()
	var atFirstBegin uint64
	begins := 0
	r.p.cfg.WindowHook = func(s WindowStage, at hlc.Timestamp) {
		if s == WindowBegin {
			if begins++; begins == 1 {
				atFirstBegin = forcedGCs()
			}
		}
	}
	res := r.p.applyEarly(context.Background(), r.buf.TakeGroup([]buffer.Partition{r.part}, t1), held)
	if res.err != nil || res.rows != n {
		t.Fatalf("group applied early: %d rows, %v; want %d", res.rows, res.err, n)
	}
	if begins < 2 {
		t.Fatalf("the group took %d transactions, want several", begins)
	}
	if atFirstBegin <= before {
		t.Errorf("no forced collection before the group's first transaction (forced collections: %d before the group, %d at its first transaction)", before, atFirstBegin)
	}
	// Once per group, not per transaction.
	if after := forcedGCs(); after-before > 1 {
		t.Errorf("%d forced collections for one group of %d transactions, want one", after-before, begins)
	}
}
