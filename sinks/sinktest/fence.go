package sinktest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/highwater-dev/highwater/sinks"
)

// The fence: a window commits only if the checkpoints of the partitions it
// writes are still those it was built on (sinks.Tx.Fence).

// fenceTests are the fence's conformance tests; Run runs them.
func (s *suite) fenceTests() []struct {
	name string
	fn   func(t *testing.T)
} {
	return []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"FenceMatchingCommits", s.testFenceMatching},
		{"FenceStaleIsFencedAndLeavesNothing", s.testFenceStale},
		{"FenceAbsentCheckpointIsZero", s.testFenceAbsent},
		{"FenceTwoWritersOnlyOneCommits", s.testFenceTwoWriters},
		{"FenceConcurrentWindowsOneCommits", s.testFenceConcurrent},
	}
}

// fencedWindow runs one window the way the processor does (Write, Fence,
// Checkpoint, Commit) and returns the first error, after which it rolls
// back.
func fencedWindow(ctx context.Context, tx sinks.Tx, held, cps []sinks.Checkpoint, writes ...write) error {
	for _, wr := range writes {
		if err := tx.Write(ctx, wr.table, wr.changes); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
	}
	if err := tx.Fence(ctx, held); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if err := tx.Checkpoint(ctx, cps); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}

// expectFenced checks that err is a fence naming exactly stored.
func expectFenced(t *testing.T, err error, stored []sinks.Checkpoint) {
	t.Helper()
	if !errors.Is(err, sinks.ErrFenced) {
		t.Fatalf("window over a moved checkpoint: got %v, want errors.Is(err, sinks.ErrFenced)", err)
	}
	var fe *sinks.FencedError
	if !errors.As(err, &fe) {
		t.Fatalf("fence error %v is not a *sinks.FencedError", err)
	}
	got := append([]sinks.Checkpoint{}, fe.Stored...)
	sortCps(got)
	want := append([]sinks.Checkpoint{}, stored...)
	sortCps(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("FencedError.Stored:\n got  %+v\n want %+v", got, want)
	}
}

func cp(p int32, resolved int64, next int64) sinks.Checkpoint {
	c := sinks.Checkpoint{Group: "g", Topic: "t", Partition: p, NextOffset: next}
	if resolved != 0 {
		c.Resolved = ts(resolved)
	}
	return c
}

func (s *suite) testFenceMatching(t *testing.T) {
	ctx := context.Background()
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	tb := kv("t")
	x := []sinks.Checkpoint{cp(0, 10, 100), cp(1, 10, 50)}
	apply(t, w, x, write{tb, []sinks.Change{ins(ts(5), int64(1), "a", nil)}})

	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	y := []sinks.Checkpoint{cp(0, 20, 130), cp(1, 20, 70)}
	err = fencedWindow(ctx, tx, x, y, write{tb, []sinks.Change{upd(ts(15), int64(1), "b", int64(2)), ins(ts(16), int64(2), "c", nil)}})
	if err != nil {
		t.Fatalf("window fenced on the stored checkpoints: %v", err)
	}
	expect(t, "rows", s.kvRows(t, "t"), [][]string{{"1", "b", "2", S(ts(15))}, {"2", "c", Null, S(ts(16))}})
	expectCps(t, "checkpoints", checkpoints(t, w, "g"), y)

	// Fencing only some of the checkpointed partitions is fine too, and
	// a window may fence a partition without moving its checkpoint.
	tx, err = w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	z := []sinks.Checkpoint{cp(0, 30, 140)}
	// The processor's order: Fence first, then the rows.
	if err := tx.Fence(ctx, y); err != nil {
		t.Fatalf("fence before the rows: %v", err)
	}
	if err := fencedWindow(ctx, tx, nil, z, write{tb, []sinks.Change{del(ts(25), int64(2), nil, nil)}}); err != nil {
		t.Fatalf("second fenced window: %v", err)
	}
	expect(t, "rows after delete", s.kvRows(t, "t"), [][]string{{"1", "b", "2", S(ts(15))}})
	expectCps(t, "checkpoints after the second window", checkpoints(t, w, "g"), []sinks.Checkpoint{z[0], y[1]})
}

