package processor

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"sort"
	"sync/atomic"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// writeWindow streams the window from the buffer into tx in one forward
// pass. With a changelog every version is decoded and written. Without one
// only each key's newest version matters: the pass keeps the latest version
// of every key (newestVersions) and decodes only those at the end, so older
// versions are never decoded. The pass reads forward: Badger's reverse
// iteration would walk every tombstone the earlier windows' trims left below
// the window.
// Poison events are handled by Config.OnError (poisonApply) into poison.
//
// The pass runs beside a write stage (pipeline.go) that makes the Tx.Write
// calls, so that decoding and the sink's staging use both cores.
func (p *Processor) writeWindow(ctx context.Context, tx sinks.Tx, parts []buffer.Partition, f hlc.Timestamp, poison *windowPoison) (int, error) {
	stage, sctx := startWriteStage(ctx, tx)
	rows, err := p.passWindow(sctx, stage, parts, f, poison)
	// The stage's failure is the cause of the pass's (it cancels the pass).
	if serr := stage.close(); serr != nil {
		err = serr
	}
	if err != nil {
		return 0, fmt.Errorf("write window through %s: %w", f, err)
	}
	return rows, nil
}

// passWindow is the window pass of writeWindow, handing its batches to
// stage.
func (p *Processor) passWindow(ctx context.Context, stage *writeStage, parts []buffer.Partition, f hlc.Timestamp, poison *windowPoison) (int, error) {
	w := &windowWriter{ctx: ctx, tx: stage.tx, stage: stage, batch: max(p.cfg.FlushBatch/pipelineSplit, 1),
		maxBytes: p.cfg.FlushBytes / pipelineSplit, pending: make(map[string]*pendingTable)}
	apply := func(bp buffer.Partition, ev buffer.Event) error {
		ev, hdrs, err := splitEvent(ev) // headers.go
		var row schemas.Row
		if err == nil {
			row, err = p.cfg.Decoder.DecodeRow(ctx, ev.Key, ev.Value)
		}
		if err == nil {
			row = p.headers.restore(row, hdrs)
			if err = p.checkRow(row); err != nil {
				id, _, _ := schemas.ParseFrame(ev.Value)
				err = &schemas.DecodeError{SchemaID: id, Err: err}
			}
		}
		if err != nil {
			return p.poisonApply(ctx, poison, bp, ev, locate(err, bp, ev.Offset))
		}
		return w.add(row, rowBytes(row, ev))
	}
	var err error
	if p.cfg.Changelog {
		err = p.cfg.Buffer.Scan(ctx, parts, f, buffer.ScanOptions{}, apply)
	} else {
		nv := p.versions.newestVersions()
		defer p.versions.note(nv)
		err = p.cfg.Buffer.Scan(ctx, parts, f, buffer.ScanOptions{}, func(bp buffer.Partition, ev buffer.Event) error {
			if nv.keep(bp, ev) {
				// Bounded memory: write what is kept so far. A key seen
				// again later is written again, newer; the writer keeps
				// the newest version (sinks.Tx.Write).
				return nv.drain(apply)
			}
			return nil
		})
		if err == nil {
			err = nv.drain(apply)
		}
	}
	if err == nil {
		err = w.flushAll()
	}
	return w.rows, err
}

// newestVersionsBytes bounds the memory newestVersions holds: with 100k
// keys of ~200 bytes a window needs ~20 MB; a window with more distinct
// keys is written in several rounds (older versions may then be written
// too, which the writer resolves).
const newestVersionsBytes = 32 << 20

// newestVersions keeps the newest version of each (table, key) of a window
// read in ascending (Updated, Table, Key) order: a later version of a key
// replaces the earlier one in place. Keys and values are copied into one
// arena, and the slots are found through an open-addressing table of slot
// numbers keyed by a hash of (table, key): a window costs no allocation
// per key, and a key one hash and one probe sequence (a Go map cost a
// string per key and a second hash for each new one).
type newestVersions struct {
	limit int // arena bytes at which keep asks for a drain
	seed  maphash.Seed
	index []int32 // slot number + 1 at hash & (len-1), 0 if free; len a power of two
	slots []versionSlot
	arena []byte
	ident []byte
	// peakKeys and peakBytes are the most slots and arena bytes held
	// before a drain (versionsHint).
	peakKeys, peakBytes int
}

