package files

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/highwater-dev/highwater/sinks"
)

// Fence records the checkpoints the window was built on and compares them
// with those stored; Commit compares again before it publishes the window.
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
		if tx.held == nil {
			tx.held = map[partKey]sinks.Checkpoint{}
		}
		tx.held[partKey{cp.Group, cp.Topic, cp.Partition}] = cp
	}
	if err := tx.w.checkFence(ctx, want); err != nil {
		return tx.fail(err)
	}
	return nil
}

// checkFence reads the stored checkpoints of want's groups and returns a
// *sinks.FencedError for the partitions whose resolved differs.
func (w *Writer) checkFence(ctx context.Context, want []sinks.Checkpoint) error {
	stored := map[partKey]sinks.Checkpoint{}
	read := map[string]bool{}
	for _, cp := range want {
		if read[cp.Group] {
			continue
		}
		read[cp.Group] = true
		best, _, _, err := w.readCheckpoints(ctx, cp.Group)
		if err != nil {
			return fmt.Errorf("fence: %w", err)
		}
		for k, s := range best {
			stored[k] = s
		}
	}
	var differ []sinks.Checkpoint
	for _, cp := range want {
		k := partKey{cp.Group, cp.Topic, cp.Partition}
		s, ok := stored[k]
		if !ok {
			s = sinks.Checkpoint{Group: cp.Group, Topic: cp.Topic, Partition: cp.Partition}
		}
		if s.Resolved != cp.Resolved {
			differ = append(differ, s)
		}
	}
	if len(differ) > 0 {
		return &sinks.FencedError{Stored: differ}
	}
	return nil
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
