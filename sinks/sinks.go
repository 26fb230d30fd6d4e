// Package sinks defines what highwater asks of a warehouse. Each warehouse
// lives in its own sub-package (sinks/duckdb, sinks/postgres, ...) and
// implements Writer; the command line maps URL schemes to constructors.
package sinks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// Op is what happened to a row version.
type Op uint8

// Row operations, as recorded in a changelog's _hw_op column.
const (
	// OpUpsert is a row written by a feed without `diff`, where insert and
	// update cannot be told apart.
	OpUpsert Op = iota
	OpInsert
	OpUpdate
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpInsert:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	}
	return "upsert"
}

// Change is one row version of one table.
type Change struct {
	Op      Op
	Updated hlc.Timestamp
	// Values holds one value per Table.Columns, with the Go types documented
	// on model.Kind. For OpDelete only the primary-key columns are set.
	Values []any
}

// Checkpoint is how far one Kafka partition of a feed has been applied to the
// warehouse. It is written in the same transaction as the rows and is the
// truth for where the partition resumes.
type Checkpoint struct {
	Group     string
	Topic     string
	Partition int32
	// Resolved is the resolved timestamp through which the partition's
	// changes are applied.
	Resolved hlc.Timestamp
	// NextOffset is the Kafka offset to resume fetching from: every change
	// with updated > Resolved is at this offset or later.
	NextOffset int64
}

// Options configure a Writer.
type Options struct {
	// Changelog adds a <table>_changes table holding every version.
	Changelog bool
}

// Writer is a warehouse that applies windows of changes transactionally.
type Writer interface {
	// Checkpoints returns every checkpoint stored for group.
	Checkpoints(ctx context.Context, group string) ([]Checkpoint, error)
	// Begin starts the transaction of one resolved window.
	Begin(ctx context.Context) (Tx, error)
	Close() error
}

// Tx is one window's warehouse transaction. Nothing it writes is visible
// before Commit; after a failed Commit or a Rollback nothing of it is.
// It is used by one goroutine at a time, not always the same one (the
// processor makes a window's Write calls from a goroutine of their own).
type Tx interface {
	// Write adds changes of one table version. Changes may come in any
	// order, within a call and across calls: the writer orders them by
	// Updated. A table may change version (columns added or dropped) between
	// calls; the writer evolves the warehouse table to match. A key may
	// appear in several versions: the mirror keeps only the newest, and never
	// replaces a row whose _hw_updated is newer than the change's; the
	// changelog keeps each (key, Updated) once.
	// The changes slice and its values are only valid during the call.
	Write(ctx context.Context, table *model.Table, changes []Change) error
	// Fence makes this transaction commit only if each partition in held
	// still has, in the warehouse, the checkpoint Resolved this member
	// built the window on (held[i].Resolved; a partition with no stored
	// checkpoint counts as a zero Resolved). The check is made under a lock
	// that holds until the transaction ends, so that two members can never
	// both commit on top of the same checkpoint: a member that lost its
	// partitions (a stall longer than the session timeout) cannot write for
	// them once their new owner has applied a window. On a mismatch Fence,
	// or at the latest Commit, returns a *FencedError (errors.Is ErrFenced)
	// and nothing of the transaction is applied. Every partition whose
	// changes the window writes must be in held, whether or not its
	// checkpoint moves. Call Fence before Checkpoint for the same
	// partitions: writers refuse a Fence of a partition this transaction
	// has already checkpointed. After a *FencedError the transaction is
	// over (Rollback is a no-op, Commit returns the same error).
	Fence(ctx context.Context, held []Checkpoint) error
	// Checkpoint records partitions' progress in this transaction. A
	// checkpoint with a Resolved older than the stored one for the same
	// partition leaves the stored one unchanged.
	Checkpoint(ctx context.Context, cps []Checkpoint) error
	// DeadLetters records records set aside by --on-error=dlq in
	// DeadLetterTable, in this transaction: with the checkpoint that moves
	// their partition past them, so that none is lost or written twice. A
	// dead letter whose (Group, Topic, Partition, Offset) is already stored
	// is left as it is (a replay is a no-op). The slices are only valid
	// during the call.
	DeadLetters(ctx context.Context, dls []DeadLetter) error
	Commit(ctx context.Context) error
	// Rollback abandons the transaction; it is a no-op after Commit.
	Rollback(ctx context.Context) error
}

