package processor

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// A record can also be poison when it decodes: when the buffer or the
// warehouse cannot hold it, however often it is retried. Left to fail where
// it is written, such a record would fail a whole buffer write or a whole
// window, and the member would retry, exit and crash-loop with every table
// stopped. So each is checked on its own, before the write that would fail,
// and a refusal goes through Config.OnError like a decode error:
//
//   - at ingest, an event the buffer cannot store (buffer.Store.CheckEvent):
//     a table name with a NUL byte, a Kafka key above Badger's key limit;
//   - at apply, a row the warehouse cannot store (ChangeChecker), such as a
//     NUL character in PostgreSQL text.

// ChangeChecker is implemented by a sinks.Writer that can tell from one
// decoded row, before the window's transaction sees it, that the warehouse
// cannot store it (a value beyond what one of its types can hold). The
// processor calls CheckChange for every row it applies; a non-nil error
// makes the row's record poison (Config.OnError), so that under dlq and skip
// it is set aside inside its window and the window commits without it.
//
// CheckChange must be cheap and safe for concurrent use, must not keep ch
// or its values, and must refuse only what Tx.Write would fail on for this
// row alone: an error for anything else (a lost connection, a table the
// warehouse cannot evolve) would condemn a record that is not at fault.
type ChangeChecker interface {
	CheckChange(table *model.Table, ch sinks.Change) error
}

// checkIngest refuses a row event the buffer cannot store; value is the
// payload it would buffer (r.Value, with r's headers when they are kept).
// Resolved messages and rows older than the partition's applied frontier,
// which are dropped as duplicates, are not buffered and not checked.
func (p *Processor) checkIngest(st *partState, r *kgo.Record, rec schemas.Record, value []byte) error {
	if rec.Resolved || rec.Updated.Less(st.applied) {
		return nil
	}
	err := p.cfg.Buffer.CheckEvent(buffer.Event{Updated: rec.Updated, Table: rec.Table, Key: r.Key, Offset: r.Offset, Value: value})
	if err == nil {
		return nil
	}
	id := rec.ValueSchemaID
	if errors.Is(err, buffer.ErrKeyTooLong) {
		id = rec.KeySchemaID
	}
	return &schemas.DecodeError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, SchemaID: id, Err: err}
}

// checkRow rejects a decoded row whose key and value do not belong together
// (checkRowKey) or that the warehouse cannot store (ChangeChecker).
func (p *Processor) checkRow(row schemas.Row) error {
	if err := checkRowKey(row); err != nil {
		return err
	}
	c, ok := p.cfg.Writer.(ChangeChecker)
	if !ok {
		return nil
	}
	if err := c.CheckChange(row.Table, sinks.Change{Op: opOf(row), Updated: row.Updated, Values: row.Values()}); err != nil {
		return fmt.Errorf("the warehouse cannot store this row of table %q: %w", row.Table.Name, err)
	}
	return nil
}
