package processor

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// scanFeed is an initial scan of n rows of t at t1.
func scanFeed(n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Key: keyOfT(int64(i)), Value: valueOfT(int64(i), fmt.Sprintf("row-%04d", i), t1)}
	}
	return recs
}

// budgetedRig is a rig whose buffer has a disk budget of what feed takes
// buffered: a group of the whole feed is worth applying early, and is
// applied in transactions of an eighth of it (earlyChunkShare).
func budgetedRig(t *testing.T, feed func() []*kgo.Record) *rig {
	t.Helper()
	probe := newRig(t, OnErrorFail)
	if err := probe.ingest(t, feed()...); err != nil {
		t.Fatal(err)
	}
	budget := probe.buf.Usage().Bytes
	r := newRig(t, OnErrorFail)
	buf, err := buffer.Open(buffer.Options{InMemory: true, DiskBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	r.buf, r.p.cfg.Buffer = buf, buf
	if err := r.ingest(t, feed()...); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestEarlyGroupIsAppliedInChunks: a group applied early is written in
// several transactions, each bounded (earlyChunkBytes) and committed
// before the next begins, with no checkpoint; a failure after some of
// them leaves the whole group buffered, and applying it again gives the
// same mirror (the chunks committed before are applied again without
// effect).
func TestEarlyGroupIsAppliedInChunks(t *testing.T) {
	const n = 400
	r := budgetedRig(t, func() []*kgo.Record { return scanFeed(n) })
	held := []sinks.Checkpoint{{Group: "g", Topic: r.part.Topic, Partition: r.part.Partition}}
	parts := []buffer.Partition{r.part}
	count := func() int {
		got := r.query(t, `SELECT CAST(count(*) AS VARCHAR) FROM t`)
		c, _ := strconv.Atoi(got[0][0])
		return c
	}

	// 1. Cancelled at the second transaction's commit: the first is in
	// the mirror, the group is still buffered whole.
	ctx, cancel := context.WithCancel(context.Background())
	commits := 0
	var sizes []int
	r.p.cfg.WindowHook = func(s WindowStage, at hlc.Timestamp) {
		switch s {
		case WindowCommit:
			if commits++; commits == 2 {
				cancel()
			}
		case WindowCommitted:
			if at != t1 {
				t.Errorf("a transaction of the group through %s, want its HLC %s", at, t1)
			}
			sizes = append(sizes, count())
		}
	}
	res := r.p.applyEarly(ctx, r.buf.TakeGroup(parts, t1), held)
	if !errors.Is(res.err, context.Canceled) {
		t.Fatalf("group cancelled at its second commit: %+v, want context.Canceled", res)
	}
	first := count()
	if len(sizes) != 1 || first == 0 || first >= n {
		t.Fatalf("after a cancel at the second commit: %d transactions committed (mirror sizes %v), mirror %d rows; want one with some of the %d rows", len(sizes), sizes, first, n)
	}
	if st, _ := r.state(t); st.Events != n {
		t.Errorf("a group that failed half-way left the buffer: %d of its %d events buffered", st.Events, n)
	}

	// 2. Applied again, to the end: several transactions, none above the
	// chunk size, the mirror holds the scan once, the buffer none of it,
	// and no checkpoint moved.
	commits, sizes = 0, nil
	res = r.p.applyEarly(context.Background(), r.buf.TakeGroup(parts, t1), held)
	if res.err != nil || res.rows != n {
		t.Fatalf("group applied again: %d rows, %v; want %d", res.rows, res.err, n)
	}
	chunk := r.p.earlyChunkBytes()
	if chunk != r.buf.Budget()/earlyChunkShare {
		t.Errorf("chunk size %d, want an eighth of the %d-byte budget", chunk, r.buf.Budget())
	}
	if res.txs < 4 || len(sizes) != res.txs {
		t.Errorf("the group took %d transactions (hook saw %d), want at least 4 of at most %d bytes each", res.txs, len(sizes), chunk)
	}
	// Every transaction adds at most a chunk's rows beyond the first
	// (the rows of the first are there already: applied again).
	prev := first
	for _, s := range sizes {
		if s-prev > n/2 {
			t.Errorf("one transaction added %d rows of %d: not bounded by the chunk size (mirror sizes %v)", s-prev, n, sizes)
		}
		prev = s
	}
	want := [][]string{{strconv.Itoa(n), strconv.Itoa(n), "0", strconv.Itoa(n - 1)}}
	if got := r.query(t, `SELECT CAST(count(*) AS VARCHAR), CAST(count(DISTINCT id) AS VARCHAR), CAST(min(id) AS VARCHAR), CAST(max(id) AS VARCHAR) FROM t WHERE _hw_updated = `+t1.String()); !reflect.DeepEqual(got, want) {
		t.Errorf("mirror after the group: %v, want %v", got, want)
	}
	if got := r.query(t, `SELECT CAST(count(*) AS VARCHAR) FROM highwater_checkpoints`); !reflect.DeepEqual(got, [][]string{{"0"}}) {
		t.Errorf("a group applied early wrote checkpoints: %v", got)
	}
	if st, _ := r.state(t); st.Events != 0 || !st.Base.IsZero() {
		t.Errorf("buffer after the group: %+v, want it empty and Base unmoved", st)
	}
}

// TestWindowAppliesItsScanGroupInChunksFirst: when the scan's resolved
// timestamp closes a window that holds the rest of the scan (a group
// worth applying early), the member applies that group early, in several
// transactions without a checkpoint, and then the window with the rest in
// one transaction that moves the checkpoint.
func TestWindowAppliesItsScanGroupInChunksFirst(t *testing.T) {
	const n = 400
	t3 := hlc.Timestamp{WallTime: t2.WallTime + 1e9}
	feed := func() []*kgo.Record {
		recs := scanFeed(n)
		return append(recs,
			&kgo.Record{Key: keyOfT(7), Value: valueOfT(7, "updated", t2)},
			&kgo.Record{Value: resolvedOf(t3, idResolved)})
	}
	r := budgetedRig(t, feed)
	ctx := context.Background()
	var stages []string
	r.p.cfg.WindowHook = func(s WindowStage, at hlc.Timestamp) {
		if s == WindowCommitted {
			cps := r.query(t, `SELECT CAST(count(*) AS VARCHAR) FROM highwater_checkpoints`)[0][0]
			stages = append(stages, at.String()+" checkpoints "+cps)
		}
	}

	if err := r.p.maybeFlush(ctx); err != nil {
		t.Fatal(err)
	}
	job := r.p.inflight
	if job == nil || job.early == nil || !job.early.window || job.f != t1 {
		t.Fatalf("the window through %s started as %+v; want the scan's group at %s applied early first", t3, job, t1)
	}
	if err := r.p.reapFlush(ctx, true, false); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.state(t); st.Events != 1 || !st.Base.IsZero() {
		t.Errorf("buffer after the scan's group: %+v, want only the update left and Base unmoved", st)
	}
	groupTxs := len(stages)
	if groupTxs < 4 {
		t.Errorf("the scan's group took %d transactions (%v), want several", groupTxs, stages)
	}
	for _, s := range stages {
		if s != t1.String()+" checkpoints 0" {
			t.Errorf("a transaction of the group: %s, want at %s with no checkpoint", s, t1)
		}
	}

	// The window follows, with the rest, and moves the checkpoint.
	if err := r.p.maybeFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if job := r.p.inflight; job == nil || job.early != nil || job.f != t3 {
		t.Fatalf("after the group, the member started %+v; want the window through %s", job, t3)
	}
	if err := r.p.reapFlush(ctx, true, false); err != nil {
		t.Fatal(err)
	}
	if len(stages) != groupTxs+1 || stages[groupTxs] != t3.String()+" checkpoints 1" {
		t.Errorf("transactions: %v; want the group's, then one for the window through %s with its checkpoint", stages, t3)
	}
	want := [][]string{{strconv.Itoa(n), strconv.Itoa(n - 1), "1"}}
	if got := r.query(t, `SELECT CAST(count(*) AS VARCHAR), CAST(count(*) FILTER (WHERE _hw_updated = `+t1.String()+`) AS VARCHAR),
		CAST(count(*) FILTER (WHERE id = 7 AND name = 'updated' AND _hw_updated = `+t2.String()+`) AS VARCHAR) FROM t`); !reflect.DeepEqual(got, want) {
		t.Errorf("mirror after the window: %v, want %v (the scan, key 7 updated)", got, want)
	}
	if got := r.query(t, `SELECT CAST(resolved AS VARCHAR) FROM highwater_checkpoints`); !reflect.DeepEqual(got, [][]string{{t3.String()}}) {
		t.Errorf("checkpoint after the window = %v, want %s", got, t3)
	}
}