func (s *suite) testFenceStale(t *testing.T) {
	ctx := context.Background()
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	tb := kv("t")
	x := []sinks.Checkpoint{cp(0, 10, 100), cp(1, 10, 50)}
	apply(t, w, x, write{tb, []sinks.Change{ins(ts(5), int64(1), "a", nil), ins(ts(6), int64(2), "b", nil)}})
	rows, cl := s.kvRows(t, "t"), s.changelogCount(t, "t")

	// A member built its window on partition 1 at resolved 4, but the
	// warehouse holds 10: another member applied it since.
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := []sinks.Checkpoint{cp(0, 10, 100), cp(1, 4, 40)}
	err = fencedWindow(ctx, tx, held, []sinks.Checkpoint{cp(0, 20, 120), cp(1, 20, 60)},
		write{tb, []sinks.Change{ins(ts(12), int64(3), "new", nil), del(ts(13), int64(1), nil, nil), upd(ts(14), int64(2), "changed", int64(1))}})
	expectFenced(t, err, []sinks.Checkpoint{x[1]})
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("Rollback after a fence: %v", err)
	}
	expect(t, "rows after a fenced window", s.kvRows(t, "t"), rows)
	expect(t, "changelog after a fenced window", [][]string{{s.changelogCount(t, "t")}}, [][]string{{cl}})
	expectCps(t, "checkpoints after a fenced window", checkpoints(t, w, "g"), x)

	// The member re-reads the checkpoint and builds on it: that commits.
	tx, err = w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	y := []sinks.Checkpoint{cp(0, 20, 120), cp(1, 20, 60)}
	if err := fencedWindow(ctx, tx, x, y, write{tb, []sinks.Change{ins(ts(12), int64(3), "new", nil)}}); err != nil {
		t.Fatalf("window on the stored checkpoints after a fence: %v", err)
	}
	expectCps(t, "checkpoints after the retried window", checkpoints(t, w, "g"), y)
}

func (s *suite) testFenceAbsent(t *testing.T) {
	ctx := context.Background()
	w := s.open(t, sinks.Options{})
	defer closeW(t, w)
	tb := kv("t")

	// No checkpoint stored: a window held at zero commits.
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	y := []sinks.Checkpoint{cp(3, 20, 7)}
	if err := fencedWindow(ctx, tx, []sinks.Checkpoint{cp(3, 0, 0)}, y, write{tb, []sinks.Change{ins(ts(5), int64(1), "a", nil)}}); err != nil {
		t.Fatalf("first window of a partition, held at zero: %v", err)
	}
	expectCps(t, "checkpoints", checkpoints(t, w, "g"), y)

	// A window that believes partition 4 applied through 10, where the
	// warehouse has nothing, is fenced; the stored checkpoint is zero.
	tx, err = w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = fencedWindow(ctx, tx, []sinks.Checkpoint{cp(3, 20, 7), cp(4, 10, 9)}, []sinks.Checkpoint{cp(3, 30, 8), cp(4, 30, 10)},
		write{tb, []sinks.Change{ins(ts(25), int64(2), "b", nil)}})
	expectFenced(t, err, []sinks.Checkpoint{cp(4, 0, 0)})
	_ = tx.Rollback(ctx)
	expect(t, "rows", s.kvRows(t, "t"), [][]string{{"1", "a", Null, S(ts(5))}})
	expectCps(t, "no checkpoint appears for the fenced partition", checkpoints(t, w, "g"), y)
}

// second opens another member's writer on t's warehouse.
func (s *suite) second(t *testing.T, opts sinks.Options) sinks.Writer {
	t.Helper()
	if s.h.Second == nil {
		t.Skip("Harness.Second is nil: the warehouse takes one writer at a time")
	}
	w := s.h.Second(t, opts)
	if w == nil {
		t.Fatal("Harness.Second returned nil")
	}
	return w
}

