package buffer

import (
	"bytes"
	"slices"
	"unsafe"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
)

// The memory front (Options.MemoryBudget > 0).
//
// Most events live for one window: they are written, scanned once when the
// resolved frontier passes them, and trimmed. Going through Badger costs
// each of them a memtable insert and a WAL write, a tombstone with its own
// insert and WAL write at the trim, the trim's key walk, and the memtable
// flushes and compactions of both. With a memory front a Write keeps each
// partition's new events in memory, as one sorted run per Write, Scan
// merges those runs with Badger, and Trim drops the trimmed prefix of every
// run without writing anything. Only when the runs exceed the budget are
// the oldest ones spilled to Badger, in the order they were written.
//
// Crash safety does not need the memory events on disk: Kafka keeps them.
// A partition's persisted Consumed (and Resolved) only ever covers what is
// durable: it moves when the runs in front of it leave memory, by a spill
// (their events are written first, then the metadata that covers them) or
// by a trim that leaves a run without events. After a kill -9 the
// partition resumes from that Consumed and re-reads the rest from Kafka.
// The in-memory view (State, LowOffset) covers everything written.

// memRun is one Write's events of one partition held in memory, sorted by
// event key, so a trim removes a prefix of it.
type memRun struct {
	// seq orders runs across partitions by their Write: spills take the
	// oldest first.
	seq uint64
	// arena holds the events' store keys and values (as in Batch).
	arena []byte
	ents  []ment
	// dead marks events replaced by an earlier copy (a smaller offset)
	// that arrived later; nil while there is none. Guarded by mu and smu;
	// Scan does not read it (it skips the later of two equal keys).
	dead []bool
	// start is the first event not trimmed; live counts the events from
	// start on that are not dead, size their key and value bytes.
	start int
	live  int
	size  int64
	// foot is the memory the run holds until it leaves memory.
	foot int64
	// consumed and resolved are the partition's Consumed and Resolved
	// after the Write that made the run: what its persisted metadata may
	// say once this run and every run before it are durable or trimmed.
	consumed int64
	resolved hlc.Timestamp
}

// ment is one event of a run.
type ment struct {
	k0, k1, v1 int32 // key arena[k0:k1], value arena[k1:v1]
	ts         hlc.Timestamp
	off        int64
}

// mentSize is what one entry costs in memory, for the budget.
const mentSize = int64(unsafe.Sizeof(ment{}))

func (r *memRun) key(i int) []byte   { e := &r.ents[i]; return r.arena[e.k0:e.k1] }
func (r *memRun) value(i int) []byte { e := &r.ents[i]; return r.arena[e.k1:e.v1] }
func (r *memRun) isDead(i int) bool  { return r.dead != nil && r.dead[i] }

// find returns the index of key among the run's untrimmed events, or -1.
func (r *memRun) find(key []byte) int {
	i, ok := slices.BinarySearchFunc(r.ents[r.start:], key, func(e ment, k []byte) int {
		return bytes.Compare(r.arena[e.k0:e.k1], k)
	})
	if !ok {
		return -1
	}
	return r.start + i
}

// memFind returns the run and index of pt's live event with key (of HLC
// ts), if any. Callers hold mu.
func (pt *part) memFind(key []byte, ts hlc.Timestamp) (*memRun, int) {
	for _, r := range pt.mem {
		// A run is sorted by HLC first: most runs of a roughly
		// HLC-ordered stream are ruled out without a search.
		if r.start == len(r.ents) || ts.Less(r.ents[r.start].ts) || r.ents[len(r.ents)-1].ts.Less(ts) {
			continue
		}
		if i := r.find(key); i >= 0 && !r.isDead(i) {
			return r, i
		}
	}
	return nil, -1
}

// memRef names one event of a run.
type memRef struct {
	r *memRun
	i int
}

