package simulator

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/linkedin/goavro/v2"
	"golang.org/x/text/unicode/norm"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/model"
)

// avroField and avroRecord mirror CockroachDB's avro.SchemaField and
// avro.DataRecord JSON tags, so that json.Marshal yields the same text
// (§1.2: type, name, default, __crdb__; record: type, name, fields, namespace).
type avroField struct {
	SchemaType any       `json:"type"`
	Name       string    `json:"name"`
	Default    *struct{} `json:"default"` // always null
	Metadata   string    `json:"__crdb__,omitempty"`
}

type avroRecord struct {
	SchemaType string       `json:"type"`
	Name       string       `json:"name"`
	Fields     []*avroField `json:"fields"`
	Namespace  string       `json:"namespace,omitempty"`
}

func marshalSchema(r *avroRecord) string {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("simulator: marshal schema: %v", err)) // only plain structs: cannot fail
	}
	return string(b)
}

// column is one column of a table version.
type column struct {
	name     string
	avroName string
	typ      *colType
	notNull  bool
	dflt     string // SQL default expression, "" for none
	crdb     string // the __crdb__ metadata
	dfn      func(*Sim, hlc.Timestamp) any
	virtual  bool // a virtual computed column: always NULL (virtual_columns = 'null')
	keyOnly  bool // a key column a column family's value record lacks (families.go)
}

func newColumn(def ColumnDef, enums map[string][]string) (*column, error) {
	if def.Name == "" {
		return nil, fmt.Errorf("column with empty name")
	}
	t, err := parseType(def.Type, enums)
	if err != nil {
		return nil, fmt.Errorf("column %q: %w", def.Name, err)
	}
	c := &column{name: def.Name, avroName: model.SQLNameToAvroName(def.Name), typ: t, notNull: def.NotNull, dflt: def.Default}
	c.crdb = crdbColumnString(def.Name, t.sql, def.NotNull, def.Default)
	if def.Virtual != "" {
		if def.Default != "" {
			return nil, fmt.Errorf("column %q: a computed column cannot have a DEFAULT", def.Name)
		}
		// ColumnDescriptor.SQLStringNotHumanReadable of a computed column.
		c.crdb += " AS (" + def.Virtual + ") VIRTUAL"
		c.virtual = true
	}
	return c, nil
}

// crdbColumnString is ColumnDescriptor.SQLStringNotHumanReadable:
// "<name> <type> NULL|NOT NULL[ DEFAULT <expr>]" with the name formatted as
// CockroachDB's FmtSimple does (quoted when not a bare identifier).
func crdbColumnString(name, sqlType string, notNull bool, dflt string) string {
	var b strings.Builder
	b.WriteString(formatSQLName(name))
	b.WriteByte(' ')
	b.WriteString(sqlType)
	if notNull {
		b.WriteString(" NOT NULL")
	} else {
		b.WriteString(" NULL")
	}
	if dflt != "" {
		b.WriteString(" DEFAULT ")
		b.WriteString(dflt)
	}
	return b.String()
}

// formatSQLName is lexbase.EncodeRestrictedSQLIdent: bare when the name is a
// lowercase identifier that is not a reserved keyword, else double-quoted.
func formatSQLName(s string) string {
	if isBareIdentifier(s) && !reservedKeywords[s] {
		return s
	}
	return sqlident.Quote(s)
}

