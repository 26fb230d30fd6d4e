package buffer

import (
	"bytes"
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/kmerge"
)

// ScanOptions tune Scan.
type ScanOptions struct {
	// Reverse delivers the newest events first, in exactly the reverse of
	// the forward order.
	Reverse bool
}

// Scan calls fn for every buffered event of parts with Updated <= through,
// merged across the partitions in (Updated, Table, Key) order (ties between
// partitions in the order of parts), or in exactly the reverse order.
// Events below a partition's Base are history (leftovers of an interrupted
// Trim; the processor never buffers them) and are not delivered. ev's
// slices are valid only during fn. Scan reads a consistent snapshot and
// streams: its memory does not depend on the number of events. It stops at
// the first error of fn or when ctx is done. Unknown partitions have no
// events.
func (s *Store) Scan(ctx context.Context, parts []Partition, through hlc.Timestamp, opts ScanOptions, fn func(p Partition, ev Event) error) error {
	if s.closed.Load() {
		return fmt.Errorf("buffer: scan: store is closed")
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	// all are the partitions' cursors, closed at the end; live those with
	// an event left.
	var all, live []*cursor
	defer func() {
		for _, c := range all {
			c.it.Close()
		}
	}()
	seen := make(map[Partition]bool, len(parts))
	for i, p := range parts {
		if seen[p] {
			continue
		}
		seen[p] = true
		s.smu.RLock()
		pt, ok := s.parts[p]
		var id uint32
		var base hlc.Timestamp
		if ok {
			id, base = pt.id, pt.m.base
		}
		s.smu.RUnlock()
		if !ok {
			continue
		}
		prefix := idPrefix(prefixEvent, id)
		// Values are mostly inline in the LSM tree (valueThreshold), so
		// prefetching them in a goroutine per iterator would only add
		// copies; Scan reads each value once, when it is delivered.
		it := txn.NewIterator(badger.IteratorOptions{Reverse: opts.Reverse, Prefix: prefix})
		c := &cursor{it: it, part: p, order: i, prefix: prefix, base: base, through: through, reverse: opts.Reverse}
		all = append(all, c)
		if opts.Reverse {
			it.Seek(eventSeekAfter(id, through))
		} else {
			start := prefix
			if !base.IsZero() {
				start = base.AppendBinary(prefix[:len(prefix):len(prefix)])
			}
			it.Seek(start)
		}
		if c.load() {
			live = append(live, c)
		}
	}
	h := kmerge.New(live, (*cursor).before)
	var val []byte
	var n int
	for h.Len() > 0 {
		if n++; n&255 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("buffer: scan: %w", err)
			}
		}
		c := h.Top()
		item := c.it.Item()
		ts, table, key, err := decodeEventKey(c.key)
		if err != nil {
			return fmt.Errorf("buffer: scan %s[%d]: %w", c.part.Topic, c.part.Partition, err)
		}
		// Reuse the table string while it repeats (the common case) so
		// that Scan allocates nothing per event.
		if string(table) != c.table {
			c.table = string(table)
		}
		val, err = item.ValueCopy(val[:0])
		if err != nil {
			return fmt.Errorf("buffer: scan %s[%d]: read value: %w", c.part.Topic, c.part.Partition, err)
		}
		if len(val) < offsetSize {
			return fmt.Errorf("buffer: scan %s[%d]: malformed event value of key %s", c.part.Topic, c.part.Partition, HexPrefix(c.key))
		}
		ev := Event{Updated: ts, Table: c.table, Key: key, Offset: decodeOffset(val), Value: val[offsetSize:]}
		if err := fn(c.part, ev); err != nil {
			return err
		}
		c.it.Next()
		if c.load() {
			h.Fixed()
		} else {
			h.Pop()
		}
	}
	return ctx.Err()
}

// cursor is one partition's iterator in the merge.
type cursor struct {
	it      *badger.Iterator
	part    Partition
	order   int
	prefix  []byte
	base    hlc.Timestamp
	through hlc.Timestamp
	reverse bool
	key     []byte // current key, valid until it.Next
	table   string
}

// load positions c on its current item and reports whether it is in range.
func (c *cursor) load() bool {
	if !c.it.ValidForPrefix(c.prefix) {
		return false
	}
	c.key = c.it.Item().Key()
	if len(c.key) <= eventHead {
		return false
	}
	// Forward iteration started at Base, reverse iteration at through.
	if c.reverse {
		return c.base.IsZero() || !eventHLC(c.key).Less(c.base)
	}
	return !c.through.Less(eventHLC(c.key))
}

// before reports whether a's current event comes before b's in the
// scan's order: (HLC, table, key), ties in the order of the partitions,
// all reversed for a reverse scan (both cursors scan the same way).
func (a *cursor) before(b *cursor) bool {
	// Skip 'e' and the id: compare (HLC, table, key).
	c := bytes.Compare(a.key[1+idSize:], b.key[1+idSize:])
	if c == 0 {
		c = a.order - b.order
	}
	if a.reverse {
		return c > 0
	}
	return c < 0
}
