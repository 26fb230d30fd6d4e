package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// Fence locks the checkpoint rows of the held partitions in this
// transaction (SELECT ... FOR UPDATE, after inserting a zero row for a
// partition that has none so that it too can be locked) and compares
// their resolved timestamps with those the window was built on. The row
// locks last until COMMIT or ROLLBACK, so another member's window over the
// same partitions waits (up to lock_timeout) and then reads the checkpoint
// this one committed: of two windows built on the same checkpoint only the
// first to lock commits. On a mismatch the transaction is rolled back at
// once (its locks released) and Fence, like a later Commit, returns a
// *sinks.FencedError carrying the stored checkpoints exactly as stored.
//
// Fence must come before Checkpoint for the same partition in a
// transaction: after it, the row holds this window's own checkpoint.
func (x *Tx) Fence(ctx context.Context, held []sinks.Checkpoint) error {
	if err := x.usable(); err != nil {
		return err
	}
	if len(held) == 0 {
		return nil
	}
	want, err := fenceSet(held)
	if err != nil {
		return x.fail(fmt.Errorf("postgres: %w", err))
	}
	for _, cp := range want {
		if x.checkpointed[partKey{cp.Group, cp.Topic, cp.Partition}] {
			return x.fail(fmt.Errorf("postgres: Fence of %s[%d] after its Checkpoint in the same window", cp.Topic, cp.Partition))
		}
	}
	n := len(want)
	groups, topics, parts := make([]string, n), make([]string, n), make([]int32, n)
	for i, cp := range want {
		groups[i], topics[i], parts[i] = cp.Group, cp.Topic, cp.Partition
	}
	table := x.w.qualified(sinks.CheckpointsTable)
	// A partition nobody has checkpointed yet gets a zero row, so that
	// there is a row to lock: a second member's insert of the same row
	// waits for this transaction, and finds it. The zero row disappears
	// with a rollback and is overwritten by the window's Checkpoint.
	_, err = x.tx.Exec(ctx, `INSERT INTO `+table+` (consumer_group, topic, "partition", resolved, next_offset, applied_at)
		SELECT g, t, p, 0, 0, now() FROM unnest($1::text[], $2::text[], $3::int4[]) AS u(g, t, p)
		ON CONFLICT (consumer_group, topic, "partition") DO NOTHING`, groups, topics, parts)
	if err != nil {
		return x.fail(fmt.Errorf("postgres: registering %d fenced partitions in %s: %w", n, table, err))
	}
	// Rows are locked in key order (want is sorted), so two members
	// fencing overlapping sets cannot deadlock. In READ COMMITTED a row
	// another transaction holds is read again once that one ends: the
	// comparison is with the newest committed checkpoint.
	rows, err := x.tx.Query(ctx, `SELECT c.consumer_group, c.topic, c."partition", c.resolved::text, c.next_offset
		FROM `+table+` AS c JOIN unnest($1::text[], $2::text[], $3::int4[]) WITH ORDINALITY AS u(g, t, p, i)
		ON c.consumer_group = u.g AND c.topic = u.t AND c."partition" = u.p
		ORDER BY u.i FOR UPDATE OF c`, groups, topics, parts)
	if err != nil {
		return x.fail(fmt.Errorf("postgres: locking %d checkpoints in %s: %w", n, table, err))
	}
	stored := map[partKey]sinks.Checkpoint{}
	for rows.Next() {
		var cp sinks.Checkpoint
		var resolved string
		if err := rows.Scan(&cp.Group, &cp.Topic, &cp.Partition, &resolved, &cp.NextOffset); err != nil {
			rows.Close()
			return x.fail(fmt.Errorf("postgres: reading locked checkpoints: %w", err))
		}
		if cp.Resolved, err = schemas.ParseHLC(resolved); err != nil {
			rows.Close()
			return x.fail(fmt.Errorf("postgres: %s[%d]: stored resolved %q: %w", cp.Topic, cp.Partition, resolved, err))
		}
		stored[partKey{cp.Group, cp.Topic, cp.Partition}] = cp
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return x.fail(fmt.Errorf("postgres: locking %d checkpoints in %s: %w", n, table, err))
	}
	var differ []sinks.Checkpoint
	for _, cp := range want {
		k := partKey{cp.Group, cp.Topic, cp.Partition}
		s, ok := stored[k]
		if !ok {
			// Inserted above or found: a missing row is a bug, not a fence.
			return x.fail(fmt.Errorf("postgres: checkpoint row of %s[%d] vanished while locked", cp.Topic, cp.Partition))
		}
		if s.Resolved != cp.Resolved {
			differ = append(differ, s)
		}
	}
	if len(differ) > 0 {
		fe := &sinks.FencedError{Stored: differ}
		x.fail(fe)
		// Release the locks now: the window cannot commit.
		_ = x.end(ctx)
		return fe
	}
	for _, cp := range want {
		x.fenced[partKey{cp.Group, cp.Topic, cp.Partition}] = true
	}
	return nil
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
