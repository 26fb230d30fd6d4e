package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/highwater-dev/highwater/sinks"
)

// ensureDeadLetterTable creates sinks.DeadLetterTable if it is missing; it
// runs in ensureCatalog's transaction, under the schema lock.
func (w *Writer) ensureDeadLetterTable(ctx context.Context, tx pgx.Tx) error {
	name := w.qualified(sinks.DeadLetterTable)
	var has bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&has); err != nil {
		return fmt.Errorf("reading the catalog: %w", err)
	}
	if has {
		return nil
	}
	_, err := tx.Exec(ctx, `CREATE TABLE `+name+` (
		consumer_group TEXT NOT NULL,
		topic TEXT NOT NULL,
		"partition" INTEGER NOT NULL,
		"offset" BIGINT NOT NULL,
		kafka_timestamp TIMESTAMPTZ,
		"key" BYTEA,
		"value" BYTEA,
		schema_id INTEGER NOT NULL,
		stage TEXT NOT NULL,
		error TEXT NOT NULL,
		recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
		PRIMARY KEY (consumer_group, topic, "partition", "offset"))`)
	if err != nil {
		return fmt.Errorf("creating %s: %w", name, err)
	}
	return nil
}

// DeadLetters inserts dead letters in the window's transaction; one already
// stored (same group, topic, partition and offset) is left as it is.
func (x *Tx) DeadLetters(ctx context.Context, dls []sinks.DeadLetter) (err error) {
	defer markLockTimeout(&err)
	if err := x.guard.Check(); err != nil {
		return err
	}
	if len(dls) == 0 {
		return nil
	}
	n := len(dls)
	groups, topics, errs, stages := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	parts, ids := make([]int32, n), make([]int32, n)
	offsets := make([]int64, n)
	stamps := make([]pgtype.Timestamptz, n)
	keys, values := make([][]byte, n), make([][]byte, n)
	for i, dl := range dls {
		switch {
		case dl.Group == "" || dl.Topic == "":
			return x.guard.Fail(fmt.Errorf("postgres: dead letter %s[%d]@%d: empty group or topic", dl.Topic, dl.Partition, dl.Offset))
		case dl.Partition < 0 || dl.Offset < 0:
			return x.guard.Fail(fmt.Errorf("postgres: dead letter %s[%d]@%d: negative partition or offset", dl.Topic, dl.Partition, dl.Offset))
		}
		groups[i], topics[i], parts[i], offsets[i] = dl.Group, dl.Topic, dl.Partition, dl.Offset
		if !dl.Timestamp.IsZero() {
			stamps[i] = pgtype.Timestamptz{Time: dl.Timestamp, Valid: true}
		}
		// nil stays SQL NULL: a Kafka record's null key differs from an
		// empty one.
		keys[i], values[i] = dl.Key, dl.Value
		ids[i], stages[i], errs[i] = dl.SchemaID, dl.Stage, dl.Error
	}
	// DISTINCT ON keeps one row per offset: ON CONFLICT does not cover two
	// rows of one statement.
	_, err = x.tx.Exec(ctx, `INSERT INTO `+x.w.qualified(sinks.DeadLetterTable)+`
		(consumer_group, topic, "partition", "offset", kafka_timestamp, "key", "value", schema_id, stage, error, recorded_at)
		SELECT DISTINCT ON (g, t, p, o) g, t, p, o, ts, k, v, sid, st, e, now()
		FROM unnest($1::text[], $2::text[], $3::int4[], $4::int8[], $5::timestamptz[], $6::bytea[], $7::bytea[], $8::int4[], $9::text[], $10::text[])
			AS u(g, t, p, o, ts, k, v, sid, st, e)
		ON CONFLICT (consumer_group, topic, "partition", "offset") DO NOTHING`,
		groups, topics, parts, offsets, stamps, keys, values, ids, stages, errs)
	if err != nil {
		return x.guard.Fail(fmt.Errorf("postgres: writing %d dead letters to %s: %w", n, x.w.qualified(sinks.DeadLetterTable), err))
	}
	return nil
}
