package schemas

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// SchemaSource gives writer schemas by registry id. Registry implements it.
type SchemaSource interface {
	Schema(ctx context.Context, id int) (string, error)
}

// DecoderOption configures a Decoder.
type DecoderOption interface{ applyDecoder(*Decoder) }

type decoderOptionFunc func(*Decoder)

func (f decoderOptionFunc) applyDecoder(d *Decoder) { f(d) }

// DefaultMaxArrayItems is the default of WithMaxArrayItems.
const DefaultMaxArrayItems = 1 << 20

// WithMaxArrayItems bounds the number of items of one decoded array
// (default 1<<20). Arrays are in any case bounded by the remaining input, so
// this matters only for arrays of zero-width items and as a sanity limit.
func WithMaxArrayItems(n int) DecoderOption {
	return decoderOptionFunc(func(d *Decoder) {
		if n > 0 {
			d.maxArray = n
		}
	})
}

// WithMaxSchemaDepth bounds how deeply a writer schema may nest (default
// 32); deeper schemas are rejected when first seen.
func WithMaxSchemaDepth(n int) DecoderOption {
	return decoderOptionFunc(func(d *Decoder) {
		if n > 0 {
			d.maxDepth = n
		}
	})
}

// Decoder decodes CockroachDB Avro changefeed messages. It compiles a plan
// per writer schema id on first use (fetching the schema through its
// SchemaSource) and caches it forever, since registry ids are immutable.
// It is safe for concurrent use.
type Decoder struct {
	src      SchemaSource
	log      *zap.Logger
	maxArray int
	maxDepth int
	maxBits  int
	// families says the feed was created WITH split_column_families
	// (WithSplitColumnFamilies).
	families bool
	// observe, when set (by tests), is told after every Extract and
	// DecodeRow how many array items the message visited and the bytes its
	// decoded values hold (reader.items, reader.out).
	observe func(items, out int)

	values syncMap[int, *valuePlan]
	keys   syncMap[int, *keyPlan]
}

// NewDecoder returns a Decoder that fetches writer schemas from src.
func NewDecoder(src SchemaSource, opts ...DecoderOption) *Decoder {
	d := &Decoder{src: src, log: zap.NewNop(), maxArray: DefaultMaxArrayItems, maxDepth: defaultMaxSchemaDepth, maxBits: DefaultMaxBitWidth}
	for _, o := range opts {
		o.applyDecoder(d)
	}
	return d
}

// Record is what the ingest path needs from one Kafka record.
type Record struct {
	// Resolved is set for a resolved-timestamp message: a null Kafka key and
	// a value schema whose only field is `resolved`.
	Resolved bool
	// Updated is the row's `updated` timestamp (source.ts_hlc with
	// envelope = enriched), or the resolved timestamp.
	Updated hlc.Timestamp
	// Table is the unescaped SQL table name ("table.family" with
	// split_column_families, "db.schema.table" with full_table_name); ""
	// for resolved messages.
	Table string
	// Key is the Avro body of the Kafka key (after the 5-byte header): the
	// row's identity. It aliases the key argument.
	Key []byte
	// Delete is set when `after` (or `record` for envelope=bare) is null.
	Delete bool
	// KeySchemaID and ValueSchemaID are the frames' schema ids; KeySchemaID
	// is -1 for resolved messages.
	KeySchemaID, ValueSchemaID int
}

// Row is one fully decoded row message.
type Row struct {
	// Table is the column model of the value schema's after/record record,
	// with primary-key flags from the key schema. It is the same pointer for
	// every record written with the same value (and key) schema ids.
	Table   *model.Table
	Updated hlc.Timestamp
	// After holds len(Table.Columns) values (see model.Kind for their Go types),
	// or is nil for a delete.
	After []any
	// Diff is set when the envelope has a `before` field (the diff option).
	Diff bool
	// Before is the previous row image (nil when null), with the columns of
	// BeforeTable, which may differ from Table across a schema change.
	Before      []any
	BeforeTable *model.Table
	// KeyValues are the primary-key values decoded from the Kafka key, in
	// key-schema field order.
	KeyValues []any
	// MVCC is the mvcc_timestamp when the envelope has one (in the source
	// record for envelope = enriched).
	MVCC hlc.Timestamp
	// Op is the enriched envelope's op; OpNone for other envelopes.
	Op EnrichedOp
	// Size approximates the bytes of memory the decoded values hold: the
	// value slots, strings, byte slices, array items, BIT strings and
	// decimals. It is cheap (counted per allocation while decoding) and
	// meant for bounding queues of rows by bytes.
	Size int
}

