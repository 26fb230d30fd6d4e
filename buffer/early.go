package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/highwater-dev/highwater/hlc"
)

// Groups: events applied ahead of their resolved timestamp.
//
// A CockroachDB initial scan (and a schema-change backfill) emits every row
// at one HLC, and no resolved timestamp reaches that HLC before the scan
// ends, so no window can close while the scan streams in. When such a
// group outgrows the disk budget, the processor applies the group's events
// to the warehouse ahead of the resolved timestamp (processor/early.go,
// docs/BUFFER.md "Groups applied early") and then removes exactly those
// events with TrimGroup, without moving Base.
//
// A Group is fixed when it is taken: the events of its partitions at its
// HLC with an offset below each partition's Consumed at that moment. Write
// commits events before it publishes the Consumed that covers them, so all
// of them are in any snapshot taken afterwards (ScanGroup), and an event
// written later has an offset at or beyond that Consumed (a duplicate of a
// group event keeps the smaller offset, so it stays in the group): events
// of the same HLC that arrive while the group is applied are not part of
// it, and TrimGroup leaves them.

// Group is the buffered events of some partitions at one HLC, as taken by
// TakeGroup.
type Group struct {
	// At is the group's HLC.
	At hlc.Timestamp
	// Parts are the group's partitions, and Below each one's Consumed
	// offset when the group was taken: the group holds its events at At
	// with an offset below it.
	Parts []Partition
	Below []int64
	ids   []uint32
}

// Budget returns Options.DiskBudget (0: unlimited).
func (s *Store) Budget() int64 { return s.budget }

// LowestAbove returns the smallest HLC of p's buffered events that is above
// both after and p's Base, and false if there is none (or p is unknown).
// With a memory front it first moves the front to Badger and sends Writes
// there until the next Trim (spillFront): the group functions read Badger
// only.
func (s *Store) LowestAbove(p Partition, after hlc.Timestamp) (hlc.Timestamp, bool, error) {
	if s.closed.Load() {
		return hlc.Timestamp{}, false, errors.New("buffer: lowest above: store is closed")
	}
	s.smu.RLock()
	pt, ok := s.parts[p]
	var id uint32
	var base hlc.Timestamp
	if ok {
		id, base = pt.id, pt.m.base
	}
	s.smu.RUnlock()
	if !ok {
		return hlc.Timestamp{}, false, nil
	}
	if err := s.spillFront(); err != nil {
		return hlc.Timestamp{}, false, fmt.Errorf("buffer: lowest above %s[%d]: %w", p.Topic, p.Partition, err)
	}
	if after.Less(base) {
		after = base
	}
	var at hlc.Timestamp
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		ev := allIDEvents(txn, id, false)
		defer ev.close()
		ev.seekKey(eventSeekAfter(id, after))
		if ev.valid && len(ev.item().Key()) > eventHead {
			at, found = eventHLC(ev.item().Key()), true
		}
		return nil
	})
	if err != nil {
		return hlc.Timestamp{}, false, fmt.Errorf("buffer: lowest above %s[%d]: %w", p.Topic, p.Partition, err)
	}
	return at, found, nil
}

// TakeGroup fixes the group of parts' events at HLC at that are buffered
// now (below each partition's Consumed). Unknown partitions, and those
// whose Base is at or above at, are left out.
func (s *Store) TakeGroup(parts []Partition, at hlc.Timestamp) *Group {
	g := &Group{At: at}
	s.smu.RLock()
	defer s.smu.RUnlock()
	for _, p := range parts {
		pt, ok := s.parts[p]
		if !ok || !pt.m.base.Less(at) {
			continue
		}
		g.Parts = append(g.Parts, p)
		g.Below = append(g.Below, pt.m.consumed)
		g.ids = append(g.ids, pt.id)
	}
	return g
}

