package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/memsink"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// memRig is a processor on a real in-memory buffer and a fake registry,
// writing to memsink's fault-injecting warehouse, driven by calling ingest,
// maybeFlush and reapFlush directly (as the poll loop does) for one
// partition t[0].
type memRig struct {
	p    *Processor
	buf  *buffer.Store
	w    *memsink.Writer
	part buffer.Partition
	next int64 // the next Kafka offset ingested
}

func newMemRig(t *testing.T) *memRig {
	t.Helper()
	fake := srfake.New()
	t.Cleanup(fake.Close)
	for id, s := range map[int]string{idKeyT: keyT, idValueT: valT, idResolved: valResolved} {
		fake.SeedSchema(fmt.Sprintf("s%d-value", id), 1, id, sr.Schema{Schema: s, Type: sr.TypeAvro})
	}
	reg, err := schemas.NewRegistry(fake.URL())
	if err != nil {
		t.Fatal(err)
	}
	buf, err := buffer.Open(buffer.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	w := memsink.New()
	p, err := New(Config{
		Brokers: []string{"unused:9092"}, Topics: []string{"t"}, Group: "g",
		Decoder: schemas.NewDecoder(reg), Buffer: buf, Writer: w, Changelog: true,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &memRig{p: p, buf: buf, w: w, part: buffer.Partition{Topic: "t", Partition: 0}}
	p.parts[r.part] = &partState{p: r.part, ready: true}
	return r
}

// ingest feeds records at the rig's next offsets.
func (r *memRig) ingest(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	for _, rec := range recs {
		rec.Topic, rec.Partition, rec.Offset = r.part.Topic, r.part.Partition, r.next
		r.next++
	}
	fetches := kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: r.part.Topic, Partitions: []kgo.FetchPartition{{Partition: r.part.Partition, Records: recs}}}}}}
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	if err := r.p.ingest(context.Background(), fetches); err != nil {
		t.Fatal(err)
	}
}

// window starts the next window, as the poll loop does, and waits for it;
// it returns the error that would stop the feed.
func (r *memRig) window(t *testing.T) error {
	t.Helper()
	ctx := context.Background()
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	r.p.retryAt = time.Time{} // retry at once
	if err := r.p.maybeFlush(ctx); err != nil {
		return err
	}
	if r.p.inflight == nil {
		t.Fatal("no window started")
	}
	return r.p.reapFlush(ctx, true, true)
}

func (r *memRig) state() partState {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return *r.p.parts[r.part]
}

func row(id int64, name string, at hlc.Timestamp) *kgo.Record {
	return &kgo.Record{Key: keyOfT(id), Value: valueOfT(id, name, at)}
}

func resolved(at hlc.Timestamp) *kgo.Record { return &kgo.Record{Value: resolvedOf(at, idResolved)} }

var t3 = hlc.Timestamp{WallTime: 1700000002000000000}

// names returns the mirror of table t as id -> name.
func names(w *memsink.Writer) map[string]string {
	out := map[string]string{}
	for k, v := range w.Mirror("t") {
		out[k] = fmt.Sprint(v.Values[1])
	}
	return out
}

// TestWindowRetriedAfterAFailure makes each warehouse operation fail once:
// the window rolls back, nothing of it is visible, and its retry applies it
// whole, once.
func TestWindowRetriedAfterAFailure(t *testing.T) {
	for _, op := range []memsink.Op{memsink.OpBegin, memsink.OpFence, memsink.OpWrite, memsink.OpCheckpoint, memsink.OpCommit} {
		t.Run(string(op), func(t *testing.T) {
			r := newMemRig(t)
			r.ingest(t, row(1, "a", t1), row(2, "b", t1), resolved(t1))
			r.w.FailNext(op, errors.New("connection reset"))
			if err := r.window(t); err != nil {
				t.Fatalf("a failed window stopped the feed: %v", err)
			}
			if n := len(r.w.Commits()); n != 0 || r.p.attempt != 1 || r.state().applied != (hlc.Timestamp{}) {
				t.Fatalf("after the failure: %d commits, attempt %d, applied %s; want 0, 1, zero", n, r.p.attempt, r.state().applied)
			}
			if err := r.window(t); err != nil {
				t.Fatal(err)
			}
			commits := r.w.Commits()
			if len(commits) != 1 || commits[0].Changes != 2 || len(commits[0].Checkpoints) != 1 || commits[0].Checkpoints[0].Resolved != t1 {
				t.Fatalf("commits after the retry = %+v, want one window of 2 changes through %s", commits, t1)
			}
			if got := names(r.w); len(got) != 2 || got["1"] != "a" || got["2"] != "b" {
				t.Fatalf("mirror = %v", got)
			}
			if st := r.state(); st.applied != t1 || st.appliedNext != commits[0].Checkpoints[0].NextOffset || r.p.attempt != 0 {
				t.Fatalf("applied %s next %d attempt %d after the retry", st.applied, st.appliedNext, r.p.attempt)
			}
		})
	}
}