func isBareIdentifier(s string) bool {
	if len(s) == 0 || !isIdentStart(s[0]) || (s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	ascii := s[0] < utf8.RuneSelf
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isIdentStart(c) && !(c >= '0' && c <= '9') && c != '$' {
			return false
		}
		if c >= 'A' && c <= 'Z' {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return ascii || (strings.ToLower(s) == s && norm.NFC.String(s) == s)
}

func isIdentStart(c byte) bool {
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c >= 128 || c == '_'
}

// reservedKeywords is CockroachDB's lexbase reservedKeywords (generated from
// sql.y: reserved, type_func_name and col_name keywords) plus the lookahead
// keywords that it also quotes.
var reservedKeywords = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Fields(`all analyse analyze and annotate_type any array as asc asymmetric
authorization between bigint bit boolean both box2d case cast char character characteristics check
coalesce collate collation column concurrently constraint create cross current_catalog current_date
current_role current_schema current_time current_timestamp current_user dec decimal default deferrable
desc distinct do else end except exists extract extract_duration false family fetch float for foreign
from full geography geometry grant greatest group grouping having if iferror ifnull ilike in index
initially inner inout int integer intersect interval into is iserror isnull join lateral leading least
left like limit localtime localtimestamp natural none not nothing notnull null nullif numeric offset on
only or order out outer overlaps overlay placing point polygon position precision primary real
references returning right row select session_user setof similar smallint some string substring
symmetric table then time timestamp timestamptz timetz to trailing treat trim true union unique user
using values varbit varchar variadic virtual when where window with work of ordinality`) {
		m[k] = true
	}
	return m
}()

// tableSchema is one descriptor version of a table: its columns in table
// order and the Avro records built from them.
type tableSchema struct {
	version int
	since   hlc.Timestamp // first HLC at which this version is valid
	cols    []*column
	byName  map[string]int
	key     []int // indexes into cols, primary-index order
	all     []int // 0..len(cols)-1, see allCols
}

func (ts *tableSchema) fields() []*avroField {
	out := make([]*avroField, len(ts.cols))
	for i, c := range ts.cols {
		out[i] = &avroField{SchemaType: c.typ.unionSchema(), Name: c.avroName, Metadata: c.crdb}
	}
	return out
}

// valueFields are the fields of the value's row record: a column family's
// record lacks the key columns the family does not hold.
func (ts *tableSchema) valueFields() []*avroField {
	out := ts.fields()[:0:0]
	for i, f := range ts.fields() {
		if !ts.cols[i].keyOnly {
			out = append(out, f)
		}
	}
	return out
}

// keySchema is the primary-key record (avro.go PrimaryIndexToAvroSchema):
// named after prefix+table, namespace prefix.
func keySchema(tableName, prefix string, ts *tableSchema) string {
	all := ts.fields()
	fs := make([]*avroField, len(ts.key))
	for i, k := range ts.key {
		fs[i] = all[k]
	}
	return marshalSchema(&avroRecord{SchemaType: "record", Name: model.SQLNameToAvroName(prefix + tableName), Fields: fs, Namespace: prefix})
}

// envelopeOpts are the changefeed options that shape the value envelope.
type envelopeOpts struct {
	diff, updated, mvcc bool
	prefix              string
	enriched, source    bool  // envelope = enriched, enriched_properties = 'source'
	seed                int64 // orders the source record's fields (enriched.go)
}

// valueSchema is the wrapped envelope (avro.go NewEnvelopeRecord, §2.1):
// before? (previous descriptor version), after, updated?, mvcc_timestamp?.
func valueSchema(tableName, bare string, o envelopeOpts, before, after *tableSchema) string {
	if o.enriched {
		return enrichedValueSchema(tableName, bare, o, before, after)
	}
	inner := model.SQLNameToAvroName(bare)
	var fs []*avroField
	if o.diff {
		rec := &avroRecord{SchemaType: "record", Name: inner + "_before", Fields: before.valueFields(), Namespace: o.prefix}
		fs = append(fs, &avroField{SchemaType: []any{"null", rec}, Name: "before"})
	}
	rec := &avroRecord{SchemaType: "record", Name: inner, Fields: after.valueFields(), Namespace: o.prefix}
	fs = append(fs, &avroField{SchemaType: []any{"null", rec}, Name: "after"})
	if o.updated {
		fs = append(fs, &avroField{SchemaType: []any{"null", "string"}, Name: "updated"})
	}
	if o.mvcc {
		fs = append(fs, &avroField{SchemaType: []any{"null", "string"}, Name: "mvcc_timestamp"})
	}
	return marshalSchema(&avroRecord{SchemaType: "record", Name: model.SQLNameToAvroName(o.prefix+tableName) + "_envelope", Fields: fs, Namespace: o.prefix})
}

// resolvedSchema is the resolved-timestamp envelope for topic ("" for the v2
// sink, §4.2).
func resolvedSchema(topic, prefix string) string {
	return marshalSchema(&avroRecord{SchemaType: "record", Name: model.SQLNameToAvroName(topic) + "_envelope",
		Fields: []*avroField{{SchemaType: []any{"null", "string"}, Name: "resolved"}}, Namespace: prefix})
}

// fullName is the Avro full name of a record named name in namespace ns,
// which goavro uses as the union branch name.
func fullName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "." + name
}

