package processor

import (
	"context"
	"fmt"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// A window is applied in two stages that run at the same time: the window
// pass (buffer scan, newest-version dedup, Avro decode, batching) in the
// window's goroutine, and the sink's Tx.Write calls in a goroutine of their
// own (writeStage). On a backlog the window's apply is the tail of the
// run, and serially it uses one core: decoding the next batch while the
// warehouse stages this one uses the second. Tx.Write is called in the
// same order with the same batches as a serial pass would, from one
// goroutine at a time, so the transaction is the same; the stage ends
// (writeStage.close) before the window goes on to its checkpoints and
// commit.

// pipelineSplit divides FlushBatch and FlushBytes between the batch being
// filled and the two handed to the write stage (the one being written and
// the one waiting for it), so that a pipelined window holds no more decoded
// rows than a serial one did.
const pipelineSplit = 3

// writeStage runs one window's Tx.Write calls in a goroutine. Batches are
// handed over on an unbuffered channel: at most one waits while another is
// written. The first failure of a Write stops the stage and cancels the
// window pass (through the context startWriteStage returns); a failure or
// cancellation of the pass stops the stage at close. Either way close
// returns only once the goroutine has ended, so that the transaction is
// never used by two goroutines at once.
type writeStage struct {
	tx      sinks.Tx
	batches chan stagedBatch
	free    chan []sinks.Change // written batches, cleared, for reuse
	done    chan struct{}       // closed when the goroutine ends
	err     error               // the stage's failure; read after done
	cancel  context.CancelFunc
	closed  bool
}

type stagedBatch struct {
	table   *model.Table
	changes []sinks.Change
}

// startWriteStage starts the write stage of a window on tx. The window
// pass runs with the returned context: it is cancelled when a Write fails,
// so that the pass stops early.
func startWriteStage(ctx context.Context, tx sinks.Tx) (*writeStage, context.Context) {
	pctx, cancel := context.WithCancel(ctx)
	s := &writeStage{
		tx:      tx,
		batches: make(chan stagedBatch),
		free:    make(chan []sinks.Change, 2),
		done:    make(chan struct{}),
		cancel:  cancel,
	}
	go s.run(ctx)
	return s, pctx
}

func (s *writeStage) run(ctx context.Context) {
	defer close(s.done)
	for b := range s.batches {
		if err := s.tx.Write(ctx, b.table, b.changes); err != nil {
			s.err = fmt.Errorf("write %d changes to %q: %w", len(b.changes), b.table.Name, err)
			s.cancel()
			return
		}
		// Tx.Write keeps nothing of changes once it returns.
		clear(b.changes)
		select {
		case s.free <- b.changes[:0]:
		default:
		}
	}
}

// send hands changes to the stage, which owns them from then on. It
// returns the stage's failure if the stage stopped, or ctx's error.
func (s *writeStage) send(ctx context.Context, table *model.Table, changes []sinks.Change) error {
	select {
	case s.batches <- stagedBatch{table: table, changes: changes}:
		return nil
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// spare returns an empty batch slice, reusing a written one if there is
// one.
func (s *writeStage) spare(capacity int) []sinks.Change {
	select {
	case c := <-s.free:
		return c
	default:
		return make([]sinks.Change, 0, min(capacity, 1024))
	}
}

// close waits for the batches sent so far to be written (or for the
// stage's failure) and ends the stage. It returns the stage's failure,
// which is the cause of any failure of the window pass that followed it.
func (s *writeStage) close() error {
	if !s.closed {
		s.closed = true
		close(s.batches)
	}
	<-s.done
	s.cancel()
	return s.err
}
