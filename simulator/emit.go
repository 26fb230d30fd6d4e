package simulator

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/hlc"
)

// message is an encoded row message waiting to be produced.
type message struct {
	t       *table
	rs      *rowState
	ts      hlc.Timestamp
	value   []byte
	headers []kgo.RecordHeader
	key     []byte // key_column's key; nil: the primary key (rs.kb)
}

// emit queues version i of rs for encoding and sending (see encode.go).
func (s *Sim) emit(ctx context.Context, t *table, rs *rowState, i int) error {
	v := rs.hist[i]
	key, err := t.customKeyOf(t.versions[v.schema], v.vals) // keycolumn.go
	if err != nil {
		return fmt.Errorf("simulator: table %q: %w", t.name, err)
	}
	job := encJob{t: t, rs: rs, v: v, key: key, op: enrichedOp(rs, i)}
	after := t.versions[v.schema]
	before := after
	if s.opts.Diff {
		// The before record is built from the descriptor valid just before
		// the row's timestamp (cdcevent decodes the previous row there).
		before = t.schemaAt(prevHLC(v.ts))
		if before.version > after.version {
			before = after
		}
		if i > 0 && v.flags&flagScan == 0 && rs.hist[i-1].vals != nil {
			p := rs.hist[i-1]
			job.prev, job.prevSchema = p.vals, t.versions[p.schema]
		}
	}
	vc, err := s.valueCodec(ctx, t, before.version, after.version)
	if err != nil {
		return fmt.Errorf("simulator: table %q: %w", t.name, err)
	}
	job.vc = vc
	s.encQ = append(s.encQ, job)
	if len(s.encQ) >= encBatch {
		return s.drainEnc()
	}
	return nil
}

// allCols is 0..len(sch.cols)-1, cached per schema.
func allCols(sch *tableSchema) []int {
	if len(sch.all) != len(sch.cols) {
		sch.all = make([]int, len(sch.cols))
		for i := range sch.all {
			sch.all[i] = i
		}
	}
	return sch.all
}

// project maps vals of schema from onto schema to by column name.
func project(from *tableSchema, vals []any, to *tableSchema) []any {
	if from == to {
		return vals
	}
	out := make([]any, len(to.cols))
	for i, c := range to.cols {
		if j, ok := from.byName[c.name]; ok {
			out[i] = vals[j]
		}
	}
	return out
}

// Resolve sends every queued row, waits until all rows are acknowledged, and
// then sends a resolved message at a new HLC (later than every row) to every
// partition of every topic, as CockroachDB's v2 Kafka sink does
// (FlushResolvedPayload, §4.1).
func (s *Sim) Resolve(ctx context.Context) (hlc.Timestamp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return hlc.Timestamp{}, err
	}
	ts := s.tick()
	if err := s.flush(ctx); err != nil {
		return hlc.Timestamp{}, err
	}
	var v2 []byte
	if !s.opts.ResolvedV1 {
		// The v2 sink encodes one payload for the empty topic and sends it
		// to every topic.
		b, err := s.resolvedPayload(ctx, "", ts)
		if err != nil {
			return hlc.Timestamp{}, fmt.Errorf("simulator: %w", err)
		}
		v2 = b
	}
	for _, t := range s.tables {
		payload := v2
		if s.opts.ResolvedV1 {
			b, err := s.resolvedPayload(ctx, t.topic, ts)
			if err != nil {
				return hlc.Timestamp{}, fmt.Errorf("simulator: %w", err)
			}
			payload = b
		}
		for p := 0; p < t.partitions; p++ {
			s.cl.Produce(s.ctx, &kgo.Record{Topic: t.topic, Partition: int32(p), Value: payload}, s.promise)
		}
	}
	if err := s.flush(ctx); err != nil {
		return hlc.Timestamp{}, err
	}
	s.lastResolved = ts
	return ts, nil
}

func (s *Sim) flush(ctx context.Context) error {
	if err := s.sendAll(); err != nil {
		return err
	}
	s.sendPending()
	if err := s.cl.Flush(ctx); err != nil {
		return fmt.Errorf("simulator: flush: %w", err)
	}
	if err := s.producerErr(); err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	return nil
}

// Flush sends queued rows and waits until everything produced so far is
// acknowledged, without a resolved message.
func (s *Sim) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return err
	}
	return s.flush(ctx)
}

// InitialScan emits every existing row of every table with updated = the
// scan HLC and a null before, like a changefeed's initial scan;
// mvcc_timestamp is the row's own commit HLC.
func (s *Sim) InitialScan(ctx context.Context) (hlc.Timestamp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return hlc.Timestamp{}, err
	}
	ts := s.tick()
	type ref struct {
		t  *table
		rs *rowState
	}
	var refs []ref
	s.state.Lock()
	for _, t := range s.tables {
		for _, rs := range t.liveRows() {
			last := rs.hist[len(rs.hist)-1]
			rs.hist = append(rs.hist, rowVersion{ts: ts, mvcc: last.ts, vals: last.vals, schema: last.schema, flags: flagEmitted | flagScan})
			refs = append(refs, ref{t, rs})
		}
	}
	s.state.Unlock()
	for _, r := range refs {
		if err := s.emit(ctx, r.t, r.rs, len(r.rs.hist)-1); err != nil {
			return hlc.Timestamp{}, err
		}
	}
	return ts, nil
}

// prevHLC is hlc.Timestamp.Prev: the largest HLC before h.
func prevHLC(h hlc.Timestamp) hlc.Timestamp {
	if h.Logical > 0 {
		return hlc.Timestamp{WallTime: h.WallTime, Logical: h.Logical - 1}
	}
	return hlc.Timestamp{WallTime: h.WallTime - 1, Logical: 1<<31 - 1}
}
