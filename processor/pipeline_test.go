package processor

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

var errInjected = errors.New("injected write failure")

// stageTx is a Tx double for the write stage: it records the batches it is
// given (copied: the stage reuses them), fails the failAt-th Write, and
// with block waits in that Write until its context is done.
type stageTx struct {
	sinks.Tx
	mu      sync.Mutex
	batches [][]int64
	failAt  int
	block   bool
}

func (tx *stageTx) Write(ctx context.Context, _ *model.Table, changes []sinks.Change) error {
	tx.mu.Lock()
	n := len(tx.batches) + 1
	ids := make([]int64, len(changes))
	for i, c := range changes {
		ids[i] = c.Values[0].(int64)
	}
	tx.batches = append(tx.batches, ids)
	tx.mu.Unlock()
	if n == tx.failAt {
		if tx.block {
			<-ctx.Done()
			return ctx.Err()
		}
		return errInjected
	}
	return nil
}

// stageRows sends rows ids 0..n-1 through a pipelined windowWriter of
// batch rows on tx, as passWindow does, and returns the pass's and the
// stage's errors.
func stageRows(ctx context.Context, tx sinks.Tx, n, batch int) (passErr, stageErr error, rows int) {
	table := &model.Table{Name: "t", Columns: []model.Column{{Name: "id"}}, Key: []int{0}}
	stage, sctx := startWriteStage(ctx, tx)
	w := &windowWriter{ctx: sctx, tx: tx, stage: stage, batch: batch, maxBytes: 1 << 30, pending: map[string]*pendingTable{}}
	for i := range n {
		if passErr = w.add(schemas.Row{Table: table, After: []any{int64(i)}}, 1); passErr != nil {
			break
		}
	}
	if passErr == nil {
		passErr = w.flushAll()
	}
	return passErr, stage.close(), w.rows
}

// TestWriteStage checks the write stage of a pipelined window: it writes
// the batches in order and unchanged although their slices are reused; its
// first failure stops it and reaches the pass; a cancelled window stops
// both; and in every case no goroutine outlives close (synctest fails a
// test whose bubble still has a blocked goroutine at its end).
func TestWriteStage(t *testing.T) {
	want := func(n, batch int) [][]int64 {
		var out [][]int64
		for i := 0; i < n; i += batch {
			var b []int64
			for j := i; j < min(i+batch, n); j++ {
				b = append(b, int64(j))
			}
			out = append(out, b)
		}
		return out
	}
	t.Run("in order", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tx := &stageTx{}
			passErr, stageErr, rows := stageRows(t.Context(), tx, 1000, 7)
			if passErr != nil || stageErr != nil || rows != 1000 {
				t.Fatalf("pass %v, stage %v, %d rows", passErr, stageErr, rows)
			}
			if !reflect.DeepEqual(tx.batches, want(1000, 7)) {
				t.Fatalf("batches written differ from the batches sent: %v", tx.batches)
			}
		})
	})
	for _, failAt := range []int{1, 5, 143} { // 143: the last batch, after the pass ended
		t.Run(fmt.Sprintf("write %d fails", failAt), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tx := &stageTx{failAt: failAt}
				passErr, stageErr, _ := stageRows(t.Context(), tx, 1000, 7)
				if !errors.Is(stageErr, errInjected) || !strings.Contains(stageErr.Error(), `changes to "t"`) {
					t.Fatalf("stage error = %v, want the injected failure with its batch", stageErr)
				}
				if failAt < 143 && passErr == nil {
					t.Fatal("the pass went on after the stage failed")
				}
				if len(tx.batches) != failAt {
					t.Fatalf("%d writes, want %d: the stage wrote on after its failure", len(tx.batches), failAt)
				}
			})
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			tx := &stageTx{failAt: 3, block: true}
			go func() {
				synctest.Wait() // the third Write is blocked
				cancel()
			}()
			passErr, stageErr, _ := stageRows(ctx, tx, 1000, 7)
			if !errors.Is(stageErr, context.Canceled) || !errors.Is(passErr, context.Canceled) {
				t.Fatalf("pass %v, stage %v, want both cancelled", passErr, stageErr)
			}
			if len(tx.batches) != 3 {
				t.Fatalf("%d writes, want 3", len(tx.batches))
			}
		})
	})
}

// faultWriter wraps a Writer so that its transactions fail the failAt-th
// Write, and records Writes made after the test said the window returned.
type faultWriter struct {
	sinks.Writer
	failAt int
	writes atomic.Int64
	late   atomic.Int64
	ended  atomic.Bool
}

type faultTx struct {
	sinks.Tx
	w *faultWriter
}

