package files

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Groups returns the consumer groups that have checkpoints in the sink,
// sorted, so that `highwater status` can say which exist. It reads the
// groups' fence objects and the per-partition-set checkpoint objects of
// sinks written before the fence.
func (w *Writer) Groups(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	for _, prefix := range []string{internalDir + "/fence/", internalDir + "/checkpoints/"} {
		keys, err := w.st.list(ctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("list consumer groups: %w", err)
		}
		for _, key := range keys {
			if !strings.HasSuffix(key, ".json") || strings.Contains(key, "/.probe-") {
				continue
			}
			var obj struct {
				Group string `json:"group"`
			}
			if err := w.readJSON(ctx, key, &obj); err != nil {
				if errors.Is(err, errNotFound) {
					continue
				}
				return nil, fmt.Errorf("list consumer groups: %w", err)
			}
			seen[obj.Group] = true
		}
	}
	groups := make([]string, 0, len(seen))
	for g := range seen {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	return groups, nil
}
