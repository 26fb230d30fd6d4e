package buffer

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestOpenMigratesTheLayoutBeforeEpochs stores events, rewrites their keys
// into the layout of stores written before epochs ('e' | id | HLC | ...),
// adds events of an id no partition uses, and reopens: every event is back
// under the current layout with its offset and value, the counters and the
// offset index agree, and nothing of the old layout or the unused id is
// left.
func TestOpenMigratesTheLayoutBeforeEpochs(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	big := strings.Repeat("x", 3*valueThreshold) // kept in the value log
	write(t, s, pA, ev(epochAt(1, 0, 0), "t", "a", 0), ev(epochAt(5, 9, 1), "t", "b", 1),
		Event{Updated: epochAt(5, 9, 1), Table: "u", Key: []byte("big"), Offset: 2, Value: []byte(big)})
	write(t, s, pB, ev(epochAt(1, 3, 0), "t", "a", 0), ev(epochAt(2, 0, 0), "t", "c", 1), ev(epochAt(9, 0, 0), "t", "d", 2))
	if err := s.Trim(context.Background(), []Partition{pA, pB}, epochAt(1, 1, 0)); err != nil {
		t.Fatal(err)
	}
	parts := []Partition{pA, pB}
	want := scan(t, s, parts, maxHLC, false)
	wantUsage := s.Usage()
	wantLow, err := s.LowOffset(pB, epochAt(2, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 5 || wantLow != 2 {
		t.Fatalf("before the migration: %d events, LowOffset %d; want 5, 2", len(want), wantLow)
	}
	if err := s.spillFront(); err != nil { // the memory front's events too
		t.Fatal(err)
	}
	if err := s.spill(-1); err != nil {
		t.Fatal(err)
	}
	old := 0
	err = s.db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixEvent}})
		defer it.Close()
		var keys, vals [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			keys, vals = append(keys, it.Item().KeyCopy(nil)), append(vals, v)
		}
		// An event of id 77, which no partition has.
		keys = append(keys, appendEventKey(nil, 77, epochAt(3, 0, 0), "t", []byte("orphan")))
		vals = append(vals, encodeOffset(nil, 0))
		for i, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
			v1 := append([]byte{prefixEventV1}, k[1+epochSize:]...)
			if err := txn.Set(v1, vals[i]); err != nil {
				return err
			}
			old++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if old != 6 {
		t.Fatalf("rewrote %d events into the old layout, want 6", old)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for open := 1; open <= 2; open++ {
		s = openDir(t, dir)
		if got := scan(t, s, parts, maxHLC, false); !slices.Equal(got, want) {
			t.Fatalf("open %d: Scan\n got %v\nwant %v", open, got, want)
		}
		if u := s.Usage(); u != wantUsage {
			t.Fatalf("open %d: Usage %+v, want %+v", open, u, wantUsage)
		}
		if low, err := s.LowOffset(pB, epochAt(2, 0, 0)); err != nil || low != wantLow {
			t.Fatalf("open %d: LowOffset %d, %v; want %d", open, low, err, wantLow)
		}
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().Key()
				if k[0] == prefixEventV1 || k[0] == prefixEvent && eventID(k) == 77 || bytes.Contains(k, []byte("orphan")) {
					t.Errorf("open %d: key %x left behind", open, k)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Duplicates of migrated events are still recognised.
		write(t, s, pB, ev(epochAt(9, 0, 0), "t", "d", 7))
		if st := mustState(t, s, pB); st.Events != 3 {
			t.Fatalf("open %d: a duplicate of a migrated event was counted: %+v", open, st)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
