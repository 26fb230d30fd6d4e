package duckdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// Fence makes the window commit only if the held partitions' stored
// checkpoints are still those the window was built on.
//
// DuckDB's transactions are optimistic and do not detect that two of them
// updated the same row (the later commit silently wins), and a
// transaction reads the snapshot of its start, which may predate another
// window's commit. So the lock is the writer's own: Commit takes, for
// every partition the window fenced, a lock shared by every Writer of this
// process on the same database file (DuckDB lets one process open a file,
// and duckdb-go shares one database instance between its connectors to the
// same path), and holds it until the window has committed or rolled back.
// Under the locks, it reads the committed checkpoints on a connection of
// its own, outside the window's snapshot, and compares, before it applies
// anything. Fence itself compares at once, without the locks, so that a
// stale window fails before its work.
//
// A partition whose stored resolved differs (none stored counts as zero)
// fences the window: it is rolled back at once and Fence or Commit returns
// *sinks.FencedError. Fence must come before Checkpoint for the same
// partition in a window.
func (tx *Tx) Fence(ctx context.Context, held []sinks.Checkpoint) error {
	if err := tx.guard.Check(); err != nil {
		return err
	}
	if len(held) == 0 {
		return nil
	}
	want, err := fenceSet(held)
	if err != nil {
		return tx.guard.Fail(err)
	}
	for _, cp := range want {
		if _, ok := tx.cps[cpKey{cp.Group, cp.Topic, cp.Partition}]; ok {
			return tx.guard.Fail(fmt.Errorf("fence: %s[%d] after its Checkpoint in the same window", cp.Topic, cp.Partition))
		}
	}
	if err := tx.checkFence(ctx, want); err != nil {
		return err
	}
	tx.fenced = append(tx.fenced, want...)
	return nil
}

// lockFence takes the fence locks of every partition the window fenced and
// compares their committed checkpoints with the held ones.
func (tx *Tx) lockFence(ctx context.Context) error {
	want, err := fenceSet(tx.fenced)
	if err != nil {
		return tx.guard.Fail(err)
	}
	keys := make([]cpKey, len(want))
	for i, cp := range want {
		keys[i] = cpKey{cp.Group, cp.Topic, cp.Partition}
	}
	release, err := tx.w.locks.lock(ctx, keys)
	if err != nil {
		return tx.guard.Fail(fmt.Errorf("fence %d partitions: %w", len(want), err))
	}
	tx.unlock = append(tx.unlock, release)
	return tx.checkFence(ctx, want)
}

// checkFence compares the committed checkpoints of want with want and, on
// a difference, rolls the window back and returns the *sinks.FencedError.
func (tx *Tx) checkFence(ctx context.Context, want []sinks.Checkpoint) error {
	fe, err := tx.w.fenceCheck(ctx, want)
	if err != nil {
		return tx.guard.Fail(fmt.Errorf("fence %d partitions: %w", len(want), err))
	}
	if fe != nil {
		_ = tx.abort()
		tx.guard.Set(fe)
		return fe
	}
	return nil
}

func scanCheckpoint(scan func(...any) error) (sinks.Checkpoint, error) {
	var cp sinks.Checkpoint
	var resolved string
	if err := scan(&cp.Group, &cp.Topic, &cp.Partition, &resolved, &cp.NextOffset); err != nil {
		return cp, fmt.Errorf("read checkpoint rows: %w", err)
	}
	h, err := hlc.Parse(resolved)
	if err != nil {
		return cp, fmt.Errorf("read checkpoint rows: %s[%d]: resolved %q: %w", cp.Topic, cp.Partition, resolved, err)
	}
	cp.Resolved = h
	return cp, nil
}