// spillFront writes the memory front's runs to Badger and, as an
// overflowing front does, sends Writes straight to Badger until the next
// Trim. Groups are looked for only when the buffer is over its budget and
// no window is in flight, so memory would not be freed by a Trim soon
// anyway; and with every event at or below a partition's Consumed in
// Badger, the group TakeGroup fixes is exactly what ScanGroup reads and
// TrimGroup deletes: no Trim runs between them (the group takes the
// processor's window slot), so no Write goes to memory meanwhile.
// TakeGroup's Below is the persisted Consumed, which covers Badger only,
// so even a group taken without this holds no event in memory.
func (s *Store) spillFront() error {
	if s.memBudget <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(); err != nil {
		return err
	}
	if s.hasMemRuns() {
		if err := s.spill(-1); err != nil {
			return err
		}
	}
	s.direct = true
	return nil
}

// groupPrefix is the key prefix of id's events at HLC at.
func groupPrefix(id uint32, at hlc.Timestamp) []byte {
	return eventSeekAt(id, at)
}

// GroupSize returns the number and bytes (as Usage counts them) of g's
// events.
func (s *Store) GroupSize(ctx context.Context, g *Group) (events, bytes int64, err error) {
	err = s.scanGroup(ctx, g, false, func(_ int, _ []byte, size int64, _ int64, _ []byte) error {
		events++
		bytes += size
		return nil
	})
	return events, bytes, err
}

// ScanGroup calls fn for every event of g, partition by partition, each in
// (Table, Key) order. ev's slices are only valid during the call.
func (s *Store) ScanGroup(ctx context.Context, g *Group, fn func(p Partition, ev Event) error) error {
	var table string
	return s.scanGroup(ctx, g, true, func(i int, key []byte, _ int64, off int64, val []byte) error {
		_, tb, k, err := decodeEventKey(key)
		if err != nil {
			return err
		}
		if string(tb) != table {
			table = string(tb)
		}
		return fn(g.Parts[i], Event{Updated: g.At, Table: table, Key: k, Offset: off, Value: val})
	})
}

// scanGroup walks g's events: key, size, offset and, with values, the
// payload. Events at g.At with an offset at or beyond the partition's
// Below arrived after the group was taken and are skipped.
func (s *Store) scanGroup(ctx context.Context, g *Group, values bool, fn func(i int, key []byte, size, off int64, val []byte) error) error {
	if s.closed.Load() {
		return errors.New("buffer: group: store is closed")
	}
	var buf []byte
	for i, id := range g.ids {
		p := g.Parts[i]
		err := s.db.View(func(txn *badger.Txn) error {
			prefix := groupPrefix(id, g.At)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			defer it.Close()
			n := 0
			for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
				if n++; n&255 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				item := it.Item()
				var err error
				buf, err = item.ValueCopy(buf[:0])
				if err != nil {
					return fmt.Errorf("read value: %w", err)
				}
				if len(buf) < offsetSize {
					return fmt.Errorf("malformed event value of key %s", HexPrefix(item.Key()))
				}
				off := decodeOffset(buf)
				if off >= g.Below[i] {
					continue
				}
				var val []byte
				if values {
					val = buf[offsetSize:]
				}
				if err := fn(i, item.Key(), item.KeySize()+item.ValueSize(), off, val); err != nil {
					return err
				}
			}
			return ctx.Err()
		})
		if err != nil {
			return fmt.Errorf("buffer: group at %s of %s[%d]: %w", g.At, p.Topic, p.Partition, err)
		}
	}
	return nil
}

