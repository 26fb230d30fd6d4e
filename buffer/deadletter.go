package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Dead letters are records that ingest could not decode and that the
// processor's --on-error=dlq policy sets aside. They wait in the buffer,
// keyed by offset, until a window's checkpoint moves the partition's resume
// offset past them: that window writes them to the warehouse in the same
// transaction as the checkpoint, so a crash neither loses nor duplicates
// one.
//
//	'd' | id (4) | offset (8) -> flags (1) | timestamp (8) | schema id (4) |
//	                             stage, error, key (uvarint length+1, 0 = nil) | value
//
// They live under the partition's id, so Reset and Drop retire them with
// the events; they are not counted in Usage (they are few and small next to
// the events).
const prefixDead = 'd'

// deadKeySize is the length of a dead-letter key.
const deadKeySize = 1 + idSize + offsetSize

// DeadLetter is a record set aside at ingest, as the buffer keeps it.
type DeadLetter struct {
	// Offset is the record's Kafka offset; one dead letter per offset.
	Offset int64
	// Timestamp is the Kafka record's timestamp (zero if unknown).
	Timestamp time.Time
	// Key and Value are the raw Kafka key and value; nil stays nil.
	Key, Value []byte
	// SchemaID is the Confluent schema id involved, or -1.
	SchemaID int32
	// Stage says where the record failed ("ingest").
	Stage string
	// Error is why.
	Error string
}

// bdead is one dead letter of a batch: its partition and encoded value.
type bdead struct {
	part int32
	off  int64
	val  []byte
}

// AddDeadLetter adds dl to p's dead letters. It is written by the same
// Write as the batch's events, before the partition's metadata, so a
// Consumed offset past dl always comes with dl. It copies dl's slices. A
// later dead letter at the same offset replaces an earlier one.
func (b *Batch) AddDeadLetter(p Partition, dl DeadLetter) {
	b.dead = append(b.dead, bdead{part: b.part(p), off: dl.Offset, val: encodeDeadLetter(dl)})
}

// writeDeadLetters adds the batch's dead letters to wb. pts are the ids of
// b.parts, as Write resolved them.
func (b *Batch) writeDeadLetters(wb *badger.WriteBatch, pts []*part) error {
	for _, d := range b.dead {
		k := encodeOffset(idPrefix(prefixDead, pts[d.part].id), d.off)
		if err := wb.Set(k, d.val); err != nil {
			return err
		}
	}
	return nil
}

func appendLenBytes(b, v []byte, isNil bool) []byte {
	if isNil {
		return binary.AppendUvarint(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(v))+1)
	return append(b, v...)
}

func encodeDeadLetter(dl DeadLetter) []byte {
	b := make([]byte, 0, 1+8+4+len(dl.Stage)+len(dl.Error)+len(dl.Key)+len(dl.Value)+16)
	var flags byte
	var ts int64
	if !dl.Timestamp.IsZero() {
		flags |= 1
		ts = dl.Timestamp.UnixNano()
	}
	if dl.Value == nil {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(ts))
	b = binary.BigEndian.AppendUint32(b, uint32(dl.SchemaID))
	b = appendLenBytes(b, []byte(dl.Stage), false)
	b = appendLenBytes(b, []byte(dl.Error), false)
	b = appendLenBytes(b, dl.Key, dl.Key == nil)
	return append(b, dl.Value...)
}

var errMalformedDead = errors.New("malformed dead letter")