// TestLockTimeoutsDoNotCountAsFailures: a window that keeps waiting too
// long for a lock (another member's window, or a member frozen inside one
// until the server ends its session) is retried without counting against
// the attempts that stop the feed, however often.
func TestLockTimeoutsDoNotCountAsFailures(t *testing.T) {
	r := newMemRig(t)
	r.ingest(t, row(1, "a", t1), resolved(t1))
	for i := 0; i < 2*flushAttempts; i++ {
		r.w.FailNext(memsink.OpCommit, fmt.Errorf("commit: %w: canceling statement due to lock timeout", sinks.ErrLockTimeout))
		if err := r.window(t); err != nil {
			t.Fatalf("lock timeout %d stopped the feed: %v", i+1, err)
		}
		if r.p.attempt != 0 {
			t.Fatalf("lock timeout %d counted as attempt %d", i+1, r.p.attempt)
		}
	}
	if err := r.window(t); err != nil {
		t.Fatal(err)
	}
	if n := len(r.w.Commits()); n != 1 || r.state().applied != t1 {
		t.Fatalf("%d commits, applied %s after the lock was free", n, r.state().applied)
	}
	// Other failures still count.
	r.ingest(t, row(2, "b", t2), resolved(t2))
	r.w.FailNext(memsink.OpCommit, errors.New("connection reset"))
	if err := r.window(t); err != nil || r.p.attempt != 1 {
		t.Fatalf("a failed commit: err %v, attempt %d; want retried and counted", err, r.p.attempt)
	}
}

// TestCommitReportedFailedThatCommitted: the warehouse commits a window and
// then reports the commit failed (the connection broke). The retry, a
// larger window by then, is fenced by the checkpoint the member wrote
// itself: it must take the first window as applied (not re-apply it, not
// take it for another member's work and reset) and go on from it.
func TestCommitReportedFailedThatCommitted(t *testing.T) {
	r := newMemRig(t)
	r.ingest(t, row(1, "a", t1), row(2, "b", t1), resolved(t1))
	r.w.CommitThenFail(errors.New("unexpected EOF"))
	if err := r.window(t); err != nil {
		t.Fatal(err)
	}
	if n := len(r.w.Commits()); n != 1 || r.p.attempt != 1 || r.p.uncertain == nil {
		t.Fatalf("%d commits, attempt %d, uncertain %v; want the commit applied but reported failed", n, r.p.attempt, r.p.uncertain)
	}
	// More arrives before the retry: it covers t1 and t2.
	r.ingest(t, row(1, "a2", t2), row(3, "c", t2), resolved(t2))
	if err := r.window(t); err != nil {
		t.Fatal(err)
	}
	st := r.state()
	if st.applied != t1 || r.p.Stats().Fenced != 0 || r.p.uncertain != nil || r.p.attempt != 0 || !st.ready {
		t.Fatalf("after the retry: applied %s, fenced %d, uncertain %v, attempt %d, ready %v; want the first window taken as applied",
			st.applied, r.p.Stats().Fenced, r.p.uncertain, r.p.attempt, st.ready)
	}
	if n := r.w.Calls(memsink.OpWrite); n != 1 {
		t.Fatalf("%d writes: the fenced retry wrote rows", n)
	}
	if len(r.p.seeks) != 0 {
		t.Fatalf("the member re-adjusted its own partition: seeks %v", r.p.seeks)
	}
	// The next window builds on t1 and holds only what came after it.
	if err := r.window(t); err != nil {
		t.Fatal(err)
	}
	commits := r.w.Commits()
	if len(commits) != 2 || commits[1].Changes != 2 || commits[1].Checkpoints[0].Resolved != t2 {
		t.Fatalf("commits = %+v, want a second window of the 2 changes through %s", commits, t2)
	}
	if got := names(r.w); len(got) != 3 || got["1"] != "a2" || got["3"] != "c" {
		t.Fatalf("mirror = %v", got)
	}
	if n := len(r.w.Changelog("t")); n != 4 {
		t.Fatalf("changelog holds %d versions, want 4", n)
	}
	if s := r.p.Stats(); s.Windows != 2 || s.RowsApplied != 4 {
		t.Fatalf("stats: %d windows, %d rows; want 2 and 4", s.Windows, s.RowsApplied)
	}
}

