package processor

import (
	"testing"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

func h(w int64) hlc.Timestamp { return hlc.Timestamp{WallTime: w} }

func TestFrontierIsMinResolvedAndWaitsForSilentPartitions(t *testing.T) {
	part := func(n int32, resolved, applied int64) *partState {
		return &partState{p: buffer.Partition{Topic: "t", Partition: n}, resolved: h(resolved), applied: h(applied), ready: true}
	}
	for _, tc := range []struct {
		name              string
		parts             []*partState
		resolved, applied int64
		ok                bool
	}{
		{"no partitions", nil, 0, 0, false},
		{"min over partitions", []*partState{part(0, 30, 10), part(1, 20, 5), part(2, 40, 20)}, 20, 5, true},
		{"a partition without resolved holds it back", []*partState{part(0, 30, 0), part(1, 0, 0)}, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, a, ok := frontier(tc.parts)
			if ok != tc.ok || (ok && (r != h(tc.resolved) || a != h(tc.applied))) {
				t.Fatalf("frontier = %v, %v, %v; want %d, %d, %v", r, a, ok, tc.resolved, tc.applied, tc.ok)
			}
		})
	}
}

func TestOpFollowsTheEnvelope(t *testing.T) {
	row := []any{int64(1)}
	for _, tc := range []struct {
		row  schemas.Row
		want sinks.Op
	}{
		{schemas.Row{After: row}, sinks.OpUpsert},
		{schemas.Row{After: nil}, sinks.OpDelete},
		{schemas.Row{After: nil, Diff: true, Before: row}, sinks.OpDelete},
		{schemas.Row{After: row, Diff: true}, sinks.OpInsert},
		{schemas.Row{After: row, Diff: true, Before: row}, sinks.OpUpdate},
		// envelope = enriched: op says insert or update even without diff.
		{schemas.Row{After: row, Op: schemas.OpCreate}, sinks.OpInsert},
		{schemas.Row{After: row, Op: schemas.OpUpdate}, sinks.OpUpdate},
		{schemas.Row{After: nil, Op: schemas.OpDelete}, sinks.OpDelete},
		{schemas.Row{After: row, Diff: true, Before: row, Op: schemas.OpUpdate}, sinks.OpUpdate},
	} {
		if got := opOf(tc.row); got != tc.want {
			t.Errorf("opOf(%+v) = %v, want %v", tc.row, got, tc.want)
		}
	}
}

func TestLatenciesKeepTheMostRecent(t *testing.T) {
	l := newLatencies(3)
	if l.last() != 0 || len(l.snapshot()) != 0 {
		t.Fatal("empty latencies not empty")
	}
	for i := 1; i <= 5; i++ {
		l.add(h(int64(i)).Time().Sub(h(0).Time()))
	}
	got := l.snapshot()
	if len(got) != 3 || got[0] != 3 || got[2] != 5 || l.last() != 5 {
		t.Fatalf("snapshot = %v, last = %v", got, l.last())
	}
}