// writeMem is Write with the memory front: events whose key Badger already
// holds are handled there (the duplicate rule needs the stored copy), the
// others go into one new run per partition; dead letters go to Badger.
// Callers hold mu.
func (s *Store) writeMem(b *Batch, pts []*part) error {
	w := s.newBatchWrite(b, pts)
	defer w.close()
	// toMem are the indexes of b.ents that go into runs, grouped by
	// partition and each partition's in key order (Batch.order).
	var toMem []int
	var replaced []memRef
	var prev []byte
	for i := range b.ents {
		e := &b.ents[i]
		key, val := b.arena[e.k0:e.k1], b.arena[e.k1:e.v1]
		if bytes.Equal(key, prev) {
			continue // a duplicate within the batch with a larger offset
		}
		prev = key
		pt := pts[e.part]
		if !pt.memMax.Less(e.ts) {
			if r, j := pt.memFind(key, e.ts); r != nil {
				if r.ents[j].off <= e.off {
					continue // keep the earlier copy
				}
				replaced = append(replaced, memRef{r, j})
				toMem = append(toMem, i)
				continue
			}
		}
		if !pt.maxHLC.Less(e.ts) {
			stored, err := w.onDisk(key)
			if err != nil {
				return err
			}
			if stored {
				// Badger holds a copy: the duplicate rule applies there.
				if err := w.event(e, key, val, true); err != nil {
					return err
				}
				continue
			}
		}
		toMem = append(toMem, i)
	}
	if err := w.offsetIndex(); err != nil {
		return err
	}
	if err := b.writeDeadLetters(w.wb, pts); err != nil {
		return w.fail(err)
	}
	if w.set || len(b.dead) > 0 {
		w.set = true
		if err := w.wb.Flush(); err != nil {
			return w.fail(err)
		}
	}

	// One run per partition, in its own arena: a run outlives the batch
	// and other partitions' runs.
	runs := make([]*memRun, len(b.parts))
	for lo := 0; lo < len(toMem); {
		part := b.ents[toMem[lo]].part
		hi, size := lo, 0
		for ; hi < len(toMem) && b.ents[toMem[hi]].part == part; hi++ {
			e := &b.ents[toMem[hi]]
			size += e.v1 - e.k0
		}
		r := &memRun{arena: make([]byte, 0, size), ents: make([]ment, 0, hi-lo)}
		for _, i := range toMem[lo:hi] {
			e := &b.ents[i]
			k0 := len(r.arena)
			r.arena = append(r.arena, b.arena[e.k0:e.v1]...)
			r.ents = append(r.ents, ment{k0: int32(k0), k1: int32(k0 + e.k1 - e.k0), v1: int32(len(r.arena)), ts: e.ts, off: e.off})
			r.size += int64(e.v1 - e.k0)
		}
		r.live = len(r.ents)
		r.foot = int64(cap(r.arena)) + mentSize*int64(cap(r.ents))
		runs[part] = r
		lo = hi
	}

	// Metadata: a partition without runs in memory (before and after this
	// Write) persists its Consumed and Resolved now, as without the memory
	// front; one with runs queues them behind its runs. Events that went
	// to Badger change the persisted counters either way.
	metas := make([]meta, len(b.parts))
	persist := make([]bool, len(b.parts))
	for i, bp := range b.parts {
		pt := pts[i]
		m := pt.m
		m.events += w.deltaN[i]
		m.bytes += w.deltaB[i]
		persist[i] = w.deltaN[i] != 0 || w.deltaB[i] != 0
		consumed, resolved := pt.consumed, pt.resolved
		if bp.hasResolved && resolved.Less(bp.resolved) {
			resolved = bp.resolved
		}
		if bp.hasConsumed {
			consumed = bp.consumed
		}
		if runs[i] == nil && len(pt.mem) == 0 {
			if m.consumed != consumed || m.resolved != resolved {
				m.consumed, m.resolved, persist[i] = consumed, resolved, true
			}
		} else {
			if runs[i] == nil {
				runs[i] = &memRun{}
			}
			s.memSeq++
			runs[i].seq, runs[i].consumed, runs[i].resolved = s.memSeq, consumed, resolved
		}
		metas[i] = m
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		for i, m := range metas {
			if persist[i] {
				if err := txn.Set(idPrefix(prefixMeta, pts[i].id), m.encode()); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return w.abort(err)
	}

	s.smu.Lock()
	for _, ref := range replaced {
		r := ref.r
		if r.dead == nil {
			r.dead = make([]bool, len(r.ents))
		}
		r.dead[ref.i] = true
		r.live--
		sz := int64(r.ents[ref.i].v1 - r.ents[ref.i].k0)
		r.size -= sz
		pt := s.partOfRun(pts, r)
		pt.memEvents--
		pt.memBytes -= sz
		s.events.Add(-1)
		s.bytes.Add(-sz)
	}
	for i, bp := range b.parts {
		pt := pts[i]
		pt.m = metas[i]
		if pt.maxHLC.Less(w.maxTS[i]) {
			pt.maxHLC = w.maxTS[i]
		}
		if bp.hasResolved && pt.resolved.Less(bp.resolved) {
			pt.resolved = bp.resolved
		}
		if bp.hasConsumed {
			pt.consumed = bp.consumed
		}
		s.events.Add(w.deltaN[i])
		s.bytes.Add(w.deltaB[i])
		if r := runs[i]; r != nil {
			pt.mem = append(pt.mem, r)
			pt.memEvents += int64(r.live)
			pt.memBytes += r.size
			s.memFoot += r.foot
			s.events.Add(int64(r.live))
			s.bytes.Add(r.size)
			for _, e := range r.ents {
				if pt.memMax.Less(e.ts) {
					pt.memMax = e.ts
				}
			}
		}
	}
	s.smu.Unlock()
	if s.memFoot > s.memBudget {
		// Nothing freed the memory in time (no window was applied, or
		// the consumer did not wait for one: MemoryFull): spill it all
		// and write straight to Badger until the next Trim. Holding the
		// front full meanwhile would only copy every event twice and keep
		// the budget's worth of live heap beside Badger's (2M unresolved
		// events, spilling the older half each time: VmHWM 556 MiB
		// against 483 MiB this way).
		if err := s.spill(-1); err != nil {
			return err
		}
		s.direct = true
	}
	return nil
}

// hasMemRuns reports whether any partition has runs in memory. Callers
// hold mu.
func (s *Store) hasMemRuns() bool {
	s.smu.RLock()
	defer s.smu.RUnlock()
	for _, pt := range s.parts {
		if len(pt.mem) > 0 {
			return true
		}
	}
	return false
}

// partOfRun returns the partition among pts whose memory holds r.
func (s *Store) partOfRun(pts []*part, r *memRun) *part {
	for _, pt := range pts {
		for _, x := range pt.mem {
			if x == r {
				return pt
			}
		}
	}
	panic("buffer: replaced event of a run no partition holds")
}

// spill writes the oldest runs, across partitions, to Badger until the
// runs left in memory hold at most target bytes: their events first, then
// each partition's metadata with the Consumed and Resolved of its last
// spilled run. Callers hold mu.
func (s *Store) spill(target int64) error {
	var pts []*part
	s.smu.RLock()
	for _, pt := range s.parts {
		if len(pt.mem) > 0 {
			pts = append(pts, pt)
		}
	}
	s.smu.RUnlock()
	// take[i] is how many runs of pts[i] go, oldest Writes first.
	take := make([]int, len(pts))
	foot := s.memFoot
	for foot > target {
		best := -1
		for i, pt := range pts {
			if take[i] < len(pt.mem) && (best < 0 || pt.mem[take[i]].seq < pts[best].mem[take[best]].seq) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		foot -= pts[best].mem[take[best]].foot
		take[best]++
	}
	b := &Batch{s: s, parts: make([]bpart, len(pts))}
	w := s.newBatchWrite(b, pts)
	defer w.close()
	var n int64
	for i, pt := range pts {
		for _, r := range pt.mem[:take[i]] {
			for j := r.start; j < len(r.ents); j++ {
				if r.isDead(j) {
					continue
				}
				e := &bent{part: int32(i), ts: r.ents[j].ts, off: r.ents[j].off}
				// Spilled events are unique: Write checked them against
				// memory and Badger.
				if err := w.event(e, r.key(j), r.value(j), false); err != nil {
					return err
				}
				n++
			}
		}
	}
	if err := w.offsetIndex(); err != nil {
		return err
	}
	if w.set {
		if err := w.wb.Flush(); err != nil {
			return w.fail(err)
		}
	}
	metas := make([]meta, len(pts))
	for i, pt := range pts {
		m := pt.m
		m.events += w.deltaN[i]
		m.bytes += w.deltaB[i]
		if take[i] > 0 {
			last := pt.mem[take[i]-1]
			m.consumed = last.consumed
			if m.resolved.Less(last.resolved) {
				m.resolved = last.resolved
			}
		}
		metas[i] = m
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		for i, m := range metas {
			if take[i] > 0 {
				if err := txn.Set(idPrefix(prefixMeta, pts[i].id), m.encode()); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return w.fail(err)
	}
	// Only now do the runs leave memory: a Scan or LowOffset that took its
	// snapshot before sees them in memory (and perhaps in Badger too: Scan
	// skips the second copy), one after in Badger.
	s.smu.Lock()
	for i, pt := range pts {
		pt.m = metas[i]
		if pt.maxHLC.Less(w.maxTS[i]) {
			pt.maxHLC = w.maxTS[i]
		}
		for _, r := range pt.mem[:take[i]] {
			pt.memEvents -= int64(r.live)
			pt.memBytes -= r.size
			s.memFoot -= r.foot
		}
		pt.mem = slices.Delete(pt.mem, 0, take[i])
		if len(pt.mem) == 0 {
			pt.memMax = hlc.Timestamp{}
		}
	}
	s.spilled += n
	s.smu.Unlock()
	s.log.Debug("buffer: memory front over its budget: spilled the oldest runs to Badger",
		zap.Int64("events", n), zap.Int64("budget", s.memBudget), zap.Int64("left_bytes", s.memFoot))
	return nil
}

// trimMem drops pt's memory events at or below through and the runs left
// without events at the front of its queue, and returns pt's metadata with
// the Consumed and Resolved those runs make durable (changed says whether
// they moved) and the events and bytes dropped. Callers hold mu.
func (s *Store) trimMem(pt *part, through hlc.Timestamp) (m meta, changed bool) {
	m = pt.m
	if len(pt.mem) == 0 {
		return m, false
	}
	s.smu.Lock()
	defer s.smu.Unlock()
	var n, size int64
	for _, r := range pt.mem {
		for r.start < len(r.ents) && !through.Less(r.ents[r.start].ts) {
			if !r.isDead(r.start) {
				e := &r.ents[r.start]
				r.live--
				r.size -= int64(e.v1 - e.k0)
				n++
				size += int64(e.v1 - e.k0)
			}
			r.start++
		}
	}
	pop := 0
	for pop < len(pt.mem) && pt.mem[pop].live == 0 {
		r := pt.mem[pop]
		m.consumed = r.consumed
		if m.resolved.Less(r.resolved) {
			m.resolved = r.resolved
		}
		s.memFoot -= r.foot
		pop++
	}
	pt.mem = slices.Delete(pt.mem, 0, pop)
	if len(pt.mem) == 0 {
		pt.memMax = hlc.Timestamp{}
	}
	pt.memEvents -= n
	pt.memBytes -= size
	s.events.Add(-n)
	s.bytes.Add(-size)
	return m, pop > 0
}

// dropMem forgets pt's memory (Reset, Drop). Callers hold mu and smu.
func (s *Store) dropMem(pt *part) {
	for _, r := range pt.mem {
		s.memFoot -= r.foot
	}
	s.events.Add(-pt.memEvents)
	s.bytes.Add(-pt.memBytes)
	pt.mem, pt.memEvents, pt.memBytes, pt.memMax = nil, 0, 0, hlc.Timestamp{}
}

// memLow returns the smallest offset of pt's memory events with an HLC
// after through, and whether there is one. Callers hold smu (read).
func (pt *part) memLow(through hlc.Timestamp) (int64, bool) {
	low, ok := int64(0), false
	for _, r := range pt.mem {
		i, _ := slices.BinarySearchFunc(r.ents[r.start:], through, func(e ment, t hlc.Timestamp) int {
			if t.Less(e.ts) {
				return 1
			}
			return -1
		})
		for j := r.start + i; j < len(r.ents); j++ {
			if r.isDead(j) {
				continue
			}
			if off := r.ents[j].off; !ok || off < low {
				low, ok = off, true
			}
		}
	}
	return low, ok
}

// memSnap is the part of a run a Scan reads: its events [start, end) as
// they were when the Scan began.
type memSnap struct {
	r          *memRun
	start, end int
}

// memSnapshot returns pt's runs for a Scan. Callers hold smu (read).
func (pt *part) memSnapshot() []memSnap {
	if len(pt.mem) == 0 {
		return nil
	}
	out := make([]memSnap, 0, len(pt.mem))
	for _, r := range pt.mem {
		if r.start < len(r.ents) {
			out = append(out, memSnap{r, r.start, len(r.ents)})
		}
	}
	return out
}

// MemoryFull reports whether the memory front holds three quarters of
// Options.MemoryBudget or more: the next Writes may spill to Badger. A
// consumer that is applying a window (whose Trim frees memory) does better
// to wait for it than to spill events that the next windows apply soon.
// Always false without a memory front.
func (s *Store) MemoryFull() bool {
	if s.memBudget <= 0 {
		return false
	}
	s.smu.RLock()
	defer s.smu.RUnlock()
	return s.memFoot >= s.memBudget-s.memBudget/4
}

// MemoryStats are the memory front's figures.
type MemoryStats struct {
	// Events and Bytes are the events held in memory and their key and
	// value bytes (part of Usage).
	Events, Bytes int64
	// Footprint is the memory the runs hold, against Options.MemoryBudget.
	Footprint int64
	// Spilled counts the events spilled to Badger since Open.
	Spilled int64
}

// Memory reports the memory front's figures.
func (s *Store) Memory() MemoryStats {
	s.smu.RLock()
	defer s.smu.RUnlock()
	st := MemoryStats{Footprint: s.memFoot, Spilled: s.spilled}
	for _, pt := range s.parts {
		st.Events += pt.memEvents
		st.Bytes += pt.memBytes
	}
	return st
}