// TestFencedMemberResumesFromTheStoredCheckpoint: while this member held
// the partition's window, another member (which the group gave the
// partition to) applied it further. The window is fenced: it writes none
// of its stale rows, commits nothing, and the member re-adjusts the
// partition to the stored checkpoint (applied frontier, buffer, Kafka
// position) and goes on from there instead of exiting.
func TestFencedMemberResumesFromTheStoredCheckpoint(t *testing.T) {
	r := newMemRig(t)
	r.ingest(t, row(1, "stale", t1), row(2, "stale", t1), resolved(t1)) // offsets 0-2
	r.ingest(t, row(2, "deleted later", t2), resolved(t2))              // 3-4
	// The other member applied through t2 (deleting key 2 at t2 in its
	// own rows, say) and resumes at offset 5.
	stored := sinks.Checkpoint{Group: "g", Topic: "t", Partition: 0, Resolved: t2, NextOffset: 5}
	r.w.SetCheckpoint(stored)
	if err := r.window(t); err != nil {
		t.Fatalf("a fenced window stopped the feed: %v", err)
	}
	if n := len(r.w.Commits()); n != 0 {
		t.Fatalf("the fenced window committed %d transactions", n)
	}
	if n := r.w.Calls(memsink.OpWrite); n != 0 {
		t.Fatalf("the fenced window wrote %d batches of stale rows", n)
	}
	st := r.state()
	if st.applied != t2 || st.appliedNext != 5 || st.resolved != t2 || st.ready {
		t.Fatalf("partition after the fence: applied %s next %d resolved %s ready %v; want the stored checkpoint, not ready until it is re-positioned",
			st.applied, st.appliedNext, st.resolved, st.ready)
	}
	if bs, known, err := r.buf.State(r.part); err != nil || !known || bs.Base != t2 || bs.Consumed != 5 || bs.Events != 0 {
		t.Fatalf("buffer after the fence: %+v known %v err %v; want reset to the stored checkpoint", bs, known, err)
	}
	if s := r.p.Stats(); s.Fenced != 1 || r.p.attempt != 0 {
		t.Fatalf("fenced %d, attempt %d; want 1 and 0 (a fence is not a failure)", s.Fenced, r.p.attempt)
	}
	r.p.mu.Lock()
	seeks := r.p.takeSeeks()
	r.p.mu.Unlock()
	if got := seeks["t"][0]; len(seeks) != 1 || got.Offset != 5 {
		t.Fatalf("Kafka positions to set = %v, want t[0] at 5", seeks)
	}
	if !r.state().ready {
		t.Fatal("the partition is not ingested again once re-positioned")
	}
	// The member reads on from offset 5 and applies on top of t2.
	r.next = 5
	r.ingest(t, row(3, "c", t3), resolved(t3))
	if err := r.window(t); err != nil {
		t.Fatal(err)
	}
	commits := r.w.Commits()
	if len(commits) != 1 || commits[0].Changes != 1 || commits[0].Checkpoints[0].Resolved != t3 {
		t.Fatalf("commits = %+v, want one window of 1 change through %s", commits, t3)
	}
	if got := names(r.w); len(got) != 1 || got["3"] != "c" {
		t.Fatalf("mirror = %v: stale rows were written", got)
	}
}