// Delete reports whether r is a delete (after is null).
func (r Row) Delete() bool { return r.After == nil }

// Values returns After, or for a delete a len(Table.Columns) slice with only
// the primary-key columns set (from KeyValues).
func (r Row) Values() []any {
	if r.After != nil || r.Table == nil {
		return r.After
	}
	out := make([]any, len(r.Table.Columns))
	if len(r.Table.Key) == len(r.KeyValues) {
		for i, c := range r.Table.Key {
			out[c] = r.KeyValues[i]
		}
	}
	return out
}

// schemaError marks a schema source failure other than an unknown id as
// ErrSchemaUnavailable: the source's fault, not the record's.
func schemaError(err error) error {
	if errors.Is(err, ErrUnknownSchema) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrSchemaUnavailable, err)
}

func (d *Decoder) valuePlan(ctx context.Context, id int) (*valuePlan, error) {
	if p, ok := d.values.Load(id); ok {
		return p, nil
	}
	text, err := d.src.Schema(ctx, id)
	if err != nil {
		return nil, schemaError(err)
	}
	p, loaded := d.values.LoadOrStore(id, compileValue(id, text, d.maxDepth))
	if !loaded && p.err != nil {
		d.log.Warn("value schema unusable", zap.Int("schema_id", id), zap.Error(p.err))
	}
	return p, nil
}

func (d *Decoder) keyPlan(ctx context.Context, id int) (*keyPlan, error) {
	if p, ok := d.keys.Load(id); ok {
		return p, nil
	}
	text, err := d.src.Schema(ctx, id)
	if err != nil {
		return nil, schemaError(err)
	}
	p, _ := d.keys.LoadOrStore(id, compileKey(id, text, d.maxDepth))
	return p, nil
}

// rowTables returns the key plan of kid and the column models of p's rows
// written with that key schema, cached on p so that every row of one
// (value, key) schema pair shares one *Table.
func (d *Decoder) rowTables(ctx context.Context, p *valuePlan, kid int) (*keyPlan, *rowTables, error) {
	kp, err := d.keyPlan(ctx, kid)
	if err != nil {
		return nil, nil, err
	}
	if kp.err != nil {
		return nil, nil, fmt.Errorf("key schema: %w", kp.err)
	}
	if kp.notPrimary != nil {
		// Refused like Extract refuses it (checkKeySchema), so that a row
		// DecodeRow accepts was always one ingest could accept.
		return nil, nil, fmt.Errorf("key schema: %w", kp.notPrimary)
	}
	tables, ok := p.rows.Load(kid)
	if !ok {
		tables, _ = p.rows.LoadOrStore(kid, &rowTables{table: d.familyTable(p.table, p, kp), before: d.familyTable(p.before, p, kp)})
	}
	return kp, tables, nil
}

// reader returns a reader of one message body (or key body) with its
// per-message budget.
func (d *Decoder) reader(b []byte) reader {
	return reader{b: b, maxArray: d.maxArray, maxBits: d.maxBits, budget: itemBudget(len(b))}
}

// observed reports a message's readers to d.observe, if set.
func (d *Decoder) observed(r, kr *reader) {
	if d.observe == nil {
		return
	}
	items, out := r.items, r.out
	if kr != nil {
		items, out = items+kr.items, out+kr.out
	}
	d.observe(items, out)
}

