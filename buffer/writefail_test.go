package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// corruptEvent stores, behind the Store's back, an event of p whose value
// is too short to hold an offset: the duplicate check of a later Write
// that meets the same (HLC, table, key) fails on it.
func corruptEvent(t *testing.T, s *Store, p Partition, e Event) {
	t.Helper()
	pt := s.lookup(p)
	if pt == nil {
		t.Fatalf("partition %v unknown", p)
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(appendEventKey(nil, pt.id, e.Updated, e.Table, e.Key), []byte{1, 2})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWriteFailingBeforeAnythingIsWrittenKeepsTheStore: a duplicate check
// that fails on the batch's first event leaves nothing written, so the
// store stays usable.
func TestWriteFailingBeforeAnythingIsWrittenKeepsTheStore(t *testing.T) {
	s := openMem(t, 0)
	skipWithMemoryFront(t, s)
	write(t, s, pA, ev(at(100, 0), "t", "top", 0))
	corruptEvent(t, s, pA, ev(at(1, 0), "t", "bad", 0))
	b := s.NewBatch()
	b.Add(pA, ev(at(1, 0), "t", "bad", 5))
	b.Add(pA, ev(at(2, 0), "t", "k", 6))
	if err := s.Write(context.Background(), b); err == nil || !strings.Contains(err.Error(), "malformed event value") {
		t.Fatalf("Write over a corrupt event: %v", err)
	}
	write(t, s, pA, ev(at(3, 0), "t", "k", 7))
	if got := s.Usage().Events; got != 2 {
		t.Fatalf("Usage().Events = %d, want 2", got)
	}
}

// TestWriteFailingAfterAPartialCommitFailsTheStore: Badger's WriteBatch
// commits a large batch in chunks as it fills, so an error after the first
// chunk (here a duplicate check that meets a corrupt stored event) leaves
// events in the store that the counters do not know of. The store must
// then refuse every further write with an error that says to reopen it.
func TestWriteFailingAfterAPartialCommitFailsTheStore(t *testing.T) {
	s := openMem(t, 0)
	skipWithMemoryFront(t, s)
	write(t, s, pA, ev(at(1_000_000, 0), "t", "top", 0)) // every batch event below needs the duplicate check
	bad := ev(at(900_000, 0), "t", "bad", 0)
	corruptEvent(t, s, pA, bad)

	// 4000 events of ~900 bytes (below the value threshold, so in the LSM
	// tree) exceed Badger's batch size for 12 MB memtables (15%, 1.8 MB):
	// WriteBatch commits a chunk before the loop reaches bad.
	b := s.NewBatch()
	const n = 4000
	val := bytes.Repeat([]byte("x"), 900)
	for i := range n {
		b.Add(pA, Event{Updated: at(int64(i+1), 0), Table: "t", Key: []byte(fmt.Sprintf("k%d", i)), Offset: int64(i + 1), Value: val})
	}
	bad.Offset = n + 1
	b.Add(pA, bad)
	err := s.Write(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), "malformed event value") {
		t.Fatalf("Write over a corrupt event: %v", err)
	}
	// The premise: part of the batch is committed, unknown to the counters.
	pt := s.lookup(pA)
	err = s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(appendEventKey(nil, pt.id, at(1, 0), "t", []byte("k0")))
		return err
	})
	if err != nil {
		t.Fatalf("first event of the failed batch not committed (the test needs a partial commit): %v", err)
	}
	if got := s.Usage().Events; got != 1 {
		t.Fatalf("Usage().Events = %d, want 1 (the failed write is not counted)", got)
	}

	b = s.NewBatch()
	b.Add(pA, ev(at(2_000_000, 0), "t", "later", n+2))
	err = s.Write(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), "reopen the store") || !strings.Contains(err.Error(), "malformed event value") {
		t.Fatalf("Write after a partially committed write: %v, want an error saying to reopen the store and why", err)
	}
	if err := s.Trim(context.Background(), []Partition{pA}, at(1_000_000, 0)); err == nil || !strings.Contains(err.Error(), "reopen the store") {
		t.Fatalf("Trim after a partially committed write: %v", err)
	}
	if err := s.Drop(pA); err == nil || !errors.Is(err, s.failed) {
		t.Fatalf("Drop after a partially committed write: %v", err)
	}
}
