package processor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"sync"
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
// applied frontier (the scan's rows) in warehouse transactions of their
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
// A group is written in transactions of at most earlyChunkBytes each
// (groupWriter), not in one: the warehouse then needs memory for one
// chunk, not for a group as big as the buffer's budget (DuckDB's share of
// a 512 MiB --memory-limit is 102 MiB; a budget of 256 MiB holds ~1M scan
// rows). A group needs no atomicity: its rows share one HLC (the scan's,
// which no window has reached), carry no checkpoint, and are upserts the
// writer applies idempotently, so a chunk committed before a crash or a
// failure is one the group's next attempt, or its window, applies again
// without effect. The watermark says nothing about them either way, and a
// reader of the mirror already sees a group's rows ahead of it.
//
// The same holds for the end of a scan: when the scan's resolved
// timestamp arrives, the window through it would hold the rest of the
// scan, up to a budget's worth of rows, in one transaction. So before a
// window starts, a group at its lowest HLC that is worth applying early
// is applied early first, in chunks (maybeSplitWindow), and the window
// that follows holds the rest.
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

// EarlyChunker is implemented by an EarlyApplier that wants a group
// applied in transactions smaller than earlyChunkMax: EarlyChunkBytes is
// the most it takes in one (the sum of the rows' sizes as the processor
// counts them, rowBytes), 0 for no preference.
type EarlyChunker interface {
	EarlyChunkBytes() int64
}

// earlyChunkMax bounds the rows of one transaction of a group applied
// early when neither the writer nor the budget asks for less: enough to
// keep the cost per transaction (a MERGE meets the whole mirror) small
// next to its rows.
const earlyChunkMax = 32 << 20

// earlyChunkShare: a group's transaction holds at most 1/earlyChunkShare
// of the buffer's budget. A group worth applying holds at least
// 1/earlyMinShare of it, so every group is applied in several
// transactions, at every budget alike: the small budgets of the tests
// take the path that a 256 MiB budget needs.
const earlyChunkShare = 8