// fenceCheck reads the committed checkpoints of want outside any window
// and returns a *sinks.FencedError for those whose resolved differs (a
// partition without a row counts as zero), or nil when all match.
func (w *Writer) fenceCheck(ctx context.Context, want []sinks.Checkpoint) (*sinks.FencedError, error) {
	stored := map[cpKey]sinks.Checkpoint{}
	read := map[string]bool{}
	for _, cp := range want {
		if read[cp.Group] {
			continue
		}
		read[cp.Group] = true
		cps, err := w.Checkpoints(context.WithoutCancel(ctx), cp.Group)
		if err != nil {
			return nil, err
		}
		for _, s := range cps {
			stored[cpKey{s.Group, s.Topic, s.Partition}] = s
		}
	}
	var differ []sinks.Checkpoint
	for _, cp := range want {
		s, ok := stored[cpKey{cp.Group, cp.Topic, cp.Partition}]
		if !ok {
			s = sinks.Checkpoint{Group: cp.Group, Topic: cp.Topic, Partition: cp.Partition}
		}
		if s.Resolved != cp.Resolved {
			differ = append(differ, s)
		}
	}
	if len(differ) == 0 {
		return nil, nil
	}
	return &sinks.FencedError{Stored: differ}, nil
}

// fenceSet returns held sorted by (group, topic, partition), one entry per
// partition; two entries for one partition must agree.
func fenceSet(held []sinks.Checkpoint) ([]sinks.Checkpoint, error) {
	out := slices.Clone(held)
	slices.SortFunc(out, func(a, b sinks.Checkpoint) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	j := 0
	for i, cp := range out {
		switch {
		case cp.Group == "" || cp.Topic == "":
			return nil, fmt.Errorf("fence: empty group or topic in %s[%d]", cp.Topic, cp.Partition)
		case cp.Partition < 0:
			return nil, fmt.Errorf("fence: negative partition %s[%d]", cp.Topic, cp.Partition)
		}
		if i > 0 && out[j-1].Group == cp.Group && out[j-1].Topic == cp.Topic && out[j-1].Partition == cp.Partition {
			if out[j-1].Resolved != cp.Resolved {
				return nil, fmt.Errorf("fence: %s[%d] held at both %s and %s", cp.Topic, cp.Partition, out[j-1].Resolved, cp.Resolved)
			}
			continue
		}
		out[j] = cp
		j++
	}
	return out[:j], nil
}

// isFenced reports whether err is a fence.
func isFenced(err error) bool { return errors.Is(err, sinks.ErrFenced) }

// partitionLocks are the fence locks of one database: one per partition,
// held by the window that fenced it until that window ends.
type partitionLocks struct {
	mu    sync.Mutex
	held  map[cpKey]chan struct{}
	users int
}

// lockRegistry holds the partitionLocks of every database file this process
// has open, so that two Writers on one file share them. It is process-wide
// because DuckDB's database instance is: duckdb-go hands connectors to the
// same path one instance.
var lockRegistry = struct {
	mu  sync.Mutex
	dbs map[string]*partitionLocks
}{dbs: map[string]*partitionLocks{}}

// openLocks returns the locks of the database at file ("" or ":memory:"
// for a private in-memory database) and a function that drops the
// reference.
func openLocks(file string) (*partitionLocks, func()) {
	if file == "" || strings.HasPrefix(file, ":memory:") {
		// Every in-memory database is its own.
		return &partitionLocks{held: map[cpKey]chan struct{}{}}, func() {}
	}
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	lockRegistry.mu.Lock()
	defer lockRegistry.mu.Unlock()
	l := lockRegistry.dbs[file]
	if l == nil {
		l = &partitionLocks{held: map[cpKey]chan struct{}{}}
		lockRegistry.dbs[file] = l
	}
	l.users++
	return l, sync.OnceFunc(func() {
		lockRegistry.mu.Lock()
		defer lockRegistry.mu.Unlock()
		if l.users--; l.users == 0 {
			delete(lockRegistry.dbs, file)
		}
	})
}

// lock takes the locks of keys, which are sorted (so that two windows
// over overlapping partitions cannot deadlock), waiting while another
// window holds one; it returns the function that releases them.
func (l *partitionLocks) lock(ctx context.Context, keys []cpKey) (func(), error) {
	var taken []cpKey
	release := func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, k := range taken {
			ch := l.held[k]
			delete(l.held, k)
			close(ch)
		}
	}
	for _, k := range keys {
		for {
			l.mu.Lock()
			ch, busy := l.held[k]
			if !busy {
				l.held[k] = make(chan struct{})
				l.mu.Unlock()
				taken = append(taken, k)
				break
			}
			l.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				release()
				return nil, fmt.Errorf("waiting for another window over %s[%d]: %w", k.topic, k.partition, ctx.Err())
			}
		}
	}
	return release, nil
}
