package processor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
)

// memFrontRig is a memRig whose buffer has a memory front of budget bytes.
func memFrontRig(t *testing.T, budget int64) *memRig {
	t.Helper()
	r := newMemRig(t)
	buf, err := buffer.Open(buffer.Options{InMemory: true, MemoryBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	r.buf, r.p.cfg.Buffer = buf, buf
	return r
}

// TestNearlyFullMemoryFrontWaitsForTheWindowInFlight: when the buffer's
// memory front is nearly full, the poll loop finishes the window in flight
// (whose trim frees the memory) before it ingests more; otherwise it leaves
// the window running.
func TestNearlyFullMemoryFrontWaitsForTheWindowInFlight(t *testing.T) {
	const rows = 200
	fill := func(r *memRig) {
		for i := range rows {
			r.ingest(t, row(int64(i), fmt.Sprint("name ", i), t1))
		}
		r.ingest(t, resolved(t1))
	}
	// The footprint of those rows, to size a front they fill to 8/9.
	probe := memFrontRig(t, 1<<30)
	fill(probe)
	foot := probe.buf.Memory().Footprint
	if foot == 0 {
		t.Fatal("the rows did not go to the memory front")
	}
	for _, tc := range []struct {
		budget int64
		wait   bool
	}{{foot + foot/8, true}, {1 << 30, false}} {
		r := memFrontRig(t, tc.budget)
		fill(r)
		if full := r.buf.MemoryFull(); full != tc.wait {
			t.Fatalf("budget %d for %d bytes: MemoryFull %v, want %v", tc.budget, foot, full, tc.wait)
		}
		ctx := context.Background()
		if tc.wait {
			// The window waits before its transaction until well after
			// the poll loop has looked at the front: a window that got to
			// its trim first would empty the front, and the loop would
			// rightly not wait, but then the test would see nothing.
			release := make(chan struct{})
			r.p.cfg.WindowHook = func(s WindowStage, _ hlc.Timestamp) {
				if s == WindowBegin {
					<-release
				}
			}
			time.AfterFunc(500*time.Millisecond, func() { close(release) })
		}
		r.p.mu.Lock()
		if err := r.p.maybeFlush(ctx); err != nil || r.p.inflight == nil {
			r.p.mu.Unlock()
			t.Fatalf("no window started: %v", err)
		}
		err := r.p.waitForBufferMemory(ctx)
		inflight, applied := r.p.inflight, r.p.parts[r.part].applied
		r.p.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if tc.wait {
			if inflight != nil || applied != t1 {
				t.Fatalf("front full: window in flight %v, applied %s; want it finished through %s", inflight != nil, applied, t1)
			}
			if m := r.buf.Memory(); m.Events != 0 || m.Spilled != 0 {
				t.Fatalf("after the window: memory front %+v, want it emptied by the trim, nothing spilled", m)
			}
			continue
		}
		if inflight == nil {
			t.Fatal("front not full: the loop waited for the window in flight")
		}
		r.p.mu.Lock()
		r.p.waitFlush(ctx)
		r.p.mu.Unlock()
	}
}