func decodeDeadLetter(off int64, v []byte) (DeadLetter, error) {
	dl := DeadLetter{Offset: off}
	if len(v) < 13 {
		return dl, errMalformedDead
	}
	flags := v[0]
	if flags&1 != 0 {
		dl.Timestamp = time.Unix(0, int64(binary.BigEndian.Uint64(v[1:]))).UTC()
	}
	dl.SchemaID = int32(binary.BigEndian.Uint32(v[9:]))
	v = v[13:]
	field := func() ([]byte, bool, error) {
		n, w := binary.Uvarint(v)
		if w <= 0 || uint64(len(v)-w) < n-min(n, 1) {
			return nil, false, errMalformedDead
		}
		v = v[w:]
		if n == 0 {
			return nil, true, nil
		}
		out := append([]byte{}, v[:n-1]...)
		v = v[n-1:]
		return out, false, nil
	}
	stage, _, err := field()
	if err != nil {
		return dl, err
	}
	msg, _, err := field()
	if err != nil {
		return dl, err
	}
	key, _, err := field()
	if err != nil {
		return dl, err
	}
	dl.Stage, dl.Error, dl.Key = string(stage), string(msg), key
	if flags&2 == 0 {
		dl.Value = append([]byte{}, v...)
	}
	return dl, nil
}

// DeadLetters calls fn, in offset order, for every dead letter of p with
// an offset below `below`. A caller that computed `below` with LowOffset
// sees every dead letter below it: Write stores dead letters before it
// publishes the Consumed offset that covers them. Unknown partitions have
// none.
func (s *Store) DeadLetters(p Partition, below int64, fn func(DeadLetter) error) error {
	if s.closed.Load() {
		return errors.New("buffer: dead letters: store is closed")
	}
	pt := s.lookup(p)
	if pt == nil {
		return nil
	}
	err := s.db.View(func(txn *badger.Txn) error {
		prefix := idPrefix(prefixDead, pt.id)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(deadSeek(prefix, pt)); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != deadKeySize {
				return fmt.Errorf("malformed dead-letter key %s", HexPrefix(k))
			}
			off := decodeOffset(k[1+idSize:])
			if off >= below {
				return nil
			}
			var dl DeadLetter
			if err := item.Value(func(v []byte) error {
				var err error
				dl, err = decodeDeadLetter(off, v)
				return err
			}); err != nil {
				return fmt.Errorf("offset %d: %w", off, err)
			}
			if err := fn(dl); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("buffer: dead letters of %s[%d]: %w", p.Topic, p.Partition, err)
	}
	return nil
}

// TrimDeadLetters deletes p's dead letters with an offset below `below`,
// once a committed window wrote them to the warehouse. Unknown partitions
// are skipped. Leftovers of a failed trim are harmless: the warehouse
// ignores a dead letter it already holds.
func (s *Store) TrimDeadLetters(p Partition, below int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(); err != nil {
		return err
	}
	pt := s.lookup(p)
	if pt == nil {
		return nil
	}
	prefix := idPrefix(prefixDead, pt.id)
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Seek(deadSeek(prefix, pt)); it.ValidForPrefix(prefix); it.Next() {
			k := it.Item().Key()
			if len(k) != deadKeySize || decodeOffset(k[1+idSize:]) >= below {
				break
			}
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err == nil && len(keys) > 0 {
		wb := s.db.NewWriteBatch()
		defer wb.Cancel()
		for _, k := range keys {
			if err = wb.Delete(k); err != nil {
				break
			}
		}
		if err == nil {
			err = wb.Flush()
		}
	}
	if err != nil {
		return fmt.Errorf("buffer: trim dead letters of %s[%d] below offset %d: %w", p.Topic, p.Partition, below, err)
	}
	// Later walks start here rather than at the front of the range, where
	// the tombstones of this and earlier trims linger until compaction.
	// AddDeadLetter never goes below it: offsets below a trim are behind
	// the checkpoint, and a partition that re-reads them is Reset first.
	if below > pt.deadFrom.Load() {
		pt.deadFrom.Store(below)
	}
	return nil
}

// deadSeek is where a walk over pt's dead letters starts.
func deadSeek(prefix []byte, pt *part) []byte {
	if from := pt.deadFrom.Load(); from > 0 {
		return encodeOffset(prefix[:len(prefix):len(prefix)], from)
	}
	return prefix
}
