package processor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// A window is applied in the background while ingest goes on, so that the
// two cores decode and buffer the next window while the warehouse takes this
// one. At most one window is in flight. Its partitions cannot be dropped
// under it: the rebalance callbacks wait for it (waitFlush).

// flushJob is a window in flight.
type flushJob struct {
	f     schemas.HLC
	owned []*partState
	done  chan flushResult
	// cancel stops the window (its partitions were lost); lost says so.
	cancel context.CancelFunc
	lost   bool
}

type flushResult struct {
	cps     []sinks.Checkpoint
	poison  windowPoison // set aside at apply time (deadletter.go)
	rows    int
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
	owned := p.owned()
	f, applied, ok := frontier(owned)
	if ok {
		p.stats.resolved.Store(&f)
	}
	if !ok || !applied.Less(f) {
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
	go func() {
		defer cancel()
		job.done <- p.flush(jctx, w)
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
func (p *Processor) applied(f schemas.HLC, owned []*partState, res flushResult, commit bool) {
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
	p.stats.frontier.Store(&f)
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
	f       schemas.HLC
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

// writeWindow streams the window from the buffer into tx in one forward
// pass. With a changelog every version is decoded and written. Without one
// only each key's newest version matters: the pass keeps the latest version
// of every key (newestVersions) and decodes only those at the end, so older
// versions are never decoded. The pass reads forward: Badger's reverse
// iteration would walk every tombstone the earlier windows' trims left below
// the window.
// Poison events are handled by Config.OnError (poisonApply) into poison.
func (p *Processor) writeWindow(ctx context.Context, tx sinks.Tx, parts []buffer.Partition, f schemas.HLC, poison *windowPoison) (int, error) {
	w := &windowWriter{ctx: ctx, tx: tx, batch: p.cfg.FlushBatch, maxBytes: p.cfg.FlushBytes, pending: make(map[string]*pendingTable)}
	apply := func(bp buffer.Partition, ev buffer.Event) error {
		row, err := p.cfg.Decoder.DecodeRow(ctx, ev.Key, ev.Value)
		if err == nil {
			if err = p.checkRow(row); err != nil {
				id, _, _ := schemas.ParseFrame(ev.Value)
				err = &schemas.DecodeError{SchemaID: id, Err: err}
			}
		}
		if err != nil {
			return p.poisonApply(ctx, poison, bp, ev, locate(err, bp, ev.Offset))
		}
		return w.add(row, rowBytes(row, ev))
	}
	var err error
	if p.cfg.Changelog {
		err = p.cfg.Buffer.Scan(ctx, parts, f, buffer.ScanOptions{}, apply)
	} else {
		nv := newNewestVersions(newestVersionsBytes)
		err = p.cfg.Buffer.Scan(ctx, parts, f, buffer.ScanOptions{}, func(bp buffer.Partition, ev buffer.Event) error {
			if nv.keep(bp, ev) {
				// Bounded memory: write what is kept so far. A key seen
				// again later is written again, newer; the writer keeps
				// the newest version (sinks.Tx.Write).
				return nv.drain(apply)
			}
			return nil
		})
		if err == nil {
			err = nv.drain(apply)
		}
	}
	if err == nil {
		err = w.flushAll()
	}
	if err != nil {
		return 0, fmt.Errorf("write window through %s: %w", f, err)
	}
	return w.rows, nil
}

// newestVersionsBytes bounds the memory newestVersions holds: with 100k
// keys of ~200 bytes a window needs ~20 MB; a window with more distinct
// keys is written in several rounds (older versions may then be written
// too, which the writer resolves).
const newestVersionsBytes = 32 << 20

// newestVersions keeps the newest version of each (table, key) of a window
// read in ascending (Updated, Table, Key) order: a later version of a key
// replaces the earlier one in place. Keys and values are copied into one
// arena, so a window costs one map entry and no allocation per key beyond
// the map's.
type newestVersions struct {
	limit int            // arena bytes at which keep asks for a drain
	index map[string]int // table NUL key -> slot
	slots []versionSlot
	arena []byte
	ident []byte
}

type versionSlot struct {
	part    buffer.Partition
	table   string
	updated schemas.HLC
	offset  int64
	k0, k1  int // key: arena[k0:k1]
	v0, v1  int // value: arena[v0:v1]
	vcap    int // room for the value at v0 (a longer one is appended)
}

func newNewestVersions(limit int) *newestVersions {
	return &newestVersions{limit: limit, index: make(map[string]int)}
}

// keep records ev as its key's newest version so far and reports whether
// the memory bound is reached.
func (nv *newestVersions) keep(bp buffer.Partition, ev buffer.Event) bool {
	nv.ident = append(append(append(nv.ident[:0], ev.Table...), 0), ev.Key...)
	if i, ok := nv.index[string(nv.ident)]; ok {
		sl := &nv.slots[i]
		sl.part, sl.updated, sl.offset = bp, ev.Updated, ev.Offset
		if len(ev.Value) <= sl.vcap {
			sl.v1 = sl.v0 + copy(nv.arena[sl.v0:sl.v0+sl.vcap], ev.Value)
		} else {
			sl.v0 = len(nv.arena)
			nv.arena = append(nv.arena, ev.Value...)
			sl.v1, sl.vcap = len(nv.arena), len(ev.Value)
		}
		return len(nv.arena) >= nv.limit
	}
	sl := versionSlot{part: bp, table: ev.Table, updated: ev.Updated, offset: ev.Offset, k0: len(nv.arena)}
	nv.arena = append(nv.arena, ev.Key...)
	sl.k1, sl.v0 = len(nv.arena), len(nv.arena)
	nv.arena = append(nv.arena, ev.Value...)
	sl.v1, sl.vcap = len(nv.arena), len(ev.Value)
	nv.index[string(nv.ident)] = len(nv.slots)
	nv.slots = append(nv.slots, sl)
	return len(nv.arena) >= nv.limit
}

// drain passes every kept version to fn and forgets them.
func (nv *newestVersions) drain(fn func(buffer.Partition, buffer.Event) error) error {
	for i := range nv.slots {
		sl := &nv.slots[i]
		ev := buffer.Event{Updated: sl.updated, Table: sl.table, Key: nv.arena[sl.k0:sl.k1:sl.k1],
			Offset: sl.offset, Value: nv.arena[sl.v0:sl.v1:sl.v1]}
		if err := fn(sl.part, ev); err != nil {
			return err
		}
	}
	clear(nv.index)
	nv.slots = nv.slots[:0]
	nv.arena = nv.arena[:0]
	return nil
}

// locate returns err as a *schemas.DecodeError that names the record.
func locate(err error, bp buffer.Partition, offset int64) error {
	var de *schemas.DecodeError
	if errors.As(err, &de) {
		located := *de
		located.Topic, located.Partition, located.Offset = bp.Topic, bp.Partition, offset
		return &located
	}
	return &schemas.DecodeError{Topic: bp.Topic, Partition: bp.Partition, Offset: offset, SchemaID: -1, Err: err}
}

// windowWriter groups decoded rows per table version into Tx.Write batches.
// What it queues is bounded by rows per table (batch) and by bytes over all
// tables (maxBytes): a window of huge rows is written out in smaller
// batches instead of held in memory.
type windowWriter struct {
	ctx      context.Context
	tx       sinks.Tx
	batch    int
	maxBytes int
	bytes    int // queued, over all tables (rowBytes)
	pending  map[string]*pendingTable
	rows     int
}

type pendingTable struct {
	table   *schemas.Table
	changes []sinks.Change
	bytes   int
}

// rowBytes estimates the memory a queued row holds: the decoder's count
// (schemas.Row.Size), and never less than the record's Avro length.
func rowBytes(row schemas.Row, ev buffer.Event) int {
	return max(row.Size, len(ev.Key)+len(ev.Value))
}

func (w *windowWriter) add(row schemas.Row, size int) error {
	pt := w.pending[row.Table.Name]
	if pt != nil && pt.table != row.Table {
		// A different schema version of the same table: what is queued
		// goes first, with its own columns.
		if err := w.flush(pt); err != nil {
			return err
		}
	}
	if pt == nil {
		pt = &pendingTable{changes: make([]sinks.Change, 0, min(w.batch, 1024))}
		w.pending[row.Table.Name] = pt
	}
	pt.table = row.Table
	pt.changes = append(pt.changes, sinks.Change{Op: opOf(row), Updated: row.Updated, Values: row.Values()})
	pt.bytes += size
	w.bytes += size
	if len(pt.changes) >= w.batch {
		return w.flush(pt)
	}
	if w.maxBytes > 0 && w.bytes >= w.maxBytes {
		return w.flushAll()
	}
	return nil
}

func opOf(row schemas.Row) sinks.Op {
	switch {
	case row.After == nil:
		return sinks.OpDelete
	case !row.Diff:
		return sinks.OpUpsert
	case row.Before == nil:
		return sinks.OpInsert
	}
	return sinks.OpUpdate
}

func (w *windowWriter) flush(pt *pendingTable) error {
	if len(pt.changes) == 0 {
		return nil
	}
	if err := w.tx.Write(w.ctx, pt.table, pt.changes); err != nil {
		return fmt.Errorf("write %d changes to %q: %w", len(pt.changes), pt.table.Name, err)
	}
	w.rows += len(pt.changes)
	clear(pt.changes)
	pt.changes = pt.changes[:0]
	w.bytes -= pt.bytes
	pt.bytes = 0
	return nil
}

func (w *windowWriter) flushAll() error {
	names := make([]string, 0, len(w.pending))
	for n := range w.pending {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := w.flush(w.pending[n]); err != nil {
			return err
		}
	}
	return nil
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

// latencies keeps the most recent resolved-to-visible latencies.
type latencies struct {
	mu   sync.Mutex
	buf  []time.Duration
	next int
	full bool
}

func newLatencies(n int) *latencies { return &latencies{buf: make([]time.Duration, n)} }

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.buf[l.next] = d
	l.next = (l.next + 1) % len(l.buf)
	if l.next == 0 {
		l.full = true
	}
	l.mu.Unlock()
}

func (l *latencies) last() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full && l.next == 0 {
		return 0
	}
	return l.buf[(l.next+len(l.buf)-1)%len(l.buf)]
}

func (l *latencies) snapshot() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full {
		return append([]time.Duration(nil), l.buf[:l.next]...)
	}
	return append(append([]time.Duration(nil), l.buf[l.next:]...), l.buf[:l.next]...)
}