type valueCodec struct {
	codec      *goavro.Codec
	header     [5]byte
	beforeName string
	afterName  string
	before     *tableSchema
	after      *tableSchema
	enriched   *enrichedCodec // nil for envelope = wrapped
	// full is the after version with every column, the one a row's values
	// follow; it differs from after only WITH headers_json_column_name,
	// whose column headers (its index in full, else -1) are sent as
	// headers (headers.go).
	full    *tableSchema
	headers int
}

func (s *Sim) registerTable(ctx context.Context, t *table) error {
	if t.fam != nil && t.fam.id > 0 {
		// The key is registered once per table, under the first family.
		v := t.cur().version
		_, err := s.valueCodec(ctx, t, v, v)
		return err
	}
	ks := keySchema(t.name, s.opts.SchemaPrefix, t.cur())
	codec, err := goavro.NewCodec(ks)
	if err != nil {
		return fmt.Errorf("key schema: %w", err)
	}
	t.keyCodec = codec
	if s.opts.KeyColumn != "" {
		// The primary key stays the rows' identity, unregistered; the
		// Kafka key is the key_column's record (keycolumn.go).
		if err := s.registerCustomKey(ctx, t); err != nil {
			return err
		}
	} else {
		id, err := s.reg.register(ctx, t.keySubject, ks)
		if err != nil {
			return err
		}
		t.keyHeader = header(id)
	}
	v := t.cur().version
	_, err = s.valueCodec(ctx, t, v, v)
	return err
}

func (s *Sim) registerResolved(ctx context.Context) error {
	if !s.opts.ResolvedV1 {
		_, err := s.resolvedPayload(ctx, "", s.clock)
		return err
	}
	for _, t := range s.tables {
		if _, err := s.resolvedPayload(ctx, t.topic, s.clock); err != nil {
			return err
		}
	}
	return nil
}

// resolvedPayload encodes a resolved message for topic ("" for the v2 sink).
func (s *Sim) resolvedPayload(ctx context.Context, topic string, ts hlc.Timestamp) ([]byte, error) {
	sch := resolvedSchema(topic, s.opts.SchemaPrefix)
	codec, err := goavro.NewCodec(sch)
	if err != nil {
		return nil, fmt.Errorf("resolved schema: %w", err)
	}
	id, err := s.reg.register(ctx, model.SQLNameToKafkaName(topic)+"-value", sch)
	if err != nil {
		return nil, err
	}
	h := header(id)
	b, err := codec.BinaryFromNative(h[:], map[string]any{"resolved": map[string]any{"string": ts.String()}})
	if err != nil {
		return nil, fmt.Errorf("encode resolved: %w", err)
	}
	return b, nil
}

func header(id uint32) [5]byte {
	var h [5]byte
	binary.BigEndian.PutUint32(h[1:], id)
	return h
}

// valueCodec returns the envelope codec for a (before version, after
// version) pair, registering its schema under the value subject on first use.
func (s *Sim) valueCodec(ctx context.Context, t *table, before, after int) (*valueCodec, error) {
	if vc, ok := t.values[[2]int{before, after}]; ok {
		return vc, nil
	}
	bs, as := s.withoutHeadersColumn(t.versions[before]), s.withoutHeadersColumn(t.versions[after])
	sch := valueSchema(t.name, t.bare, s.env, bs, as)
	codec, err := goavro.NewCodec(sch)
	if err != nil {
		return nil, fmt.Errorf("value schema: %w", err)
	}
	id, err := s.reg.register(ctx, t.valSubject, sch)
	if err != nil {
		return nil, err
	}
	inner := model.SQLNameToAvroName(t.bare)
	vc := &valueCodec{codec: codec, header: header(id),
		beforeName: fullName(s.opts.SchemaPrefix, inner+"_before"), afterName: fullName(s.opts.SchemaPrefix, inner),
		before: bs, after: as, full: t.versions[after], headers: -1, enriched: s.newEnrichedCodec(t, slices.Index(s.tables, t))}
	if i, ok := vc.full.byName[s.opts.HeadersJSONColumn]; ok && as != vc.full {
		vc.headers = i
	}
	allCols(vc.before) // fill the caches now: encoders read them concurrently
	allCols(vc.after)
	t.values[[2]int{before, after}] = vc
	return vc, nil
}
