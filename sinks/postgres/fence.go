package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// Fence records the checkpoints the window was built on and compares them
// with the stored ones at once, so that a stale window fails before its
// work. Commit then locks the held partitions' checkpoint rows
// (SELECT ... FOR UPDATE, after inserting a zero row for a partition that
// has none, so that it too can be locked) and compares again before it
// applies anything; the window's checkpoints are written after that check.
// The row locks last until COMMIT or ROLLBACK, so another member's window
// over the same partitions waits at its own Commit (up to lock_timeout) and
// then reads the checkpoint this one committed: of two windows built on the
// same checkpoint only the first to lock commits. Taking the locks at
// Commit rather than here keeps a member frozen while it writes a window
// from holding them.
//
// On a mismatch the transaction is rolled back at once (its locks
// released) and Fence or Commit returns a *sinks.FencedError carrying the
// stored checkpoints exactly as stored. Fence must come before Checkpoint
// for the same partition.
func (x *Tx) Fence(ctx context.Context, held []sinks.Checkpoint) (err error) {
	defer markLockTimeout(&err)
	if err := x.guard.Check(); err != nil {
		return err
	}
	if len(held) == 0 {
		return nil
	}
	want, err := fenceSet(held)
	if err != nil {
		return x.guard.Fail(fmt.Errorf("postgres: %w", err))
	}
	for _, cp := range want {
		k := partKey{cp.Group, cp.Topic, cp.Partition}
		if x.checkpointed[k] {
			return x.guard.Fail(fmt.Errorf("postgres: Fence of %s[%d] after its Checkpoint in the same window", cp.Topic, cp.Partition))
		}
		if h, ok := x.held[k]; ok && h.Resolved != cp.Resolved {
			return x.guard.Fail(fmt.Errorf("postgres: %s[%d] fenced at both %s and %s", cp.Topic, cp.Partition, h.Resolved, cp.Resolved))
		}
	}
	stored, err := x.storedCheckpoints(ctx, want, false)
	if err != nil {
		return x.guard.Fail(err)
	}
	if err := x.compare(ctx, want, stored); err != nil {
		return err
	}
	for _, cp := range want {
		x.held[partKey{cp.Group, cp.Topic, cp.Partition}] = cp
	}
	return nil
}

// lockFence locks the held partitions' checkpoint rows and compares them
// with the held checkpoints.
func (x *Tx) lockFence(ctx context.Context) error {
	want := make([]sinks.Checkpoint, 0, len(x.held))
	for _, cp := range x.held {
		want = append(want, cp)
	}
	want, _ = fenceSet(want)
	stored, err := x.storedCheckpoints(ctx, want, true)
	if err != nil {
		x.guard.Fail(err)
		x.end(ctx)
		return err
	}
	return x.compare(ctx, want, stored)
}

// compare returns a *sinks.FencedError, after rolling back, if a stored
// checkpoint differs from the held one (no row is a zero Resolved).
func (x *Tx) compare(ctx context.Context, want []sinks.Checkpoint, stored map[partKey]sinks.Checkpoint) error {
	var differ []sinks.Checkpoint
	for _, cp := range want {
		s, ok := stored[partKey{cp.Group, cp.Topic, cp.Partition}]
		if !ok {
			s = sinks.Checkpoint{Group: cp.Group, Topic: cp.Topic, Partition: cp.Partition}
		}
		if s.Resolved != cp.Resolved {
			differ = append(differ, s)
		}
	}
	if len(differ) == 0 {
		return nil
	}
	fe := &sinks.FencedError{Stored: differ}
	x.guard.Fail(fe)
	// Release any locks now: the window cannot commit.
	_ = x.end(ctx)
	return fe
}

