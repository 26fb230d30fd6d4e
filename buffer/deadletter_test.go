package buffer

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func deadLetters(t *testing.T, s *Store, p Partition, below int64) []DeadLetter {
	t.Helper()
	var out []DeadLetter
	if err := s.DeadLetters(p, below, func(dl DeadLetter) error {
		out = append(out, dl)
		return nil
	}); err != nil {
		t.Fatalf("DeadLetters: %v", err)
	}
	return out
}

func TestDeadLettersRoundTripInOffsetOrder(t *testing.T) {
	s := openMem(t, 0)
	p := Partition{Topic: "t", Partition: 1}
	other := Partition{Topic: "t", Partition: 2}
	ts := time.Unix(1700000000, 123456789).UTC()
	want := []DeadLetter{
		{Offset: 3, Timestamp: ts, Key: []byte("k"), Value: []byte{0, 1, 2}, SchemaID: 7, Stage: "ingest", Error: "truncated"},
		{Offset: 5, Key: nil, Value: nil, SchemaID: -1, Stage: "ingest", Error: ""},
		{Offset: 9, Key: []byte{}, Value: []byte{}, SchemaID: 1 << 30, Stage: "ingest", Error: `x"; DROP TABLE t; --`},
	}
	b := s.NewBatch()
	// Added out of order, and with an event in the same batch.
	b.AddDeadLetter(p, want[2])
	b.Add(p, ev(at(10, 0), "a", "k1", 4))
	b.AddDeadLetter(p, want[0])
	b.AddDeadLetter(p, want[1])
	b.AddDeadLetter(other, DeadLetter{Offset: 1, Stage: "ingest", Error: "other partition"})
	b.SetConsumed(p, 10)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got := deadLetters(t, s, p, 100)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("dead letters:\n got  %#v\n want %#v", got, want)
	}
	if got := deadLetters(t, s, p, 9); len(got) != 2 || got[1].Offset != 5 {
		t.Fatalf("below 9: got %+v, want offsets 3 and 5", got)
	}
	if got := deadLetters(t, s, Partition{Topic: "unknown"}, 100); len(got) != 0 {
		t.Fatalf("unknown partition has dead letters: %+v", got)
	}
	// Dead letters are not events: Usage counts the one event only.
	if u := s.Usage(); u.Events != 1 {
		t.Fatalf("usage events = %d, want 1", u.Events)
	}
}

func TestTrimDeadLettersKeepsThoseAtOrAboveTheOffset(t *testing.T) {
	s := openMem(t, 0)
	p := Partition{Topic: "t", Partition: 0}
	b := s.NewBatch()
	for _, off := range []int64{1, 2, 5, 8} {
		b.AddDeadLetter(p, DeadLetter{Offset: off, Stage: "ingest", Error: "bad"})
	}
	b.SetConsumed(p, 9)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := s.TrimDeadLetters(p, 5); err != nil {
		t.Fatal(err)
	}
	got := deadLetters(t, s, p, 100)
	if len(got) != 2 || got[0].Offset != 5 || got[1].Offset != 8 {
		t.Fatalf("after trim below 5: %+v, want offsets 5 and 8", got)
	}
	if err := s.TrimDeadLetters(Partition{Topic: "unknown"}, 5); err != nil {
		t.Fatalf("trim of an unknown partition: %v", err)
	}
}

func TestResetAndDropRetireDeadLetters(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	p, q := Partition{Topic: "t", Partition: 0}, Partition{Topic: "t", Partition: 1}
	b := s.NewBatch()
	b.AddDeadLetter(p, DeadLetter{Offset: 1, Stage: "ingest"})
	b.AddDeadLetter(q, DeadLetter{Offset: 2, Stage: "ingest"})
	b.SetConsumed(p, 2)
	b.SetConsumed(q, 3)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(p, at(5, 0), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Drop(q); err != nil {
		t.Fatal(err)
	}
	if got := deadLetters(t, s, p, 100); len(got) != 0 {
		t.Fatalf("dead letters survived Reset: %+v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The retired ids' data is deleted, on disk too.
	s = openDir(t, dir)
	defer s.Close()
	n := 0
	_ = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Seek([]byte{prefixDead}); it.ValidForPrefix([]byte{prefixDead}); it.Next() {
			n++
		}
		return nil
	})
	if n != 0 {
		t.Fatalf("%d dead-letter keys left after Reset, Drop and reopen", n)
	}
}

func TestDeadLetterSurvivesReopenWithItsConsumedOffset(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	p := Partition{Topic: "t", Partition: 0}
	b := s.NewBatch()
	b.AddDeadLetter(p, DeadLetter{Offset: 4, Value: []byte("garbage"), SchemaID: -1, Stage: "ingest", Error: "not a frame"})
	b.SetConsumed(p, 5)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir)
	defer s.Close()
	if st := mustState(t, s, p); st.Consumed != 5 {
		t.Fatalf("consumed = %d, want 5", st.Consumed)
	}
	got := deadLetters(t, s, p, 5)
	if len(got) != 1 || string(got[0].Value) != "garbage" || got[0].Error != "not a frame" {
		t.Fatalf("after reopen: %+v", got)
	}
}

func TestMalformedDeadLetterIsAnError(t *testing.T) {
	for _, v := range [][]byte{nil, make([]byte, 12), append(make([]byte, 13), 0xff)} {
		if _, err := decodeDeadLetter(0, v); err == nil {
			t.Errorf("decodeDeadLetter(%x) = nil error", v)
		}
	}
}

// BenchmarkDeadLetters writes, reads back and trims batches of 1000 dead
// letters of 200-byte values: the cost of a poison storm.
func BenchmarkDeadLetters(b *testing.B) {
	s := openMem(b, 0)
	p := Partition{Topic: "t", Partition: 0}
	val := make([]byte, 200)
	off := int64(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch := s.NewBatch()
		for j := 0; j < 1000; j++ {
			batch.AddDeadLetter(p, DeadLetter{Offset: off, Key: []byte("key"), Value: val, SchemaID: 3, Stage: "ingest", Error: "truncated value"})
			off++
		}
		batch.SetConsumed(p, off)
		if err := s.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		n := 0
		if err := s.DeadLetters(p, off, func(DeadLetter) error { n++; return nil }); err != nil || n != 1000 {
			b.Fatalf("read %d dead letters: %v", n, err)
		}
		if err := s.TrimDeadLetters(p, off); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "deadletters/s")
}