// Extract decodes the little that ingest needs from a Kafka record: the
// table, the key body, `updated`, and whether it is a delete or a resolved
// message. It skips over row data without materialising it. Errors are
// *DecodeError.
func (d *Decoder) Extract(ctx context.Context, topic string, partition int32, offset int64, key, value []byte) (Record, error) {
	var r reader
	fail := func(id int, err error) (Record, error) {
		d.observed(&r, nil)
		return Record{}, &DecodeError{Topic: topic, Partition: partition, Offset: offset, SchemaID: id, Err: err}
	}
	if value == nil {
		if len(key) == 0 {
			return fail(-1, errors.New("record has neither key nor value"))
		}
		// envelope=key_only: there is no value, so there is no `updated`.
		id, _, err := ParseFrame(key)
		if err != nil {
			return fail(-1, fmt.Errorf("key: %w", err))
		}
		return fail(id, fmt.Errorf("null value (envelope=key_only?): %w", ErrNoUpdated))
	}
	vid, body, err := ParseFrame(value)
	if err != nil {
		return fail(-1, fmt.Errorf("value: %w", err))
	}
	p, err := d.valuePlan(ctx, vid)
	if err != nil {
		return fail(vid, err)
	}
	if p.err != nil {
		return fail(vid, p.err)
	}
	r = d.reader(body)
	if p.resolved {
		if len(key) != 0 {
			return fail(vid, errors.New("resolved message with a non-null key"))
		}
		ts, err := r.hlcField(&p.fields[0], "resolved")
		if err == nil && r.i != len(r.b) {
			err = fmt.Errorf("%d trailing bytes", len(r.b)-r.i)
		}
		if err != nil {
			return fail(vid, err)
		}
		d.observed(&r, nil)
		return Record{Resolved: true, Updated: ts, KeySchemaID: -1, ValueSchemaID: vid}, nil
	}
	if len(key) == 0 {
		return fail(vid, errors.New("row message with a null key"))
	}
	kid, kbody, err := ParseFrame(key)
	if err != nil {
		return fail(-1, fmt.Errorf("key: %w", err))
	}
	if err := d.checkKeySchema(ctx, p, kid); err != nil { // keycolumn.go
		return fail(kid, err)
	}
	rec := Record{Table: p.table.Name, Key: kbody, KeySchemaID: kid, ValueSchemaID: vid}
	for i := range p.fields {
		f := &p.fields[i]
		switch f.role {
		case roleAfter, roleRecord:
			idx := int64(0)
			if f.nullIdx >= 0 {
				if idx, err = r.long(); err != nil {
					return fail(vid, fmt.Errorf("after: %w", err))
				}
			}
			switch idx {
			case f.nullIdx:
				rec.Delete = true
			case f.valIdx:
				if err := r.skip(f.rec); err != nil {
					return fail(vid, fmt.Errorf("after: %w", err))
				}
			default:
				return fail(vid, fmt.Errorf("after: union branch %d out of range", idx))
			}
		case roleUpdated:
			ts, err := r.hlcField(f, "updated")
			if err != nil {
				return fail(vid, err)
			}
			rec.Updated = ts
		case roleSource:
			ts, err := r.source(f, nil)
			if err != nil {
				return fail(vid, err)
			}
			rec.Updated = ts
		default:
			if err := r.skip(f.skip); err != nil {
				return fail(vid, fmt.Errorf("%s: %w", roleName(f.role), err))
			}
		}
	}
	if r.i != len(r.b) {
		return fail(vid, fmt.Errorf("%d trailing bytes after the envelope", len(r.b)-r.i))
	}
	d.observed(&r, nil)
	return rec, nil
}

func roleName(r envRole) string {
	switch r {
	case roleBefore:
		return "before"
	case roleMVCC:
		return "mvcc_timestamp"
	}
	return "envelope field"
}