// earlyChunkBytes is the most rows (rowBytes) one transaction of a group
// applied early holds.
func (p *Processor) earlyChunkBytes() int64 {
	limit := int64(earlyChunkMax)
	if b := p.cfg.Buffer.Budget(); b > 0 {
		limit = min(limit, max(b/earlyChunkShare, 1))
	}
	if c, ok := p.cfg.Writer.(EarlyChunker); ok {
		if n := c.EarlyChunkBytes(); n > 0 {
			limit = min(limit, n)
		}
	}
	return limit
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

// earlyGoLimitMul/earlyGoLimitDiv is the part of the Go soft memory
// limit in force while a group is applied early. A group starts when the
// ingest has filled the buffer to its budget and pauses: the Go heap is
// then at its soft limit, mostly garbage, just as the warehouse's MERGEs
// grow outside it, which made the peak of an initial scan (measured at a
// 512 MiB --memory-limit: Go ~290 MiB of 307, its live heap 35-60 MiB once
// the group is under way). Forcing one collection as the group starts did
// not lower that peak (the heap was back at the limit within a second);
// a lower limit for the group's length did (docs/BENCHMARKS.md).
const (
	earlyGoLimitMul = 3
	earlyGoLimitDiv = 4
)

// goLimit is the Go soft memory limit saved by lowerGoLimit. The limit is
// the process's, and one process may run several processors (tests do),
// so they share one count: the first group lowers it, the last one to end
// restores it.
var goLimit struct {
	sync.Mutex
	groups int
	saved  int64
}

// lowerGoLimit lowers the Go soft memory limit in force, if there is one,
// to earlyGoLimitMul/earlyGoLimitDiv of it, and returns the function that
// undoes it.
func lowerGoLimit() (restore func()) {
	goLimit.Lock()
	defer goLimit.Unlock()
	if goLimit.groups == 0 {
		lim := debug.SetMemoryLimit(-1) // reads it
		if lim <= 0 || lim == math.MaxInt64 {
			return func() {} // none (GOMEMLIMIT=off)
		}
		goLimit.saved = lim
		debug.SetMemoryLimit(lim / earlyGoLimitDiv * earlyGoLimitMul)
	}
	goLimit.groups++
	return func() {
		goLimit.Lock()
		defer goLimit.Unlock()
		if goLimit.groups--; goLimit.groups == 0 {
			debug.SetMemoryLimit(goLimit.saved)
		}
	}
}

// earlyJob is a group being applied early.
type earlyJob struct {
	at hlc.Timestamp
	// window is set for a group split out of the window about to start
	// (maybeSplitWindow) rather than one applied because the buffer is
	// over its budget.
	window bool
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
	at, found := p.lowestGroup(owned)
	if !found || at == p.earlyRefused {
		return
	}
	p.startEarly(ctx, owned, at, false)
}

// lowestGroup returns the lowest HLC buffered above any owned partition's
// applied frontier: the group that can be applied early. A buffer error is
// logged and reported as nothing found.
func (p *Processor) lowestGroup(owned []*partState) (at hlc.Timestamp, found bool) {
	for _, st := range owned {
		h, ok, err := p.cfg.Buffer.LowestAbove(st.p, st.applied)
		if err != nil {
			p.log.Warn("finding the lowest buffered HLC failed", zap.String("topic", st.p.Topic),
				zap.Int32("partition", st.p.Partition), zap.Error(err))
			return hlc.Timestamp{}, false
		}
		if ok && (!found || h.Less(at)) {
			at, found = h, true
		}
	}
	return at, found
}

// maybeSplitWindow is called before the window through f of owned starts.
// If the buffer holds at least 1/earlyMinShare of its budget and the
// window's lowest HLC is not one found too small or refused before, it
// starts applying that group early, in chunks, and reports true: the
// window starts once the group is applied and trimmed, without it. The
// group's size is checked as for any group applied early (applyEarly); a
// group too small, or refused, is left to the window. This is the end of
// an initial scan bigger than the budget: its resolved timestamp closes a
// window holding the rest of the scan. The caller holds p.mu.
func (p *Processor) maybeSplitWindow(ctx context.Context, owned []*partState, f hlc.Timestamp) bool {
	if p.uncertain != nil {
		return false // the window whose commit is uncertain is retried first (fence.go)
	}
	buf := p.cfg.Buffer
	budget := buf.Budget()
	// Usage first: it is a counter, while LowestAbove seeks in Badger
	// (and moves the memory front there).
	if budget <= 0 || buf.Usage().Bytes*earlyMinShare < budget {
		return false
	}
	if ea, ok := p.cfg.Writer.(EarlyApplier); !ok || !ea.AppliesEarly() {
		return false
	}
	at, found := p.lowestGroup(owned)
	if !found || f.Less(at) || at == p.earlyRefused || at == p.splitChecked {
		return false
	}
	p.startEarly(ctx, owned, at, true)
	return true
}

// applying tells Config.Applying that a window or a group starts to be
// applied, and returns the function that says it is done.
func (p *Processor) applying() (done func()) {
	if p.cfg.Applying == nil {
		return func() {}
	}
	return p.cfg.Applying()
}

// scanMemory lowers what memory the process keeps while a scan's group, or
// the window that ends the scan, is applied (lowerGoLimit and
// Config.ScanMemory), and returns the function that undoes it.
func (p *Processor) scanMemory() (restore func()) {
	goLimit := lowerGoLimit()
	if p.cfg.ScanMemory == nil {
		return goLimit
	}
	other := p.cfg.ScanMemory()
	return func() {
		other()
		goLimit()
	}
}

// holdsEarlyGroup reports whether the window through f of owned holds the
// rest of a group applied early: the end of an initial scan, whose
// resolved timestamp comes once the scan is emitted. Like a group, that
// window runs under the lowered Go soft limit (lowerGoLimit): it starts as
// the ingest of the scan's last rows ends, the Go heap at its limit, and
// its MERGE meets the whole mirror (at 5M rows it made the scan's peak).
// The caller holds p.mu.
func (p *Processor) holdsEarlyGroup(owned []*partState, f hlc.Timestamp) bool {
	if p.earlyApplied.IsZero() || f.Less(p.earlyApplied) {
		return false
	}
	for _, st := range owned {
		if st.applied.Less(p.earlyApplied) {
			return true
		}
	}
	return false
}

// startEarly starts applying the group of owned's events at at early in
// the background, in the window slot. The caller holds p.mu.
func (p *Processor) startEarly(ctx context.Context, owned []*partState, at hlc.Timestamp, window bool) {
	buf := p.cfg.Buffer
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
	ej := &earlyJob{at: at, window: window}
	job := &flushJob{f: at, owned: members, done: make(chan flushResult, 1), cancel: cancel, early: ej}
	p.inflight = job
	go func() {
		defer cancel()
		job.done <- p.applyEarly(jctx, g, held)
	}()
}

// applyEarly writes group g's events in transactions of their own
// (groupWriter), each fenced with held and with no checkpoint, and then
// trims them from the buffer. A group too small to be worth it comes back
// as errEarlySmall with nothing committed; one holding a delete or a
// poison record as errEarlyRefused, with the chunks before it committed
// (upserts of the group, which its window applies again, idempotently).
// The group leaves the buffer only once every chunk is committed.
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
	defer p.applying()()
	defer p.scanMemory()()
	gw := &groupWriter{p: p, ctx: ctx, at: g.At, held: held, limit: p.earlyChunkBytes()}
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
		return gw.add(row, rowBytes(row, ev))
	})
	if err == nil {
		err = gw.commit()
	}
	if err != nil {
		gw.rollback()
		return fail(fmt.Errorf("group at %s (%d rows committed in %d transactions before): %w", g.At, gw.rows, gw.txs, err))
	}
	visible := time.Now()
	if err := buf.TrimGroup(context.WithoutCancel(ctx), g); err != nil {
		// The group is applied; what stays buffered is applied again,
		// idempotently, with the next group or window.
		p.log.Warn("trimming a group applied early failed", zap.Stringer("at", g.At), zap.Error(err))
	}
	return flushResult{rows: gw.rows, took: time.Since(start), visible: visible, txs: gw.txs}
}

