package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// Groups applied early: initial scans bigger than the buffer's disk budget.
//
// CockroachDB's initial scan emits every row of the watched tables with
// updated = the scan's timestamp, and its first resolved timestamp comes
// only once the whole scan is emitted (docs/BUFFER.md, "Groups applied
// early", cites the code). Until then no window can close, every partition
// holds the frontier back, and backpressure can pause none of them: the
// buffer would have to hold the whole table.
//
// So when the buffer is over its budget and no window can start, the
// member applies the group of buffered events at the lowest HLC above the
// applied frontier (the scan's rows) in a warehouse transaction of their
// own, fenced like a window but with no checkpoint, and then removes
// exactly those events from the buffer (buffer.TrimGroup). The watermark
// and every checkpoint stay where they are; the mirror holds the scan's
// rows ahead of them. This is safe because:
//
//   - every version of a key that arrives later is newer than its version
//     in the group, or a re-sent copy of one seen before (CockroachDB's
//     per-key ordering); the writer keeps the newest _hw_updated in the
//     mirror and each (key, _hw_updated) once in the changelog, so a later
//     window, or the same group applied again after a crash, changes
//     nothing it should not;
//   - a group holding a delete is never applied early: an older version
//     re-sent after the delete would bring the row back (the mirror keeps
//     no tombstones). A scan holds no deletes;
//   - a group holding a record that cannot be decoded or stored is left to
//     its window, where --on-error handles it;
//   - the checkpoint's resume offset never passes an event still to be
//     applied: the group's events are applied before they leave the
//     buffer, and a restart from the warehouse checkpoint reads them again
//     and applies them again, idempotently.
//
// Only writers that implement EarlyApplier take groups early; the files
// sink, whose objects are named per window, does not.

// EarlyApplier is implemented by a sinks.Writer whose transactions may be
// given row versions ahead of the resolved timestamp, in a transaction
// with no checkpoint, and the same versions again later: its mirror keeps
// the newest _hw_updated of each key whatever the order of the
// transactions (a delete removes only an older row), and its changelog
// keeps each (key, _hw_updated) once. It need not keep deleted rows: the
// processor never applies a delete early. AppliesEarly reports whether it
// does.
type EarlyApplier interface {
	AppliesEarly() bool
}

// earlyMinShare is the least part of the disk budget the lowest group must
// hold to be applied early: a scan or a backfill fills the buffer with one
// HLC, an ordinary stream spreads it over thousands. Applying a small
// group would cost a warehouse transaction and free next to nothing.
const earlyMinShare = 4

// errEarlyRefused says that the lowest group cannot be applied early; the
// buffer then grows past its budget until the group's window closes, as it
// did before.
var errEarlyRefused = errors.New("group not applied ahead of its resolved timestamp")

// errEarlySmall says that the lowest group is still too small to be worth
// applying early; it is looked at again after earlySmallWait, as it may
// grow (a scan still streaming in).
var errEarlySmall = errors.New("group too small to be applied ahead of its resolved timestamp")

// earlySmallWait is how long the member waits before it looks again at a
// group it found too small.
const earlySmallWait = 2 * time.Second

// earlyJob is a group being applied early.
type earlyJob struct {
	at hlc.Timestamp
}

// earlyInFlight reports whether a group is being applied early (or sized
// for it: a small group is sized in a moment, and a scan's group is
// worth pausing for from the start, so that the buffer stays near its
// budget).
func (p *Processor) earlyInFlight() bool {
	return p.inflight != nil && p.inflight.early != nil
}

// maybeApplyEarly starts applying the lowest buffered group ahead of its
// resolved timestamp when the buffer is over its budget and no window can
// start. The caller holds p.mu.
func (p *Processor) maybeApplyEarly(ctx context.Context) {
	buf := p.cfg.Buffer
	if p.inflight != nil || time.Now().Before(p.retryAt) || !buf.OverBudget() {
		return
	}
	if ea, ok := p.cfg.Writer.(EarlyApplier); !ok || !ea.AppliesEarly() || time.Now().Before(p.earlyRetryAt) {
		return
	}
	owned := p.owned()
	f, applied, ok := frontier(owned)
	if len(owned) == 0 || (ok && applied.Less(f)) {
		return // a window can close: maybeFlush applies it
	}
	var at hlc.Timestamp
	found := false
	for _, st := range owned {
		h, ok, err := buf.LowestAbove(st.p, st.applied)
		if err != nil {
			p.log.Warn("finding the lowest buffered HLC failed", zap.String("topic", st.p.Topic),
				zap.Int32("partition", st.p.Partition), zap.Error(err))
			return
		}
		if ok && (!found || h.Less(at)) {
			at, found = h, true
		}
	}
	if !found || at == p.earlyRefused {
		return
	}
	var parts []buffer.Partition
	var held []sinks.Checkpoint
	var members []*partState
	for _, st := range owned {
		if !st.applied.Less(at) {
			continue // its events at at are re-sent copies of applied ones
		}
		parts = append(parts, st.p)
		members = append(members, st)
		held = append(held, sinks.Checkpoint{Group: p.cfg.Group, Topic: st.p.Topic, Partition: st.p.Partition, Resolved: st.applied, NextOffset: st.appliedNext})
	}
	g := buf.TakeGroup(parts, at)
	jctx, cancel := context.WithCancel(ctx)
	ej := &earlyJob{at: at}
	job := &flushJob{f: at, owned: members, done: make(chan flushResult, 1), cancel: cancel, early: ej}
	p.inflight = job
	go func() {
		defer cancel()
		job.done <- p.applyEarly(jctx, g, held)
	}()
}

