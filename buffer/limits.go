package buffer

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// What one event may be. An event's Badger key embeds its table name and
// its whole Kafka key ('e' | id | HLC | table | 0 | key), and Badger
// refuses a key longer than 65000 bytes (it keeps key lengths in a uint16
// and leaves room for its own suffix) and a value longer than a value-log
// file. Such a record cannot be buffered however often it is retried, so
// the processor asks CheckEvent first and treats a refusal as a poison
// record; Batch.Add refuses the same events, so that one record can never
// fail a Write that holds other records' events.

// badgerMaxKey is Badger's key limit (txn.go, maxKeySize).
const badgerMaxKey = 65000

// MaxEventKey is the longest event key the buffer stores: the Kafka key
// plus the table name may take MaxEventKey-eventHead-1 bytes together.
const MaxEventKey = badgerMaxKey

// ErrUnbufferable is wrapped by CheckEvent's errors: the event can never be
// stored, so it is the record's fault, not the buffer's.
var ErrUnbufferable = errors.New("record cannot be buffered")

// ErrKeyTooLong is wrapped, with ErrUnbufferable, by CheckEvent's error for
// a Kafka key too long to buffer (the key, not the value, is at fault).
var ErrKeyTooLong = errors.New("Kafka key too long")

// CheckEvent reports whether the store can hold ev: a table name without a
// NUL byte (the name's terminator in the event key), an event key within
// Badger's limit and a value within a value-log file (in memory, within
// the value threshold). The error names sizes and at most a short prefix
// of the table name, never the key or value bytes.
func (s *Store) CheckEvent(ev Event) error {
	maxValue := int64(valueLogFileSize)
	if s != nil && s.inMemory {
		// In-memory Badger keeps every value inline in the LSM tree.
		maxValue = valueThreshold
	}
	return checkEvent(ev, maxValue)
}

func checkEvent(ev Event, maxValue int64) error {
	if i := strings.IndexByte(ev.Table, 0); i >= 0 {
		return fmt.Errorf("%w: table name %s contains a NUL byte at byte %d (the buffer and the warehouses cannot hold it)",
			ErrUnbufferable, quotePrefix(ev.Table), i)
	}
	if n := eventHead + len(ev.Table) + 1 + len(ev.Key); n > MaxEventKey {
		return fmt.Errorf("%w: %w: %d bytes (prefix %s) with a table name of %d bytes make a %d-byte buffer key, above Badger's %d-byte limit",
			ErrUnbufferable, ErrKeyTooLong, len(ev.Key), HexPrefix(ev.Key), len(ev.Table), n, MaxEventKey)
	}
	if n := int64(offsetSize + len(ev.Value)); n > maxValue {
		return fmt.Errorf("%w: value of %d bytes, above the buffer's %d-byte limit", ErrUnbufferable, len(ev.Value), maxValue-offsetSize)
	}
	return nil
}

// prefixBytes is how much of a key or value an error may show.
const prefixBytes = 16

// HexPrefix renders at most the first 16 bytes of b in hex, followed by
// "..." and b's length when b is longer: enough to recognise a frame or a
// key, never a whole payload in an error or a log line.
func HexPrefix(b []byte) string {
	if len(b) > prefixBytes {
		return hex.EncodeToString(b[:prefixBytes]) + fmt.Sprintf("...(%d bytes)", len(b))
	}
	return hex.EncodeToString(b)
}

// quotePrefix quotes at most the first 64 bytes of s.
func quotePrefix(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q...(%d bytes)", s[:64], len(s))
	}
	return fmt.Sprintf("%q", s)
}
