package processor

import (
	"context"
	"testing"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// recordingTx records the size of each Write; the other Tx methods are not
// used by windowWriter.
type recordingTx struct {
	sinks.Tx
	writes []int
}

func (tx *recordingTx) Write(_ context.Context, _ *model.Table, changes []sinks.Change) error {
	tx.writes = append(tx.writes, len(changes))
	return nil
}

// TestWindowWriterBoundsQueuedBytes checks that decoded rows are queued up
// to FlushBatch rows per table and FlushBytes bytes over all tables, the
// size of a row being its decoder estimate or at least its Avro length.
func TestWindowWriterBoundsQueuedBytes(t *testing.T) {
	a := &model.Table{Name: "a", Columns: []model.Column{{Name: "k"}}, Key: []int{0}}
	b := &model.Table{Name: "b", Columns: []model.Column{{Name: "k"}}, Key: []int{0}}
	for _, tc := range []struct {
		name       string
		batch      int
		maxBytes   int
		rows       int
		tables     []*model.Table // round robin
		size       int            // schemas.Row.Size
		avroLen    int            // len(key)+len(value)
		wantWrites []int
	}{
		{"rows under both bounds", 100, 1 << 20, 10, []*model.Table{a}, 1000, 100, []int{10}},
		{"row bound per table", 4, 1 << 20, 10, []*model.Table{a}, 1000, 100, []int{4, 4, 2}},
		{"byte bound from the decoder's size", 20000, 10 << 10, 25, []*model.Table{a}, 1 << 10, 100, []int{10, 10, 5}},
		{"byte bound from the Avro length when larger", 20000, 10 << 10, 25, []*model.Table{a}, 0, 1 << 10, []int{10, 10, 5}},
		{"byte bound over all tables", 20000, 10 << 10, 12, []*model.Table{a, b}, 1 << 10, 100, []int{5, 5, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx := &recordingTx{}
			w := &windowWriter{ctx: context.Background(), tx: tx, batch: tc.batch, maxBytes: tc.maxBytes, pending: map[string]*pendingTable{}}
			peak := 0
			for i := range tc.rows {
				row := schemas.Row{Table: tc.tables[i%len(tc.tables)], After: []any{int64(i)}, Size: tc.size}
				ev := buffer.Event{Key: make([]byte, tc.avroLen/2), Value: make([]byte, tc.avroLen-tc.avroLen/2)}
				if err := w.add(row, rowBytes(row, ev)); err != nil {
					t.Fatal(err)
				}
				peak = max(peak, w.bytes)
			}
			if err := w.flushAll(); err != nil {
				t.Fatal(err)
			}
			if !equalInts(tx.writes, tc.wantWrites) {
				t.Errorf("writes of %v changes, want %v", tx.writes, tc.wantWrites)
			}
			if peak >= tc.maxBytes || w.bytes != 0 || w.rows != tc.rows {
				t.Errorf("peak queued %d bytes (bound %d), %d left, %d rows written of %d", peak, tc.maxBytes, w.bytes, w.rows, tc.rows)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