type versionSlot struct {
	part    buffer.Partition
	table   string
	updated hlc.Timestamp
	offset  int64
	hash    uint64
	k0, k1  int // key: arena[k0:k1]
	v0, v1  int // value: arena[v0:v1]
	vcap    int // room for the value at v0 (a longer one is appended)
}

func newNewestVersions(limit int) *newestVersions {
	return newNewestVersionsSized(limit, 0, 0)
}

// newNewestVersionsSized returns a newestVersions with room for keys
// slots and bytes of arena.
func newNewestVersionsSized(limit, keys, bytes int) *newestVersions {
	n := 16
	for n < 2*keys {
		n <<= 1
	}
	return &newestVersions{limit: limit, seed: maphash.MakeSeed(), index: make([]int32, n),
		slots: make([]versionSlot, 0, keys), arena: make([]byte, 0, bytes)}
}

// versionsHint remembers how many keys and arena bytes the last window's
// newestVersions held, so that the next one starts at that size instead of
// growing its map, slots and arena by doubling (a third of the window
// pass's dedup time on a backlog). Nothing is kept between windows but
// the two numbers.
type versionsHint struct {
	keys, bytes atomic.Int64
}

// newestVersions returns a newestVersions presized for a window like the
// last one (up to the memory bound).
func (h *versionsHint) newestVersions() *newestVersions {
	keys, bytes := int(h.keys.Load()), min(int(h.bytes.Load()), newestVersionsBytes)
	// A little room: windows of a steady feed differ by a few percent.
	return newNewestVersionsSized(newestVersionsBytes, keys+keys/8, bytes+bytes/8)
}

// note records the most nv held (its arena is reused across drains).
func (h *versionsHint) note(nv *newestVersions) {
	h.keys.Store(int64(max(len(nv.slots), nv.peakKeys)))
	h.bytes.Store(int64(max(len(nv.arena), nv.peakBytes)))
}

// keep records ev as its key's newest version so far and reports whether
// the memory bound is reached.
func (nv *newestVersions) keep(bp buffer.Partition, ev buffer.Event) bool {
	nv.ident = append(append(append(nv.ident[:0], ev.Table...), 0), ev.Key...)
	hash := maphash.Bytes(nv.seed, nv.ident)
	mask := len(nv.index) - 1
	j := int(hash) & mask
	for ; nv.index[j] != 0; j = (j + 1) & mask {
		sl := &nv.slots[nv.index[j]-1]
		if sl.hash != hash || sl.table != ev.Table || !bytes.Equal(nv.arena[sl.k0:sl.k1], ev.Key) {
			continue
		}
		sl.part, sl.updated, sl.offset = bp, ev.Updated, ev.Offset
		if len(ev.Value) <= sl.vcap {
			sl.v1 = sl.v0 + copy(nv.arena[sl.v0:sl.v0+sl.vcap], ev.Value)
		} else {
			sl.v0 = len(nv.arena)
			nv.arena = append(nv.arena, ev.Value...)
			sl.v1, sl.vcap = len(nv.arena), len(ev.Value)
		}
		return len(nv.arena) >= nv.limit
	}
	sl := versionSlot{part: bp, table: ev.Table, updated: ev.Updated, offset: ev.Offset, hash: hash, k0: len(nv.arena)}
	nv.arena = append(nv.arena, ev.Key...)
	sl.k1, sl.v0 = len(nv.arena), len(nv.arena)
	nv.arena = append(nv.arena, ev.Value...)
	sl.v1, sl.vcap = len(nv.arena), len(ev.Value)
	nv.slots = append(nv.slots, sl)
	nv.index[j] = int32(len(nv.slots))
	if 2*len(nv.slots) > len(nv.index) {
		nv.grow()
	}
	return len(nv.arena) >= nv.limit
}

// grow doubles the index, keeping it at most half full.
func (nv *newestVersions) grow() {
	nv.index = make([]int32, 2*len(nv.index))
	mask := len(nv.index) - 1
	for i := range nv.slots {
		j := int(nv.slots[i].hash) & mask
		for nv.index[j] != 0 {
			j = (j + 1) & mask
		}
		nv.index[j] = int32(i + 1)
	}
}

