package processor

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// The fence. Kafka's group protocol cannot stop a member that stalled past
// the session timeout (a GC pause, a frozen VM, a long flush) from going on
// with a window after the group gave its partitions to another member. So
// each window's transaction is fenced (sinks.Tx.Fence) with the checkpoints
// it builds on: the partitions' checkpoints as read from the warehouse at
// assignment, or as this member last committed them. If another member
// applied one of them meanwhile, the window rolls back and the member
// re-adjusts those partitions to the stored checkpoints (applied frontier,
// buffer, Kafka position) instead of exiting; if it no longer owns them,
// the rebalance that follows drops them.
//
// A Commit reported failed may have taken effect (the connection broke
// after the server committed). Its retry then finds the checkpoints it
// wrote itself and is fenced: if every stored checkpoint is the one the
// failed attempt wrote, the window is taken as applied rather than as
// another member's work.

// WindowStage names a point in the life of a window's flush, for
// Config.WindowHook.
type WindowStage string

// The stages of a window, in order.
const (
	// WindowBegin is before the warehouse transaction begins.
	WindowBegin WindowStage = "begin"
	// WindowWritten is after the window's rows are written to the
	// transaction (fenced, not yet checkpointed or committed).
	WindowWritten WindowStage = "written"
	// WindowCommit is just before the transaction commits.
	WindowCommit WindowStage = "commit"
	// WindowCommitted is after the transaction committed.
	WindowCommitted WindowStage = "committed"
)

func (p *Processor) hook(stage WindowStage, through hlc.Timestamp) {
	if p.cfg.WindowHook != nil {
		p.cfg.WindowHook(stage, through)
	}
}

// uncertainCommit is a window whose Commit was reported failed.
type uncertainCommit struct {
	f     hlc.Timestamp
	owned []*partState
	cps   []sinks.Checkpoint // the checkpoints the commit wrote, if it took effect
	rows  int
}

// wrote reports whether every checkpoint in stored is one that u wrote.
func (u *uncertainCommit) wrote(stored []sinks.Checkpoint) bool {
	if u == nil || len(stored) == 0 {
		return false
	}
	for _, s := range stored {
		found := false
		for _, cp := range u.cps {
			if cp.Topic == s.Topic && cp.Partition == s.Partition {
				found = cp.Resolved == s.Resolved && cp.NextOffset == s.NextOffset
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// fenced handles a window rolled back by its fence. The caller holds p.mu.
func (p *Processor) fenced(ctx context.Context, job *flushJob, fe *sinks.FencedError, commit bool) error {
	if u := p.uncertain; u.wrote(fe.Stored) {
		p.log.Warn("a window's commit reported failed did take effect: it is applied once, not again",
			zap.Stringer("through", u.f), zap.Int("partitions", len(u.cps)))
		p.applied(u.f, u.owned, flushResult{cps: u.cps, rows: u.rows}, commit)
		if err := p.cfg.Buffer.Trim(ctx, partitionsOf(u.owned), u.f); err != nil {
			p.log.Warn("trimming the buffer after a window failed", zap.Stringer("through", u.f), zap.Error(err))
		}
		p.trimDeadLetters(u.cps)
		return nil
	}
	p.uncertain = nil
	p.attempt = 0
	p.stats.fenced.Add(1)
	for _, s := range fe.Stored {
		bp := buffer.Partition{Topic: s.Topic, Partition: s.Partition}
		st := p.parts[bp]
		if st == nil {
			continue // no longer assigned: dropped with the rebalance
		}
		p.log.Warn("window fenced: another member applied this partition meanwhile (this member lost it, say in a stall longer than the session timeout); nothing of the window was committed, the partition resumes from the stored checkpoint",
			zap.String("topic", s.Topic), zap.Int32("partition", s.Partition),
			zap.Stringer("built_on", st.applied), zap.Stringer("stored", s.Resolved),
			zap.Int64("next_offset", s.NextOffset), zap.Stringer("window_through", job.f))
		if err := p.readjust(st, s); err != nil {
			return err
		}
	}
	return nil
}

// readjust makes st resume from the stored checkpoint cp: its applied
// frontier, a buffer reset to cp, and a fetch position at cp.NextOffset
// that the poll loop sets (takeSeeks). Until then the partition is not
// ingested: records already fetched from the old position are dropped.
func (p *Processor) readjust(st *partState, cp sinks.Checkpoint) error {
	st.applied, st.appliedNext, st.resolved = cp.Resolved, cp.NextOffset, cp.Resolved
	// The next record is expected there now, not where the old position
	// was: otherwise the retention check (fetchGap) would take the jump
	// for deleted records.
	st.expect = cp.NextOffset
	st.marks = st.marks[:0]
	st.ready = false
	if err := p.cfg.Buffer.Reset(st.p, cp.Resolved, cp.NextOffset); err != nil {
		return fmt.Errorf("buffer reset %s[%d] to the stored checkpoint: %w", st.p.Topic, st.p.Partition, err)
	}
	p.seeks[st.p] = cp.NextOffset
	return nil
}

// takeSeeks returns the pending fetch positions of re-adjusted partitions
// and marks those partitions ready: the caller sets the positions before
// the next poll. The caller holds p.mu.
func (p *Processor) takeSeeks() map[string]map[int32]kgo.EpochOffset {
	if len(p.seeks) == 0 {
		return nil
	}
	out := make(map[string]map[int32]kgo.EpochOffset)
	for bp, next := range p.seeks {
		if st := p.parts[bp]; st != nil {
			st.ready = true
		}
		if out[bp.Topic] == nil {
			out[bp.Topic] = make(map[int32]kgo.EpochOffset)
		}
		// A partition that has fetched nothing since its assignment at
		// the log start is not moved (SetOffsets skips it); reading from
		// the log start covers the stored checkpoint anyway.
		out[bp.Topic][bp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: next}
	}
	clear(p.seeks)
	return out
}

func partitionsOf(owned []*partState) []buffer.Partition {
	out := make([]buffer.Partition, len(owned))
	for i, st := range owned {
		out[i] = st.p
	}
	return out
}

// cancelLost cancels the window in flight if it covers a partition in
// lost. The caller holds p.mu and then waits for the window (waitFlush):
// once that returns, no window of this member can commit for those
// partitions. A Commit already started is let finish (its outcome would
// otherwise be unknown); the fence makes it safe either way.
func (p *Processor) cancelLost(lost map[string][]int32) {
	job := p.inflight
	if job == nil {
		return
	}
	for _, st := range job.owned {
		for _, n := range lost[st.p.Topic] {
			if n == st.p.Partition {
				job.lost = true
				job.cancel()
				return
			}
		}
	}
}
