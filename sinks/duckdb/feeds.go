package duckdb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/highwater-dev/highwater/sinks"
)

// feedsDDL creates the feeds table and the per-feed watermark view.
func (w *Writer) feedsDDL() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + w.qualify(sinks.FeedsTable) + ` (
	consumer_group VARCHAR NOT NULL,
	topic VARCHAR NOT NULL,
	feed VARCHAR NOT NULL,
	frontier VARCHAR NOT NULL,
	recorded_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (consumer_group, topic))`,
		// One row per (group, feed): the HLC through which every
		// partition of the feed's topics is applied, and the partition
		// holding it back when the feed's checkpoints differ.
		`CREATE OR REPLACE VIEW ` + w.qualify(sinks.FeedWatermarkView) + ` AS
SELECT c.consumer_group, f.feed, max(f.frontier) AS frontier, min(c.resolved) AS resolved, count(*) AS partitions,
	max(c.applied_at) AS applied_at,
	CASE WHEN min(c.resolved) < max(c.resolved)
		THEN first(c.topic || '[' || CAST(c."partition" AS VARCHAR) || ']' ORDER BY c.resolved, c.topic, c."partition") END AS held_by
FROM ` + w.qualify(sinks.CheckpointsTable) + ` c
JOIN ` + w.qualify(sinks.FeedsTable) + ` f ON f.consumer_group = c.consumer_group AND f.topic = c.topic
GROUP BY c.consumer_group, f.feed`,
	}
}

// RecordFeeds upserts the feed of each topic of group (sinks.FeedRecorder).
func (w *Writer) RecordFeeds(ctx context.Context, group, frontier string, feeds []sinks.FeedTopic) error {
	if len(feeds) == 0 {
		return nil
	}
	ph := make([]string, len(feeds))
	args := make([]any, 0, 5*len(feeds))
	now := time.Now().UTC()
	for i, f := range feeds {
		ph[i] = `(?, ?, ?, ?, ?)`
		args = append(args, group, f.Topic, f.Feed, frontier, now)
	}
	q := `INSERT INTO ` + w.qualify(sinks.FeedsTable) + ` (consumer_group, topic, feed, frontier, recorded_at)
VALUES ` + strings.Join(ph, ", ") + `
ON CONFLICT (consumer_group, topic) DO UPDATE SET
	feed = excluded.feed, frontier = excluded.frontier, recorded_at = excluded.recorded_at`
	if _, err := w.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("record feeds of group %q: %w", group, err)
	}
	return nil
}
