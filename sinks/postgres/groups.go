package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/highwater-dev/highwater/sinks"
)

// Groups returns the consumer groups that have checkpoints in the
// warehouse, sorted, so that `highwater status` can say which exist.
func (w *Writer) Groups(ctx context.Context) ([]string, error) {
	var groups []string
	err := w.withConn(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT DISTINCT consumer_group FROM `+w.qualified(sinks.CheckpointsTable)+` ORDER BY 1`)
		if err != nil {
			return err
		}
		groups, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: listing consumer groups in %s: %w", w.qualified(sinks.CheckpointsTable), err)
	}
	return groups, nil
}