// hlcField reads a ["null","string"] timestamp field; null is an error.
func (r *reader) hlcField(f *envField, name string) (hlc.Timestamp, error) {
	if f.nullIdx >= 0 {
		idx, err := r.long()
		if err != nil {
			return hlc.Timestamp{}, fmt.Errorf("%s: %w", name, err)
		}
		if idx == f.nullIdx {
			return hlc.Timestamp{}, fmt.Errorf("%s is null", name)
		}
		if idx != f.valIdx {
			return hlc.Timestamp{}, fmt.Errorf("%s: union branch %d out of range", name, idx)
		}
	}
	b, err := r.bytes()
	if err != nil {
		return hlc.Timestamp{}, fmt.Errorf("%s: %w", name, err)
	}
	if h, ok := parseHLCBytes(b); ok {
		return h, nil
	}
	h, err := hlc.Parse(string(b))
	if err != nil {
		return hlc.Timestamp{}, fmt.Errorf("%s: %w", name, err)
	}
	return h, nil
}

// parseHLCBytes is hlc.Parse's allocation-free fast path for the canonical
// "<wallnanos>.<10 digits>" form; ok is false for anything else.
func parseHLCBytes(b []byte) (hlc.Timestamp, bool) {
	if len(b) < 12 || len(b) > 30 || b[len(b)-11] != '.' {
		return hlc.Timestamp{}, false
	}
	var wall uint64
	for _, c := range b[:len(b)-11] {
		if c < '0' || c > '9' {
			return hlc.Timestamp{}, false
		}
		wall = wall*10 + uint64(c-'0')
	}
	var logical uint64
	for _, c := range b[len(b)-10:] {
		if c < '0' || c > '9' {
			return hlc.Timestamp{}, false
		}
		logical = logical*10 + uint64(c-'0')
	}
	// At most 19 wall digits, so wall cannot have wrapped uint64.
	if wall > 1<<63-1 || logical > 1<<31-1 {
		return hlc.Timestamp{}, false
	}
	return hlc.Timestamp{WallTime: int64(wall), Logical: int32(logical)}, true
}

// DecodeRow fully decodes a row message into typed column values. Errors
// are *DecodeError without topic, partition and offset (the caller knows
// them).
func (d *Decoder) DecodeRow(ctx context.Context, key, value []byte) (Row, error) {
	var r, kr reader
	fail := func(id int, err error) (Row, error) {
		d.observed(&r, &kr)
		return Row{}, &DecodeError{SchemaID: id, Err: err}
	}
	if value == nil {
		id := -1
		if len(key) > 0 {
			id, _, _ = ParseFrame(key)
		}
		return fail(id, fmt.Errorf("null value (envelope=key_only?): %w", ErrNoUpdated))
	}
	vid, body, err := ParseFrame(value)
	if err != nil {
		return fail(-1, fmt.Errorf("value: %w", err))
	}
	p, err := d.valuePlan(ctx, vid)
	if err != nil {
		return fail(vid, err)
	}
	if p.err != nil {
		return fail(vid, p.err)
	}
	if p.resolved {
		return fail(vid, errors.New("resolved message has no row"))
	}
	if len(key) == 0 {
		return fail(vid, errors.New("row message with a null key"))
	}
	kid, kbody, err := ParseFrame(key)
	if err != nil {
		return fail(-1, fmt.Errorf("key: %w", err))
	}
	kp, tables, err := d.rowTables(ctx, p, kid)
	if err != nil {
		return fail(kid, err)
	}
	row := Row{Table: tables.table, Diff: p.hasBefore, BeforeTable: tables.before}
	// One allocation for the key values and the after image.
	buf := make([]any, len(kp.nodes)+len(p.cols))
	row.KeyValues = buf[:len(kp.nodes):len(kp.nodes)]
	afterBuf := buf[len(kp.nodes):]
	r = d.reader(body)
	for i := range p.fields {
		f := &p.fields[i]
		switch f.role {
		case roleAfter, roleRecord, roleBefore:
			var cols []*node
			var tbl *model.Table
			if f.role == roleBefore {
				cols, tbl = p.beforeCols, p.before
			} else {
				cols, tbl = p.cols, p.table
			}
			var dst []any
			if f.role != roleBefore {
				dst = afterBuf
			}
			vals, err := r.optRecord(f, cols, tbl, dst)
			if err != nil {
				return fail(vid, err)
			}
			if f.role == roleBefore {
				row.Before = vals
			} else {
				row.After = vals
			}
		case roleUpdated:
			if row.Updated, err = r.hlcField(f, "updated"); err != nil {
				return fail(vid, err)
			}
		case roleMVCC:
			if row.MVCC, err = r.optHLC(f, "mvcc_timestamp"); err != nil {
				return fail(vid, err)
			}
		case roleSource:
			if row.Updated, err = r.source(f, &row.MVCC); err != nil {
				return fail(vid, err)
			}
		case roleOp:
			if row.Op, err = r.op(f); err != nil {
				return fail(vid, err)
			}
		default:
			if err := r.skip(f.skip); err != nil {
				return fail(vid, fmt.Errorf("envelope field: %w", err))
			}
		}
	}
	if r.i != len(r.b) {
		return fail(vid, fmt.Errorf("%d trailing bytes after the envelope", len(r.b)-r.i))
	}
	if err := checkOp(&row); err != nil {
		return fail(vid, err)
	}
	kr = d.reader(kbody)
	for i, n := range kp.nodes {
		v, err := kr.value(n)
		if err != nil {
			return fail(kid, fmt.Errorf("key column %q: %w", kp.cols[i].Name, err))
		}
		row.KeyValues[i] = v
	}
	if kr.i != len(kr.b) {
		return fail(kid, fmt.Errorf("%d trailing bytes after the key", len(kr.b)-kr.i))
	}
	// A column family's record lacks the key columns the family does not
	// hold; the table has them from the key (families.go).
	row.After = withKeyValues(row.After, row.Table, row.KeyValues)
	row.Before = withKeyValues(row.Before, row.BeforeTable, row.KeyValues)
	row.Size = r.out + kr.out + slotSize*(len(buf)+len(row.Before))
	d.observed(&r, &kr)
	return row, nil
}