// storedCheckpoints reads the checkpoint rows of want (sorted), and with
// lock first inserts zero rows for those missing and locks them all, in
// key order so that two members fencing overlapping sets cannot deadlock.
// In READ COMMITTED a row another transaction holds is read again once
// that one ends: the comparison is with the newest committed checkpoint.
func (x *Tx) storedCheckpoints(ctx context.Context, want []sinks.Checkpoint, lock bool) (map[partKey]sinks.Checkpoint, error) {
	n := len(want)
	groups, topics, parts := make([]string, n), make([]string, n), make([]int32, n)
	for i, cp := range want {
		groups[i], topics[i], parts[i] = cp.Group, cp.Topic, cp.Partition
	}
	table := x.w.qualified(sinks.CheckpointsTable)
	forUpdate := ""
	if lock {
		// A partition nobody has checkpointed yet gets a zero row, so that
		// there is a row to lock: a second member's insert of the same row
		// waits for this transaction, and finds it. The zero row goes with
		// a rollback, and the window's Checkpoint overwrites it.
		_, err := x.tx.Exec(ctx, `INSERT INTO `+table+` (consumer_group, topic, "partition", resolved, next_offset, applied_at)
			SELECT g, t, p, 0, 0, now() FROM unnest($1::text[], $2::text[], $3::int4[]) AS u(g, t, p)
			ON CONFLICT (consumer_group, topic, "partition") DO NOTHING`, groups, topics, parts)
		if err != nil {
			return nil, fmt.Errorf("postgres: registering %d fenced partitions in %s: %w", n, table, err)
		}
		forUpdate = " FOR UPDATE OF c"
	}
	rows, err := x.tx.Query(ctx, `SELECT c.consumer_group, c.topic, c."partition", c.resolved::text, c.next_offset
		FROM `+table+` AS c JOIN unnest($1::text[], $2::text[], $3::int4[]) WITH ORDINALITY AS u(g, t, p, i)
		ON c.consumer_group = u.g AND c.topic = u.t AND c."partition" = u.p
		ORDER BY u.i`+forUpdate, groups, topics, parts)
	if err != nil {
		return nil, fmt.Errorf("postgres: reading %d fenced checkpoints in %s: %w", n, table, err)
	}
	defer rows.Close()
	stored := map[partKey]sinks.Checkpoint{}
	for rows.Next() {
		var cp sinks.Checkpoint
		var resolved string
		if err := rows.Scan(&cp.Group, &cp.Topic, &cp.Partition, &resolved, &cp.NextOffset); err != nil {
			return nil, fmt.Errorf("postgres: reading fenced checkpoints: %w", err)
		}
		if cp.Resolved, err = hlc.Parse(resolved); err != nil {
			return nil, fmt.Errorf("postgres: %s[%d]: stored resolved %q: %w", cp.Topic, cp.Partition, resolved, err)
		}
		stored[partKey{cp.Group, cp.Topic, cp.Partition}] = cp
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: reading %d fenced checkpoints in %s: %w", n, table, err)
	}
	return stored, nil
}

// withoutLockTimeout lifts lock_timeout in the transaction until the
// returned function restores it (statement_timeout still bounds each
// statement).
func (x *Tx) withoutLockTimeout(ctx context.Context) (func() error, error) {
	var old string
	if err := x.tx.QueryRow(ctx, "SELECT current_setting('lock_timeout'), set_config('lock_timeout', '0', true)").Scan(&old, new(string)); err != nil {
		return nil, fmt.Errorf("lifting lock_timeout: %w", err)
	}
	return func() error {
		if _, err := x.tx.Exec(ctx, "SELECT set_config('lock_timeout', $1, true)", old); err != nil {
			return fmt.Errorf("restoring lock_timeout: %w", err)
		}
		return nil
	}, nil
}

// partKey names one partition of a group.
type partKey struct {
	group, topic string
	partition    int32
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
		if cp.Group == "" || cp.Topic == "" {
			return nil, fmt.Errorf("fence: empty group or topic in %s[%d]", cp.Topic, cp.Partition)
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
