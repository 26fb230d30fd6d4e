package duckdb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/highwater-dev/highwater/sinks"
)

// deadLetterDDL creates sinks.DeadLetterTable. It is created with the
// checkpoint table at Open, never inside a window: DuckDB handles DDL on a
// table the same transaction modifies badly (see Tx).
func (w *Writer) deadLetterDDL() string {
	return `CREATE TABLE IF NOT EXISTS ` + w.qualify(sinks.DeadLetterTable) + ` (
	consumer_group VARCHAR NOT NULL,
	topic VARCHAR NOT NULL,
	"partition" INTEGER NOT NULL,
	"offset" BIGINT NOT NULL,
	kafka_timestamp TIMESTAMPTZ,
	"key" BLOB,
	"value" BLOB,
	schema_id INTEGER NOT NULL,
	stage VARCHAR NOT NULL,
	error VARCHAR NOT NULL,
	recorded_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (consumer_group, topic, "partition", "offset"))`
}

// DeadLetters inserts dead letters in the window's transaction; one already
// stored (same group, topic, partition and offset) is left as it is.
func (tx *Tx) DeadLetters(ctx context.Context, dls []sinks.DeadLetter) error {
	if err := tx.guard.Check(); err != nil {
		return err
	}
	for _, dl := range dls {
		switch {
		case dl.Group == "" || dl.Topic == "":
			return tx.guard.Fail(fmt.Errorf("dead letter %s[%d]@%d: empty group or topic", dl.Topic, dl.Partition, dl.Offset))
		case dl.Partition < 0 || dl.Offset < 0:
			return tx.guard.Fail(fmt.Errorf("dead letter %s[%d]@%d: negative partition or offset", dl.Topic, dl.Partition, dl.Offset))
		}
	}
	// One row per offset: DuckDB's ON CONFLICT does not cover two rows of
	// one statement with the same key.
	type dlKey struct {
		g, t string
		p    int32
		o    int64
	}
	seen := make(map[dlKey]bool, len(dls))
	uniq := make([]sinks.DeadLetter, 0, len(dls))
	for _, dl := range dls {
		k := dlKey{dl.Group, dl.Topic, dl.Partition, dl.Offset}
		if !seen[k] {
			seen[k] = true
			uniq = append(uniq, dl)
		}
	}
	dls = uniq
	now := time.Now().UTC()
	const batch = 100
	for len(dls) > 0 {
		n := min(batch, len(dls))
		ph := make([]string, n)
		args := make([]any, 0, n*11)
		for i, dl := range dls[:n] {
			ph[i] = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
			var ts any
			if !dl.Timestamp.IsZero() {
				ts = dl.Timestamp.UTC()
			}
			args = append(args, dl.Group, dl.Topic, dl.Partition, dl.Offset, ts, blob(dl.Key), blob(dl.Value),
				dl.SchemaID, dl.Stage, dl.Error, now)
		}
		q := `INSERT INTO ` + tx.w.qualify(sinks.DeadLetterTable) + ` (consumer_group, topic, "partition", "offset", kafka_timestamp, "key", "value", schema_id, stage, error, recorded_at)
VALUES ` + strings.Join(ph, ", ") + `
ON CONFLICT DO NOTHING`
		if _, err := tx.conn.ExecContext(ctx, q, args...); err != nil {
			return tx.guard.Fail(fmt.Errorf("write %d dead letters: %w", n, err))
		}
		dls = dls[n:]
	}
	return nil
}

// blob passes nil as SQL NULL and anything else, empty included, as a BLOB.
func blob(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}