// TestRebalanceDuringAFlush: a window is in flight when the group moves its
// partition. Revoked (a cooperative rebalance: the partition is still this
// member's until the callback returns), the window finishes and commits
// before onRevoked returns. Lost (the session expired: another member may
// own it already), the window is cancelled and nothing of it commits, then
// or later.
func TestRebalanceDuringAFlush(t *testing.T) {
	ctx := context.Background()
	lost := map[string][]int32{"t": {0}}
	start := func(t *testing.T, r *memRig) {
		t.Helper()
		r.ingest(t, row(1, "a", t1), resolved(t1))
		r.p.mu.Lock()
		err := r.p.maybeFlush(ctx)
		inflight := r.p.inflight != nil
		r.p.mu.Unlock()
		if err != nil || !inflight {
			t.Fatalf("no window in flight: %v", err)
		}
	}

	t.Run("revoked", func(t *testing.T) {
		r := newMemRig(t)
		entered, release := make(chan struct{}), make(chan struct{})
		r.w.SetHook(func(ctx context.Context, op memsink.Op) {
			if op == memsink.OpWrite {
				close(entered)
				<-release
			}
		})
		start(t, r)
		<-entered
		done := make(chan struct{})
		go func() {
			r.p.onRevoked(ctx, nil, lost)
			close(done)
		}()
		close(release)
		<-done
		if n := len(r.w.Commits()); n != 1 || r.p.Stats().Cancelled != 0 {
			t.Fatalf("%d commits, %d cancelled when onRevoked returned; want the window committed", n, r.p.Stats().Cancelled)
		}
		if len(r.p.parts) != 0 {
			t.Fatal("the revoked partition is still owned")
		}
	})

	t.Run("lost", func(t *testing.T) {
		r := newMemRig(t)
		entered := make(chan struct{})
		r.w.SetHook(func(ctx context.Context, op memsink.Op) {
			if op == memsink.OpWrite {
				close(entered)
				// A slow warehouse: only the cancellation ends the wait.
				select {
				case <-ctx.Done():
				case <-time.After(time.Minute):
					t.Error("the window in flight was not cancelled when its partition was lost")
				}
			}
		})
		start(t, r)
		<-entered
		r.p.onLost(ctx, nil, lost)
		r.p.mu.Lock()
		inflight, flushErr := r.p.inflight, r.p.flushErr
		r.p.mu.Unlock()
		if inflight != nil || flushErr != nil {
			t.Fatalf("after onLost: window in flight %v, error %v; want none", inflight, flushErr)
		}
		if n := len(r.w.Commits()); n != 0 {
			t.Fatalf("%d commits for a lost partition", n)
		}
		if s := r.p.Stats(); s.Cancelled != 1 || r.p.attempt != 0 {
			t.Fatalf("cancelled %d, attempt %d; want 1 and 0 (not a failure)", s.Cancelled, r.p.attempt)
		}
		if len(r.p.parts) != 0 {
			t.Fatal("the lost partition is still owned")
		}
		if n := r.w.Calls(memsink.OpCommit); n != 0 {
			t.Fatalf("Commit was called %d times", n)
		}
	})
}

// TestFencedPartitionIsReadAgainFromTheStoredOffset runs the whole member
// (Run, on an in-process Kafka broker) on one partition that another member
// applied through t2 just before this one's first window: the window is
// fenced, and the member moves its Kafka position back to the stored next
// offset, reads the partition again from there and applies only what comes
// after t2, on top of the stored checkpoint.
func TestFencedPartitionIsReadAgainFromTheStoredOffset(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(kafka.ListenAddrs()...), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	// Offsets 0-6; the other member resumes at 5, after resolved t2.
	recs := []*kgo.Record{row(1, "a", t1), row(2, "b", t1), resolved(t1), row(3, "c", t2), resolved(t2), row(4, "d", t3), resolved(t3)}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	prod.Close()

	r := newMemRig(t)
	cfg := r.p.cfg
	cfg.Brokers, cfg.StopAt = kafka.ListenAddrs(), t3
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stored := sinks.Checkpoint{Group: "g", Topic: "t", Partition: 0, Resolved: t2, NextOffset: 5}
	var once sync.Once
	r.w.SetHook(func(_ context.Context, op memsink.Op) {
		if op == memsink.OpFence {
			once.Do(func() { r.w.SetCheckpoint(stored) })
		}
	})
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run: %v (stats %+v)", err, p.Stats())
	}
	if s := p.Stats(); s.Fenced != 1 {
		t.Fatalf("%d windows fenced, want 1", s.Fenced)
	}
	commits := r.w.Commits()
	last := commits[len(commits)-1]
	if len(last.Checkpoints) != 1 || last.Checkpoints[0].Resolved != t3 || last.Checkpoints[0].NextOffset != 7 || last.Changes != 1 {
		t.Fatalf("last commit %+v, want the change at t3 and the checkpoint t3 @ 7", last)
	}
	var windows int
	for _, c := range commits {
		if len(c.Checkpoints) > 0 && !c.Checkpoints[0].Resolved.IsZero() {
			windows++
		}
	}
	if windows != 1 {
		t.Fatalf("%d windows committed, want 1 (commits %+v)", windows, commits)
	}
	if got := names(r.w); len(got) != 1 || got["4"] != "d" {
		t.Fatalf("mirror = %v, want only the row after the stored checkpoint", got)
	}
}