// drain passes every kept version to fn and forgets them.
func (nv *newestVersions) drain(fn func(buffer.Partition, buffer.Event) error) error {
	for i := range nv.slots {
		sl := &nv.slots[i]
		ev := buffer.Event{Updated: sl.updated, Table: sl.table, Key: nv.arena[sl.k0:sl.k1:sl.k1],
			Offset: sl.offset, Value: nv.arena[sl.v0:sl.v1:sl.v1]}
		if err := fn(sl.part, ev); err != nil {
			return err
		}
	}
	nv.peakKeys, nv.peakBytes = max(nv.peakKeys, len(nv.slots)), max(nv.peakBytes, len(nv.arena))
	clear(nv.index)
	clear(nv.slots) // their tables' names
	nv.slots = nv.slots[:0]
	nv.arena = nv.arena[:0]
	return nil
}

// windowWriter groups decoded rows per table version into Tx.Write batches.
// What it queues is bounded by rows per table (batch) and by bytes over all
// tables (maxBytes): a window of huge rows is written out in smaller
// batches instead of held in memory.
type windowWriter struct {
	ctx context.Context
	tx  sinks.Tx
	// stage, if set, writes the batches to tx in its own goroutine
	// (pipeline.go); it owns a batch once it is sent.
	stage    *writeStage
	batch    int
	maxBytes int
	bytes    int // queued, over all tables (rowBytes)
	pending  map[string]*pendingTable
	rows     int
}

type pendingTable struct {
	table   *model.Table
	changes []sinks.Change
	bytes   int
}

// rowBytes estimates the memory a queued row holds: the decoder's count
// (schemas.Row.Size), and never less than the record's Avro length.
func rowBytes(row schemas.Row, ev buffer.Event) int {
	return max(row.Size, len(ev.Key)+len(ev.Value))
}

func (w *windowWriter) add(row schemas.Row, size int) error {
	pt := w.pending[row.Table.Name]
	if pt != nil && pt.table != row.Table {
		// A different schema version of the same table: what is queued
		// goes first, with its own columns.
		if err := w.flush(pt); err != nil {
			return err
		}
	}
	if pt == nil {
		pt = &pendingTable{changes: make([]sinks.Change, 0, min(w.batch, 1024))}
		w.pending[row.Table.Name] = pt
	}
	pt.table = row.Table
	pt.changes = append(pt.changes, sinks.Change{Op: opOf(row), Updated: row.Updated, Values: row.Values()})
	pt.bytes += size
	w.bytes += size
	if len(pt.changes) >= w.batch {
		return w.flush(pt)
	}
	if w.maxBytes > 0 && w.bytes >= w.maxBytes {
		return w.flushAll()
	}
	return nil
}

func opOf(row schemas.Row) sinks.Op {
	switch {
	case row.After == nil:
		return sinks.OpDelete
	case row.Op == schemas.OpCreate: // envelope = enriched says, with or without diff
		return sinks.OpInsert
	case row.Op == schemas.OpUpdate:
		return sinks.OpUpdate
	case !row.Diff:
		return sinks.OpUpsert
	case row.Before == nil:
		return sinks.OpInsert
	}
	return sinks.OpUpdate
}

func (w *windowWriter) flush(pt *pendingTable) error {
	if len(pt.changes) == 0 {
		return nil
	}
	w.rows += len(pt.changes)
	if w.stage != nil {
		if err := w.stage.send(w.ctx, pt.table, pt.changes); err != nil {
			return err
		}
		pt.changes = w.stage.spare(w.batch)
	} else {
		if err := w.tx.Write(w.ctx, pt.table, pt.changes); err != nil {
			return fmt.Errorf("write %d changes to %q: %w", len(pt.changes), pt.table.Name, err)
		}
		clear(pt.changes)
		pt.changes = pt.changes[:0]
	}
	w.bytes -= pt.bytes
	pt.bytes = 0
	return nil
}

func (w *windowWriter) flushAll() error {
	names := make([]string, 0, len(w.pending))
	for n := range w.pending {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := w.flush(w.pending[n]); err != nil {
			return err
		}
	}
	return nil
}