// ErrFenced is what a fenced window's Tx.Fence or Tx.Commit wraps: a
// partition's stored checkpoint is no longer the one the member built on.
var ErrFenced = errors.New("checkpoint fenced")

// ErrLockTimeout is what a writer's error wraps when a window gave up
// waiting for a lock that another transaction held (another member's
// window, or a member frozen inside one): the window itself did not fail,
// and a retry succeeds once the other transaction ends, so the caller
// retries without counting the attempt against its limit.
var ErrLockTimeout = errors.New("lock wait timed out")

// FencedError says which partitions' stored checkpoints differ from those a
// window was built on. It is not a failure of the warehouse: the member
// re-reads those partitions' checkpoints and resumes from them.
type FencedError struct {
	// Stored are the checkpoints found in the warehouse for the partitions
	// that differ (a zero Resolved where there is none), Resolved and
	// NextOffset exactly as stored. The files writer may also list a
	// partition whose stored checkpoint is still the held one, when
	// another member's window over it claimed it first and is committing.
	Stored []Checkpoint
}

func (e *FencedError) Error() string {
	var b strings.Builder
	b.WriteString(ErrFenced.Error())
	b.WriteString(": another member applied")
	for i, cp := range e.Stored {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %s[%d] through %s", cp.Topic, cp.Partition, cp.Resolved)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrFenced) true for a *FencedError.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// Names of the objects highwater keeps in a warehouse beside the mirror
// tables; every writer uses these, so that users and tools find the same
// layout in each warehouse.
const (
	// CheckpointsTable holds one row per (consumer group, topic, partition).
	// A checkpoint never moves back (Tx.Checkpoint keeps a further one).
	// Every member registers each partition of the feed's topics, from the
	// topic metadata, with a zero Resolved at startup, so that partitions
	// nobody has applied yet hold the watermark back.
	CheckpointsTable = "highwater_checkpoints"
	// WatermarkView gives min(resolved) per group and topic, and per group:
	// how far the feed is complete. It is zero until every partition of the
	// feed has been applied once.
	WatermarkView = "highwater_watermark"
	// ChangesSuffix is appended to a table's name to name its changelog.
	ChangesSuffix = "_changes"
	// UpdatedColumn holds the HLC of a row version as DECIMAL(38,10),
	// exactly CockroachDB's WALLNANOS.LOGICAL.
	UpdatedColumn = "_hw_updated"
	// OpColumn holds a changelog row's operation (Op.String).
	OpColumn = "_hw_op"
	// TablesTable records where each source table is (see NameRule): one
	// row per source table, source_table (the CockroachDB name, primary
	// key), mirror_table, changes_table (the changelog's name, reserved
	// even without --changelog) and recorded_at. A table created by a
	// highwater older than the mapping is recorded under its own name when
	// a writer first opens the warehouse.
	TablesTable = "highwater_tables"
	// ColumnsTable holds one row per renamed column (see NameRule):
	// source_table, source_column, warehouse_column (the name in the
	// mirror and in the changelog) and recorded_at. A column it does not
	// list is named as in CockroachDB.
	ColumnsTable = "highwater_columns"
)

// DeadLetter is a changefeed record highwater could not decode or apply,
// kept with --on-error=dlq in the warehouse's DeadLetterTable (and in a
// dead-letter topic), so that nothing is lost and the operator can see what
// was set aside and why.
type DeadLetter struct {
	Group     string
	Topic     string
	Partition int32
	Offset    int64
	// Timestamp is the Kafka record's timestamp.
	Timestamp time.Time
	Key       []byte
	Value     []byte
	// SchemaID is the value's (or, for a bad key, the key's) Confluent
	// schema id, or -1 when the frame is unreadable.
	SchemaID int32
	// Stage is where the record failed: "ingest" (framing, schema lookup,
	// envelope) or "apply" (typed decode at window time).
	Stage string
	// Error is the decoder's message.
	Error string
}

// DeadLetterTable holds one row per dead letter, unique on (group, topic,
// partition, offset). Its columns, in every SQL warehouse: consumer_group,
// topic, "partition", "offset", kafka_timestamp (NULL when unknown), key,
// value (the raw Kafka bytes, NULL for a null key or value), schema_id,
// stage, error, recorded_at (when the warehouse stored it).
const DeadLetterTable = "highwater_dlq"
