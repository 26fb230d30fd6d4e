package duckdb

import (
	"context"
	"fmt"

	"github.com/highwater-dev/highwater/sinks"
)

// Groups returns the consumer groups that have checkpoints in the
// warehouse, sorted, so that `highwater status` can say which exist.
func (w *Writer) Groups(ctx context.Context) ([]string, error) {
	rows, err := w.db.QueryContext(ctx, `SELECT DISTINCT consumer_group FROM `+w.qualify(sinks.CheckpointsTable)+` ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list consumer groups: %w", err)
	}
	defer rows.Close()
	var groups []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, fmt.Errorf("list consumer groups: %w", err)
		}
		groups = append(groups, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list consumer groups: %w", err)
	}
	return groups, nil
}
