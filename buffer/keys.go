package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/highwater-dev/highwater/hlc"
)

// Key layout (all integers big-endian so that byte order is numeric order):
//
//	'n'                                  -> next partition id (4)
//	'c'                                  -> clean-shutdown marker (written by Close, removed by Open)
//	'p' | partition (4) | topic          -> id (4)
//	'm' | id (4)                         -> meta: base (12) resolved (12) consumed (8) events (8) bytes (8)
//	'g' | id (4)                         -> (empty) id whose data is garbage (after Reset/Drop), reaped on Open
//	'E' | epoch (5) | id (4) | HLC (12) | table | 0 | key -> offset (8) | value   the events
//	'o' | id (4) | first offset (8) | seq (8) -> max HLC (12) | n x (uvarint offset-first, HLC (12))
//	                                     offset index runs for LowOffset, up to runEntries per run
//	'd' | id (4) | offset (8)            -> dead letter set aside at ingest (deadletter.go)
//
// The id is a small number allocated once per (topic, partition) and per
// Reset, so event keys carry 4 bytes instead of the topic name, and a Reset
// switches a partition to a fresh, empty key range atomically.
//
// An event key starts with its epoch, the HLC's wall time in units of
// 2^28 ns (~268 ms), before the id. Every memtable Badger flushes then
// spans a few epochs of all partitions instead of every partition's whole
// range, so compaction merges a new level-0 table with the few tables of
// the same epochs, not with every table of the next level: with the id
// first, buffering 10M events rewrote the whole base level on every
// compaction (ingest fell from 330k to 125k events/s). The epoch is a
// function of the HLC, so one id's keys are still in HLC order; reading
// them skips the other ids of each epoch with a seek (events.go).
// Keys under 'e' are the layout before epochs, rewritten by Open
// (migrate.go).
const (
	prefixNextID = 'n'
	prefixClean  = 'c'
	prefixPart   = 'p'
	prefixMeta   = 'm'
	prefixGarb   = 'g'
	prefixEvent  = 'E'
	prefixOffset = 'o'
	// prefixEventV1 is the event layout before epochs: 'e' | id | HLC | ...
	prefixEventV1 = 'e'

	idSize     = 4
	epochSize  = 5
	epochShift = 28
	// maxEpoch is the epoch of the largest wall time.
	maxEpoch   = 1<<(64-epochShift) - 1
	offsetSize = 8
	metaSize   = 2*hlc.Size + 3*8
	// eventHLCAt is where an event key's HLC starts, eventHead where its
	// table name starts.
	eventHLCAt = 1 + epochSize + idSize
	eventHead  = eventHLCAt + hlc.Size
	// runKeySize is the length of an offset index run key.
	runKeySize = 1 + idSize + offsetSize + 8
)

var keyNextID = []byte{prefixNextID}
var keyClean = []byte{prefixClean}

func idPrefix(prefix byte, id uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{prefix}, id)
}

func partKey(p Partition) []byte {
	b := make([]byte, 0, 5+len(p.Topic))
	b = append(b, prefixPart)
	b = binary.BigEndian.AppendUint32(b, uint32(p.Partition))
	return append(b, p.Topic...)
}

func decodePartKey(k []byte) (Partition, error) {
	if len(k) < 5 || k[0] != prefixPart {
		return Partition{}, fmt.Errorf("malformed partition key %s", HexPrefix(k))
	}
	return Partition{Topic: string(k[5:]), Partition: int32(binary.BigEndian.Uint32(k[1:]))}, nil
}

// epochOf is the epoch of an HLC: its sortable wall time's top bits.
func epochOf(ts hlc.Timestamp) uint64 {
	return (uint64(ts.WallTime) ^ 1<<63) >> epochShift
}

// appendEventHead appends 'E' | epoch | id, the prefix of id's events in
// epoch ep.
func appendEventHead(b []byte, ep uint64, id uint32) []byte {
	b = append(b, prefixEvent, byte(ep>>32), byte(ep>>24), byte(ep>>16), byte(ep>>8), byte(ep))
	return binary.BigEndian.AppendUint32(b, id)
}

// eventEpoch and eventID decode the epoch and the id of an event key of at
// least eventHLCAt bytes.
func eventEpoch(k []byte) uint64 {
	return uint64(k[1])<<32 | uint64(binary.BigEndian.Uint32(k[2:]))
}

func eventID(k []byte) uint32 { return binary.BigEndian.Uint32(k[1+epochSize:]) }

// appendEventKey appends the key of an event of partition id.
func appendEventKey(b []byte, id uint32, ts hlc.Timestamp, table string, key []byte) []byte {
	b = appendEventHead(b, epochOf(ts), id)
	b = ts.AppendBinary(b)
	b = append(b, table...)
	b = append(b, 0)
	return append(b, key...)
}

// decodeEventKey splits an event key (with its 'E'|epoch|id head) into its
// parts. The returned table and key alias k.
func decodeEventKey(k []byte) (ts hlc.Timestamp, table, key []byte, err error) {
	if len(k) < eventHead+1 || k[0] != prefixEvent {
		return ts, nil, nil, fmt.Errorf("malformed event key %s", HexPrefix(k))
	}
	ts, err = hlc.Decode(k[eventHLCAt:])
	if err != nil {
		return ts, nil, nil, err
	}
	rest := k[eventHead:]
	if i := bytes.IndexByte(rest, 0); i >= 0 {
		return ts, rest[:i], rest[i+1:], nil
	}
	return ts, nil, nil, fmt.Errorf("malformed event key %s: no table terminator", HexPrefix(k))
}

