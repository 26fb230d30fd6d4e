package buffer

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/highwater-dev/highwater/hlc"
)

// keyOf returns a Kafka key of n bytes that is not a repetition, so that
// any run of its hex in an error shows that more than a prefix leaked.
func keyOf(n int) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = byte(1 + (i*7+i/251)%255) // no NUL: it ends a table name
	}
	return k
}

// leaks reports whether msg holds more of key than the 16-byte prefix
// errors may show, in hex or raw.
func leaks(msg string, key []byte) bool {
	tail := key[16:48]
	return strings.Contains(msg, hex.EncodeToString(tail)) || strings.Contains(msg, hex.Dump(tail)[10:40]) ||
		bytes.Contains([]byte(msg), tail)
}

// TestOversizeKeyIsRefusedPerEventWithoutTheKey: a Kafka key that would
// make the event key exceed Badger's limit is refused by CheckEvent and
// by the batch, before Badger sees it, with an error that carries sizes
// and a short prefix, never the key; an event at the limit is stored.
func TestOversizeKeyIsRefusedPerEventWithoutTheKey(t *testing.T) {
	s := openDir(t, t.TempDir())
	defer s.Close()
	const table = "orders"
	atLimit := MaxEventKey - eventHead - len(table) - 1
	fits := Event{Updated: at(1, 0), Table: table, Key: keyOf(atLimit), Offset: 0, Value: []byte("v")}
	if err := s.CheckEvent(fits); err != nil {
		t.Fatalf("CheckEvent at the limit: %v", err)
	}
	write(t, s, pA, fits)

	huge := Event{Updated: at(2, 0), Table: table, Key: keyOf(70000), Offset: 1, Value: []byte("v")}
	over := Event{Updated: at(2, 0), Table: table, Key: keyOf(atLimit + 1), Offset: 2, Value: []byte("v")}
	for _, e := range []Event{huge, over} {
		err := s.CheckEvent(e)
		if !errors.Is(err, ErrUnbufferable) {
			t.Fatalf("CheckEvent of a %d-byte key: %v, want ErrUnbufferable", len(e.Key), err)
		}
		if leaks(err.Error(), e.Key) || len(err.Error()) > 300 {
			t.Errorf("CheckEvent's error carries more than a key prefix (%d bytes): %.200s", len(err.Error()), err)
		}
	}
	// The batch refuses it too, so Badger never dumps the key into an
	// error, and the store is not marked failed.
	b := s.NewBatch()
	b.Add(pA, huge)
	b.SetConsumed(pA, 2)
	err := s.Write(context.Background(), b)
	if !errors.Is(err, ErrUnbufferable) || !strings.Contains(err.Error(), "orders[0]@1") {
		t.Fatalf("Write of a 70000-byte key: %v, want ErrUnbufferable naming orders[0]@1", err)
	}
	if leaks(err.Error(), huge.Key) || len(err.Error()) > 300 {
		t.Errorf("Write's error carries more than a key prefix (%d bytes): %.200s", len(err.Error()), err)
	}
	write(t, s, pA, Event{Updated: at(3, 0), Table: table, Key: []byte("k"), Offset: 3, Value: []byte("v")})
	if st, _, _ := s.State(pA); st.Events != 2 {
		t.Fatalf("%d events buffered, want the one at the limit and the later one", st.Events)
	}
}

func TestNULTableNameIsUnbufferable(t *testing.T) {
	s := openMem(t, 0)
	err := s.CheckEvent(Event{Table: "a\x00b", Key: []byte("k")})
	if !errors.Is(err, ErrUnbufferable) || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("CheckEvent of a NUL table name: %v", err)
	}
	long := strings.Repeat("x", 10000) + "\x00"
	if err := s.CheckEvent(Event{Table: long, Key: []byte("k")}); err == nil || len(err.Error()) > 300 {
		t.Fatalf("CheckEvent of a long NUL table name: %.300v", err)
	}
}

// TestValueAboveTheValueLogIsUnbufferable: Badger refuses a value longer
// than a value-log file (in memory: than the value threshold).
func TestValueAboveTheValueLogIsUnbufferable(t *testing.T) {
	mem := openMem(t, 0)
	if err := mem.CheckEvent(Event{Table: "t", Key: []byte("k"), Value: make([]byte, valueThreshold-offsetSize)}); err != nil {
		t.Fatalf("in memory, a value at the threshold: %v", err)
	}
	if err := mem.CheckEvent(Event{Table: "t", Key: []byte("k"), Value: make([]byte, valueThreshold)}); !errors.Is(err, ErrUnbufferable) {
		t.Fatalf("in memory, a value above the threshold: %v", err)
	}
	if err := checkEvent(Event{Table: "t", Key: []byte("k"), Value: make([]byte, valueLogFileSize)}, valueLogFileSize); !errors.Is(err, ErrUnbufferable) {
		t.Fatalf("a value of a whole value-log file: %v", err)
	}
}

// TestKeyErrorsShowOnlyAPrefix: the errors for malformed stored keys, which
// embed Kafka keys, show a short hex prefix.
func TestKeyErrorsShowOnlyAPrefix(t *testing.T) {
	key := keyOf(5000)
	for name, err := range map[string]error{
		"event key": func() error { _, _, _, err := decodeEventKey(append([]byte{'x'}, key...)); return err }(),
		"no terminator": func() error {
			_, _, _, err := decodeEventKey(append(append(appendEventHead(nil, 0, 1), make([]byte, hlc.Size)...), key...))
			return err
		}(),
		"partition key": func() error { _, err := decodePartKey(key); return err }(),
		"run key":       func() error { _, err := runFirst(key); return err }(),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if leaks(err.Error(), key) || len(err.Error()) > 200 {
			t.Errorf("%s: error carries more than a prefix (%d bytes): %.200s", name, len(err.Error()), err)
		}
	}
	if got := HexPrefix([]byte{1, 2}); got != "0102" {
		t.Errorf("HexPrefix = %q", got)
	}
	if got := HexPrefix(make([]byte, 100)); got != strings.Repeat("00", 16)+"...(100 bytes)" {
		t.Errorf("HexPrefix(100 bytes) = %q", got)
	}
}
