package simulator

import (
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/hlc"
)

// encBatch is how many committed versions wait before they are encoded
// together. Encoding a batch is spread over several goroutines; sending
// stays in commit order on the caller's goroutine, so the feed (and every
// random fault decision) is the same as with sequential encoding.
const encBatch = 1024

// encJob is a committed row version waiting to be encoded and sent. It holds
// copies of everything the encoder reads, so workers touch no shared state
// but immutable schemas and the goavro codec (safe for concurrent use).
type encJob struct {
	t          *table
	rs         *rowState
	v          rowVersion
	prev       []any // before image (diff), nil for none
	prevSchema *tableSchema
	op         string // envelope = enriched: "c", "u" or "d"
	vc         *valueCodec
	out        []byte
	headers    []kgo.RecordHeader // headers_json_column_name
	key        []byte             // key_column
	err        error
}

// encWorker holds one goroutine's reusable goavro natives.
type encWorker struct {
	scratch  map[*valueCodec]*codecScratch
	lastTS   hlc.Timestamp
	lastText string
}

// codecScratch is a reusable native envelope for one value codec: goavro
// only reads natives, so reusing the maps saves most allocations.
type codecScratch struct {
	env, beforeWrap, afterWrap map[string]any
	updated, mvcc              map[string]any
	beforeRow, afterRow        *rowScratch
}

func newCodecScratch(vc *valueCodec) *codecScratch {
	cs := &codecScratch{env: map[string]any{}, updated: map[string]any{"string": nil}, mvcc: map[string]any{"string": nil},
		beforeRow: newRowScratch(vc.before, allCols(vc.before)), afterRow: newRowScratch(vc.after, allCols(vc.after))}
	cs.beforeWrap = map[string]any{vc.beforeName: cs.beforeRow.row}
	cs.afterWrap = map[string]any{vc.afterName: cs.afterRow.row}
	return cs
}

func (w *encWorker) hlcText(ts hlc.Timestamp) string {
	if ts != w.lastTS || w.lastText == "" {
		w.lastTS, w.lastText = ts, ts.String()
	}
	return w.lastText
}

// encode fills job.out with the Confluent-framed envelope.
func (w *encWorker) encode(diff, mvcc bool, job *encJob) {
	vc := job.vc
	cs := w.scratch[vc]
	if cs == nil {
		cs = newCodecScratch(vc)
		w.scratch[vc] = cs
	}
	native := cs.env
	if diff {
		if job.prev == nil {
			native["before"] = nil
		} else {
			cs.beforeRow.fill(vc.before, allCols(vc.before), project(job.prevSchema, job.prev, vc.before), false)
			native["before"] = cs.beforeWrap
		}
	}
	if job.v.vals == nil {
		native["after"] = nil
	} else {
		vals := job.v.vals
		if vc.full != vc.after {
			vals = project(vc.full, vals, vc.after) // headers.go
		}
		if vc.headers >= 0 {
			job.headers = headersOf(job.v.vals[vc.headers])
		}
		cs.afterRow.fill(vc.after, allCols(vc.after), vals, false)
		native["after"] = cs.afterWrap
	}
	switch {
	case vc.enriched != nil:
		vc.enriched.fill(w, native, mvcc, job)
	default:
		cs.updated["string"] = w.hlcText(job.v.ts)
		native["updated"] = cs.updated
		if mvcc {
			cs.mvcc["string"] = job.v.mvcc.String()
			native["mvcc_timestamp"] = cs.mvcc
		}
	}
	buf := make([]byte, 5, 128)
	copy(buf, vc.header[:])
	out, err := vc.codec.BinaryFromNative(buf, native)
	if err != nil {
		job.err = fmt.Errorf("simulator: table %q: encode value: %w", job.t.name, err)
		return
	}
	job.out = out
}

// drainEnc starts encoding the queued versions on the worker goroutines
// and, first, sends the previous batch, whose encoding ran while the caller
// went on committing. Sending happens on the caller's goroutine in commit
// order, so the feed does not depend on scheduling.
func (s *Sim) drainEnc() error {
	if err := s.finishEnc(); err != nil {
		return err
	}
	if len(s.encQ) == 0 {
		return nil
	}
	jobs := s.encQ
	s.encQ, s.encSpare = s.encSpare[:0], nil
	diff, mvcc := s.opts.Diff, s.opts.MVCCTimestamp
	n := len(s.workers)
	if len(jobs) < 128 {
		n = 1
	}
	wg := &sync.WaitGroup{}
	chunk := (len(jobs) + n - 1) / n
	for k := 0; k < n && k*chunk < len(jobs); k++ {
		part := jobs[k*chunk : min(len(jobs), (k+1)*chunk)]
		wg.Add(1)
		go func(w *encWorker) {
			defer wg.Done()
			for i := range part {
				w.encode(diff, mvcc, &part[i])
			}
		}(s.workers[k])
	}
	s.inflight, s.inflightWG = jobs, wg
	return nil
}

// finishEnc waits for the batch being encoded and sends it (or queues it
// for Reorder).
func (s *Sim) finishEnc() error {
	jobs := s.waitEnc()
	if jobs == nil {
		return nil
	}
	defer s.recycle(jobs)
	for i := range jobs {
		j := &jobs[i]
		if j.err != nil {
			return j.err
		}
		m := &message{t: j.t, rs: j.rs, ts: j.v.ts, value: j.out, headers: j.headers, key: j.key}
		if s.opts.Reorder {
			s.pending = append(s.pending, m)
		} else {
			s.send(m)
		}
	}
	return nil
}

// waitEnc waits for the batch being encoded and returns it.
func (s *Sim) waitEnc() []encJob {
	if s.inflight == nil {
		return nil
	}
	s.inflightWG.Wait()
	jobs := s.inflight
	s.inflight, s.inflightWG = nil, nil
	return jobs
}

func (s *Sim) recycle(jobs []encJob) {
	clear(jobs)
	s.encSpare = jobs[:0]
}

// sendAll encodes and sends everything queued.
func (s *Sim) sendAll() error {
	if err := s.drainEnc(); err != nil {
		return err
	}
	return s.finishEnc()
}