func (w *faultWriter) Begin(ctx context.Context) (sinks.Tx, error) {
	tx, err := w.Writer.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &faultTx{Tx: tx, w: w}, nil
}

func (tx *faultTx) Write(ctx context.Context, table *model.Table, changes []sinks.Change) error {
	if tx.w.ended.Load() {
		tx.w.late.Add(1)
	}
	if n := tx.w.writes.Add(1); n == int64(tx.w.failAt) {
		return errInjected
	}
	return tx.Tx.Write(ctx, table, changes)
}

// TestPipelinedWindowFailsWhole: a window whose write stage fails (at its
// first Write, in the middle, or at its last Write, after the pass has
// ended) or whose pass fails (a poison record under --on-error=fail) after
// batches were staged commits nothing, neither rows nor checkpoint; the
// same window then applies whole.
func TestPipelinedWindowFailsWhole(t *testing.T) {
	ctx := context.Background()
	const rows = 20
	feed := func() []*kgo.Record {
		var recs []*kgo.Record
		for i := range int64(rows) {
			recs = append(recs, &kgo.Record{Key: keyOfT(i + 1), Value: valueOfT(i+1, fmt.Sprint("r", i+1), t1)})
		}
		return append(recs, &kgo.Record{Value: resolvedOf(t1, idResolved)})
	}
	nothingCommitted := func(t *testing.T, r *rig) {
		t.Helper()
		if got := r.query(t, `SELECT count(*) FROM duckdb_tables() WHERE table_name = 't'`); got[0][0] != "0" {
			if got := r.query(t, `SELECT count(*) FROM t`); got[0][0] != "0" {
				t.Fatalf("the failed window committed %s rows", got[0][0])
			}
		}
		if got := r.query(t, `SELECT count(*) FROM highwater_checkpoints`); got[0][0] != "0" {
			t.Fatalf("the failed window committed its checkpoint: %v", got)
		}
	}
	// One row per Write (FlushBatch / pipelineSplit): 20 Writes.
	for _, failAt := range []int{1, 7, rows} {
		t.Run(fmt.Sprintf("write %d fails", failAt), func(t *testing.T) {
			r := newRig(t, OnErrorFail)
			r.p.cfg.FlushBatch = pipelineSplit
			fw := &faultWriter{Writer: r.p.cfg.Writer, failAt: failAt}
			r.p.cfg.Writer = fw
			if err := r.ingest(t, feed()...); err != nil {
				t.Fatal(err)
			}
			res := r.p.flush(ctx, r.window(t1))
			fw.ended.Store(true)
			if !errors.Is(res.err, errInjected) {
				t.Fatalf("flush error = %v, want the injected write failure", res.err)
			}
			if fw.writes.Load() != int64(failAt) || fw.late.Load() != 0 {
				t.Fatalf("%d writes (%d after the window returned), want %d", fw.writes.Load(), fw.late.Load(), failAt)
			}
			nothingCommitted(t, r)
			fw.failAt, fw.ended = 0, atomic.Bool{}
			if res := r.p.flush(ctx, r.window(t1)); res.err != nil || res.rows != rows {
				t.Fatalf("retry: %d rows, %v", res.rows, res.err)
			}
			if got := r.query(t, `SELECT count(*), CAST(min(next_offset) AS VARCHAR) FROM t, highwater_checkpoints`); !reflect.DeepEqual(got, [][]string{{fmt.Sprint(rows), fmt.Sprint(rows + 1)}}) {
				t.Fatalf("after the retry: rows and next offset %v", got)
			}
		})
	}
	t.Run("pass fails", func(t *testing.T) {
		r := newRig(t, OnErrorFail)
		r.p.cfg.FlushBatch = pipelineSplit
		fw := &faultWriter{Writer: r.p.cfg.Writer}
		r.p.cfg.Writer = fw
		recs := feed()
		// The poison record, offset 14, holds a value of table u: the
		// window meets it after t's 19 rows, which are staged by then.
		recs[14].Value = valueOfU(15, t1)
		if err := r.ingest(t, recs...); err != nil {
			t.Fatal(err)
		}
		res := r.p.flush(ctx, r.window(t1))
		fw.ended.Store(true)
		var de *schemas.DecodeError
		if !isPoison(res.err) || !errors.As(res.err, &de) || de.Offset != 14 {
			t.Fatalf("flush error = %v, want a poison error naming t[0]@14", res.err)
		}
		if fw.writes.Load() != rows-1 || fw.late.Load() != 0 {
			t.Fatalf("%d writes (%d after the window returned), want the %d rows before the poison record", fw.writes.Load(), fw.late.Load(), rows-1)
		}
		nothingCommitted(t, r)
	})
}
