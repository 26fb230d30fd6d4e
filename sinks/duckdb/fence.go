package duckdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// Fence makes the window commit only if the held partitions' stored
// checkpoints are still those the window was built on.
//
// DuckDB has no row locks: its transactions are optimistic, and a
// transaction that updates a row another transaction has updated since it
// began (committed or not) fails at once with a write-write conflict, and
// so does every later commit that touches that row. Fence therefore first
// writes each held partition's checkpoint row in this transaction (a zero
// row is inserted where there is none, then every row is rewritten
// unchanged): from then on no other transaction can change those rows
// before this one ends, and this one cannot commit if another changed them
// after it began. Then it reads the rows, which its snapshot now shows as
// the newest, and compares. A conflict is resolved by reading the
// committed checkpoints outside the transaction: a partition whose stored
// resolved differs fences the window (*sinks.FencedError); otherwise
// another window is writing the same partitions at this moment, and the
// error is an ordinary, retryable failure.
//
// Fence must come before Checkpoint for the same partition in a window.
func (tx *Tx) Fence(ctx context.Context, held []sinks.Checkpoint) error {
	if err := tx.usable(); err != nil {
		return err
	}
	if len(held) == 0 {
		return nil
	}
	want, err := fenceSet(held)
	if err != nil {
		return tx.fail(err)
	}
	for _, cp := range want {
		if _, ok := tx.cps[cpKey{cp.Group, cp.Topic, cp.Partition}]; ok {
			return tx.fail(fmt.Errorf("fence: %s[%d] after its Checkpoint in the same window", cp.Topic, cp.Partition))
		}
	}
	stored, err := tx.lockCheckpoints(ctx, want)
	if err != nil {
		// Whatever failed, the transaction cannot commit: end it, then see
		// whether a changed checkpoint is the reason.
		_ = tx.abort()
		tx.err = err
		if fe := tx.w.fenceCheck(ctx, want); fe != nil {
			tx.err = fe
			return fe
		}
		return fmt.Errorf("fence %d partitions: %w", len(want), err)
	}
	var differ []sinks.Checkpoint
	for _, cp := range want {
		s, ok := stored[cpKey{cp.Group, cp.Topic, cp.Partition}]
		if !ok {
			_ = tx.abort()
			return tx.fail(fmt.Errorf("fence: checkpoint row of %s[%d] missing after insert", cp.Topic, cp.Partition))
		}
		if s.Resolved != cp.Resolved {
			differ = append(differ, s)
		}
	}
	if len(differ) > 0 {
		fe := &sinks.FencedError{Stored: differ}
		_ = tx.abort()
		tx.err = fe
		return fe
	}
	for _, cp := range want {
		tx.fenced = append(tx.fenced, cp)
	}
	return nil
}

// lockCheckpoints makes sure every partition of want has a checkpoint row,
// rewrites those rows in the transaction, and returns them as its snapshot
// now shows them.
func (tx *Tx) lockCheckpoints(ctx context.Context, want []sinks.Checkpoint) (map[cpKey]sinks.Checkpoint, error) {
	table := tx.w.qualify(sinks.CheckpointsTable)
	stored := make(map[cpKey]sinks.Checkpoint, len(want))
	now := time.Now().UTC()
	const batch = 200
	for rest := want; len(rest) > 0; {
		part := rest[:min(batch, len(rest))]
		rest = rest[len(part):]
		vals := make([]string, len(part))
		keys := make([]any, 0, 3*len(part))
		for i, cp := range part {
			vals[i] = `(?, ?, ?)`
			keys = append(keys, cp.Group, cp.Topic, cp.Partition)
		}
		values := `(VALUES ` + strings.Join(vals, ", ") + `) AS u(g, t, p)`
		if _, err := tx.conn.ExecContext(ctx, `INSERT INTO `+table+` (consumer_group, topic, "partition", resolved, next_offset, applied_at)
SELECT u.g, u.t, CAST(u.p AS INTEGER), 0, 0, ? FROM `+values+`
ON CONFLICT (consumer_group, topic, "partition") DO NOTHING`, append([]any{now}, keys...)...); err != nil {
			return nil, fmt.Errorf("register checkpoint rows: %w", err)
		}
		// An unchanged rewrite still claims the rows: DuckDB's conflict
		// check is per row written, not per value changed.
		if _, err := tx.conn.ExecContext(ctx, `UPDATE `+table+` AS c SET next_offset = c.next_offset FROM `+values+`
WHERE c.consumer_group = u.g AND c.topic = u.t AND c."partition" = CAST(u.p AS INTEGER)`, keys...); err != nil {
			return nil, fmt.Errorf("claim checkpoint rows: %w", err)
		}
		rows, err := tx.conn.QueryContext(ctx, `SELECT c.consumer_group, c.topic, c."partition", CAST(c.resolved AS VARCHAR), c.next_offset
FROM `+table+` AS c JOIN `+values+` ON c.consumer_group = u.g AND c.topic = u.t AND c."partition" = CAST(u.p AS INTEGER)`, keys...)
		if err != nil {
			return nil, fmt.Errorf("read checkpoint rows: %w", err)
		}
		for rows.Next() {
			cp, err := scanCheckpoint(rows.Scan)
			if err != nil {
				rows.Close()
				return nil, err
			}
			stored[cpKey{cp.Group, cp.Topic, cp.Partition}] = cp
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read checkpoint rows: %w", err)
		}
	}
	return stored, nil
}

func scanCheckpoint(scan func(...any) error) (sinks.Checkpoint, error) {
	var cp sinks.Checkpoint
	var resolved string
	if err := scan(&cp.Group, &cp.Topic, &cp.Partition, &resolved, &cp.NextOffset); err != nil {
		return cp, fmt.Errorf("read checkpoint rows: %w", err)
	}
	h, err := schemas.ParseHLC(resolved)
	if err != nil {
		return cp, fmt.Errorf("read checkpoint rows: %s[%d]: resolved %q: %w", cp.Topic, cp.Partition, resolved, err)
	}
	cp.Resolved = h
	return cp, nil
}

// fenceCheck reads the committed checkpoints of want outside any window
// and returns a *sinks.FencedError for those whose resolved differs, or
// nil when all match (or cannot be read).
func (w *Writer) fenceCheck(ctx context.Context, want []sinks.Checkpoint) error {
	groups := map[string]map[cpKey]sinks.Checkpoint{}
	for _, cp := range want {
		if groups[cp.Group] != nil {
			continue
		}
		cps, err := w.Checkpoints(context.WithoutCancel(ctx), cp.Group)
		if err != nil {
			return nil
		}
		m := map[cpKey]sinks.Checkpoint{}
		for _, s := range cps {
			m[cpKey{s.Group, s.Topic, s.Partition}] = s
		}
		groups[cp.Group] = m
	}
	var differ []sinks.Checkpoint
	for _, cp := range want {
		k := cpKey{cp.Group, cp.Topic, cp.Partition}
		s, ok := groups[cp.Group][k]
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
	return &sinks.FencedError{Stored: differ}
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
