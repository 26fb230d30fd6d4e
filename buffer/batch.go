package buffer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/highwater-dev/highwater/hlc"
)

// Batch collects events and partition metadata for one Write. It is not safe
// for concurrent use and is written once; Reset readies it for another.
type Batch struct {
	s *Store
	// arena holds, per event, its store key ('e' | id | HLC | table | 0 |
	// key, the id patched in by Write) followed by its store value (offset |
	// payload), so Write hands slices of it to Badger without copying.
	arena []byte
	ents  []bent
	parts []bpart
	index map[Partition]int
	err   error
	// dead are the dead letters (deadletter.go).
	dead []bdead
}

// bent locates one event in the arena.
type bent struct {
	part       int32 // index into Batch.parts
	k0, k1, v1 int   // key is arena[k0:k1], value arena[k1:v1]
	ts         hlc.Timestamp
	off        int64
}

type bpart struct {
	p           Partition
	resolved    hlc.Timestamp
	hasResolved bool
	consumed    int64
	hasConsumed bool
}

// NewBatch returns an empty batch for s.
func (s *Store) NewBatch() *Batch {
	return &Batch{s: s, index: make(map[Partition]int)}
}

// batchKeep is the most arena a Reset keeps: one fetch's worth (the
// processor fetches up to 1 MiB a partition), not the rare huge one.
const batchKeep = 16 << 20

// Reset empties b for another Write, keeping its memory, so that a
// consumer that writes one batch per fetch does not grow a new one each
// time. Call it only once Write has returned (or when b was never
// written): until then Badger holds slices of b.
func (b *Batch) Reset() {
	if cap(b.arena) > batchKeep {
		b.arena, b.ents = nil, nil
	}
	b.arena, b.ents = b.arena[:0], b.ents[:0]
	b.parts = b.parts[:0]
	clear(b.index)
	b.err, b.dead = nil, nil
}

func (b *Batch) part(p Partition) int32 {
	if i, ok := b.index[p]; ok {
		return int32(i)
	}
	b.parts = append(b.parts, bpart{p: p})
	b.index[p] = len(b.parts) - 1
	return int32(len(b.parts) - 1)
}

// Add adds ev to p's events. It copies ev's slices. An event the store
// cannot hold (Store.CheckEvent: a table name with a NUL byte, which would
// make keys ambiguous, or a key or value above Badger's limits) fails the
// Write; callers check events first.
func (b *Batch) Add(p Partition, ev Event) {
	if err := b.s.CheckEvent(ev); err != nil {
		if b.err == nil {
			b.err = fmt.Errorf("buffer: %s[%d]@%d: %w", p.Topic, p.Partition, ev.Offset, err)
		}
		return
	}
	e := bent{part: b.part(p), ts: ev.Updated, off: ev.Offset, k0: len(b.arena)}
	b.arena = appendEventKey(b.arena, 0, ev.Updated, ev.Table, ev.Key)
	e.k1 = len(b.arena)
	b.arena = encodeOffset(b.arena, ev.Offset)
	b.arena = append(b.arena, ev.Value...)
	e.v1 = len(b.arena)
	b.ents = append(b.ents, e)
}

// SetResolved records ts as the latest resolved timestamp seen on p. The
// store keeps the largest resolved timestamp ever written for p: a resolved
// timestamp is a guarantee that does not expire.
func (b *Batch) SetResolved(p Partition, ts hlc.Timestamp) {
	bp := &b.parts[b.part(p)]
	if !bp.hasResolved || bp.resolved.Less(ts) {
		bp.resolved = ts
	}
	bp.hasResolved = true
}

// SetConsumed records next as the next offset to fetch on p (the last call
// wins).
func (b *Batch) SetConsumed(p Partition, next int64) {
	bp := &b.parts[b.part(p)]
	bp.consumed, bp.hasConsumed = next, true
}

// Len returns the number of events added (before duplicates collapse).
func (b *Batch) Len() int { return len(b.ents) }

// Write stores b durably against a process crash: once it returns, a kill
// -9 loses none of it. Events are written first and p's metadata (Resolved,
// Consumed) after them, so after a crash the metadata never claims more than
// the events hold.
//
// Events identical in (Table, Key, Updated) to one already buffered on the
// same partition collapse into one, keeping the smallest offset. ctx is
// checked before writing; a Write in progress completes.
//
// The steps: register unknown partitions (ensure), sort the events
// (Batch.order), write them without duplicates (events), their offset
// index (offsetIndex) and the dead letters in one WriteBatch, flush it;
// then the partitions' metadata (meta), then the in-memory counters
// (publish).
func (s *Store) Write(ctx context.Context, b *Batch) error {
	if b.err != nil {
		return b.err
	}
	if b.s != s {
		return errors.New("buffer: batch belongs to another store")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("buffer: write: %w", err)
	}
	if len(b.parts) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(); err != nil {
		return err
	}
	pts, err := s.ensure(b.parts)
	if err != nil {
		return fmt.Errorf("buffer: write: %w", err)
	}
	b.order(pts)
	if s.memBudget > 0 && !s.direct {
		return s.writeMem(b, pts)
	}
	w := s.newBatchWrite(b, pts)
	defer w.close()
	if err := w.events(); err != nil {
		return err
	}
	if err := w.offsetIndex(); err != nil {
		return err
	}
	if err := b.writeDeadLetters(w.wb, pts); err != nil {
		return w.fail(err)
	}
	if err := w.wb.Flush(); err != nil {
		return w.fail(err)
	}
	// The events are committed; now the metadata that may refer to them.
	metas, err := w.meta()
	if err != nil {
		return w.fail(err)
	}
	w.publish(metas)
	return nil
}

