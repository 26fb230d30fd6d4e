package buffer

import (
	"bytes"
	"context"
	"fmt"
	"slices"

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
	// The snapshot and the memory front's runs are taken under one lock:
	// a spill writes Badger before its runs leave memory, so every event
	// is in one or the other (or, briefly, both: the merge skips the
	// second copy).
	type scanPart struct {
		id   uint32
		base hlc.Timestamp
		mem  []memSnap
		ok   bool
	}
	sps := make([]scanPart, len(parts))
	s.smu.RLock()
	txn := s.db.NewTransaction(false)
	for i, p := range parts {
		if pt, ok := s.parts[p]; ok {
			sps[i] = scanPart{id: pt.id, base: pt.m.base, mem: pt.memSnapshot(), ok: true}
		}
	}
	s.smu.RUnlock()
	defer txn.Discard()
	// all are the partitions' cursors, closed at the end; live those with
	// an event left.
	var all, live []*cursor
	defer func() {
		for _, c := range all {
			c.ev.close()
		}
	}()
	seen := make(map[Partition]bool, len(parts))
	for i, p := range parts {
		if seen[p] {
			continue
		}
		seen[p] = true
		sp := sps[i]
		if !sp.ok {
			continue
		}
		id, base := sp.id, sp.base
		ev := newIDEvents(txn, id, opts.Reverse, base, through)
		c := &cursor{ev: ev, part: p, order: i, base: base, through: through, reverse: opts.Reverse}
		all = append(all, c)
		switch {
		case opts.Reverse:
			ev.seekKey(eventSeekAfter(id, through))
		case base.IsZero():
			ev.seekFirst()
		default:
			ev.seekKey(eventSeekAt(id, base))
		}
		if c.load() {
			live = append(live, c)
		}
		for _, ms := range sp.mem {
			c := &cursor{part: p, order: i, base: base, through: through, reverse: opts.Reverse, run: ms.r, lo: ms.start, hi: ms.end}
			c.seekMem()
			if c.load() {
				live = append(live, c)
			}
		}
	}
	h := kmerge.New(live, (*cursor).before)
	var val, buf, prev []byte
	var n int
	for h.Len() > 0 {
		if n++; n&255 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("buffer: scan: %w", err)
			}
		}
		c := h.Top()
		if bytes.Equal(c.key, prev) {
			// The same event from a run and from Badger (a spill in
			// progress when the scan began), or a copy replaced by an
			// earlier one: the first, with the smaller offset, was
			// delivered.
			c.next()
			if c.load() {
				h.Fixed()
			} else {
				h.Pop()
			}
			continue
		}
		prev = append(prev[:0], c.key...)
		ts, table, key, err := decodeEventKey(c.key)
		if err != nil {
			return fmt.Errorf("buffer: scan %s[%d]: %w", c.part.Topic, c.part.Partition, err)
		}
		// Reuse the table string while it repeats (the common case) so
		// that Scan allocates nothing per event.
		if string(table) != c.table {
			c.table = string(table)
		}
		if c.run != nil {
			val = c.run.value(c.i)
		} else if val, err = c.ev.item().ValueCopy(buf[:0]); err != nil {
			return fmt.Errorf("buffer: scan %s[%d]: read value: %w", c.part.Topic, c.part.Partition, err)
		} else {
			buf = val
		}
		if len(val) < offsetSize {
			return fmt.Errorf("buffer: scan %s[%d]: malformed event value of key %s", c.part.Topic, c.part.Partition, HexPrefix(c.key))
		}
		ev := Event{Updated: ts, Table: c.table, Key: key, Offset: decodeOffset(val), Value: val[offsetSize:]}
		if err := fn(c.part, ev); err != nil {
			return err
		}
		c.next()
		if c.load() {
			h.Fixed()
		} else {
			h.Pop()
		}
	}
	return ctx.Err()
}

// cursor is one partition's iterator in the merge: over Badger (ev) or
// over one run of the memory front (run).
type cursor struct {
	ev      *idEvents
	part    Partition
	order   int
	base    hlc.Timestamp
	through hlc.Timestamp
	reverse bool
	key     []byte // current key, valid until next
	table   string
	// run's events [lo, hi) are the cursor's; i is the current one.
	run    *memRun
	lo, hi int
	i      int
}

// seekMem positions a run's cursor on its first event in scan order: at
// Base forward, at through in reverse.
func (c *cursor) seekMem() {
	ents := c.run.ents[c.lo:c.hi]
	if c.reverse {
		// The last event at or below through.
		n, _ := slices.BinarySearchFunc(ents, c.through, func(e ment, t hlc.Timestamp) int {
			if t.Less(e.ts) {
				return 1
			}
			return -1
		})
		c.i = c.lo + n - 1
		return
	}
	if c.base.IsZero() {
		c.i = c.lo // HLCs before the epoch sort below zero
		return
	}
	n, _ := slices.BinarySearchFunc(ents, c.base, func(e ment, t hlc.Timestamp) int {
		if e.ts.Less(t) {
			return -1
		}
		return 1
	})
	c.i = c.lo + n
}

// next moves c to its next event in scan order.
func (c *cursor) next() {
	switch {
	case c.run == nil:
		c.ev.next()
	case c.reverse:
		c.i--
	default:
		c.i++
	}
}

// load positions c on its current item and reports whether it is in range.
func (c *cursor) load() bool {
	var ts hlc.Timestamp
	if c.run != nil {
		if c.i < c.lo || c.i >= c.hi {
			return false
		}
		c.key = c.run.key(c.i)
		ts = c.run.ents[c.i].ts
	} else {
		if !c.ev.valid {
			return false
		}
		c.key = c.ev.item().Key()
		if len(c.key) <= eventHead {
			return false
		}
		ts = eventHLC(c.key)
	}
	// Forward iteration started at Base, reverse iteration at through.
	if c.reverse {
		return c.base.IsZero() || !ts.Less(c.base)
	}
	return !c.through.Less(ts)
}

// before reports whether a's current event comes before b's in the
// scan's order: (HLC, table, key), ties in the order of the partitions,
// all reversed for a reverse scan (both cursors scan the same way). Two
// copies of one event of a partition (in two runs, or in a run and in
// Badger) come smallest offset first in either direction, so that the
// merge delivers that one and skips the other.
func (a *cursor) before(b *cursor) bool {
	// Skip 'E', the epoch (a function of the HLC) and the id: compare
	// (HLC, table, key).
	c := bytes.Compare(a.key[eventHLCAt:], b.key[eventHLCAt:])
	if c == 0 {
		c = a.order - b.order
		if c == 0 {
			return a.offset() < b.offset()
		}
	}
	if a.reverse {
		return c > 0
	}
	return c < 0
}

// offset is the offset of c's current event; Badger's copy reads as the
// largest (a run's copy of the same event, mid-spill, is the same event).
func (c *cursor) offset() int64 {
	if c.run != nil {
		return c.run.ents[c.i].off
	}
	return 1<<63 - 1
}