func (s *suite) testFenceTwoWriters(t *testing.T) {
	ctx := context.Background()
	a := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, a)
	tb := kv("t")
	x := []sinks.Checkpoint{cp(0, 10, 100)}
	apply(t, a, x, write{tb, []sinks.Change{ins(ts(5), int64(1), "a", nil), ins(ts(6), int64(2), "b", nil)}})
	b := s.second(t, sinks.Options{Changelog: true})
	defer closeW(t, b)

	// A, the old owner of partition 0, starts a window on X and stalls.
	txA, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := txA.Write(ctx, tb, []sinks.Change{
		upd(ts(12), int64(1), "stale", int64(1)), // B deletes key 1 at 14
		ins(ts(13), int64(3), "stale", nil),
	}); err != nil {
		t.Fatal(err)
	}

	// B, the new owner, applies its window on X: it deletes key 1.
	txB, err := b.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	y := []sinks.Checkpoint{cp(0, 20, 130)}
	if err := fencedWindow(ctx, txB, x, y, write{tb, []sinks.Change{del(ts(14), int64(1), nil, nil), upd(ts(15), int64(2), "B", nil)}}); err != nil {
		t.Fatalf("new owner's window: %v", err)
	}

	// A resumes: its window is fenced, its rows never appear, the key B
	// deleted stays deleted.
	err = fencedWindow(ctx, txA, x, []sinks.Checkpoint{cp(0, 16, 125)})
	expectFenced(t, err, y)
	_ = txA.Rollback(ctx)
	expect(t, "rows after the stale window", s.kvRows(t, "t"), [][]string{{"2", "B", Null, S(ts(15))}})
	expect(t, "changelog after the stale window", [][]string{{s.changelogCount(t, "t")}}, [][]string{{"4"}})
	expectCps(t, "checkpoints seen by A", checkpoints(t, a, "g"), y)
	expectCps(t, "checkpoints seen by B", checkpoints(t, b, "g"), y)

	// And the other way round: A's window starts after B's commit, with
	// A's stale view of the checkpoint.
	txA, err = a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = fencedWindow(ctx, txA, x, []sinks.Checkpoint{cp(0, 16, 125)}, write{tb, []sinks.Change{ins(ts(13), int64(1), "stale", nil)}})
	expectFenced(t, err, y)
	expect(t, "rows after the second stale window", s.kvRows(t, "t"), [][]string{{"2", "B", Null, S(ts(15))}})
	expectCps(t, "checkpoints after the second stale window", checkpoints(t, b, "g"), y)

	// Both fence on Y before either commits: the fence holds at Commit.
	txA, err = a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	txB, err = b.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := txA.Write(ctx, tb, []sinks.Change{ins(ts(22), int64(2), "A", nil)}); err != nil {
		t.Fatal(err)
	}
	if err := txB.Write(ctx, tb, []sinks.Change{del(ts(23), int64(2), nil, nil)}); err != nil {
		t.Fatal(err)
	}
	if err := txA.Fence(ctx, y); err != nil {
		t.Fatalf("A's fence on the stored checkpoint: %v", err)
	}
	if err := txB.Fence(ctx, y); err != nil {
		t.Fatalf("B's fence on the stored checkpoint: %v", err)
	}
	z := []sinks.Checkpoint{cp(0, 30, 140)}
	if err := fencedWindow(ctx, txB, nil, z); err != nil {
		t.Fatalf("B's commit: %v", err)
	}
	// A's window writes rows of partition 0 without moving its
	// checkpoint: only the fence stops it.
	err = fencedWindow(ctx, txA, nil, nil)
	expectFenced(t, err, z)
	expect(t, "rows after both fenced", s.kvRows(t, "t"), nil)
	expectCps(t, "checkpoints after both fenced", checkpoints(t, a, "g"), z)
}

// testFenceConcurrent has two members commit windows built on the same
// checkpoints at the same moment: exactly one commits, the other is fenced
// with the winner's checkpoints, and only the winner's rows are applied.
func (s *suite) testFenceConcurrent(t *testing.T) {
	ctx := context.Background()
	a := s.open(t, sinks.Options{})
	defer closeW(t, a)
	tb := kv("t")
	x := []sinks.Checkpoint{cp(0, 10, 100), cp(1, 10, 100)}
	apply(t, a, x, write{tb, []sinks.Change{ins(ts(5), int64(1), "a", nil)}})
	b := s.second(t, sinks.Options{})
	defer closeW(t, b)

	type member struct {
		w      sinks.Writer
		held   []sinks.Checkpoint
		cps    []sinks.Checkpoint
		change sinks.Change
		rows   [][]string
		err    error
	}
	members := []*member{
		// A holds the partitions in the other order.
		{w: a, held: []sinks.Checkpoint{x[1], x[0]}, cps: []sinks.Checkpoint{cp(0, 16, 120), cp(1, 16, 120)},
			change: upd(ts(12), int64(1), "A", nil), rows: [][]string{{"1", "A", Null, S(ts(12))}}},
		{w: b, held: x, cps: []sinks.Checkpoint{cp(0, 20, 130), cp(1, 20, 130)},
			change: del(ts(14), int64(1), nil, nil), rows: nil},
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx, err := m.w.Begin(ctx)
			if err != nil {
				m.err = err
				return
			}
			<-start
			m.err = fencedWindow(ctx, tx, m.held, m.cps, write{tb, []sinks.Change{m.change}})
			_ = tx.Rollback(ctx)
		}()
	}
	close(start)
	wg.Wait()
	var winner, loser *member
	switch {
	case members[0].err == nil && members[1].err != nil:
		winner, loser = members[0], members[1]
	case members[1].err == nil && members[0].err != nil:
		winner, loser = members[1], members[0]
	default:
		t.Fatalf("two windows on one checkpoint: A: %v, B: %v; want exactly one committed", members[0].err, members[1].err)
	}
	expectFenced(t, loser.err, winner.cps)
	expect(t, "rows", s.kvRows(t, "t"), winner.rows)
	expectCps(t, "checkpoints", checkpoints(t, a, "g"), winner.cps)
}
