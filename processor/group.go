package processor

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// onAssigned registers new partitions; they are not ingested until
// adjustOffsets has positioned them at their warehouse checkpoint.
func (p *Processor) onAssigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waitFlush(ctx)
	for t, ps := range assigned {
		for _, n := range ps {
			bp := buffer.Partition{Topic: t, Partition: n}
			if p.parts[bp] == nil {
				p.parts[bp] = &partState{p: bp}
			}
		}
	}
	p.stats.partitions.Store(int64(len(p.parts)))
	p.rebalanced(assigned)
	p.publishPartitions()
	p.log.Info("partitions assigned", zap.Any("partitions", assigned))
}

// adjustOffsets replaces Kafka's committed offsets, which are advisory, with
// the warehouse checkpoints. A partition whose local buffer was built on top
// of exactly that checkpoint resumes after what the buffer already holds;
// any other buffer content is stale (another member may have applied more)
// and is dropped.
func (p *Processor) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	cps, err := p.checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	starts, err := p.logStarts(ctx, offsets)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waitFlush(ctx)
	for t, ps := range offsets {
		for n := range ps {
			bp := buffer.Partition{Topic: t, Partition: n}
			st := p.parts[bp]
			if st == nil {
				st = &partState{p: bp}
				p.parts[bp] = st
			}
			cp, hasCP := cps[bp]
			// A zero checkpoint only registers the partition for the
			// watermark (registerPartitions): nothing is applied yet.
			hasCP = hasCP && !cp.Resolved.IsZero()
			st.applied, st.resolved, st.appliedNext = cp.Resolved, cp.Resolved, cp.NextOffset
			st.marks = st.marks[:0]
			delete(p.seeks, bp) // the checkpoint just read wins
			resume, at := kgo.NewOffset().AtStart(), int64(0)
			if hasCP {
				resume, at = kgo.NewOffset().At(cp.NextOffset), cp.NextOffset
			}
			bs, known, err := p.cfg.Buffer.State(bp)
			if err != nil {
				return nil, fmt.Errorf("buffer state %s[%d]: %w", t, n, err)
			}
			if known && bs.Base == cp.Resolved && (!hasCP || bs.Consumed >= cp.NextOffset) {
				resume, at = kgo.NewOffset().At(bs.Consumed), bs.Consumed
				if st.resolved.Less(bs.Resolved) {
					st.resolved = bs.Resolved
				}
			} else {
				next := int64(0)
				if hasCP {
					next = cp.NextOffset
				}
				if err := p.cfg.Buffer.Reset(bp, cp.Resolved, next); err != nil {
					return nil, fmt.Errorf("buffer reset %s[%d]: %w", t, n, err)
				}
			}
			ps[n] = resume.WithEpoch(-1)
			// franz-go would quietly resume below the log start at the
			// log start: a retention gap stops the member unless allowed.
			if st.expect, err = p.retentionGap(bp, cp, at, starts[bp]); err != nil {
				if p.flushErr == nil {
					p.flushErr = err
				}
				continue
			}
			if st.expect != at {
				// An accepted gap: say where, rather than rely on the
				// client's reset.
				ps[n] = kgo.NewOffset().At(st.expect).WithEpoch(-1)
			}
			st.ready = true
			p.log.Info("partition resumes",
				zap.String("topic", t), zap.Int32("partition", n),
				zap.Stringer("applied", cp.Resolved), zap.Stringer("offset", resume),
				zap.Bool("buffer_reused", known && bs.Base == cp.Resolved))
		}
	}
	p.stats.partitions.Store(int64(len(p.parts)))
	p.publishPartitions()
	return offsets, nil
}