// order patches the partitions' store ids into the events' keys and sorts
// the events by partition, then key, then offset: sorting groups
// duplicates, and the memory front takes each partition's events as one
// sorted run.
func (b *Batch) order(pts []*part) {
	for i := range b.ents {
		e := &b.ents[i]
		binary.BigEndian.PutUint32(b.arena[e.k0+1+epochSize:], pts[e.part].id)
	}
	slices.SortFunc(b.ents, func(x, y bent) int {
		if x.part != y.part {
			return int(x.part - y.part)
		}
		if c := bytes.Compare(b.arena[x.k0:x.k1], b.arena[y.k0:y.k1]); c != 0 {
			return c
		}
		return int(min(max(x.off-y.off, -1), 1))
	})
}

// batchWrite is one Store.Write in progress, from its first event to the
// in-memory counters. Its per-partition slices are indexed like b.parts.
type batchWrite struct {
	s   *Store
	b   *Batch
	pts []*part
	// check reads the store for duplicates; wb writes the events, the
	// offset index and the dead letters.
	check *badger.Txn
	wb    *badger.WriteBatch
	// deltaN and deltaB are the events and bytes each partition gains,
	// maxTS its newest event's HLC.
	deltaN, deltaB []int64
	maxTS          []hlc.Timestamp
	// offs are each partition's offset index entries, written as runs
	// after the events.
	offs [][]offHLC
	// set is whether an event went to wb.
	set bool
}

func (s *Store) newBatchWrite(b *Batch, pts []*part) *batchWrite {
	return &batchWrite{
		s: s, b: b, pts: pts,
		deltaN: make([]int64, len(b.parts)),
		deltaB: make([]int64, len(b.parts)),
		maxTS:  make([]hlc.Timestamp, len(b.parts)),
		offs:   make([][]offHLC, len(b.parts)),
		check:  s.db.NewTransaction(false),
		wb:     s.db.NewWriteBatch(),
	}
}

func (w *batchWrite) close() {
	w.wb.Cancel()
	w.check.Discard()
}

// fail is a failure after the first wb.Set. From there WriteBatch
// commits in chunks as it fills, so a failure may leave events the
// counters do not know of: the store must be reopened (and recounts).
func (w *batchWrite) fail(err error) error {
	w.s.failed = err
	return fmt.Errorf("buffer: write: %w", err)
}

// abort is a failure that wrote nothing yet, unless an event went to wb.
func (w *batchWrite) abort(err error) error {
	if w.set {
		return w.fail(err)
	}
	return fmt.Errorf("buffer: write: %w", err)
}

// events writes the batch's events to wb, except duplicates: of events
// equal in key, within the batch or with one already stored, the one with
// the smallest offset stays.
func (w *batchWrite) events() error {
	b := w.b
	var prev []byte
	for i := range b.ents {
		e := &b.ents[i]
		key, val := b.arena[e.k0:e.k1], b.arena[e.k1:e.v1]
		if bytes.Equal(key, prev) {
			continue // a duplicate within the batch with a larger offset
		}
		prev = key
		if err := w.event(e, key, val, true); err != nil {
			return err
		}
	}
	return nil
}

// onDisk reports whether Badger holds an event with e's key.
func (w *batchWrite) onDisk(key []byte) (bool, error) {
	_, err := w.check.Get(key)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, w.abort(fmt.Errorf("duplicate check: %w", err))
	}
	return true, nil
}

