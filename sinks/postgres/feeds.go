package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/sinks"
)

// ensureFeeds creates the feeds table and the per-feed watermark view if
// missing, inside ensureCatalog's transaction. A role without CREATE runs
// on without them (they show the feeds; the data and the checkpoints do
// not need them): in a savepoint, so that the transaction survives the
// refusal.
func (w *Writer) ensureFeeds(ctx context.Context, tx pgx.Tx) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("creating %s: %w", sinks.FeedsTable, err)
	}
	err = w.createFeeds(ctx, sp)
	if isPrivilegeError(err) {
		_ = sp.Rollback(ctx)
		w.log.Warn("cannot create the feeds table and view: no CREATE privilege on the schema; the feeds' watermarks are not recorded",
			zap.String("table", sinks.FeedsTable), zap.String("view", sinks.FeedWatermarkView), zap.Error(err))
		return nil
	}
	if err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	return sp.Commit(ctx)
}

func isPrivilegeError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42501" || pe.Code == "42P01") // insufficient_privilege, undefined_table
}

func (w *Writer) createFeeds(ctx context.Context, tx pgx.Tx) error {
	table, view := w.qualified(sinks.FeedsTable), w.qualified(sinks.FeedWatermarkView)
	var hasTable, hasView bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL`, table, view).Scan(&hasTable, &hasView); err != nil {
		return fmt.Errorf("reading the catalog: %w", err)
	}
	if !hasTable {
		if _, err := tx.Exec(ctx, `CREATE TABLE `+table+` (
			consumer_group TEXT NOT NULL,
			topic TEXT NOT NULL,
			feed TEXT NOT NULL,
			frontier TEXT NOT NULL,
			recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
			PRIMARY KEY (consumer_group, topic))`); err != nil {
			return fmt.Errorf("creating %s: %w", table, err)
		}
	}
	if !hasView {
		// One row per (group, feed): the HLC through which every
		// partition of the feed's topics is applied, and the partition
		// holding it back when the feed's checkpoints differ.
		if _, err := tx.Exec(ctx, `CREATE VIEW `+view+` AS
			SELECT c.consumer_group, f.feed, max(f.frontier) AS frontier, min(c.resolved) AS resolved,
				count(*) AS partitions, max(c.applied_at) AS applied_at,
				CASE WHEN min(c.resolved) < max(c.resolved)
					THEN (array_agg(c.topic || '[' || c."partition" || ']' ORDER BY c.resolved, c.topic, c."partition"))[1] END AS held_by
			FROM `+w.qualified(sinks.CheckpointsTable)+` c
			JOIN `+table+` f ON f.consumer_group = c.consumer_group AND f.topic = c.topic
			GROUP BY c.consumer_group, f.feed`); err != nil {
			return fmt.Errorf("creating %s: %w", view, err)
		}
	}
	return nil
}

// RecordFeeds upserts the feed of each topic of group (sinks.FeedRecorder).
func (w *Writer) RecordFeeds(ctx context.Context, group, frontier string, feeds []sinks.FeedTopic) error {
	if len(feeds) == 0 {
		return nil
	}
	topics, names := make([]string, len(feeds)), make([]string, len(feeds))
	for i, f := range feeds {
		topics[i], names[i] = f.Topic, f.Feed
	}
	err := w.withConn(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `INSERT INTO `+w.qualified(sinks.FeedsTable)+` AS f (consumer_group, topic, feed, frontier, recorded_at)
			SELECT $1, t.topic, t.feed, $4, now() FROM unnest($2::text[], $3::text[]) AS t(topic, feed)
			ON CONFLICT (consumer_group, topic) DO UPDATE SET
				feed = excluded.feed, frontier = excluded.frontier, recorded_at = excluded.recorded_at`,
			group, topics, names, frontier)
		return err
	})
	if isPrivilegeError(err) {
		// A prepared database without the feeds table (ensureFeeds), or
		// a role that may not write it: the feeds are not recorded.
		w.log.Warn("cannot record the feeds", zap.String("group", group), zap.Error(err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("postgres: record feeds of group %q: %w", group, err)
	}
	return nil
}
