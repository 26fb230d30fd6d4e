package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// A window is applied in the background while ingest goes on, so that the
// two cores decode and buffer the next window while the warehouse takes this
// one. At most one window is in flight. Its partitions cannot be dropped
// under it: the rebalance callbacks wait for it (waitFlush).

// flushJob is a window in flight.
type flushJob struct {
	f     hlc.Timestamp
	owned []*partState
	done  chan flushResult
	// cancel stops the window (its partitions were lost); lost says so.
	cancel context.CancelFunc
	lost   bool
	// early is set for a group applied ahead of its resolved timestamp
	// (early.go) rather than a window.
	early *earlyJob
}

type flushResult struct {
	cps     []sinks.Checkpoint
	poison  windowPoison // set aside at apply time (deadletter.go)
	rows    int
	txs     int // transactions of a group applied early (early.go)
	took    time.Duration
	visible time.Time
	err     error
	// commitFailed says that err came from Commit itself, not from a
	// fence: the commit may have taken effect (uncertainCommit).
	commitFailed bool
}

// maybeFlush reaps a finished window and starts the next one when the
// frontier F passed the owned partitions' applied frontier.
func (p *Processor) maybeFlush(ctx context.Context) error {
	if err := p.reapFlush(ctx, false, true); err != nil {
		return err
	}
	if p.inflight != nil || time.Now().Before(p.retryAt) {
		return nil
	}
	owned, f, ok := p.nextWindow()
	if !ok {
		return nil
	}
	if p.maybeSplitWindow(ctx, owned, f) { // early.go
		return nil
	}
	jctx, cancel := context.WithCancel(ctx)
	job := &flushJob{f: f, owned: owned, done: make(chan flushResult, 1), cancel: cancel}
	// Which partitions get a checkpoint is decided now: one applied further
	// already (by another member) keeps its checkpoint, never moved back.
	// Every partition is fenced with the checkpoint the window builds on.
	w := window{f: f, parts: make([]buffer.Partition, len(owned)), advance: make([]bool, len(owned)), held: make([]sinks.Checkpoint, len(owned))}
	for i, st := range owned {
		w.parts[i], w.advance[i] = st.p, st.applied.Less(f)
		w.held[i] = sinks.Checkpoint{Group: p.cfg.Group, Topic: st.p.Topic, Partition: st.p.Partition, Resolved: st.applied, NextOffset: st.appliedNext}
	}
	p.inflight = job
	scanRest := p.holdsEarlyGroup(owned, f) // early.go
	go func() {
		defer cancel()
		idle := p.applying()
		restore := func() {}
		if scanRest {
			restore = p.scanMemory()
		}
		res := p.flush(jctx, w)
		// Restored before the result is sent: the window reaped next may
		// start at once and must run under the full limit.
		restore()
		idle()
		job.done <- res
	}()
	return nil
}

// reapFlush finishes the window in flight if it is done (or, with block,
// once it is). A failed window is retried later from the buffer: the writer
// rolled it back, so nothing is half applied. Warehouse outages and lost
// connections heal this way; an input the decoder rejects does not, and
// stops the feed at once with its location. commit says whether Kafka
// offsets may be committed (not from inside a rebalance callback).
func (p *Processor) reapFlush(ctx context.Context, block, commit bool) error {
	job := p.inflight
	if job == nil {
		return nil
	}
	var res flushResult
	if block {
		res = <-job.done
	} else {
		select {
		case res = <-job.done:
		default:
			return nil
		}
	}
	p.inflight = nil
	if job.early != nil && (res.err == nil || errors.Is(res.err, errEarlyRefused) || errors.Is(res.err, errEarlySmall)) {
		p.reapEarly(job, res)
		return nil
	}
	if res.err != nil {
		var fenced *sinks.FencedError
		switch {
		case errors.As(res.err, &fenced):
			return p.fenced(ctx, job, fenced, commit)
		case job.lost && ctx.Err() == nil:
			// Not a failure: the window's partitions belong to another
			// member now. Its transaction rolled back.
			p.stats.cancelled.Add(1)
			p.log.Warn("window cancelled: its partitions were lost (the group session expired); nothing of it was committed",
				zap.Stringer("through", job.f), zap.Error(res.err))
			return nil
		}
		if res.commitFailed {
			p.uncertain = &uncertainCommit{f: job.f, owned: job.owned, cps: res.cps, rows: res.rows}
		}
		// A window that only waited too long for a lock held by another
		// transaction (another member's window, or a member frozen inside
		// one until the server ends its session) is retried without
		// counting: its own work did not fail, and the wait ends when the
		// other transaction does.
		contended := errors.Is(res.err, sinks.ErrLockTimeout)
		if !contended {
			p.attempt++
		}
		// A poison record fails every attempt alike: stop at once (with
		// OnErrorFail; other policies set it aside inside the window).
		if isPoison(res.err) || ctx.Err() != nil || p.attempt >= flushAttempts {
			return res.err
		}
		backoff := min(time.Second<<max(p.attempt-1, 0), 10*time.Second)
		p.retryAt = time.Now().Add(backoff)
		p.noteError(res.err)
		p.log.Warn("applying window failed; retrying", zap.Stringer("through", job.f), zap.Int("attempt", p.attempt),
			zap.Duration("backoff", backoff), zap.Error(res.err))
		return nil
	}
	p.applied(job.f, job.owned, res, commit)
	return nil
}

