package buffer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/highwater-dev/highwater/hlc"
)

// epochAt returns an HLC ns nanoseconds into the ep-th epoch of a recent
// day (real HLCs are positive: the store takes a zero HLC for "none").
func epochAt(ep uint64, ns int64, logical int32) hlc.Timestamp {
	ep += epochOf(at(1_700_000_000_000_000_000, 0))
	return hlc.Timestamp{WallTime: int64(ep<<epochShift^1<<63) + ns, Logical: logical}
}

func TestEpochOrderFollowsHLCOrder(t *testing.T) {
	for _, tc := range []struct{ a, b hlc.Timestamp }{
		{at(-5, 0), at(0, 0)},
		{at(0, 0), at(1, 0)},
		{at(1<<epochShift-1, 7), at(1<<epochShift, 0)},
		{at(1_700_000_000_000_000_000, 0), at(1<<63-1, 1<<31-1)},
	} {
		if !tc.a.Less(tc.b) {
			t.Fatalf("bad case %s %s", tc.a, tc.b)
		}
		ka := appendEventKey(nil, 9, tc.a, "t", []byte("z"))
		kb := appendEventKey(nil, 9, tc.b, "t", []byte("a"))
		if string(ka) >= string(kb) {
			t.Fatalf("key of %s sorts at or after the key of %s", tc.a, tc.b)
		}
		if eventEpoch(ka) > eventEpoch(kb) || eventID(ka) != 9 || eventHLC(kb) != tc.b {
			t.Fatalf("head of %x / %x decodes wrongly", ka, kb)
		}
	}
	if epochOf(at(1<<63-1, 0)) != maxEpoch {
		t.Fatalf("epoch of the largest wall time %d, want %d", epochOf(at(1<<63-1, 0)), maxEpoch)
	}
}

