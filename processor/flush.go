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

// maybeFlush applies the window (applied, F] when the frontier F passed the
// owned partitions' applied frontier.
func (p *Processor) maybeFlush(ctx context.Context) error {
	owned := p.owned()
	f, applied, ok := frontier(owned)
	if ok {
		p.stats.resolved.Store(&f)
	}
	if !ok || !applied.Less(f) {
		return nil
	}
	// A window that fails to apply is retried from the buffer: the writer
	// rolled it back, so nothing is half applied. Warehouse outages and lost
	// connections heal this way; an input the decoder rejects does not, and
	// stops the feed at once with its location.
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		err := p.flush(ctx, owned, f)
		var de *schemas.DecodeError
		if err == nil || errors.As(err, &de) || ctx.Err() != nil || attempt == flushAttempts {
			return err
		}
		p.log.Warn("applying window failed; retrying", zap.Stringer("through", f), zap.Int("attempt", attempt),
			zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// flushAttempts bounds the retries of one window (about a minute of
// backoff) before the feed stops with the error.
const flushAttempts = 8

// flush writes every buffered event of owned with updated <= f, and the
// partitions' checkpoints, in one warehouse transaction; then trims the
// buffer and commits Kafka offsets for lag tooling.
func (p *Processor) flush(ctx context.Context, owned []*partState, f schemas.HLC) error {
	start := time.Now()
	parts := make([]buffer.Partition, len(owned))
	for i, st := range owned {
		parts[i] = st.p
	}
	tx, err := p.cfg.Writer.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin window through %s: %w", f, err)
	}
	rows, err := p.writeWindow(ctx, tx, parts, f)
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	var cps []sinks.Checkpoint
	for _, st := range owned {
		if !st.applied.Less(f) {
			// Another member applied this partition further already; never
			// move a checkpoint backwards.
			continue
		}
		next, err := p.cfg.Buffer.LowOffset(st.p, f)
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return fmt.Errorf("resume offset %s[%d]: %w", st.p.Topic, st.p.Partition, err)
		}
		cps = append(cps, sinks.Checkpoint{Group: p.cfg.Group, Topic: st.p.Topic, Partition: st.p.Partition, Resolved: f, NextOffset: next})
	}
	if err := tx.Checkpoint(ctx, cps); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return fmt.Errorf("checkpoint window through %s: %w", f, err)
	}
	// Once Commit starts, finish it even if shutdown was requested: a
	// canceled commit would only be retried from the checkpoint anyway, but
	// finishing keeps shutdown from wasting the work.
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("commit window through %s: %w", f, err)
	}
	visible := time.Now()
	// The window became closable when the last of its partitions' resolved
	// messages arrived.
	var closedAt time.Time
	for _, st := range owned {
		if st.applied.Less(f) {
			st.applied = f
		}
		if st.resolvedAt.After(closedAt) {
			closedAt = st.resolvedAt
		}
	}
	if !closedAt.IsZero() {
		p.latency.add(visible.Sub(closedAt))
	}
	if err := p.cfg.Buffer.Trim(ctx, parts, f); err != nil {
		// The window is applied; a failed trim only leaves events that the
		// next window re-applies idempotently. Surface it all the same.
		return fmt.Errorf("trim buffer through %s: %w", f, err)
	}
	p.commitOffsets(ctx, cps)
	p.stats.rowsApplied.Add(int64(rows))
	p.stats.windows.Add(1)
	p.stats.frontier.Store(&f)
	p.stats.lastFlush.Store(int64(time.Since(start)))
	if lat := p.latency.last(); lat > 0 {
		p.stats.lastVisible.Store(int64(lat))
	}
	p.log.Debug("window applied", zap.Stringer("through", f), zap.Int("rows", rows),
		zap.Int("partitions", len(parts)), zap.Duration("took", time.Since(start)))
	return nil
}

// writeWindow streams the window from the buffer into tx. Without a
// changelog only each key's newest version matters: a first pass over the
// window finds it, and older versions are skipped before they are decoded.
// Both passes read forward: Badger's reverse iteration would walk every
// tombstone the earlier windows' trims left below the window.
func (p *Processor) writeWindow(ctx context.Context, tx sinks.Tx, parts []buffer.Partition, f schemas.HLC) (int, error) {
	w := &windowWriter{ctx: ctx, tx: tx, batch: p.cfg.FlushBatch, pending: make(map[string]*pendingTable)}
	var newest map[string]schemas.HLC
	var keyBuf []byte
	identity := func(ev buffer.Event) []byte {
		keyBuf = append(append(append(keyBuf[:0], ev.Table...), 0), ev.Key...)
		return keyBuf
	}
	if !p.cfg.Changelog {
		newest = make(map[string]schemas.HLC)
		if err := p.cfg.Buffer.Scan(ctx, parts, f, buffer.ScanOptions{}, func(_ buffer.Partition, ev buffer.Event) error {
			newest[string(identity(ev))] = ev.Updated // ascending: the last one wins
			return nil
		}); err != nil {
			return 0, fmt.Errorf("index window through %s: %w", f, err)
		}
	}
	err := p.cfg.Buffer.Scan(ctx, parts, f, buffer.ScanOptions{}, func(bp buffer.Partition, ev buffer.Event) error {
		if newest != nil && newest[string(identity(ev))] != ev.Updated {
			return nil
		}
		row, err := p.cfg.Decoder.DecodeRow(ctx, ev.Key, ev.Value)
		if err != nil {
			return locate(err, bp, ev.Offset)
		}
		return w.add(row)
	})
	if err == nil {
		err = w.flushAll()
	}
	if err != nil {
		return 0, fmt.Errorf("write window through %s: %w", f, err)
	}
	return w.rows, nil
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
type windowWriter struct {
	ctx     context.Context
	tx      sinks.Tx
	batch   int
	pending map[string]*pendingTable
	rows    int
}

type pendingTable struct {
	table   *schemas.Table
	changes []sinks.Change
}

func (w *windowWriter) add(row schemas.Row) error {
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
	if len(pt.changes) >= w.batch {
		return w.flush(pt)
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
	p.cl.CommitOffsets(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
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