// applyEarly writes group g's events in a transaction of their own,
// fenced with held and with no checkpoint, and then trims them from the
// buffer. A group too small to be worth it, or holding a delete or a
// poison record, comes back as errEarlyRefused with nothing committed.
func (p *Processor) applyEarly(ctx context.Context, g *buffer.Group, held []sinks.Checkpoint) flushResult {
	start := time.Now()
	fail := func(err error) flushResult { return flushResult{err: err} }
	buf := p.cfg.Buffer
	n, size, err := buf.GroupSize(ctx, g)
	if err != nil {
		return fail(err)
	}
	if size*earlyMinShare < buf.Budget() {
		return fail(fmt.Errorf("%w: its %d events (%d bytes) at %s hold less than 1/%d of the buffer's disk budget",
			errEarlySmall, n, size, g.At, earlyMinShare))
	}
	// Config.WindowHook sees a group's stages like a window's, through
	// the group's HLC.
	p.hook(WindowBegin, g.At)
	tx, err := p.cfg.Writer.Begin(ctx)
	if err != nil {
		return fail(fmt.Errorf("begin group at %s: %w", g.At, err))
	}
	rollback := func(err error) flushResult {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return fail(err)
	}
	if err := tx.Fence(ctx, held); err != nil {
		return rollback(fmt.Errorf("fence group at %s: %w", g.At, err))
	}
	w := &windowWriter{ctx: ctx, tx: tx, batch: p.cfg.FlushBatch, maxBytes: p.cfg.FlushBytes, pending: make(map[string]*pendingTable)}
	err = buf.ScanGroup(ctx, g, func(bp buffer.Partition, ev buffer.Event) error {
		row, err := p.cfg.Decoder.DecodeRow(ctx, ev.Key, ev.Value)
		if err == nil {
			err = p.checkRow(row)
		}
		if err != nil {
			if errors.Is(err, schemas.ErrSchemaUnavailable) || ctx.Err() != nil {
				return err // the registry: retried like a window
			}
			return fmt.Errorf("%w: %s[%d]@%d cannot be applied (%v); its window handles it",
				errEarlyRefused, bp.Topic, bp.Partition, ev.Offset, err)
		}
		if row.After == nil {
			return fmt.Errorf("%w: it holds a delete (%s[%d]@%d)", errEarlyRefused, bp.Topic, bp.Partition, ev.Offset)
		}
		return w.add(row, rowBytes(row, ev))
	})
	if err == nil {
		err = w.flushAll()
	}
	if err != nil {
		return rollback(fmt.Errorf("write group at %s: %w", g.At, err))
	}
	p.hook(WindowWritten, g.At)
	p.hook(WindowCommit, g.At)
	if err := ctx.Err(); err != nil {
		return rollback(fmt.Errorf("group at %s: %w", g.At, err))
	}
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		// Whether or not it took effect, applying the group again is
		// idempotent: no uncertain commit to remember.
		return fail(fmt.Errorf("commit group at %s: %w", g.At, err))
	}
	visible := time.Now()
	p.hook(WindowCommitted, g.At)
	if err := buf.TrimGroup(context.WithoutCancel(ctx), g); err != nil {
		// The group is applied; what stays buffered is applied again,
		// idempotently, with the next group or window.
		p.log.Warn("trimming a group applied early failed", zap.Stringer("at", g.At), zap.Error(err))
	}
	return flushResult{rows: w.rows, took: time.Since(start), visible: visible}
}

// reapEarly records a finished early group: applied, too small (looked at
// again later), or refused (then the member does not try that HLC again
// until the frontier passes it). Other
// failures take the window path of reapFlush (retry, fence, lost). The
// caller holds p.mu.
func (p *Processor) reapEarly(job *flushJob, res flushResult) {
	at := job.early.at
	if errors.Is(res.err, errEarlySmall) {
		p.earlyRetryAt = time.Now().Add(earlySmallWait)
		p.log.Debug("the lowest buffered group is too small to apply early", zap.Error(res.err))
		return
	}
	if res.err != nil {
		p.earlyRefused = at
		p.log.Warn("the buffer is over its disk budget and its lowest group cannot be applied ahead of its resolved timestamp: it grows until the group's window closes",
			zap.Stringer("at", at), zap.Int64("bytes", p.cfg.Buffer.Usage().Bytes), zap.Error(res.err))
		return
	}
	p.attempt = 0
	p.stats.rowsApplied.Add(int64(res.rows))
	p.stats.earlyGroups.Add(1)
	p.stats.earlyRows.Add(int64(res.rows))
	p.log.Info("applied a group ahead of its resolved timestamp to stay within the buffer's disk budget (an initial scan or a backfill); the watermark stays where it is",
		zap.Stringer("at", at), zap.Int("rows", res.rows), zap.Duration("took", res.took),
		zap.Int64("buffer_bytes", p.cfg.Buffer.Usage().Bytes))
}