// eventHLC decodes just the HLC of an event key.
func eventHLC(k []byte) hlc.Timestamp {
	ts, _ := hlc.Decode(k[eventHLCAt:])
	return ts
}

// eventSeekAt returns the smallest possible event key of id at HLC ts.
func eventSeekAt(id uint32, ts hlc.Timestamp) []byte {
	return ts.AppendBinary(appendEventHead(make([]byte, 0, eventHead), epochOf(ts), id))
}

// eventSeekAfter returns the smallest possible event key of id whose HLC is
// after ts, or the end of id's event range when ts is the largest HLC.
func eventSeekAfter(id uint32, ts hlc.Timestamp) []byte {
	if ts.WallTime == 1<<63-1 && ts.Logical == 1<<31-1 {
		return eventHeadAfter(maxEpoch, id)
	}
	return eventSeekAt(id, ts.Next())
}

// eventHeadAfter returns the smallest key above every event key of id in
// epoch ep: the head of the next (epoch, id), or the end of the events.
func eventHeadAfter(ep uint64, id uint32) []byte {
	switch {
	case id < 1<<32-1:
		return appendEventHead(nil, ep, id+1)
	case ep < maxEpoch:
		return appendEventHead(nil, ep+1, 0)
	}
	// Above every event key (an epoch's first byte is at most 0x0f) and
	// still under the events' prefix, where a reverse iterator must seek.
	return []byte{prefixEvent, 0xff}
}

func encodeOffset(b []byte, off int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(off)^(1<<63))
}

func decodeOffset(b []byte) int64 {
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
}

// runEntries is the most (offset, HLC) pairs per offset-index run: a run
// of 60 stays below valueThreshold (12 + 60*(12+4) = 972 bytes), so it is
// stored inline in the LSM tree.
const runEntries = 60

// offHLC is one offset index entry.
type offHLC struct {
	off int64
	ts  hlc.Timestamp
}

// appendRunKey appends the key of an offset index run of id starting at
// offset first; seq makes runs of different writes distinct.
func appendRunKey(b []byte, id uint32, first int64, seq uint64) []byte {
	b = append(b, prefixOffset)
	b = binary.BigEndian.AppendUint32(b, id)
	b = encodeOffset(b, first)
	return binary.BigEndian.AppendUint64(b, seq)
}

// appendRun appends the value of a run: its largest HLC, then each entry
// (sorted by offset) as uvarint(offset - first) and HLC.
func appendRun(b []byte, run []offHLC) []byte {
	var maxTS hlc.Timestamp
	for _, e := range run {
		if maxTS.Less(e.ts) {
			maxTS = e.ts
		}
	}
	b = maxTS.AppendBinary(b)
	for _, e := range run {
		b = binary.AppendUvarint(b, uint64(e.off-run[0].off))
		b = e.ts.AppendBinary(b)
	}
	return b
}

// runFirst returns the first offset of a run key.
func runFirst(k []byte) (int64, error) {
	if len(k) != runKeySize || k[0] != prefixOffset {
		return 0, fmt.Errorf("malformed offset index key %s", HexPrefix(k))
	}
	return decodeOffset(k[1+idSize:]), nil
}

// runMax returns the largest HLC of a run value.
func runMax(v []byte) (hlc.Timestamp, error) {
	return hlc.Decode(v)
}

// runLow returns the smallest offset of a run with an HLC after through.
func runLow(first int64, v []byte, through hlc.Timestamp) (int64, bool, error) {
	v = v[min(len(v), hlc.Size):]
	for len(v) > 0 {
		d, n := binary.Uvarint(v)
		if n <= 0 || len(v) < n+hlc.Size {
			return 0, false, errors.New("malformed offset index run")
		}
		ts, _ := hlc.Decode(v[n:])
		if through.Less(ts) {
			return first + int64(d), true, nil
		}
		v = v[n+hlc.Size:]
	}
	return 0, false, nil
}

// meta is the persisted state of one partition id.
type meta struct {
	base     hlc.Timestamp
	resolved hlc.Timestamp
	consumed int64
	events   int64
	bytes    int64
}

func (m meta) encode() []byte {
	b := make([]byte, 0, metaSize)
	b = m.base.AppendBinary(b)
	b = m.resolved.AppendBinary(b)
	b = binary.BigEndian.AppendUint64(b, uint64(m.consumed))
	b = binary.BigEndian.AppendUint64(b, uint64(m.events))
	return binary.BigEndian.AppendUint64(b, uint64(m.bytes))
}

func decodeMeta(b []byte) (meta, error) {
	if len(b) != metaSize {
		return meta{}, errors.New("malformed partition metadata")
	}
	var m meta
	m.base, _ = hlc.Decode(b)
	m.resolved, _ = hlc.Decode(b[hlc.Size:])
	b = b[2*hlc.Size:]
	m.consumed = int64(binary.BigEndian.Uint64(b))
	m.events = int64(binary.BigEndian.Uint64(b[8:]))
	m.bytes = int64(binary.BigEndian.Uint64(b[16:]))
	return m, nil
}