// applied records a committed window through f of the partitions owned.
func (p *Processor) applied(f hlc.Timestamp, owned []*partState, res flushResult, commit bool) {
	p.attempt = 0
	p.uncertain = nil
	// The window became closable when the last of its partitions' resolved
	// timestamps reached its frontier.
	var closedAt time.Time
	for _, st := range owned {
		if st.applied.Less(f) {
			st.applied = f
		}
		if at := st.closedAt(f); at.After(closedAt) {
			closedAt = at
		}
	}
	if p.scanHold != nil && !f.Less(p.earlyApplied) {
		p.scanHold() // the scan's groups are all applied
		p.scanHold = nil
	}
	for _, cp := range res.cps {
		for _, st := range owned {
			if st.p.Topic == cp.Topic && st.p.Partition == cp.Partition && st.applied == cp.Resolved {
				st.appliedNext = cp.NextOffset
			}
		}
	}
	if !closedAt.IsZero() {
		p.latency.add(res.visible.Sub(closedAt))
	}
	if commit {
		p.toCommit = append(p.toCommit, res.cps...)
	}
	p.stats.rowsApplied.Add(int64(res.rows))
	p.stats.deadApply.Add(int64(len(res.poison.dead)))
	p.stats.skipped.Add(res.poison.skipped)
	p.stats.windows.Add(1)
	// Publish the partitions' new applied position before the frontier, so
	// that a scrape that sees the frontier also sees every partition's
	// applied lag (the poll loop would publish it only after this returns).
	p.publishPartitions()
	p.storeFrontier(f)
	p.stats.lastFlush.Store(int64(res.took))
	p.observeWindow(f, res.took, res.rows)
	if lat := p.latency.last(); lat > 0 {
		p.stats.lastVisible.Store(int64(lat))
	}
	p.log.Debug("window applied", zap.Stringer("through", f), zap.Int("rows", res.rows),
		zap.Int("partitions", len(owned)), zap.Duration("took", res.took))
}

// waitFlush finishes the window in flight before a rebalance or shutdown
// changes the partitions under it. An error is kept for the poll loop.
func (p *Processor) waitFlush(ctx context.Context) {
	if err := p.reapFlush(ctx, true, false); err != nil && p.flushErr == nil {
		p.flushErr = err
	}
}

// flushAttempts bounds the retries of one window (about a minute of
// backoff) before the feed stops with the error.
const flushAttempts = 8

// window is what one flush applies: the events of parts through f, the
// checkpoints of the partitions marked in advance, fenced with held (the
// checkpoints the window builds on, one per partition).
type window struct {
	f       hlc.Timestamp
	parts   []buffer.Partition
	advance []bool
	held    []sinks.Checkpoint
}

