package buffer

import (
	"bytes"

	"github.com/dgraph-io/badger/v4"

	"github.com/highwater-dev/highwater/hlc"
)

// idEvents iterates the events of one partition id in Badger, in key order
// (HLC order) or its reverse. An epoch's keys hold every id's events of
// that epoch (keys.go), so where the iterator meets another id's key it
// seeks to id's keys in the same or the next epoch instead of stepping
// over the other events: a dense epoch costs at most two seeks, an epoch
// in which only other ids have events one.
//
// Forward, it reads every version of every key, deletions included, and
// skips the old versions and the deleted keys of id itself: Badger would
// otherwise step over a run of deleted keys inside the iterator, and the
// keys a trim of another id has just deleted lie right after id's in each
// epoch (a trim of 8 partitions of one epoch walked the others' tombstones
// too, twice as slow as with the id first). Reverse iteration (tests and
// the largest-HLC lookup at Open) lets Badger skip them.
type idEvents struct {
	it      *badger.Iterator
	id      uint32
	reverse bool
	// lo and hi bound the epochs visited: past them the iterator ends
	// rather than seek on through the other ids' epochs.
	lo, hi uint64
	valid  bool
	seek   []byte
	// last is the key of the last version seen forward: older versions
	// of it follow it.
	last []byte
}

// newIDEvents returns an iterator over id's events of the epochs of the
// HLCs from through to; call seek to position it. A zero from starts at
// the first epoch.
func newIDEvents(txn *badger.Txn, id uint32, reverse bool, from, to hlc.Timestamp) *idEvents {
	e := &idEvents{
		// Values are mostly inline in the LSM tree (valueThreshold), so
		// prefetching them in a goroutine would only add copies.
		it:      txn.NewIterator(badger.IteratorOptions{Reverse: reverse, Prefix: []byte{prefixEvent}, AllVersions: !reverse}),
		id:      id,
		reverse: reverse,
		hi:      epochOf(to),
	}
	if !from.IsZero() {
		e.lo = epochOf(from)
	}
	return e
}

// allIDEvents returns an iterator over all of id's events.
func allIDEvents(txn *badger.Txn, id uint32, reverse bool) *idEvents {
	e := newIDEvents(txn, id, reverse, hlc.Timestamp{}, hlc.Timestamp{})
	e.hi = maxEpoch
	return e
}

// seekFirst positions e on id's first event in its direction within the
// epoch bounds.
func (e *idEvents) seekFirst() {
	if e.reverse {
		e.seekKey(eventHeadAfter(e.hi, e.id))
	} else {
		e.seek = appendEventHead(e.seek[:0], e.lo, e.id)
		e.seekKey(e.seek)
	}
}

// seekKey positions e on id's first event at or after k in its direction
// (at or before k in reverse).
func (e *idEvents) seekKey(k []byte) {
	e.it.Seek(k)
	e.settle()
}

// next moves e to id's next event.
func (e *idEvents) next() {
	e.it.Next()
	e.settle()
}

// settle moves the underlying iterator from wherever it stands to the
// nearest event of id in its direction, seeking past other ids' keys.
func (e *idEvents) settle() {
	e.valid = false
	for e.it.Valid() { // Valid checks the 'E' prefix
		k := e.it.Item().Key()
		if len(k) < eventHLCAt {
			e.it.Next() // not an event key: never written
			continue
		}
		id, ep := eventID(k), eventEpoch(k)
		switch {
		case !e.reverse && ep > e.hi, e.reverse && ep < e.lo:
			return
		case !e.reverse && ep < e.lo:
			e.seek = appendEventHead(e.seek[:0], e.lo, e.id)
			e.it.Seek(e.seek)
		case e.reverse && ep > e.hi:
			e.it.Seek(eventHeadAfter(e.hi, e.id))
		case id == e.id && !e.reverse:
			if bytes.Equal(k, e.last) {
				e.it.Next() // an older version of the key just seen
				continue
			}
			e.last = append(e.last[:0], k...)
			if e.it.Item().IsDeletedOrExpired() {
				e.it.Next()
				continue
			}
			e.valid = true
			return
		case id == e.id:
			e.valid = true
			return
		case !e.reverse && id < e.id:
			e.seek = appendEventHead(e.seek[:0], ep, e.id)
			e.it.Seek(e.seek)
		case !e.reverse: // id > e.id: on to the next epoch
			if ep == maxEpoch || ep == e.hi {
				return
			}
			e.seek = appendEventHead(e.seek[:0], ep+1, e.id)
			e.it.Seek(e.seek)
		case id > e.id: // reverse: id's keys of ep are below
			e.it.Seek(eventHeadAfter(ep, e.id))
		default: // reverse, id < e.id: on to the previous epoch
			if ep == 0 || ep == e.lo {
				return
			}
			e.it.Seek(eventHeadAfter(ep-1, e.id))
		}
	}
}

// item is the current event; valid only while e.valid.
func (e *idEvents) item() *badger.Item { return e.it.Item() }

// close releases the iterator.
func (e *idEvents) close() { e.it.Close() }