// TestIDEventsMatchesAKeyWalk checks the per-id iterator against a walk
// over every event key, on ids whose events interleave over dense, sparse
// and empty epochs, forward and in reverse, with and without epoch bounds.
func TestIDEventsMatchesAKeyWalk(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := []uint32{0, 1, 2, 7, 1<<32 - 1}
	rng := rand.New(rand.NewPCG(3, 4))
	var keys [][]byte
	err = db.Update(func(txn *badger.Txn) error {
		for ep := uint64(0); ep < 40; ep++ {
			for _, id := range ids {
				n := 0
				switch rng.IntN(4) {
				case 0: // none in this epoch
				case 1:
					n = 1
				default:
					n = 1 + rng.IntN(20)
				}
				if ep == 39 && id == 2 {
					n = 0 // an id that ends before the others
				}
				for i := 0; i < n; i++ {
					ts := hlc.Timestamp{WallTime: int64(ep<<epochShift^1<<63) + int64(rng.IntN(1000)), Logical: int32(i)}
					k := appendEventKey(nil, id, ts, "t", []byte{byte(i)})
					keys = append(keys, k)
					if err := txn.Set(k, []byte{1}); err != nil {
						return err
					}
				}
			}
		}
		// The largest epoch and the keys around the event range.
		last := appendEventKey(nil, 1, at(1<<63-1, 1<<31-1), "t", []byte("x"))
		keys = append(keys, last)
		for _, k := range [][]byte{last, {prefixEvent - 1, 9}, {prefixEvent + 1}} {
			if err := txn.Set(k, []byte{1}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(keys, func(a, b []byte) int { return slices.Compare(a, b) })
	keys = slices.CompactFunc(keys, func(a, b []byte) bool { return slices.Equal(a, b) })

	want := func(id uint32, lo, hi uint64, reverse bool, from []byte) []string {
		var out []string
		for _, k := range keys {
			ep := eventEpoch(k)
			if eventID(k) != id || ep < lo || ep > hi {
				continue
			}
			if from != nil && (!reverse && string(k) < string(from) || reverse && string(k) > string(from)) {
				continue
			}
			out = append(out, string(k))
		}
		if reverse {
			slices.Reverse(out)
		}
		return out
	}
	for _, id := range append(ids, 3) {
		for _, b := range []struct{ lo, hi uint64 }{{0, maxEpoch}, {0, 0}, {5, 5}, {3, 17}, {38, 39}, {39, maxEpoch}, {41, maxEpoch}} {
			for _, reverse := range []bool{false, true} {
				var from []byte
				for try := 0; try < 4; try++ {
					name := fmt.Sprintf("id %d epochs %d-%d reverse %v from %x", id, b.lo, b.hi, reverse, from)
					var got []string
					err := db.View(func(txn *badger.Txn) error {
						e := allIDEvents(txn, id, reverse)
						defer e.close()
						e.lo, e.hi = b.lo, b.hi
						if from == nil {
							e.seekFirst()
						} else {
							e.seekKey(from)
						}
						for ; e.valid; e.next() {
							got = append(got, string(e.item().KeyCopy(nil)))
						}
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					if w := want(id, b.lo, b.hi, reverse, from); !slices.Equal(got, w) {
						t.Fatalf("%s: %d keys, want %d", name, len(got), len(w))
					}
					// Start the next try from some key of any id.
					from = keys[rng.IntN(len(keys)-1)]
					if from[0] != prefixEvent {
						from = nil
					}
				}
			}
		}
	}
}

// TestScanTrimAcrossEpochsMatchesOracle runs Scan, LowestAbove, Trim and
// Reset on partitions whose events spread over many epochs, some dense,
// some empty, against a model of what each partition holds, then reopens
// the store and checks again.
func TestScanTrimAcrossEpochsMatchesOracle(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	defer func() { _ = s.Close() }()
	parts := []Partition{pA, pB, pC}
	rng := rand.New(rand.NewPCG(5, 6))
	type row struct {
		ts  hlc.Timestamp
		key string
		off int64
	}
	model := map[Partition]map[string]row{} // identity -> smallest offset
	next := map[Partition]int64{}
	base := map[Partition]hlc.Timestamp{}
	ident := func(r row) string { return r.ts.String() + "/" + r.key }
	var trimmed uint64 // epoch below which everything is trimmed
	check := func(round int) {
		t.Helper()
		for _, through := range []hlc.Timestamp{epochAt(trimmed+uint64(rng.IntN(12)), int64(rng.IntN(1<<epochShift)), 0), maxHLC} {
			for _, reverse := range []bool{false, true} {
				sub := parts[:1+rng.IntN(len(parts))]
				var want []rec
				for _, p := range sub {
					for _, r := range model[p] {
						if !through.Less(r.ts) {
							want = append(want, rec{P: p, TS: r.ts, Table: "t", Key: r.key, Offset: r.off, Value: fmt.Sprintf("v%d", r.off)})
						}
					}
				}
				slices.SortStableFunc(want, func(a, b rec) int {
					if c := cmpRec(a, b); c != 0 {
						return c
					}
					return slices.Index(sub, a.P) - slices.Index(sub, b.P)
				})
				if reverse {
					slices.Reverse(want)
				}
				if got := scan(t, s, sub, through, reverse); !slices.Equal(got, want) {
					t.Fatalf("round %d: Scan(%v, %s, reverse %v): %d events, want %d\ngot  %v\nwant %v", round, sub, through, reverse, len(got), len(want), head(got), head(want))
				}
			}
		}
		for _, p := range parts {
			after := epochAt(trimmed+uint64(rng.IntN(12)), int64(rng.IntN(1<<epochShift)), 0)
			var low hlc.Timestamp
			found := false
			for _, r := range model[p] {
				if after.Less(r.ts) && base[p].Less(r.ts) && (!found || r.ts.Less(low)) {
					low, found = r.ts, true
				}
			}
			got, ok, err := s.LowestAbove(p, after)
			if err != nil || ok != found || got != low {
				t.Fatalf("round %d: LowestAbove(%v, %s) = %s, %v, %v; want %s, %v", round, p, after, got, ok, err, low, found)
			}
			if st := mustState(t, s, p); st.Events != int64(len(model[p])) {
				t.Fatalf("round %d: %v holds %d events, want %d", round, p, st.Events, len(model[p]))
			}
		}
	}
	for round := 0; round < 40; round++ {
		// One batch of all partitions' events, interleaved in time as a
		// consumer's poll delivers them.
		b := s.NewBatch()
		for range 1 + rng.IntN(150) {
			p := parts[rng.IntN(len(parts))]
			if model[p] == nil {
				model[p] = map[string]row{}
			}
			if p == pC && round%4 != 0 {
				continue // a sparse partition: many epochs without its events
			}
			{
				// Mostly ahead of the trims, some in the epochs just above
				// them; keys repeat, so some are duplicates.
				ep := trimmed + 1 + uint64(rng.IntN(10))
				if rng.IntN(3) == 0 {
					ep = trimmed + uint64(round%3)
				}
				r := row{ts: epochAt(ep, int64(rng.IntN(8))<<(epochShift-3), int32(rng.IntN(2))), key: fmt.Sprintf("k%d", rng.IntN(20)), off: next[p]}
				next[p]++
				if !base[p].Less(r.ts) {
					continue // the processor never buffers history
				}
				if model[p] == nil {
					model[p] = map[string]row{}
				}
				b.Add(p, ev(r.ts, "t", r.key, r.off))
				if old, ok := model[p][ident(r)]; !ok || r.off < old.off {
					model[p][ident(r)] = r
				}
			}
		}
		for _, p := range parts {
			b.SetConsumed(p, next[p])
		}
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		check(round)
		switch round % 5 {
		case 2, 4:
			trimmed += uint64(rng.IntN(4))
			through := epochAt(trimmed, int64(rng.IntN(1<<epochShift)), 0)
			if err := s.Trim(context.Background(), parts, through); err != nil {
				t.Fatal(err)
			}
			for _, p := range parts {
				if base[p].Less(through) {
					base[p] = through
				}
				for k, r := range model[p] {
					if !through.Less(r.ts) {
						delete(model[p], k)
					}
				}
			}
		case 3:
			if round == 13 {
				// pB starts over: its events are retired (and reaped
				// key by key among the others').
				through := epochAt(trimmed, 0, 0)
				if err := s.Reset(pB, through, next[pB]); err != nil {
					t.Fatal(err)
				}
				model[pB], base[pB] = map[string]row{}, through
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openDir(t, dir)
		}
		check(round)
	}
	// Nothing of the retired id is left.
	live := map[uint32]bool{}
	for _, pt := range s.parts {
		live[pt.id] = true
	}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixEvent}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if !live[eventID(it.Item().Key())] {
				return fmt.Errorf("event %x of a retired id survived", it.Item().Key())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func head(rs []rec) []rec { return rs[:min(len(rs), 5)] }