// groupWriter writes a group's rows in transactions of at most limit
// bytes of rows (rowBytes) each: every transaction is fenced with the
// checkpoints the partitions are built on, holds no checkpoint, and is
// committed before the next begins. Config.WindowHook sees each of them
// like a window, through the group's HLC.
type groupWriter struct {
	p     *Processor
	ctx   context.Context
	at    hlc.Timestamp
	held  []sinks.Checkpoint
	limit int64

	tx     sinks.Tx
	w      *windowWriter
	staged int64 // rows' bytes in tx
	rows   int   // rows committed
	txs    int   // transactions committed
}

// add queues a row, beginning a transaction first if none is open, and
// commits the transaction once it holds limit bytes.
func (gw *groupWriter) add(row schemas.Row, size int) error {
	if gw.tx == nil {
		if err := gw.begin(); err != nil {
			return err
		}
	}
	if err := gw.w.add(row, size); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	gw.staged += int64(size)
	if gw.staged >= gw.limit {
		return gw.commit()
	}
	return nil
}

func (gw *groupWriter) begin() error {
	p := gw.p
	p.hook(WindowBegin, gw.at)
	tx, err := p.cfg.Writer.Begin(gw.ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	gw.tx = tx
	if err := tx.Fence(gw.ctx, gw.held); err != nil {
		return fmt.Errorf("fence: %w", err)
	}
	gw.w = &windowWriter{ctx: gw.ctx, tx: tx, batch: p.cfg.FlushBatch, maxBytes: p.cfg.FlushBytes, pending: make(map[string]*pendingTable)}
	gw.staged = 0
	return nil
}

// commit commits the open transaction, if any.
func (gw *groupWriter) commit() error {
	if gw.tx == nil {
		return nil
	}
	p := gw.p
	if err := gw.w.flushAll(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	p.hook(WindowWritten, gw.at)
	p.hook(WindowCommit, gw.at)
	if err := gw.ctx.Err(); err != nil {
		return err
	}
	tx := gw.tx
	gw.tx = nil
	if err := tx.Commit(context.WithoutCancel(gw.ctx)); err != nil {
		// Whether or not it took effect, applying the group again is
		// idempotent: no uncertain commit to remember.
		return fmt.Errorf("commit: %w", err)
	}
	gw.rows += gw.w.rows
	gw.txs++
	p.hook(WindowCommitted, gw.at)
	return nil
}

// rollback abandons the open transaction, if any.
func (gw *groupWriter) rollback() {
	if gw.tx != nil {
		_ = gw.tx.Rollback(context.WithoutCancel(gw.ctx))
		gw.tx = nil
	}
}

// reapEarly records a finished early group: applied, too small (looked at
// again later), or refused (then the member does not try that HLC again
// until the frontier passes it). Other
// failures take the window path of reapFlush (retry, fence, lost). The
// caller holds p.mu.
func (p *Processor) reapEarly(job *flushJob, res flushResult) {
	at := job.early.at
	if errors.Is(res.err, errEarlySmall) {
		if job.early.window {
			p.splitChecked = at // complete: it cannot grow
		} else {
			p.earlyRetryAt = time.Now().Add(earlySmallWait)
		}
		p.log.Debug("the lowest buffered group is too small to apply early", zap.Error(res.err))
		return
	}
	if res.err != nil {
		p.earlyRefused = at
		if job.early.window {
			p.log.Info("the window's lowest group cannot be applied ahead of it: the window applies it in one transaction",
				zap.Stringer("at", at), zap.Error(res.err))
			return
		}
		p.log.Warn("the buffer is over its disk budget and its lowest group cannot be applied ahead of its resolved timestamp: it grows until the group's window closes",
			zap.Stringer("at", at), zap.Int64("bytes", p.cfg.Buffer.Usage().Bytes), zap.Error(res.err))
		return
	}
	p.attempt = 0
	p.earlyApplied = at
	if p.scanHold == nil {
		p.scanHold = p.applying()
	}
	p.stats.rowsApplied.Add(int64(res.rows))
	p.stats.earlyGroups.Add(1)
	p.stats.earlyRows.Add(int64(res.rows))
	p.log.Info("applied a group ahead of its resolved timestamp to stay within the buffer's disk budget (an initial scan or a backfill); the watermark stays where it is",
		zap.Stringer("at", at), zap.Int("rows", res.rows), zap.Int("transactions", res.txs), zap.Bool("before_its_window", job.early.window),
		zap.Duration("took", res.took), zap.Int64("buffer_bytes", p.cfg.Buffer.Usage().Bytes))
}