// event writes one event to wb, unless (with check) Badger holds a copy
// with an offset at or below e's; a copy with a larger offset is replaced.
func (w *batchWrite) event(e *bent, key, val []byte, check bool) error {
	pt := w.pts[e.part]
	size := int64(len(key) + len(val))
	if check && !pt.maxHLC.Less(e.ts) {
		// At or below the largest HLC in the store: maybe a duplicate.
		item, err := w.check.Get(key)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return w.abort(fmt.Errorf("duplicate check: %w", err))
		default:
			var old int64
			if err := item.Value(func(v []byte) error {
				if len(v) < offsetSize {
					return fmt.Errorf("malformed event value of key %s", HexPrefix(key))
				}
				old = decodeOffset(v)
				return nil
			}); err != nil {
				return w.abort(fmt.Errorf("duplicate check: %w", err))
			}
			if old <= e.off {
				return nil // keep the stored, earlier copy
			}
			// Replace it with the earlier copy; it is not a new event.
			w.deltaN[e.part]--
			w.deltaB[e.part] -= item.KeySize() + item.ValueSize()
		}
	}
	w.set = true
	if err := w.wb.Set(key, val); err != nil {
		return w.fail(err)
	}
	pt.diskClean = false
	if !pt.trimFrom.IsZero() && e.ts.Less(pt.trimFrom) {
		pt.trimFrom = e.ts // the next trim must see it
	}
	if pt.trimming && (!pt.wroteLow || e.ts.Less(pt.lowWrite)) {
		pt.wroteLow, pt.lowWrite = true, e.ts
	}
	w.offs[e.part] = append(w.offs[e.part], offHLC{e.off, e.ts})
	w.deltaN[e.part]++
	w.deltaB[e.part] += size
	if w.maxTS[e.part].Less(e.ts) {
		w.maxTS[e.part] = e.ts
	}
	return nil
}

// offsetIndex writes the offset index of the events written: one index
// entry per run of up to runEntries events, not per event: Badger's cost
// is per entry, and this halves it.
func (w *batchWrite) offsetIndex() error {
	s := w.s
	var runs []byte
	for i, o := range w.offs {
		slices.SortFunc(o, func(x, y offHLC) int { return int(min(max(x.off-y.off, -1), 1)) })
		for len(o) > 0 {
			run := o[:min(len(o), runEntries)]
			o = o[len(run):]
			s.runSeq++
			start := len(runs)
			runs = appendRunKey(runs, w.pts[i].id, run[0].off, s.runSeq)
			mid := len(runs)
			runs = appendRun(runs, run)
			// Badger keeps the slices until Flush: runs only grows, and
			// a reallocation leaves earlier slices intact.
			if err := w.wb.Set(runs[start:mid:mid], runs[mid:len(runs):len(runs)]); err != nil {
				return w.fail(err)
			}
		}
	}
	return nil
}

// meta writes every partition's metadata (counts, Resolved, Consumed), once
// the events it may refer to are committed, and returns it.
func (w *batchWrite) meta() ([]meta, error) {
	metas := make([]meta, len(w.b.parts))
	for i, bp := range w.b.parts {
		m := w.pts[i].m
		m.events += w.deltaN[i]
		m.bytes += w.deltaB[i]
		if bp.hasResolved && m.resolved.Less(bp.resolved) {
			m.resolved = bp.resolved
		}
		if bp.hasConsumed {
			m.consumed = bp.consumed
		}
		metas[i] = m
	}
	err := w.s.db.Update(func(txn *badger.Txn) error {
		for i, m := range metas {
			if err := txn.Set(idPrefix(prefixMeta, w.pts[i].id), m.encode()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return metas, nil
}

// publish makes the written batch the partitions' in-memory state and the
// store's counters.
func (w *batchWrite) publish(metas []meta) {
	s := w.s
	s.smu.Lock()
	for i, pt := range w.pts {
		pt.m = metas[i]
		pt.consumed, pt.resolved = pt.m.consumed, pt.m.resolved
		if pt.maxHLC.Less(w.maxTS[i]) {
			pt.maxHLC = w.maxTS[i]
		}
		s.events.Add(w.deltaN[i])
		s.bytes.Add(w.deltaB[i])
	}
	s.smu.Unlock()
}

// ensure returns the state of every partition of bps, creating the unknown
// ones. New ids are persisted before any event uses them, so that an id is
// never handed out twice, even across a crash. Callers hold mu.
func (s *Store) ensure(bps []bpart) ([]*part, error) {
	pts := make([]*part, len(bps))
	var missing []int
	for i, bp := range bps {
		if pts[i] = s.lookup(bp.p); pts[i] == nil {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return pts, nil
	}
	next := s.nextID
	err := s.db.Update(func(txn *badger.Txn) error {
		for _, i := range missing {
			id := next
			next++
			pts[i] = &part{id: id, diskClean: true}
			if err := txn.Set(partKey(bps[i].p), binary.BigEndian.AppendUint32(nil, id)); err != nil {
				return err
			}
			if err := txn.Set(idPrefix(prefixMeta, id), meta{}.encode()); err != nil {
				return err
			}
		}
		return txn.Set(keyNextID, binary.BigEndian.AppendUint32(nil, next))
	})
	if err != nil {
		return nil, fmt.Errorf("register partitions: %w", err)
	}
	s.nextID = next
	s.smu.Lock()
	for _, i := range missing {
		s.parts[bps[i].p] = pts[i]
	}
	s.smu.Unlock()
	return pts, nil
}
