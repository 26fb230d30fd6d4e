package simulator

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
)

// send hands m to the producer, and again with DuplicateProb.
func (s *Sim) send(m *message) {
	n := 1
	if s.opts.DuplicateProb > 0 && s.dupRng.Float64() < s.opts.DuplicateProb {
		n = 2
	}
	key := m.rs.kb
	if m.key != nil {
		key = m.key // key_column
	}
	for ; n > 0; n-- {
		s.cl.Produce(s.ctx, &kgo.Record{Topic: m.t.topic, Key: key, Value: m.value, Headers: m.headers}, s.promise)
		s.produced++
	}
	if m.rs.sentTS.Less(m.ts) {
		m.rs.sentTS = m.ts
	}
}

// sendPending sends the queued rows in a uniformly random interleaving that
// keeps every key's order.
func (s *Sim) sendPending() {
	if len(s.pending) == 0 {
		return
	}
	groups := map[*rowState]int{}
	var queues [][]*message
	slots := make([]int, len(s.pending))
	for i, m := range s.pending {
		g, ok := groups[m.rs]
		if !ok {
			g = len(queues)
			groups[m.rs] = g
			queues = append(queues, nil)
		}
		queues[g] = append(queues[g], m)
		slots[i] = g
	}
	s.rng.Shuffle(len(slots), func(i, j int) { slots[i], slots[j] = slots[j], slots[i] })
	next := make([]int, len(queues))
	for _, g := range slots {
		s.send(queues[g][next[g]])
		next[g]++
	}
	s.pending = s.pending[:0]
}

// Restart simulates the changefeed restarting from checkpoint from: rows
// that Reorder holds back until the next resolved are lost with the old run
// and sent by the new one, and every version with updated > from is sent
// again in per-key order, each already-sent one skipped with probability
// gapProb (the "gaps" CockroachDB documents for duplicates). Re-sent versions may be older than resolved
// messages already sent, which the changefeed guarantees allow for
// previously seen rows.
func (s *Sim) Restart(ctx context.Context, from hlc.Timestamp, gapProb float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return err
	}
	if gapProb < 0 || gapProb > 1 {
		return fmt.Errorf("simulator: gapProb %v not in [0,1]", gapProb)
	}
	// Committed rows reach Kafka before the crash, except those Reorder
	// holds back until the next resolved: those are lost with the old run
	// (and sent by the new one). Deciding this by commit and not by timing
	// keeps the feed deterministic.
	if err := s.sendAll(); err != nil {
		return err
	}
	s.pending = s.pending[:0]
	type ref struct {
		t  *table
		rs *rowState
		i  int
		ts hlc.Timestamp
	}
	var refs []ref
	for _, t := range s.tables {
		for _, rs := range t.order {
			for i, v := range rs.hist {
				if v.flags&flagEmitted == 0 {
					continue
				}
				sent := !rs.sentTS.Less(v.ts)
				if sent && (!from.Less(v.ts) || s.rng.Float64() < gapProb) {
					continue
				}
				refs = append(refs, ref{t, rs, i, v.ts})
			}
		}
	}
	slices.SortStableFunc(refs, func(a, b ref) int { return a.ts.Compare(b.ts) })
	s.log.Info("changefeed restart", zap.Stringer("from", from), zap.Int("reemitted", len(refs)))
	for _, r := range refs {
		if err := s.emit(ctx, r.t, r.rs, r.i); err != nil {
			return err
		}
	}
	return nil
}