// optRecord reads a ["null", record] envelope field into column values; nil
// when null.
func (r *reader) optRecord(f *envField, cols []*node, t *model.Table, dst []any) ([]any, error) {
	name := "after"
	switch f.role {
	case roleBefore:
		name = "before"
	case roleRecord:
		name = "record"
	}
	if f.nullIdx >= 0 {
		idx, err := r.long()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if idx == f.nullIdx {
			return nil, nil
		}
		if idx != f.valIdx {
			return nil, fmt.Errorf("%s: union branch %d out of range", name, idx)
		}
	}
	vals := dst
	if len(vals) != len(cols) {
		vals = make([]any, len(cols))
	}
	for i, n := range cols {
		v, err := r.value(n)
		if err != nil {
			return nil, fmt.Errorf("%s column %q: %w", name, t.Columns[i].Name, err)
		}
		vals[i] = v
	}
	return vals, nil
}

// optHLC reads a ["null","string"] timestamp field; null gives the zero HLC.
func (r *reader) optHLC(f *envField, name string) (hlc.Timestamp, error) {
	if f.nullIdx >= 0 {
		save := r.i
		idx, err := r.long()
		if err != nil {
			return hlc.Timestamp{}, fmt.Errorf("%s: %w", name, err)
		}
		if idx == f.nullIdx {
			return hlc.Timestamp{}, nil
		}
		r.i = save
	}
	return r.hlcField(f, name)
}

// syncMap is a typed sync.Map: read-mostly caches keyed by schema id.
type syncMap[K comparable, V any] struct{ m sync.Map }

func (s *syncMap[K, V]) Load(k K) (V, bool) {
	v, ok := s.m.Load(k)
	if !ok {
		var zero V
		return zero, false
	}
	return v.(V), true
}

func (s *syncMap[K, V]) LoadOrStore(k K, v V) (V, bool) {
	a, loaded := s.m.LoadOrStore(k, v)
	return a.(V), loaded
}
