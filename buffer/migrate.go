package buffer

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
)

// v1Head is the length of an event key before the table name in the layout
// before epochs: 'e' | id (4) | HLC (12).
const v1Head = 1 + idSize + hlc.Size

// migrateEvents rewrites the events a store written before epochs holds
// under 'e' | id | HLC | table | 0 | key into the current layout, and
// returns how many it moved. Events of ids that no partition uses (retired
// ones) are only deleted.
// Each event's new key is written before its old one is deleted, and both
// keys hold the same event, so a crash half-way leaves events in one
// layout or both and the next Open carries on; the recount after it sets
// the counters to the longer keys.
func (s *Store) migrateEvents() (int64, error) {
	var n int64
	var found bool
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixEventV1}})
		defer it.Close()
		it.Rewind()
		found = it.Valid()
		return nil
	})
	if err != nil || !found {
		return 0, err
	}
	s.log.Info("rewriting buffered events into the epoch key layout")
	live := make(map[uint32]bool, len(s.parts))
	for _, pt := range s.parts {
		live[pt.id] = true
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixEventV1}})
	defer it.Close()
	var val []byte
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if len(k) < v1Head {
			return n, fmt.Errorf("migrate event key %s: malformed", HexPrefix(k))
		}
		old := item.KeyCopy(nil)
		if id := binary.BigEndian.Uint32(k[1:]); live[id] {
			ts, err := hlc.Decode(k[1+idSize:])
			if err != nil {
				return n, fmt.Errorf("migrate event key %s: %w", HexPrefix(k), err)
			}
			if val, err = item.ValueCopy(val[:0]); err != nil {
				return n, fmt.Errorf("migrate event key %s: read value: %w", HexPrefix(k), err)
			}
			nk := appendEventHead(make([]byte, 0, eventHead-v1Head+len(k)), epochOf(ts), id)
			nk = append(nk, k[1+idSize:]...)
			// WriteBatch keeps the slices until it commits.
			if err := wb.Set(nk, slices.Clone(val)); err != nil {
				return n, fmt.Errorf("migrate events: %w", err)
			}
			n++
		}
		if err := wb.Delete(old); err != nil {
			return n, fmt.Errorf("migrate events: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return n, fmt.Errorf("migrate events: %w", err)
	}
	s.log.Info("rewrote buffered events into the epoch key layout", zap.Int64("events", n))
	return n, nil
}
