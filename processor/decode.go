package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/schemas"
)

// ingest decodes just enough of each record and writes one buffer batch.
func (p *Processor) ingest(ctx context.Context, fetches kgo.Fetches) error {
	if fetches.NumRecords() == 0 {
		return nil
	}
	if p.batch == nil {
		p.batch = p.cfg.Buffer.NewBatch()
	}
	batch := p.batch
	// The previous fetch's Write has returned: Badger holds none of it.
	batch.Reset()
	var firstErr error
	var consumed, resolved, duplicates int64
	now := time.Now()
	limit := clockLimit(now, p.cfg.MaxClockSkew)
	// Per partition, so that the partition's state is looked up once per
	// fetch rather than once per record.
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		bp := buffer.Partition{Topic: fp.Topic, Partition: fp.Partition}
		st := p.parts[bp]
		if firstErr != nil || len(fp.Records) == 0 || st == nil || !st.ready {
			// A partition revoked while its fetch was in flight is read
			// by its new owner.
			return
		}
		if err := p.fetchGap(st, fp); err != nil {
			firstErr = err
			return
		}
		st.nextOffset, st.highWatermark = fp.Records[len(fp.Records)-1].Offset+1, fp.HighWatermark
		for _, r := range fp.Records {
			consumed++
			rec, err := p.extract(ctx, r)
			value := p.headers.bufferValue(r) // headers.go: the payload to buffer
			if err == nil {
				err = p.checkClock(r, rec, now, limit)
			}
			if err == nil {
				err = p.checkIngest(st, r, rec, value) // limits.go
			}
			if err != nil {
				// A poison record the policy lets go is handled: the
				// partition's consumed offset moves past it.
				if err := p.poisonIngest(ctx, batch, bp, r, err); err != nil {
					firstErr = err
					break
				}
				batch.SetConsumed(bp, r.Offset+1)
				continue
			}
			switch {
			case rec.Resolved:
				resolved++
				if st.resolved.Less(rec.Updated) {
					st.resolved = rec.Updated
					st.mark(rec.Updated, now)
					batch.SetResolved(bp, rec.Updated)
				}
			case rec.Updated.Less(st.applied):
				// Older than what the warehouse already holds for this
				// partition: by CockroachDB's resolved guarantee, a
				// duplicate.
				duplicates++
			default:
				batch.Add(bp, buffer.Event{Updated: rec.Updated, Table: rec.Table, Key: r.Key, Offset: r.Offset, Value: value})
			}
			batch.SetConsumed(bp, r.Offset+1)
		}
	})
	p.stats.consumed.Add(consumed)
	p.stats.resolvedMsgs.Add(resolved)
	p.stats.duplicates.Add(duplicates)
	if firstErr != nil {
		return fmt.Errorf("ingest: %w", firstErr)
	}
	if err := p.cfg.Buffer.Write(ctx, batch); err != nil {
		return fmt.Errorf("buffer write: %w", err)
	}
	return nil
}

// ingestAttempts bounds how often ingest retries a record whose schema the
// registry would not give (the Registry itself retries an unreachable
// registry until the context ends); then the feed stops with the error.
const ingestAttempts = 5

// extract is Decoder.Extract, retried in place while the registry fails.
func (p *Processor) extract(ctx context.Context, r *kgo.Record) (schemas.Record, error) {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		rec, err := p.cfg.Decoder.Extract(ctx, r.Topic, r.Partition, r.Offset, r.Key, r.Value)
		if err == nil || !errors.Is(err, schemas.ErrSchemaUnavailable) || ctx.Err() != nil || attempt == ingestAttempts {
			return rec, err
		}
		p.log.Warn("schema registry failed for a record (not a poison record); retrying",
			zap.String("topic", r.Topic), zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset),
			zap.Int("attempt", attempt), zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-ctx.Done():
			return rec, err
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// checkRowKey rejects a row whose key and value do not belong together: a
// value schema of another table than the key's (the key's columns are not
// the value's), or a key that names another row than the value.
func checkRowKey(row schemas.Row) error {
	if row.Table == nil {
		return errors.New("row without a table")
	}
	if len(row.KeyValues) == 0 || len(row.Table.Key) != len(row.KeyValues) {
		return fmt.Errorf("the key schema does not belong to table %q: %d key columns, %d of them in the value schema",
			row.Table.Name, len(row.KeyValues), len(row.Table.Key))
	}
	if row.After == nil {
		return nil
	}
	for i, c := range row.Table.Key {
		if c >= len(row.After) {
			return fmt.Errorf("table %q: key column %d beyond the row's %d values", row.Table.Name, c, len(row.After))
		}
		k, v := row.KeyValues[i], row.After[c]
		switch kv := k.(type) {
		case int64:
			if vv, ok := v.(int64); !ok || vv != kv {
				return fmt.Errorf("table %q: primary-key column %q differs between the key and the value", row.Table.Name, row.Table.Columns[c].Name)
			}
		case string:
			if vv, ok := v.(string); !ok || vv != kv {
				return fmt.Errorf("table %q: primary-key column %q differs between the key and the value", row.Table.Name, row.Table.Columns[c].Name)
			}
		}
	}
	return nil
}

// locate returns err as a *schemas.DecodeError that names the record.
func locate(err error, bp buffer.Partition, offset int64) error {
	var de *schemas.DecodeError
	if errors.As(err, &de) {
		located := *de
		located.Topic, located.Partition, located.Offset = bp.Topic, bp.Partition, offset
		return &located
	}
	return &schemas.DecodeError{Topic: bp.Topic, Partition: bp.Partition, Offset: offset, SchemaID: -1, Err: err}
}
