package buffer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/highwater-dev/highwater/hlc"
)

func at(wall int64, logical int32) hlc.Timestamp {
	return hlc.Timestamp{WallTime: wall, Logical: logical}
}

var maxHLC = at(1<<63-1, 1<<31-1)

func openMem(t testing.TB, budget int64) *Store {
	t.Helper()
	s, err := Open(withTestMemory(Options{InMemory: true, DiskBudget: budget}))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openDir(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(withTestMemory(Options{Dir: dir}))
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

// rec is a scanned event, copied.
type rec struct {
	P      Partition
	TS     hlc.Timestamp
	Table  string
	Key    string
	Offset int64
	Value  string
}

func (r rec) String() string {
	return fmt.Sprintf("%s[%d] %s %s/%s @%d=%s", r.P.Topic, r.P.Partition, r.TS, r.Table, r.Key, r.Offset, r.Value)
}

func ev(ts hlc.Timestamp, table, key string, off int64) Event {
	return Event{Updated: ts, Table: table, Key: []byte(key), Offset: off, Value: []byte(fmt.Sprintf("v%d", off))}
}

func write(t testing.TB, s *Store, p Partition, evs ...Event) {
	t.Helper()
	b := s.NewBatch()
	next := int64(0)
	if st, ok, _ := s.State(p); ok {
		next = st.Consumed
	}
	for _, e := range evs {
		b.Add(p, e)
		next = max(next, e.Offset+1)
	}
	b.SetConsumed(p, next)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func scan(t testing.TB, s *Store, parts []Partition, through hlc.Timestamp, reverse bool) []rec {
	t.Helper()
	var out []rec
	err := s.Scan(context.Background(), parts, through, ScanOptions{Reverse: reverse}, func(p Partition, e Event) error {
		out = append(out, rec{p, e.Updated, e.Table, string(e.Key), e.Offset, string(e.Value)})
		return nil
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return out
}

func mustState(t testing.TB, s *Store, p Partition) State {
	t.Helper()
	st, ok, err := s.State(p)
	if err != nil || !ok {
		t.Fatalf("State(%v) = %v, %v, %v", p, st, ok, err)
	}
	return st
}

func cmpRec(a, b rec) int {
	if c := a.TS.Compare(b.TS); c != 0 {
		return c
	}
	if c := strings.Compare(a.Table, b.Table); c != 0 {
		return c
	}
	return strings.Compare(a.Key, b.Key)
}

var (
	pA = Partition{"orders", 0}
	pB = Partition{"orders", 1}
	pC = Partition{"customers", 0}
)

func TestScanMergesPartitionsInOrder(t *testing.T) {
	s := openMem(t, 0)
	// Ties on HLC across partitions and tables; keys that are prefixes of
	// each other; tables that are prefixes of each other.
	write(t, s, pA,
		ev(at(10, 0), "orders", "k2", 0),
		ev(at(10, 0), "orders", "k1", 1),
		ev(at(5, 3), "orders", "k9", 2),
		ev(at(20, 0), "orders", "k", 3),
		ev(at(20, 0), "orders", "k\x00", 4),
	)
	write(t, s, pB,
		ev(at(10, 0), "orders", "k15", 0),
		ev(at(10, 1), "orders", "k0", 1),
		ev(at(5, 2), "orders", "zz", 2),
	)
	write(t, s, pC,
		ev(at(10, 0), "customers", "k3", 0),
		ev(at(10, 0), "order", "k1", 1),
		ev(at(1, 0), "customers", "a", 2),
		ev(at(-1, 0), "customers", "neg", 3), // before the epoch still sorts first
	)
	parts := []Partition{pA, pB, pC}
	got := scan(t, s, parts, maxHLC, false)
	if len(got) != 12 {
		t.Fatalf("got %d events, want 12: %v", len(got), got)
	}
	want := slices.Clone(got)
	slices.SortStableFunc(want, cmpRec)
	if !slices.Equal(got, want) {
		t.Fatalf("forward order wrong:\n got %v\nwant %v", got, want)
	}
	wantKeys := []string{"neg", "a", "zz", "k9", "k3", "k1", "k1", "k15", "k2", "k0", "k", "k\x00"}
	for i, r := range got {
		if r.Key != wantKeys[i] {
			t.Fatalf("event %d key %q, want %q (all: %v)", i, r.Key, wantKeys[i], got)
		}
	}
	// "order"/"k1" (pC) sorts before "orders"/"k1" (pA): table, then key.
	if got[5].P != pC || got[6].P != pA {
		t.Fatalf("table tie-break wrong: %v, %v", got[5], got[6])
	}
	rev := scan(t, s, parts, maxHLC, true)
	slices.Reverse(rev)
	if !slices.Equal(rev, got) {
		t.Fatalf("reverse is not the exact reverse:\n got %v\nwant %v", rev, got)
	}
}

func TestScanIdenticalEventsInTwoPartitionsFollowPartsOrder(t *testing.T) {
	s := openMem(t, 0)
	write(t, s, pA, ev(at(1, 0), "t", "k", 0))
	write(t, s, pB, ev(at(1, 0), "t", "k", 0))
	for _, tc := range []struct {
		parts   []Partition
		reverse bool
		want    []Partition
	}{
		{[]Partition{pA, pB}, false, []Partition{pA, pB}},
		{[]Partition{pB, pA}, false, []Partition{pB, pA}},
		{[]Partition{pA, pB}, true, []Partition{pB, pA}},
		{[]Partition{pA, pB, pA}, false, []Partition{pA, pB}}, // a repeated partition is scanned once
	} {
		var got []Partition
		for _, r := range scan(t, s, tc.parts, maxHLC, tc.reverse) {
			got = append(got, r.P)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("parts %v reverse=%v: got %v, want %v", tc.parts, tc.reverse, got, tc.want)
		}
	}
}

func TestScanThroughIsInclusive(t *testing.T) {
	s := openMem(t, 0)
	write(t, s, pA,
		ev(at(10, 0), "t", "a", 0),
		ev(at(10, 1), "t", "b", 1),
		ev(at(11, 0), "t", "c", 2),
		ev(at(11, 0), "u", "d", 3),
		ev(maxHLC, "t", "e", 4),
	)
	write(t, s, pB, ev(at(10, 1), "t", "x", 0))
	for _, tc := range []struct {
		through hlc.Timestamp
		want    string
	}{
		{at(0, 0), ""},
		{at(9, 2147483647), ""},
		{at(10, 0), "a"},
		{at(10, 1), "abx"},
		{at(10, 2), "abx"},
		{at(11, 0), "abxcd"},
		{maxHLC, "abxcde"},
	} {
		for _, reverse := range []bool{false, true} {
			var got string
			for _, r := range scan(t, s, []Partition{pA, pB}, tc.through, reverse) {
				got += r.Key
			}
			want := tc.want
			if reverse {
				w := []byte(want)
				slices.Reverse(w)
				want = string(w)
			}
			if got != want {
				t.Errorf("through %s reverse=%v: got %q, want %q", tc.through, reverse, got, want)
			}
		}
	}
}

func TestDuplicatesCollapseKeepingSmallestOffset(t *testing.T) {
	s := openMem(t, 0)
	// Within one batch, the later copy (larger offset) collapses.
	write(t, s, pA, ev(at(5, 0), "t", "k", 7), ev(at(5, 0), "t", "k", 3), ev(at(5, 0), "t", "other", 4))
	// A later batch re-delivers it with a larger offset: kept as offset 3.
	write(t, s, pA, ev(at(5, 0), "t", "k", 12))
	// Same key, newer HLC: a distinct version, not a duplicate.
	write(t, s, pA, ev(at(6, 0), "t", "k", 13))
	// Same key and HLC in another table: distinct.
	write(t, s, pA, ev(at(5, 0), "u", "k", 14))
	// A re-read from an earlier offset (smaller than the stored copy)
	// replaces it.
	write(t, s, pA, ev(at(6, 0), "t", "k", 11))

	got := scan(t, s, []Partition{pA}, maxHLC, false)
	want := []rec{
		{pA, at(5, 0), "t", "k", 3, "v3"},
		{pA, at(5, 0), "t", "other", 4, "v4"},
		{pA, at(5, 0), "u", "k", 14, "v14"},
		{pA, at(6, 0), "t", "k", 11, "v11"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if st := mustState(t, s, pA); st.Events != 4 {
		t.Fatalf("State.Events = %d, want 4", st.Events)
	}
	if u := s.Usage(); u.Events != 4 {
		t.Fatalf("Usage.Events = %d, want 4", u.Events)
	}
	// The same identity in another partition is not a duplicate.
	write(t, s, pB, ev(at(5, 0), "t", "k", 0))
	if u := s.Usage(); u.Events != 5 {
		t.Fatalf("Usage.Events = %d, want 5", u.Events)
	}
}

func TestLowOffset(t *testing.T) {
	type step struct {
		trim   *hlc.Timestamp // trim through this first, if set
		events []Event
	}
	h := func(w int64) hlc.Timestamp { return at(w, 0) }
	ptr := func(x hlc.Timestamp) *hlc.Timestamp { return &x }
	for _, tc := range []struct {
		name     string
		steps    []step
		consumed int64 // 0: max offset + 1
		through  hlc.Timestamp
		want     int64
	}{
		{name: "empty partition resumes at consumed", consumed: 42, through: h(5), want: 42},
		{
			name:    "all at or below through",
			steps:   []step{{events: []Event{ev(h(1), "t", "a", 0), ev(h(5), "t", "b", 1)}}},
			through: h(5), want: 2,
		},
		{
			name: "interleaved: an early offset with a late HLC wins",
			steps: []step{{events: []Event{
				ev(h(1), "t", "a", 10), ev(h(9), "t", "b", 11), ev(h(2), "t", "c", 12), ev(h(8), "t", "d", 13), ev(h(3), "t", "e", 14),
			}}},
			through: h(3), want: 11,
		},
		{
			name: "through boundary: equal HLC is flushed",
			steps: []step{{events: []Event{
				ev(h(4), "t", "a", 10), ev(h(5), "t", "b", 11), ev(h(6), "t", "c", 12),
			}}},
			through: h(5), want: 12,
		},
		{
			name: "duplicate re-delivered later keeps the first offset",
			steps: []step{
				{events: []Event{ev(h(7), "t", "a", 10), ev(h(2), "t", "b", 11)}},
				{events: []Event{ev(h(7), "t", "a", 20), ev(h(3), "t", "c", 21)}},
			},
			through: h(3), want: 10,
		},
		{
			name: "after a trim, lingering index entries are skipped",
			steps: []step{
				{events: []Event{ev(h(2), "t", "a", 10), ev(h(9), "t", "b", 11), ev(h(3), "t", "c", 12), ev(h(6), "t", "d", 13), ev(h(4), "t", "e", 14)}},
				{trim: ptr(h(3))},
			},
			// Entry 10 is trimmed; 11 (HLC 9) stops the front trim, so 12
			// (HLC 3) lingers behind it; the answer for 5 is still 11.
			through: h(5), want: 11,
		},
		{
			name: "after trims the front moves",
			steps: []step{
				{events: []Event{ev(h(2), "t", "a", 10), ev(h(9), "t", "b", 11), ev(h(3), "t", "c", 12), ev(h(6), "t", "d", 13), ev(h(4), "t", "e", 14)}},
				{trim: ptr(h(3))},
				{trim: ptr(h(9))},
				{events: []Event{ev(h(12), "t", "f", 15), ev(h(10), "t", "g", 16)}},
			},
			through: h(10), want: 15,
		},
		{
			name: "a later write at lower offsets (overlapping index runs)",
			steps: []step{
				{events: []Event{ev(h(2), "t", "a", 10), ev(h(3), "t", "b", 11), ev(h(9), "t", "c", 15)}},
				{events: []Event{ev(h(8), "t", "d", 12), ev(h(1), "t", "e", 13)}},
			},
			through: h(5), want: 12,
		},
		{
			name: "more events than one index run",
			steps: []step{{events: func() []Event {
				var evs []Event
				for i := int64(0); i < 3*runEntries+7; i++ {
					w := int64(1)
					if i == 2*runEntries+3 {
						w = 50
					}
					evs = append(evs, ev(h(w), "t", fmt.Sprint(i), 1000+i))
				}
				return evs
			}()}},
			through: h(10), want: 1000 + 2*runEntries + 3,
		},
		{
			name:     "never beyond consumed",
			steps:    []step{{events: []Event{ev(h(9), "t", "a", 30)}}},
			consumed: 25, through: h(5), want: 25,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openMem(t, 0)
			if err := s.Reset(pA, hlc.Timestamp{}, 0); err != nil {
				t.Fatal(err)
			}
			var maxOff int64
			for _, st := range tc.steps {
				if st.trim != nil {
					if err := s.Trim(context.Background(), []Partition{pA}, *st.trim); err != nil {
						t.Fatal(err)
					}
				}
				if len(st.events) > 0 {
					b := s.NewBatch()
					for _, e := range st.events {
						b.Add(pA, e)
						maxOff = max(maxOff, e.Offset+1)
					}
					b.SetConsumed(pA, maxOff)
					if err := s.Write(context.Background(), b); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tc.consumed != 0 {
				b := s.NewBatch()
				b.SetConsumed(pA, tc.consumed)
				if err := s.Write(context.Background(), b); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.LowOffset(pA, tc.through)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("LowOffset(%s) = %d, want %d", tc.through, got, tc.want)
			}
		})
	}
	t.Run("unknown partition is an error", func(t *testing.T) {
		s := openMem(t, 0)
		if _, err := s.LowOffset(pA, at(1, 0)); err == nil {
			t.Fatal("LowOffset of an unknown partition succeeded")
		}
	})
}

// TestLowOffsetMatchesOracle checks LowOffset against a brute-force answer
// over a random stream with interleaved HLCs, duplicates and trims.
func TestLowOffsetMatchesOracle(t *testing.T) {
	s := openMem(t, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	type row struct {
		ts  hlc.Timestamp
		key string
		off int64
	}
	var live []row // events the store should hold (all copies, for the oracle)
	var off int64
	var trimmed hlc.Timestamp
	for round := 0; round < 60; round++ {
		b := s.NewBatch()
		for i := 0; i < 50; i++ {
			var r row
			if len(live) > 0 && rng.IntN(6) == 0 {
				r = live[rng.IntN(len(live))] // duplicate delivery
			} else {
				r = row{ts: at(trimmed.WallTime+1+int64(rng.IntN(40)), int32(rng.IntN(3))), key: fmt.Sprintf("k%d", rng.IntN(30))}
			}
			r.off = off
			off++
			live = append(live, r)
			b.Add(pA, ev(r.ts, "t", r.key, r.off))
		}
		b.SetConsumed(pA, off)
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		for q := 0; q < 5; q++ {
			through := at(trimmed.WallTime+int64(rng.IntN(45)), int32(rng.IntN(3)))
			want := off
			for _, r := range live {
				if through.Less(r.ts) && r.off < want {
					want = r.off
				}
			}
			got, err := s.LowOffset(pA, through)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("round %d: LowOffset(%s) = %d, want %d", round, through, got, want)
			}
		}
		if round%3 == 2 {
			trimmed = at(trimmed.WallTime+int64(rng.IntN(15)), 0)
			if err := s.Trim(context.Background(), []Partition{pA}, trimmed); err != nil {
				t.Fatal(err)
			}
			live = slices.DeleteFunc(live, func(r row) bool { return !trimmed.Less(r.ts) })
		}
	}
	// The distinct identities left must be exactly what Scan returns.
	distinct := map[string]int64{}
	for _, r := range live {
		k := r.ts.String() + "/" + r.key
		if o, ok := distinct[k]; !ok || r.off < o {
			distinct[k] = r.off
		}
	}
	got := scan(t, s, []Partition{pA}, maxHLC, false)
	if len(got) != len(distinct) {
		t.Fatalf("Scan returned %d events, want %d", len(got), len(distinct))
	}
	for _, r := range got {
		if o := distinct[r.TS.String()+"/"+r.Key]; o != r.Offset {
			t.Fatalf("%v: offset %d, want smallest %d", r, r.Offset, o)
		}
	}
	if st := mustState(t, s, pA); st.Events != int64(len(distinct)) {
		t.Fatalf("State.Events = %d, want %d", st.Events, len(distinct))
	}
}

func TestTrimThenScan(t *testing.T) {
	s := openMem(t, 0)
	write(t, s, pA, ev(at(1, 0), "t", "a", 0), ev(at(2, 0), "t", "b", 1), ev(at(3, 0), "t", "c", 2))
	write(t, s, pB, ev(at(2, 0), "t", "x", 0), ev(at(4, 0), "t", "y", 1))
	write(t, s, pC, ev(at(1, 0), "t", "untouched", 0))
	if err := s.Trim(context.Background(), []Partition{pA, pB, {"unknown", 9}}, at(2, 0)); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range scan(t, s, []Partition{pA, pB, pC}, maxHLC, false) {
		keys = append(keys, r.Key)
	}
	if want := []string{"untouched", "c", "y"}; !slices.Equal(keys, want) {
		t.Fatalf("after trim: %v, want %v", keys, want)
	}
	for _, tc := range []struct {
		p      Partition
		base   hlc.Timestamp
		events int64
	}{{pA, at(2, 0), 1}, {pB, at(2, 0), 1}, {pC, hlc.Timestamp{}, 1}} {
		if st := mustState(t, s, tc.p); st.Base != tc.base || st.Events != tc.events {
			t.Errorf("%v: State %+v, want Base %s Events %d", tc.p, st, tc.base, tc.events)
		}
	}
	// An event at the applied frontier arriving again is buffered and
	// scanned (it is re-applied idempotently); Base never moves back.
	write(t, s, pA, ev(at(2, 0), "t", "b", 3))
	if err := s.Trim(context.Background(), []Partition{pA}, at(1, 0)); err != nil {
		t.Fatal(err)
	}
	if st := mustState(t, s, pA); st.Base != at(2, 0) || st.Events != 2 {
		t.Fatalf("State %+v, want Base 2 and 2 events", st)
	}
	if got := scan(t, s, []Partition{pA}, at(2, 0), false); len(got) != 1 || got[0].Key != "b" {
		t.Fatalf("scan through 2 = %v", got)
	}
	if u := s.Usage(); u.Events != 4 {
		t.Fatalf("Usage.Events = %d, want 4", u.Events)
	}
}

// TestTrimDeletesEventsWrittenBelowAnEarlierTrim checks that a trim, which
// starts its walk where the previous complete trim ended, still deletes
// events written below that point afterwards (re-deliveries at or below the
// applied frontier), so that the counters stay exact.
func TestTrimDeletesEventsWrittenBelowAnEarlierTrim(t *testing.T) {
	s := openMem(t, 0)
	write(t, s, pA, ev(at(10, 0), "t", "a", 0), ev(at(20, 0), "t", "b", 1), ev(at(30, 0), "t", "c", 2))
	if err := s.Trim(context.Background(), []Partition{pA}, at(20, 0)); err != nil {
		t.Fatal(err)
	}
	// Below the trimmed point, at it, and above it.
	write(t, s, pA, ev(at(5, 0), "t", "old", 3), ev(at(20, 0), "t", "b", 4), ev(at(25, 0), "t", "d", 5))
	if st := mustState(t, s, pA); st.Events != 4 {
		t.Fatalf("before the second trim: %d events, want 4", st.Events)
	}
	if err := s.Trim(context.Background(), []Partition{pA}, at(25, 0)); err != nil {
		t.Fatal(err)
	}
	if st := mustState(t, s, pA); st.Events != 1 || s.Usage().Events != 1 {
		t.Fatalf("after the second trim: State %+v, Usage %+v; want 1 event", st, s.Usage())
	}
	// Nothing is left below Base either (the oracle is a raw key walk).
	left := rawEventCount(t, s, s.lookup(pA).id, false)
	left += memEvents(s, pA) // the memory front's, if on
	if left != 1 {
		t.Fatalf("%d events stored after the trims, want 1", left)
	}
}

// A window's trim walks and deletes without the write lock, so ingest goes
// on meanwhile; events written below the trimmed point during the walk
// (which its snapshot does not see) must still be deleted by the next trim.
func TestTrimRunsBesideWritesAndMissesNothing(t *testing.T) {
	s := openMem(t, 0)
	const n = 30000
	evs := make([]Event, 0, n)
	for i := range n {
		evs = append(evs, ev(at(int64(1000+i), 0), "t", fmt.Sprint("k", i), int64(i)))
	}
	write(t, s, pA, evs...)
	if memEvents(s, pA) > 0 {
		t.Skip("the events are in the memory front: the trim has no walk for writes to run beside")
	}
	through := at(1000+n/2, 0)
	trimmed := make(chan error, 1)
	go func() { trimmed <- s.Trim(context.Background(), []Partition{pA}, through) }()
	// Write events below the trimmed point (history: a late duplicate)
	// and above it, one small batch at a time, until the trim is done.
	var during int
	off := int64(n)
	for done := false; !done; {
		select {
		case err := <-trimmed:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		default:
			write(t, s, pA, ev(at(500, int32(during)), "t", "late", off), ev(at(int64(1000+n+during), 0), "t", "new", off+1))
			off += 2
			during++
		}
	}
	if during < 2 {
		t.Fatalf("only %d writes completed while the trim ran: Write waited for the trim", during)
	}
	// Everything at or below the next trim's point goes, including the
	// events written below `through` during the first trim's walk.
	if err := s.Trim(context.Background(), []Partition{pA}, at(1000+n, 0)); err != nil {
		t.Fatal(err)
	}
	// What is stored is exactly the "new" events above that point: the
	// first (at 1000+n) went with the trim. The oracle is a raw key walk.
	left := rawEventCount(t, s, s.lookup(pA).id, false)
	left += memEvents(s, pA) // the memory front's, if on
	if left != during-1 {
		t.Fatalf("%d events stored after the second trim, want the %d written above it", left, during-1)
	}
	if st := mustState(t, s, pA); st.Events != int64(left) {
		t.Fatalf("State says %d events, %d are stored", st.Events, left)
	}
}

func TestTrimStopsOnCancel(t *testing.T) {
	s := openMem(t, 0)
	skipWithMemoryFront(t, s) // a memory trim is not interruptible: nothing to cancel
	var evs []Event
	for i := 0; i < 5000; i++ {
		evs = append(evs, ev(at(int64(i), 0), "t", "k", int64(i)))
	}
	write(t, s, pA, evs...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Trim(ctx, []Partition{pA}, maxHLC)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Trim with canceled ctx: %v", err)
	}
	// Base moved first; what was not deleted yet is below it and no
	// longer delivered, but still counted until the next Trim.
	st := mustState(t, s, pA)
	if st.Base != maxHLC || st.Events == 0 || st.Events == 5000 {
		t.Fatalf("after interrupted trim: State %+v", st)
	}
	if got := scan(t, s, []Partition{pA}, maxHLC, false); len(got) != 0 {
		t.Fatalf("after interrupted trim, Scan delivered %d events below Base", len(got))
	}
	if err := s.Trim(context.Background(), []Partition{pA}, maxHLC); err != nil {
		t.Fatal(err)
	}
	if st := mustState(t, s, pA); st.Events != 0 || st.Base != maxHLC || s.Usage() != (Usage{}) {
		t.Fatalf("after full trim: %+v %+v", st, s.Usage())
	}
}

func TestReset(t *testing.T) {
	s := openMem(t, 0)
	write(t, s, pA, ev(at(1, 0), "t", "a", 0), ev(at(2, 0), "t", "b", 1))
	write(t, s, pB, ev(at(1, 0), "t", "x", 0))
	if err := s.Reset(pA, at(7, 0), 100); err != nil {
		t.Fatal(err)
	}
	if st := mustState(t, s, pA); st != (State{Base: at(7, 0), Resolved: at(7, 0), Consumed: 100}) {
		t.Fatalf("State after Reset = %+v", st)
	}
	if got := scan(t, s, []Partition{pA}, maxHLC, false); len(got) != 0 {
		t.Fatalf("events after Reset: %v", got)
	}
	if low, err := s.LowOffset(pA, at(7, 0)); err != nil || low != 100 {
		t.Fatalf("LowOffset after Reset = %d, %v; want 100", low, err)
	}
	if u := s.Usage(); u.Events != 1 {
		t.Fatalf("Usage after Reset = %+v, want 1 event", u)
	}
	// The new range starts empty; an event below Base (which the
	// processor never buffers) is history and not delivered.
	write(t, s, pA, ev(at(8, 0), "t", "b", 100), ev(at(2, 0), "t", "b", 101))
	for _, reverse := range []bool{false, true} {
		if got := scan(t, s, []Partition{pA}, maxHLC, reverse); len(got) != 1 || got[0].Offset != 100 {
			t.Fatalf("after Reset and write (reverse=%v): %v", reverse, got)
		}
	}
	// Reset of an unknown partition creates it.
	if err := s.Reset(pC, at(3, 0), 5); err != nil {
		t.Fatal(err)
	}
	if st := mustState(t, s, pC); st.Consumed != 5 || st.Base != at(3, 0) {
		t.Fatalf("State of new partition = %+v", st)
	}
	if got := scan(t, s, []Partition{pB}, maxHLC, false); len(got) != 1 {
		t.Fatalf("Reset touched another partition: %v", got)
	}
}

func TestDropLeavesOtherPartitionsIntact(t *testing.T) {
	s := openMem(t, 0)
	write(t, s, pA, ev(at(1, 0), "t", "a", 0))
	write(t, s, pB, ev(at(1, 0), "t", "b", 0), ev(at(2, 0), "t", "c", 1))
	if err := s.Drop(pA); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.State(pA); ok {
		t.Fatal("dropped partition still known")
	}
	if err := s.Drop(pA); err != nil {
		t.Fatalf("Drop of an unknown partition: %v", err)
	}
	if got := scan(t, s, []Partition{pA, pB}, maxHLC, false); len(got) != 2 || got[0].Key != "b" || got[1].Key != "c" {
		t.Fatalf("after Drop: %v", got)
	}
	if st := mustState(t, s, pB); st.Events != 2 || st.Consumed != 2 {
		t.Fatalf("other partition's state changed: %+v", st)
	}
	if u := s.Usage(); u.Events != 2 {
		t.Fatalf("Usage after Drop = %+v", u)
	}
	// Writing the dropped partition again starts it empty.
	write(t, s, pA, ev(at(5, 0), "t", "z", 9))
	if st := mustState(t, s, pA); st.Events != 1 || st.Consumed != 10 {
		t.Fatalf("re-created partition: %+v", st)
	}
}

func TestStateSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	b := s.NewBatch()
	b.Add(pA, ev(at(1, 0), "t", "a", 0))
	b.Add(pA, ev(at(3, 0), "t", "c", 1))
	b.Add(pB, ev(at(2, 0), "t", "b", 0))
	b.SetResolved(pA, at(2, 0))
	b.SetResolved(pA, at(1, 0)) // an older resolved never moves it back
	b.SetConsumed(pA, 2)
	b.SetConsumed(pB, 1)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := s.Trim(context.Background(), []Partition{pA}, at(1, 0)); err != nil {
		t.Fatal(err)
	}
	write(t, s, pC, ev(at(1, 0), "t", "gone", 0))
	if err := s.Drop(pC); err != nil {
		t.Fatal(err)
	}
	wantA := State{Base: at(1, 0), Resolved: at(2, 0), Consumed: 2, Events: 1}
	if st := mustState(t, s, pA); st != wantA {
		t.Fatalf("State before reopen %+v, want %+v", st, wantA)
	}
	before := scan(t, s, []Partition{pA, pB, pC}, maxHLC, false)
	usage := s.Usage()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir)
	defer s.Close()
	if st := mustState(t, s, pA); st != wantA {
		t.Fatalf("State after reopen %+v, want %+v", st, wantA)
	}
	if _, ok, _ := s.State(pC); ok {
		t.Fatal("dropped partition known after reopen")
	}
	if after := scan(t, s, []Partition{pA, pB, pC}, maxHLC, false); !slices.Equal(after, before) {
		t.Fatalf("Scan after reopen %v, want %v", after, before)
	}
	if u := s.Usage(); u != usage {
		t.Fatalf("Usage after reopen %+v, want %+v", u, usage)
	}
	// The dropped partition's data was reaped: every stored event and
	// index key belongs to a live partition.
	live := map[uint32]bool{}
	for _, pt := range s.parts {
		live[pt.id] = true
	}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if k[0] == prefixEvent && !live[eventID(k)] || k[0] == prefixOffset && !live[binary.BigEndian.Uint32(k[1:])] {
				return fmt.Errorf("key %x of a retired partition id survived", k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Duplicates are still recognised after a reopen.
	write(t, s, pA, ev(at(3, 0), "t", "c", 5))
	if st := mustState(t, s, pA); st.Events != 1 {
		t.Fatalf("duplicate after reopen counted: %+v", st)
	}
}

func TestOverBudgetFlipsAndRecovers(t *testing.T) {
	const budget = 64 << 10
	s := openMem(t, budget)
	var off int64
	for !s.OverBudget() {
		if off > 10000 {
			t.Fatal("never over budget")
		}
		b := s.NewBatch()
		for i := 0; i < 10; i++ {
			b.Add(pA, Event{Updated: at(off, 0), Table: "t", Key: []byte("key"), Offset: off, Value: bytes.Repeat([]byte{'x'}, 200)})
			off++
		}
		b.SetConsumed(pA, off)
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if u := s.Usage(); u.Bytes < budget || u.Bytes > budget+10*300 {
		t.Fatalf("over budget at %d bytes (budget %d)", u.Bytes, budget)
	}
	// Trimming half is not enough if the rest is still over; trimming
	// everything below the last HLCs is.
	if err := s.Trim(context.Background(), []Partition{pA}, at(off-20, 0)); err != nil {
		t.Fatal(err)
	}
	if s.OverBudget() {
		t.Fatalf("still over budget after trim: %+v", s.Usage())
	}
	if u := s.Usage(); u.Events != 19 {
		t.Fatalf("Usage after trim %+v, want 19 events", u)
	}
	if s2 := openMem(t, 0); s2.OverBudget() {
		t.Fatal("unlimited store over budget")
	}
}

func TestUsageCountsKeyAndValueBytes(t *testing.T) {
	s := openMem(t, 0)
	write(t, s, pA, Event{Updated: at(1, 0), Table: "tbl", Key: []byte("key1"), Offset: 0, Value: []byte("0123456789")})
	write(t, s, pB, Event{Updated: at(1, 0), Table: "tbl", Key: []byte("k"), Offset: 0, Value: nil})
	// Key: 'E' + epoch(5) + id(4) + HLC(12) + table + 0 + key; value:
	// offset(8) + payload.
	want := int64((1+5+4+12+3+1+4)+(8+10)) + int64((1+5+4+12+3+1+1)+8)
	if u := s.Usage(); u != (Usage{Events: 2, Bytes: want}) {
		t.Fatalf("Usage = %+v, want 2 events, %d bytes", u, want)
	}
	if err := s.Trim(context.Background(), []Partition{pA, pB}, at(1, 0)); err != nil {
		t.Fatal(err)
	}
	if u := s.Usage(); u != (Usage{}) {
		t.Fatalf("Usage after trimming all = %+v", u)
	}
}

func TestScanStopsOnCancelAndError(t *testing.T) {
	s := openMem(t, 0)
	var evs []Event
	for i := 0; i < 3000; i++ {
		evs = append(evs, ev(at(int64(i), 0), "t", "k", int64(i)))
	}
	write(t, s, pA, evs...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	err := s.Scan(ctx, []Partition{pA}, maxHLC, ScanOptions{}, func(Partition, Event) error {
		if n++; n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n >= 3000 {
		t.Fatalf("Scan after cancel: err %v after %d events", err, n)
	}
	boom := errors.New("boom")
	n = 0
	err = s.Scan(context.Background(), []Partition{pA}, maxHLC, ScanOptions{Reverse: true}, func(Partition, Event) error {
		n++
		return boom
	})
	if !errors.Is(err, boom) || n != 1 {
		t.Fatalf("Scan with failing fn: err %v after %d events", err, n)
	}
}

func TestBadInputIsAnError(t *testing.T) {
	s := openMem(t, 0)
	b := s.NewBatch()
	b.Add(pA, ev(at(1, 0), "bad\x00table", "k", 0))
	if err := s.Write(context.Background(), b); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("Write with NUL in table name: %v", err)
	}
	if _, ok, _ := s.State(pA); ok {
		t.Fatal("failed batch created the partition")
	}
	other := openMem(t, 0)
	if err := other.Write(context.Background(), s.NewBatch()); err == nil {
		t.Fatal("Write of another store's batch succeeded")
	}
	if _, err := Open(Options{}); err == nil {
		t.Fatal("Open without Dir succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b = s.NewBatch()
	b.Add(pA, ev(at(1, 0), "t", "k", 0))
	if err := s.Write(ctx, b); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with canceled ctx: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), b); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

// TestConcurrentWriteScanTrim runs ingest, flush-style scans and trims at
// once (as the processor does) and checks every scan is ordered and every
// LowOffset is at most Consumed. Run with -race.
func TestConcurrentWriteScanTrim(t *testing.T) {
	s := openMem(t, 0)
	parts := []Partition{pA, pB}
	for _, p := range parts {
		if err := s.Reset(p, hlc.Timestamp{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		var off int64
		for round := 0; round < 40; round++ {
			b := s.NewBatch()
			for i := 0; i < 100; i++ {
				for _, p := range parts {
					b.Add(p, ev(at(off/3, int32(off%3)), "t", fmt.Sprint(off%17), off))
					b.SetConsumed(p, off+1)
				}
				off++
			}
			if err := s.Write(context.Background(), b); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var writerErr error
	for finished := false; !finished; {
		select {
		case writerErr = <-done:
			finished = true
		default:
		}
		var prev *rec
		err := s.Scan(context.Background(), parts, at(1000, 0), ScanOptions{}, func(p Partition, e Event) error {
			r := rec{P: p, TS: e.Updated, Table: e.Table, Key: string(e.Key)}
			if prev != nil && cmpRec(*prev, r) > 0 {
				return fmt.Errorf("out of order: %v after %v", r, *prev)
			}
			prev = &r
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		low, err := s.LowOffset(pA, mustState(t, s, pA).Base)
		// Consumed only grows, so reading it afterwards bounds the answer.
		if st := mustState(t, s, pA); err != nil || low > st.Consumed {
			t.Fatalf("LowOffset = %d, %v (Consumed %d)", low, err, st.Consumed)
		}
		st := mustState(t, s, pA)
		if err := s.Trim(context.Background(), parts, at(st.Consumed/3-20, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if writerErr != nil {
		t.Fatal(writerErr)
	}
	// Counters agree with what is stored.
	n := len(scan(t, s, parts, maxHLC, false))
	if u := s.Usage(); u.Events != int64(n) {
		t.Fatalf("Usage.Events %d, scanned %d", u.Events, n)
	}
}

// rawEventCount counts id's event keys by a walk over every event key, an
// oracle that does not share the store's per-id iterator; allVersions
// counts tombstones too.
func rawEventCount(t *testing.T, s *Store, id uint32, allVersions bool) int {
	t.Helper()
	var n int
	if err := s.db.View(func(txn *badger.Txn) error {
		prefix := []byte{prefixEvent}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, AllVersions: allVersions})
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			if eventID(it.Item().Key()) == id {
				n++
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBatchResetStartsOver writes a batch, resets it and writes it again
// with other events: the second Write holds only those, moves no other
// partition's state back, and the arena's memory is kept.
func TestBatchResetStartsOver(t *testing.T) {
	s := openMem(t, 0)
	b := s.NewBatch()
	b.Add(pA, ev(at(1, 0), "t", "a", 0))
	b.Add(pA, ev(at(2, 0), "t", "b", 1))
	b.SetConsumed(pA, 2)
	b.SetResolved(pA, at(2, 0))
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	// Another batch moves pA on; the reset batch must not move it back.
	write(t, s, pA, ev(at(4, 0), "t", "d", 6))
	b.Reset()
	if b.Len() != 0 || cap(b.arena) == 0 {
		t.Fatalf("after Reset: %d events, arena capacity %d; want 0 and the old arena", b.Len(), cap(b.arena))
	}
	b.Add(pB, ev(at(3, 0), "u", "c", 0))
	b.SetConsumed(pB, 1)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got := scan(t, s, []Partition{pA, pB}, maxHLC, false)
	want := []rec{
		{pA, at(1, 0), "t", "a", 0, "v0"},
		{pA, at(2, 0), "t", "b", 1, "v1"},
		{pB, at(3, 0), "u", "c", 0, "v0"},
		{pA, at(4, 0), "t", "d", 6, "v6"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Scan = %v, want %v", got, want)
	}
	if st := mustState(t, s, pA); st.Consumed != 7 || st.Resolved != at(2, 0) || st.Events != 3 {
		t.Fatalf("State(pA) = %+v after the second Write", st)
	}
	if st := mustState(t, s, pB); st.Consumed != 1 || !st.Resolved.IsZero() || st.Events != 1 {
		t.Fatalf("State(pB) = %+v, want Consumed 1, no Resolved, 1 event", st)
	}
}

// TestTrimAfterReopenSeesEventsBeforeTheEpoch: after Open a trim walks from
// the front of the partition's range (trimFrom is zero, "everything"); an
// event written then with an HLC below zero must not make the walk start
// at that HLC, above older events of the previous run.
func TestTrimAfterReopenSeesEventsBeforeTheEpoch(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	write(t, s, pA, ev(at(-900, 0), "t", "a", 0), ev(at(-800, 0), "t", "b", 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir)
	defer func() { _ = s.Close() }()
	write(t, s, pA, ev(at(-500, 0), "t", "c", 2))
	if err := s.Trim(context.Background(), []Partition{pA}, at(-100, 0)); err != nil {
		t.Fatal(err)
	}
	if st := mustState(t, s, pA); st.Events != 0 {
		t.Fatalf("after trimming everything: %+v, want no events", st)
	}
	if n := rawEventCount(t, s, s.lookup(pA).id, false) + memEvents(s, pA); n != 0 {
		t.Fatalf("%d events left stored below Base", n)
	}
}
