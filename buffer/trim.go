package buffer

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	"github.com/highwater-dev/highwater/hlc"
)

// LowOffset returns the smallest Offset of any event of p with Updated >
// through, or p's Consumed offset if there is none (or if it is smaller):
// the offset from which a consumer that applied everything through
// `through` must resume so that nothing is lost. p must be known.
//
// It walks p's offset index (runs of up to 60 offsets per Write, ordered by
// first offset) from the front and stops at the first run reaching above
// through. Trim removes the runs at or below its `through` from the front,
// so the walk covers about the window being flushed divided by 60, never
// the events buffered beyond it.
func (s *Store) LowOffset(p Partition, through hlc.Timestamp) (int64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("buffer: low offset: store is closed")
	}
	// Read Consumed before taking the snapshot: Write commits events before
	// it publishes the Consumed that covers them, so every event below this
	// Consumed is in the snapshot.
	// The memory front's events are read under the same lock as the
	// snapshot is taken: a spill writes Badger before its runs leave
	// memory, so each event is in one or the other.
	s.smu.RLock()
	pt, ok := s.parts[p]
	var id uint32
	var consumed int64
	var txn *badger.Txn
	if ok {
		id, consumed = pt.id, pt.consumed
		if off, ok := pt.memLow(through); ok && off < consumed {
			consumed = off
		}
		txn = s.db.NewTransaction(false)
	}
	s.smu.RUnlock()
	if !ok {
		return 0, fmt.Errorf("buffer: low offset: unknown partition %s[%d]", p.Topic, p.Partition)
	}
	defer txn.Discard()
	low := consumed
	err := func() error {
		prefix := idPrefix(prefixOffset, id)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			first, err := runFirst(item.Key())
			if err != nil {
				return err
			}
			// Runs are ordered by first offset: none after this one can
			// hold a smaller offset than the best so far. (Runs of one
			// Write never overlap; runs of Writes that re-read offsets
			// may, hence no early return inside a run.)
			if first >= low {
				return nil
			}
			err = item.Value(func(v []byte) error {
				maxTS, err := runMax(v)
				if err != nil || !through.Less(maxTS) {
					return err // all of the run is at or below through
				}
				off, ok, err := runLow(first, v, through)
				if ok {
					// Offsets at or beyond Consumed were written by a
					// Write whose metadata never landed (a crash):
					// resuming beyond Consumed could skip records that
					// were never stored.
					low = min(low, off)
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		return 0, fmt.Errorf("buffer: low offset %s[%d]: %w", p.Topic, p.Partition, err)
	}
	return low, nil
}

// Trim deletes the events of parts with Updated <= through and sets their
// Base to through (Base never moves back; use Reset for that). Unknown
// partitions are skipped. Base is persisted before the deletions; if ctx
// ends half-way, the events left at or below through are no longer
// delivered by Scan (except those equal to Base) and the next Trim deletes
// them.
func (s *Store) Trim(ctx context.Context, parts []Partition, through hlc.Timestamp) error {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	s.mu.Lock()
	err := s.checkWritable()
	// A window was applied: its trim frees the memory front, which takes
	// Writes again.
	s.direct = false
	s.mu.Unlock()
	if err != nil {
		return err
	}
	defer s.kickBackground()
	parts = slices.Clone(parts)
	slices.SortFunc(parts, func(a, b Partition) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	parts = slices.Compact(parts) // a partition is trimmed by one worker only
	// Partitions are independent key ranges: trimWorkers goroutines trim
	// them side by side. A window's trim is mostly its key walk and the
	// preparation of a tombstone per event, which Badger's single write
	// goroutine then applies; with one worker a large window's trim ran on
	// one core for seconds after its commit, the tail of a backlog.
	errs := make([]error, len(parts))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(trimWorkers, len(parts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(parts); i = int(next.Add(1) - 1) {
				errs[i] = s.trim(ctx, parts[i], through)
			}
		}()
	}
	wg.Wait()
	var first error
	for i, err := range errs {
		if err == nil {
			continue
		}
		var f writeFailure
		if errors.As(err, &f) {
			// The deletions or the counters may be half-written: the
			// counters no longer match the data until a reopen recounts.
			s.mu.Lock()
			if s.failed == nil {
				s.failed = f.err
			}
			s.mu.Unlock()
		}
		if first == nil {
			p := parts[i]
			first = fmt.Errorf("buffer: trim %s[%d] through %s: %w", p.Topic, p.Partition, through, err)
		}
	}
	return first
}

// trimWorkers is how many partitions Trim trims at once: the machines this
// runs on have two cores, and Badger applies the tombstones on a goroutine
// of its own.
const trimWorkers = 2

// writeFailure marks an error of trim after which the store's counters may
// no longer match its data (Trim then refuses further writes, see
// Store.failed). trim runs on several goroutines, so it reports instead of
// setting Store.failed itself.
type writeFailure struct{ err error }

func (f writeFailure) Error() string { return f.err.Error() }
func (f writeFailure) Unwrap() error { return f.err }

// trim trims one partition. It may run concurrently for different
// partitions (Trim holds tmu for all of them) and with Write: it holds mu
// only to move Base and trimFrom and to update the counters, not for the
// walk and the deletions, which work on a snapshot. Events Write adds
// meanwhile at or below through are history (Scan never delivers them) and
// are left to the next trim, which starts low enough to see them (see
// part.lowWrite). Failures that leave the counters behind the data come
// back as writeFailure.
func (s *Store) trim(ctx context.Context, p Partition, through hlc.Timestamp) error {
	s.mu.Lock()
	pt := s.lookup(p)
	if pt == nil {
		s.mu.Unlock()
		return nil
	}
	// The memory front first: dropping its trimmed events writes nothing,
	// and the runs it empties make their Consumed durable, persisted with
	// Base.
	m, popped := s.trimMem(pt, through)
	if err := s.trimBase(pt, through, m, popped); err != nil {
		s.mu.Unlock()
		return err
	}
	from := pt.trimFrom
	pt.trimming, pt.wroteLow = true, false
	clean := pt.diskClean
	s.mu.Unlock()
	var n, size int64
	complete := true
	var err error
	if !clean {
		n, size, complete, err = s.trimWalk(ctx, pt, from, through)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pt.trimming = false
	if err != nil {
		return err
	}
	if complete {
		next := through
		if pt.wroteLow && pt.lowWrite.Less(next) {
			next = pt.lowWrite
		}
		if pt.trimFrom.Less(next) {
			pt.trimFrom = next
		}
	}
	if clean && !pt.wroteLow {
		// Nothing to delete and nothing written meanwhile: no counters
		// to update.
		return nil
	}
	// The counters after the deletions: a crash in between is repaired by
	// the recount on Open.
	m = pt.m
	m.events -= n
	m.bytes -= size
	if m.events <= 0 || m.bytes < 0 {
		// Value sizes of values in the value log are estimates; never let
		// the estimate drift below zero.
		m.events, m.bytes = max(m.events, 0), max(m.bytes, 0)
		if m.events == 0 {
			m.bytes = 0
		}
	}
	if err := s.publishMeta(pt, m); err != nil {
		return err
	}
	// Badger holds no event of the partition: later trims need not walk
	// (until a Write or a spill stores one).
	pt.diskClean = complete && !pt.wroteLow && m.events == 0
	if !complete {
		return ctx.Err()
	}
	return nil
}

// trimBase moves pt's Base up to through and persists m (pt's metadata
// with the Consumed and Resolved that the memory front's trim made
// durable; changed says they moved). Callers hold mu.
func (s *Store) trimBase(pt *part, through hlc.Timestamp, m meta, changed bool) error {
	// Base moves first: once the window is applied, events at or below it
	// are history, and Scan never delivers events below Base. A crash or
	// cancellation half-way then leaves only invisible leftovers, which the
	// next Trim (or the Open after a crash) deletes.
	if m.base.Less(through) || changed {
		if m.base.Less(through) {
			m.base = through
		}
		if err := s.db.Update(func(txn *badger.Txn) error {
			return txn.Set(idPrefix(prefixMeta, pt.id), m.encode())
		}); err != nil {
			return err
		}
		s.smu.Lock()
		pt.m = m
		s.smu.Unlock()
	}
	return nil
}

// trimWalk deletes pt's events from from through through, and the offset
// index runs at or below through, from a snapshot, without mu. It returns
// the number and size of the events deleted and whether it got through
// (false if ctx ended first).
func (s *Store) trimWalk(ctx context.Context, pt *part, from, through hlc.Timestamp) (n, size int64, complete bool, err error) {
	var keys []byte
	complete = true
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()

	// Events: a key-only walk up to through, from where the last complete
	// trim ended (nothing is stored below trimFrom) or the front.
	ev := newIDEvents(txn, pt.id, false, from, through)
	if from.IsZero() {
		ev.seekFirst()
	} else {
		ev.seekKey(eventSeekAt(pt.id, from))
	}
	for ; ev.valid; ev.next() {
		item := ev.item()
		if through.Less(eventHLC(item.Key())) {
			break
		}
		if n&1023 == 1023 && ctx.Err() != nil {
			complete = false
			break
		}
		// Badger keeps the key until Flush: keys only ever grows, and a
		// reallocation leaves earlier slices intact.
		start := len(keys)
		keys = append(keys, item.Key()...)
		if err := wb.Delete(keys[start:len(keys):len(keys)]); err != nil {
			ev.close()
			return 0, 0, false, writeFailure{err}
		}
		n++
		size += item.KeySize() + item.ValueSize()
	}
	ev.close()

	// Offset index: drop runs entirely at or below through from the front,
	// up to the first run that reaches above it. Runs behind it linger
	// (LowOffset skips them after reading 12 bytes) until a later Trim
	// reaches them.
	if complete {
		prefix := idPrefix(prefixOffset, pt.id)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			var maxTS hlc.Timestamp
			if err := item.Value(func(v []byte) error {
				var err error
				maxTS, err = runMax(v)
				return err
			}); err != nil {
				it.Close()
				return 0, 0, false, err
			}
			if through.Less(maxTS) {
				break
			}
			if err := wb.Delete(item.KeyCopy(nil)); err != nil {
				it.Close()
				return 0, 0, false, writeFailure{err}
			}
		}
		it.Close()
	}
	if err := wb.Flush(); err != nil {
		return 0, 0, false, writeFailure{err}
	}
	return n, size, complete, nil
}

// Reset drops everything buffered for p and starts it fresh with Base =
// base (and Resolved = base) and Consumed = next. p need not be known. The
// switch is atomic: p moves to a new, empty key range in one transaction and
// the old range is deleted in the background (or on the next Open).
func (s *Store) Reset(p Partition, base hlc.Timestamp, next int64) error {
	return s.retire(p, &meta{base: base, resolved: base, consumed: next})
}

// Drop forgets p entirely (its partition was revoked or lost). Other
// partitions are untouched. Dropping an unknown partition does nothing.
func (s *Store) Drop(p Partition) error {
	return s.retire(p, nil)
}

// retire moves p's current id to the garbage and, if m is set, gives p a
// new id with metadata m.
func (s *Store) retire(p Partition, m *meta) error {
	s.tmu.Lock() // not under a trim's walk of the id it retires
	defer s.tmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	what := "drop"
	if m != nil {
		what = "reset"
	}
	if err := s.checkWritable(); err != nil {
		return err
	}
	old := s.lookup(p)
	if old == nil && m == nil {
		return nil
	}
	next := s.nextID
	var fresh *part
	err := s.db.Update(func(txn *badger.Txn) error {
		if old != nil {
			if err := txn.Set(idPrefix(prefixGarb, old.id), nil); err != nil {
				return err
			}
		}
		if m == nil {
			return txn.Delete(partKey(p))
		}
		fresh = &part{id: next, m: *m, consumed: m.consumed, resolved: m.resolved, diskClean: true}
		next++
		if err := txn.Set(keyNextID, binary.BigEndian.AppendUint32(nil, next)); err != nil {
			return err
		}
		if err := txn.Set(partKey(p), binary.BigEndian.AppendUint32(nil, fresh.id)); err != nil {
			return err
		}
		return txn.Set(idPrefix(prefixMeta, fresh.id), m.encode())
	})
	if err != nil {
		return fmt.Errorf("buffer: %s %s[%d]: %w", what, p.Topic, p.Partition, err)
	}
	s.nextID = next
	s.smu.Lock()
	if old != nil {
		s.dropMem(old)
		s.events.Add(-old.m.events)
		s.bytes.Add(-old.m.bytes)
		s.garbage = append(s.garbage, old.id)
	}
	if fresh != nil {
		s.parts[p] = fresh
	} else {
		delete(s.parts, p)
	}
	s.smu.Unlock()
	if old != nil {
		s.kickBackground()
	}
	return nil
}

// publishMeta persists pt's metadata m and then makes it pt's, moving the
// store's counters by the difference. Callers hold mu.
func (s *Store) publishMeta(pt *part, m meta) error {
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(idPrefix(prefixMeta, pt.id), m.encode())
	}); err != nil {
		return writeFailure{err}
	}
	s.smu.Lock()
	s.events.Add(m.events - pt.m.events)
	s.bytes.Add(m.bytes - pt.m.bytes)
	pt.m = m
	s.smu.Unlock()
	return nil
}