// TrimGroup deletes g's events once they are applied, with the offset
// index runs all of whose entries are g's events, and updates the
// counters. Base does not move: the partitions' resolved timestamps have
// not reached g.At. Events of the same HLC written after the group was
// taken stay. A partition reset or dropped since TakeGroup is skipped.
//
// It holds the store's write lock throughout (Write waits): the group's
// events and the index runs are deleted from a consistent view, and the
// counters stay exact. A crash half-way leaves some of the group's events
// buffered; they are applied again, idempotently, with the next group or
// window, and the recount on Open repairs the counters.
func (s *Store) TrimGroup(ctx context.Context, g *Group) error {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(); err != nil {
		return err
	}
	defer s.kickBackground()
	for i, p := range g.Parts {
		pt := s.lookup(p)
		if pt == nil || pt.id != g.ids[i] || !pt.m.base.Less(g.At) {
			continue
		}
		if err := s.trimGroup(ctx, pt, g.At, g.Below[i]); err != nil {
			var f writeFailure
			if errors.As(err, &f) && s.failed == nil {
				s.failed = f.err
			}
			return fmt.Errorf("buffer: trim group at %s of %s[%d]: %w", g.At, p.Topic, p.Partition, err)
		}
	}
	return nil
}

// trimGroup deletes pt's events at at below offset below, and the index
// runs made only of such events. Callers hold tmu and mu.
func (s *Store) trimGroup(ctx context.Context, pt *part, at hlc.Timestamp, below int64) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	var n, size int64
	prefix := groupPrefix(pt.id, at)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		if n&1023 == 1023 && ctx.Err() != nil {
			break // the rest is applied again later, idempotently
		}
		item := it.Item()
		var off int64
		if err := item.Value(func(v []byte) error {
			if len(v) < offsetSize {
				return fmt.Errorf("malformed event value of key %s", HexPrefix(item.Key()))
			}
			off = decodeOffset(v)
			return nil
		}); err != nil {
			it.Close()
			return err
		}
		if off >= below {
			continue
		}
		if err := wb.Delete(item.KeyCopy(nil)); err != nil {
			it.Close()
			return writeFailure{err}
		}
		n++
		size += item.KeySize() + item.ValueSize()
	}
	it.Close()

	// Offset index runs whose every entry is an event deleted here: the
	// checkpoint of a later window needs none of them (LowOffset answers
	// offsets of events still to apply, and these are applied). Without
	// this the index of a scan would grow past the budget with the scan.
	oprefix := idPrefix(prefixOffset, pt.id)
	oit := txn.NewIterator(badger.IteratorOptions{Prefix: oprefix})
	for oit.Seek(oprefix); oit.ValidForPrefix(oprefix); oit.Next() {
		item := oit.Item()
		first, err := runFirst(item.Key())
		if err != nil {
			oit.Close()
			return err
		}
		var only bool
		if err := item.Value(func(v []byte) error {
			var err error
			only, err = runOnlyAt(first, v, at, below)
			return err
		}); err != nil {
			oit.Close()
			return err
		}
		if !only {
			continue
		}
		if err := wb.Delete(item.KeyCopy(nil)); err != nil {
			oit.Close()
			return writeFailure{err}
		}
	}
	oit.Close()
	if err := wb.Flush(); err != nil {
		return writeFailure{err}
	}
	m := pt.m
	m.events = max(m.events-n, 0)
	m.bytes = max(m.bytes-size, 0)
	if m.events == 0 {
		m.bytes = 0
	}
	return s.publishMeta(pt, m)
}

// runOnlyAt reports whether every entry of an offset index run (its value
// v, first offset first) is at HLC at with an offset below below.
func runOnlyAt(first int64, v []byte, at hlc.Timestamp, below int64) (bool, error) {
	maxTS, err := runMax(v)
	if err != nil {
		return false, err
	}
	if maxTS != at {
		return false, nil
	}
	v = v[hlc.Size:]
	for len(v) > 0 {
		d, n := binary.Uvarint(v)
		if n <= 0 || len(v) < n+hlc.Size {
			return false, errors.New("malformed offset index run")
		}
		ts, err := hlc.Decode(v[n:])
		if err != nil {
			return false, err
		}
		if ts != at || first+int64(d) >= below {
			return false, nil
		}
		v = v[n+hlc.Size:]
	}
	return true, nil
}