// checkpoints reads the group's warehouse checkpoints, retrying while the
// warehouse is unreachable: a member cannot consume without them.
func (p *Processor) checkpoints(ctx context.Context) (map[buffer.Partition]sinks.Checkpoint, error) {
	backoff := 100 * time.Millisecond
	for {
		cps, err := p.cfg.Writer.Checkpoints(ctx, p.cfg.Group)
		if err == nil {
			m := make(map[buffer.Partition]sinks.Checkpoint, len(cps))
			for _, cp := range cps {
				m[buffer.Partition{Topic: cp.Topic, Partition: cp.Partition}] = cp
			}
			return m, nil
		}
		p.log.Warn("reading warehouse checkpoints failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read warehouse checkpoints: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// registerPartitions writes a zero checkpoint for every partition of the
// feed's topics that has none yet, so that the warehouse watermark (min
// resolved over the checkpoints) stays back until every partition, owned
// by a running member or not, has been applied once. The writers never move
// a checkpoint back, so a member applying a partition meanwhile is safe.
func (p *Processor) registerPartitions(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := p.registerMissing(ctx)
		if err == nil {
			return nil
		}
		p.log.Warn("registering the feed's partitions in the warehouse failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return fmt.Errorf("register the feed's partitions in the warehouse: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (p *Processor) registerMissing(ctx context.Context) error {
	cps, err := p.checkpoints(ctx)
	if err != nil {
		return err
	}
	var missing []sinks.Checkpoint
	for t, n := range p.numPartitions {
		for i := int32(0); i < n; i++ {
			if _, ok := cps[buffer.Partition{Topic: t, Partition: i}]; !ok {
				missing = append(missing, sinks.Checkpoint{Group: p.cfg.Group, Topic: t, Partition: i})
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	tx, err := p.cfg.Writer.Begin(ctx)
	if err != nil {
		return err
	}
	if err := tx.Checkpoint(ctx, missing); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	p.log.Info("registered the feed's partitions in the warehouse", zap.Int("partitions", len(missing)))
	return nil
}

// onRevoked forgets partitions that moved to another member. Their buffered
// events are dropped unless the member is shutting down, in which case they
// are kept: if the partition comes back unchanged (same checkpoint) the
// buffer saves re-reading it.
func (p *Processor) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	p.forget(ctx, revoked, "revoked")
}

// onLost forgets partitions the member lost without a revocation: its group
// session expired (a stall or a network cut longer than the session
// timeout), so another member may own them already. The window in flight
// is cancelled rather than finished; a window that still reaches Commit is
// fenced (fence.go). When onLost returns, no window of this member can
// commit for the lost partitions.
func (p *Processor) onLost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	p.forget(ctx, lost, "lost")
}

func (p *Processor) forget(ctx context.Context, parts map[string][]int32, why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// The window in flight may cover these partitions: a revoked one is
	// still this member's until the callback returns, so the window may
	// finish; a lost one may be another's already.
	if why == "lost" {
		p.cancelLost(parts)
	}
	p.waitFlush(ctx)
	for t, ps := range parts {
		for _, n := range ps {
			bp := buffer.Partition{Topic: t, Partition: n}
			delete(p.parts, bp)
			delete(p.seeks, bp)
			if !p.closing {
				if err := p.cfg.Buffer.Drop(bp); err != nil {
					p.log.Warn("dropping buffered events of a revoked partition", zap.String("topic", t), zap.Int32("partition", n), zap.Error(err))
				}
			}
		}
	}
	p.stats.partitions.Store(int64(len(p.parts)))
	p.rebalanced(parts)
	p.publishPartitions()
	if len(parts) > 0 {
		p.log.Info("partitions "+why, zap.Any("partitions", parts))
	}
}

// frontier is the min latest resolved over the owned partitions, and the min
// applied frontier; ok is false while some partition has no resolved yet.
func frontier(owned []*partState) (resolved, applied hlc.Timestamp, ok bool) {
	if len(owned) == 0 {
		return hlc.Timestamp{}, hlc.Timestamp{}, false
	}
	resolved, applied = owned[0].resolved, owned[0].applied
	for _, st := range owned[1:] {
		if st.resolved.Less(resolved) {
			resolved = st.resolved
		}
		if st.applied.Less(applied) {
			applied = st.applied
		}
	}
	return resolved, applied, !resolved.IsZero()
}

// partState is what the member knows about one owned partition.
type partState struct {
	p       buffer.Partition
	applied hlc.Timestamp // warehouse checkpoint
	// appliedNext is the warehouse checkpoint's NextOffset: with applied,
	// the checkpoint a window is built on (and fenced with).
	appliedNext int64
	resolved    hlc.Timestamp // latest resolved seen
	// marks are the resolved timestamps seen above applied, with when each
	// was ingested: a window through F became closable on this partition
	// when the first resolved >= F arrived, which on a backlog is long
	// before the latest one (the resolved-to-visible latency).
	marks []resolvedMark
	ready bool // offsets adjusted: records may be ingested
	// nextOffset and highWatermark are from the last fetch with records,
	// for the consumer lag (PartitionStats).
	nextOffset, highWatermark int64
	// expect is the offset the partition's next record should have, for
	// catching records deleted by retention unread (fetchGap).
	expect int64
}

// resolvedMark is a resolved timestamp and when it was ingested.
type resolvedMark struct {
	h  hlc.Timestamp
	at time.Time
}

// maxMarks bounds a partition's marks while no window is applied (say, the
// warehouse is down for hours): the oldest half goes, which only makes the
// latency of the first window after the outage read shorter.
const maxMarks = 1024

// mark records that the partition's resolved timestamp reached h at at.
func (st *partState) mark(h hlc.Timestamp, at time.Time) {
	if len(st.marks) >= maxMarks {
		st.marks = append(st.marks[:0], st.marks[maxMarks/2:]...)
	}
	st.marks = append(st.marks, resolvedMark{h, at})
}

// closedAt returns when the partition's resolved timestamp first reached f
// (zero if unknown) and forgets the marks at or below f.
func (st *partState) closedAt(f hlc.Timestamp) time.Time {
	var at time.Time
	i := 0
	for ; i < len(st.marks) && !f.Less(st.marks[i].h); i++ {
		if at.IsZero() && !st.marks[i].h.Less(f) {
			at = st.marks[i].at
		}
	}
	if at.IsZero() && i < len(st.marks) {
		at = st.marks[i].at // the first resolved above f closed it
	}
	st.marks = append(st.marks[:0], st.marks[i:]...)
	return at
}

// owned returns the owned, ready partitions in a stable order.
func (p *Processor) owned() []*partState {
	out := make([]*partState, 0, len(p.parts))
	for _, st := range p.parts {
		if st.ready {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].p.Topic != out[j].p.Topic {
			return out[i].p.Topic < out[j].p.Topic
		}
		return out[i].p.Partition < out[j].p.Partition
	})
	return out
}