// flush writes every buffered event of w's partitions with updated <= w.f,
// and the checkpoints of the partitions marked in advance, in one warehouse
// transaction fenced with w.held, then trims the buffer. It runs beside
// ingest and touches no processor state.
func (p *Processor) flush(ctx context.Context, w window) flushResult {
	start := time.Now()
	parts, f := w.parts, w.f
	fail := func(err error) flushResult { return flushResult{err: err} }
	p.hook(WindowBegin, f)
	tx, err := p.cfg.Writer.Begin(ctx)
	if err != nil {
		return fail(fmt.Errorf("begin window through %s: %w", f, err))
	}
	// First, so that a member that lost its partitions writes nothing: the
	// fence holds until the transaction ends (sinks.Tx.Fence).
	if err := tx.Fence(ctx, w.held); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return fail(fmt.Errorf("fence window through %s: %w", f, err))
	}
	var poison windowPoison
	rows, err := p.writeWindow(ctx, tx, parts, f, &poison)
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return fail(err)
	}
	p.hook(WindowWritten, f)
	var cps []sinks.Checkpoint
	for i, bp := range parts {
		if !w.advance[i] {
			continue
		}
		// Events ingested meanwhile are > f or re-sent duplicates; the
		// buffer answers from a snapshot taken after reading the consumed
		// offset, so a concurrent event is never skipped.
		next, err := p.cfg.Buffer.LowOffset(bp, f)
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return fail(fmt.Errorf("resume offset %s[%d]: %w", bp.Topic, bp.Partition, err))
		}
		cps = append(cps, sinks.Checkpoint{Group: p.cfg.Group, Topic: bp.Topic, Partition: bp.Partition, Resolved: f, NextOffset: next})
	}
	// Dead letters set aside at ingest below the new resume offsets, and
	// those of this window's apply, land with the checkpoints.
	dead, err := p.bufferedDeadLetters(cps)
	if err == nil && len(dead)+len(poison.dead) > 0 {
		err = tx.DeadLetters(ctx, append(dead, poison.dead...))
	}
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return fail(fmt.Errorf("dead letters of the window through %s: %w", f, err))
	}
	if err := tx.Checkpoint(ctx, cps); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return fail(fmt.Errorf("checkpoint window through %s: %w", f, err))
	}
	p.hook(WindowCommit, f)
	// A window whose partitions were lost meanwhile stops here.
	if err := ctx.Err(); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return fail(fmt.Errorf("window through %s: %w", f, err))
	}
	// Once Commit starts, finish it even if shutdown was requested: the
	// work is done, and a commit reported failed would be applied again.
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		res := fail(fmt.Errorf("commit window through %s: %w", f, err))
		if !errors.Is(err, sinks.ErrFenced) {
			res.commitFailed, res.cps, res.rows = true, cps, rows
		}
		return res
	}
	visible := time.Now()
	p.hook(WindowCommitted, f)
	if err := p.cfg.Buffer.Trim(context.WithoutCancel(ctx), parts, f); err != nil {
		// The window is applied; untrimmed events are re-applied
		// idempotently by the next window.
		p.log.Warn("trimming the buffer after a window failed", zap.Stringer("through", f), zap.Error(err))
	}
	if len(dead) > 0 {
		p.trimDeadLetters(cps)
	}
	return flushResult{cps: cps, poison: poison, rows: rows, took: time.Since(start), visible: visible}
}

// commitOffsets records the checkpoints' resume offsets as the group's Kafka
// offsets, so that lag tooling sees progress. They are advisory: on
// assignment the warehouse checkpoint wins.
func (p *Processor) commitOffsets(ctx context.Context, cps []sinks.Checkpoint) {
	if len(cps) == 0 {
		return
	}
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	for _, cp := range cps {
		if offsets[cp.Topic] == nil {
			offsets[cp.Topic] = make(map[int32]kgo.EpochOffset)
		}
		offsets[cp.Topic][cp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: cp.NextOffset}
	}
	// Bounded: while the broker is unreachable a commit would wait for the
	// group to rejoin, and these offsets are only advisory.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	p.cl.CommitOffsets(cctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		defer cancel()
		if err != nil && ctx.Err() == nil {
			p.log.Debug("committing advisory Kafka offsets failed", zap.Error(err))
		}
	})
}
