package schemas

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/hamba/avro/v2"

	"github.com/highwater-dev/highwater/model"
)

// This file compiles parsed schemas into plans: the column model (Table) and
// a node per column that the reader skips or decodes.

// parseCRDBHint splits a __crdb__ hint, "<col> <SQLTYPE> NULL|NOT NULL[
// DEFAULT ...][ AS (...) STORED]", into the SQL type and nullability. The
// column name may be double-quoted (with "" for a quote). A hint without a
// NULL/NOT NULL marker is taken as nullable with the rest as its type.
func parseCRDBHint(h string) (sqlType string, nullable bool) {
	rest := h
	if strings.HasPrefix(rest, `"`) {
		i := 1
		for i < len(rest) {
			if rest[i] == '"' {
				if i+1 < len(rest) && rest[i+1] == '"' {
					i += 2
					continue
				}
				break
			}
			i++
		}
		rest = rest[min(i+1, len(rest)):]
	} else if sp := strings.IndexByte(rest, ' '); sp >= 0 {
		rest = rest[sp:]
	} else {
		return "", true
	}
	rest = strings.TrimLeft(rest, " ")
	// Find the first " NULL" or " NOT NULL" word outside double quotes.
	inQuote := false
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c == '"' {
			inQuote = !inQuote
			continue
		}
		if inQuote || c != ' ' {
			continue
		}
		tail := rest[i+1:]
		for _, m := range [...]struct {
			word     string
			nullable bool
		}{{"NOT NULL", false}, {"NULL", true}} {
			if strings.HasPrefix(tail, m.word) && (len(tail) == len(m.word) || tail[len(m.word)] == ' ') {
				return rest[:i], m.nullable
			}
		}
	}
	return rest, true
}

// virtualHint reports whether a __crdb__ hint is a virtual computed column's
// ("<col> <TYPE> NULL|NOT NULL AS (<expr>) VIRTUAL"). CockroachDB leaves such
// columns out of its messages unless the changefeed has virtual_columns =
// 'null', which sends them NULL whatever their declared nullability.
func virtualHint(h string) bool { return strings.HasSuffix(h, ") VIRTUAL") }

// sqlBase returns the upper-cased base name of a SQL type: the text before
// any "(", "[" or space, with "TIMESTAMP ... WITH TIME ZONE" as TIMESTAMPTZ.
func sqlBase(sqlType string) string {
	u := strings.ToUpper(strings.TrimSpace(sqlType))
	if i := strings.IndexAny(u, "([ "); i >= 0 {
		if strings.HasPrefix(u, "TIMESTAMP") && strings.Contains(u, "WITH TIME ZONE") {
			return "TIMESTAMPTZ"
		}
		u = u[:i]
	}
	return u
}

// compiler compiles one parsed schema into plan nodes. Named-type
// references are compiled once per place they are used, so maxNodes bounds
// the plan of a schema that names one type many times over (a record of two
// references to a record of two references ...), which would otherwise grow
// exponentially with its nesting.
type compiler struct {
	nodes, maxNodes int
}

// newCompiler returns a compiler for a schema text of n bytes. A schema
// without references has fewer nodes than a quarter of its bytes, and every
// record is compiled at most twice (as columns and for skipping).
func newCompiler(n int) *compiler { return &compiler{maxNodes: 4*n + 1024} }

// node returns a new plan node, counted against the compiler's budget.
func (c *compiler) node(n node) (*node, error) {
	if c.nodes++; c.nodes > c.maxNodes {
		return nil, fmt.Errorf("schema expands to more than %d plan nodes through named-type references", c.maxNodes)
	}
	return &n, nil
}

// column compiles one column field of a table record.
func (c *compiler) column(f *avro.Field, where string) (model.Column, *node, error) {
	name, err := model.UnescapeName(f.Name())
	if err != nil {
		return model.Column{}, nil, fmt.Errorf("%s field %q: %w", where, f.Name(), err)
	}
	col := model.Column{Name: name, AvroName: f.Name(), Nullable: true}
	hint, hinted := crdbHint(f)
	if hinted {
		col.SQLType, col.Nullable = parseCRDBHint(hint)
		if virtualHint(hint) {
			col.Nullable = true
		}
	}
	t, n, err := c.columnType(f.Type(), col.SQLType, hinted)
	if err != nil {
		return model.Column{}, nil, fmt.Errorf("%s column %q: %w", where, name, err)
	}
	col.Type = t
	return col, n, nil
}

// columnType compiles a column's Avro type, which CockroachDB writes as
// ["null", T] (["null", decimal, "string"] for DECIMAL).
func (c *compiler) columnType(s avro.Schema, sqlType string, hinted bool) (model.Type, *node, error) {
	us, ok := s.(*avro.UnionSchema)
	if !ok {
		return c.scalar(s, sqlType, hinted)
	}
	u, err := c.node(node{op: opUnion, minSize: 1})
	if err != nil {
		return model.Type{}, nil, err
	}
	var main avro.Schema
	var mainType model.Type
	var mainDec *avro.DecimalLogicalSchema
	for _, b := range us.Types() {
		var bn *node
		switch {
		case b.Type() == avro.Null:
			bn, err = c.node(node{op: opNull})
		case main == nil:
			var ty model.Type
			ty, bn, err = c.scalar(b, sqlType, hinted)
			if err == nil {
				main, mainType = b, ty
				_, mainDec, err = logicalOf(b)
			}
		case mainDec != nil && b.Type() == avro.String && isPlain(b):
			bn, err = c.node(node{op: opDecimalSpecial, scale: mainDec.Scale(), minSize: 1})
		default:
			err = fmt.Errorf("unsupported union of %s and %s", kindName(main), kindName(b))
		}
		if err != nil {
			return model.Type{}, nil, err
		}
		u.branches = append(u.branches, bn)
	}
	if main == nil {
		return model.Type{}, nil, errors.New("union of only null")
	}
	return mainType, u, nil
}

// isPlain reports whether s is a primitive without a logical type.
func isPlain(s avro.Schema) bool {
	p, ok := s.(*avro.PrimitiveSchema)
	return ok && p.Logical() == nil
}

// kindName names s's Avro type for errors: a reference by the type it names.
func kindName(s avro.Schema) avro.Type { return deref(s).Type() }

func (c *compiler) scalar(s avro.Schema, sqlType string, hinted bool) (model.Type, *node, error) {
	base := sqlBase(sqlType)
	lt, dec, err := logicalOf(s)
	if err != nil {
		return model.Type{}, nil, err
	}
	var ty model.Type
	var n node
	switch s.Type() {
	case avro.Boolean:
		ty, n = model.Type{Kind: model.KindBool}, node{op: opBool, minSize: 1}
	case avro.Int:
		switch lt {
		case avro.Date:
			ty, n = model.Type{Kind: model.KindDate}, node{op: opDate, minSize: 1}
		case avro.TimeMillis:
			ty, n = model.Type{Kind: model.KindTime}, node{op: opTimeMillis, minSize: 1}
		default:
			ty, n = model.Type{Kind: model.KindInt}, node{op: opInt, minSize: 1}
		}
	case avro.Long:
		switch lt {
		case avro.TimeMicros:
			ty, n = model.Type{Kind: model.KindTime}, node{op: opTimeMicros, minSize: 1}
		case avro.TimestampMicros, avro.TimestampMillis:
			o := opTimestampMicros
			if lt == avro.TimestampMillis {
				o = opTimestampMillis
			}
			k := model.KindTimestamp
			if base == "TIMESTAMPTZ" {
				k = model.KindTimestampTZ
			}
			ty, n = model.Type{Kind: k}, node{op: o, minSize: 1}
		default:
			ty, n = model.Type{Kind: model.KindInt}, node{op: opLong, minSize: 1}
		}
	case avro.Float:
		ty, n = model.Type{Kind: model.KindFloat}, node{op: opFloat, minSize: 4}
	case avro.Double:
		ty, n = model.Type{Kind: model.KindFloat}, node{op: opDouble, minSize: 8}
	case avro.Bytes:
		if dec != nil {
			ty = model.Type{Kind: model.KindDecimal, Precision: dec.Precision(), Scale: dec.Scale()}
			n = node{op: opDecimal, scale: dec.Scale(), dec: newDecimalLimit(dec.Precision()), minSize: 1}
		} else {
			ty, n = model.Type{Kind: model.KindBytes}, node{op: opBytes, minSize: 1}
		}
	case avro.String:
		switch base {
		case "UUID":
			ty, n = model.Type{Kind: model.KindUUID}, node{op: opString, minSize: 1}
		case "JSONB", "JSON":
			ty, n = model.Type{Kind: model.KindJSON}, node{op: opString, minSize: 1}
		case "INTERVAL":
			ty, n = model.Type{Kind: model.KindInterval}, node{op: opInterval, minSize: 1}
		default:
			ty, n = model.Type{Kind: model.KindString}, node{op: opString, minSize: 1}
		}
	case avro.Array:
		return c.array(s.(*avro.ArraySchema), sqlType, base, hinted)
	case avro.Record:
		return model.Type{}, nil, fmt.Errorf("nested record %q is not a supported column type", s.(*avro.RecordSchema).FullName())
	case avro.Ref:
		return model.Type{}, nil, fmt.Errorf("named type %q is not a supported column type", deref(s).(avro.NamedSchema).FullName())
	case avro.Null:
		return model.Type{}, nil, errors.New("column of type null")
	case avro.Map, avro.Enum, avro.Fixed:
		return model.Type{}, nil, fmt.Errorf("unsupported Avro type %q", s.Type())
	default:
		return model.Type{}, nil, fmt.Errorf("unsupported Avro type %s", s.Type())
	}
	nn, err := c.node(n)
	if err != nil {
		return model.Type{}, nil, err
	}
	return ty, nn, nil
}

// array compiles an array column: CockroachDB's arrays have nullable items;
// an array of plain longs is its BIT/VARBIT encoding.
func (c *compiler) array(s *avro.ArraySchema, sqlType, base string, hinted bool) (model.Type, *node, error) {
	items := s.Items()
	if items.Type() == avro.Long && isPlain(items) && (!hinted || base == "BIT" || base == "VARBIT") {
		elem, err := c.node(node{op: opLong, minSize: 1})
		if err != nil {
			return model.Type{}, nil, err
		}
		n, err := c.node(node{op: opBits, bits: bitWidth(sqlType), elem: elem, minSize: 1})
		if err != nil {
			return model.Type{}, nil, err
		}
		return model.Type{Kind: model.KindString}, n, nil
	}
	// The element's SQL type is the array's without "[]" (INT8[] ->
	// INT8), which tells e.g. UUID[] and TIMESTAMPTZ[] elements apart.
	elemSQL := strings.TrimSuffix(strings.TrimSpace(sqlType), "[]")
	if elemSQL == strings.TrimSpace(sqlType) {
		elemSQL = ""
	}
	et, en, err := c.columnType(items, elemSQL, hinted && elemSQL != "")
	if err != nil {
		return model.Type{}, nil, fmt.Errorf("array items: %w", err)
	}
	if et.Kind == model.KindArray {
		return model.Type{}, nil, errors.New("nested arrays are not supported")
	}
	n, err := c.node(node{op: opArray, elem: en, minSize: 1})
	if err != nil {
		return model.Type{}, nil, err
	}
	return model.Type{Kind: model.KindArray, Elem: &et}, n, nil
}

// skip compiles any supported Avro type for skipping only (envelope fields
// highwater does not read, such as enriched's source).
func (c *compiler) skip(s avro.Schema) (*node, error) {
	if _, _, err := logicalOf(s); err != nil {
		return nil, err
	}
	switch t := deref(s).(type) {
	case *avro.NullSchema:
		return c.node(node{op: opNull})
	case *avro.PrimitiveSchema:
		switch t.Type() {
		case avro.Boolean:
			return c.node(node{op: opBool, minSize: 1})
		case avro.Int, avro.Long:
			return c.node(node{op: opLong, minSize: 1})
		case avro.Float:
			return c.node(node{op: opFloat, minSize: 4})
		case avro.Double:
			return c.node(node{op: opDouble, minSize: 8})
		case avro.Bytes, avro.String:
			return c.node(node{op: opBytes, minSize: 1})
		}
	case *avro.ArraySchema:
		e, err := c.skip(t.Items())
		if err != nil {
			return nil, err
		}
		return c.node(node{op: opArray, elem: e, minSize: 1})
	case *avro.UnionSchema:
		u, err := c.node(node{op: opUnion, minSize: 1})
		if err != nil {
			return nil, err
		}
		for _, b := range t.Types() {
			bn, err := c.skip(b)
			if err != nil {
				return nil, err
			}
			u.branches = append(u.branches, bn)
		}
		return u, nil
	case *avro.RecordSchema:
		r, err := c.node(node{op: opRecord})
		if err != nil {
			return nil, err
		}
		for _, f := range t.Fields() {
			fn, err := c.skip(f.Type())
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", f.Name(), err)
			}
			r.fields = append(r.fields, fn)
			r.minSize += fn.minSize
		}
		return r, nil
	case *avro.MapSchema, *avro.EnumSchema, *avro.FixedSchema:
		return nil, fmt.Errorf("unsupported Avro type %q", t.Type())
	}
	return nil, fmt.Errorf("unsupported Avro type %s", s.Type())
}

// record compiles a table record (after, before, record, or the key) into
// its column model and per-column nodes.
func (c *compiler) record(s avro.Schema, where string) (name string, cols []model.Column, nodes []*node, skip *node, err error) {
	t, ok := deref(s).(*avro.RecordSchema)
	if !ok {
		return "", nil, nil, nil, fmt.Errorf("%s is %s, want a record", where, s.Type())
	}
	name, err = model.UnescapeName(t.Name())
	if err != nil {
		return "", nil, nil, nil, fmt.Errorf("%s record name: %w", where, err)
	}
	if skip, err = c.node(node{op: opRecord}); err != nil {
		return "", nil, nil, nil, err
	}
	for _, f := range t.Fields() {
		col, n, err := c.column(f, where)
		if err != nil {
			return "", nil, nil, nil, err
		}
		cols = append(cols, col)
		nodes = append(nodes, n)
		skip.fields = append(skip.fields, n)
		skip.minSize += n.minSize
	}
	return name, cols, nodes, skip, nil
}

// envRole is what an envelope field is to highwater.
type envRole uint8

const (
	roleOther envRole = iota
	roleBefore
	roleAfter
	roleRecord
	roleUpdated
	roleMVCC
	roleResolved
	roleSource // enriched: the source record, whose ts_hlc is the commit HLC (enriched.go)
	roleOp     // enriched: op
)

// envField is one top-level field of a value (envelope) schema. For
// record-valued fields (before/after/record) and timestamp fields
// (updated/mvcc_timestamp/resolved) the union layout is pre-resolved so the
// hot path reads one varint and compares.
type envField struct {
	role envRole
	// skip skips the whole field (any role).
	skip *node
	// nullIdx and valIdx are the union indexes of the null branch and of
	// the record/string branch; nullIdx is -1 when the field is not a
	// union (never null) and valIdx is then 0.
	nullIdx, valIdx int64
	// rec is the record node for before/after/record.
	rec *node
	// src is the compiled source record of an enriched envelope.
	src *sourcePlan
}

// valuePlan is everything compiled from one value schema id.
type valuePlan struct {
	id       int
	err      error // permanent: the schema is not a usable changefeed envelope
	resolved bool
	fields   []envField

	table      *model.Table // after/record columns, no primary-key flags
	bare       string       // the row record's unescaped name (families.go)
	cols       []*node
	hasBefore  bool
	before     *model.Table
	beforeCols []*node

	rows syncMap[int, *rowTables] // by key schema id
	// keyChecked is 1 + the key schema id last found to be a primary key
	// (keycolumn.go), 0 before any.
	keyChecked atomic.Int64
}

// rowTables are the Tables of one (value schema, key schema) pair: the
// column models with primary-key flags set.
type rowTables struct {
	table, before *model.Table
}

// keyPlan is everything compiled from one key schema id.
type keyPlan struct {
	id    int
	err   error
	cols  []model.Column
	nodes []*node
	// notPrimary wraps ErrKeyColumn when the key is no primary key
	// (keycolumn.go); ingest refuses such rows.
	notPrimary error
}

func unionLayout(s avro.Schema, want func(avro.Schema) bool) (nullIdx, valIdx int64, val avro.Schema, ok bool) {
	u, isUnion := s.(*avro.UnionSchema)
	if !isUnion {
		if want(s) {
			return -1, 0, s, true
		}
		return 0, 0, nil, false
	}
	nullIdx, valIdx = -1, -1
	for i, b := range u.Types() {
		switch {
		case b.Type() == avro.Null && nullIdx < 0:
			nullIdx = int64(i)
		case want(b) && valIdx < 0:
			valIdx, val = int64(i), b
		default:
			return 0, 0, nil, false
		}
	}
	return nullIdx, valIdx, val, valIdx >= 0
}

func isRecord(s avro.Schema) bool { return deref(s).Type() == avro.Record }
func isString(s avro.Schema) bool { return s.Type() == avro.String }

// compileValue compiles a value schema. Errors that make the schema
// unusable are returned in plan.err, since they are permanent for this id.
func compileValue(id int, text string, maxDepth int) *valuePlan {
	p := &valuePlan{id: id}
	p.err = p.compile(text, maxDepth)
	if p.err == nil {
		for _, f := range p.fields {
			weigh(f.skip)
			weigh(f.rec)
		}
	}
	return p
}

func (p *valuePlan) compile(text string, maxDepth int) error {
	s, err := parseAvroSchema(text, maxDepth)
	if err != nil {
		return err
	}
	t, ok := s.(*avro.RecordSchema)
	if !ok {
		return fmt.Errorf("value schema is %s, want a changefeed envelope record", s.Type())
	}
	fields := t.Fields()
	if len(fields) == 1 && fields[0].Name() == "resolved" {
		nullIdx, valIdx, _, ok := unionLayout(fields[0].Type(), isString)
		if !ok {
			return errors.New("resolved field is not [\"null\",\"string\"]")
		}
		p.resolved = true
		p.fields = []envField{{role: roleResolved, nullIdx: nullIdx, valIdx: valIdx}}
		return nil
	}
	c := newCompiler(len(text))
	hasUpdated, hasRow := false, false
	for _, f := range fields {
		ef := envField{}
		switch f.Name() {
		case "before", "after", "record":
			nullIdx, valIdx, rec, ok := unionLayout(f.Type(), isRecord)
			if !ok {
				return fmt.Errorf("envelope field %q is not [\"null\", record]", f.Name())
			}
			name, cols, nodes, skip, err := c.record(rec, fmt.Sprintf("envelope field %q", f.Name()))
			if err != nil {
				return err
			}
			ef.nullIdx, ef.valIdx, ef.rec = nullIdx, valIdx, skip
			switch f.Name() {
			case "before":
				ef.role = roleBefore
				p.hasBefore = true
				p.before = &model.Table{Name: strings.TrimSuffix(name, "_before"), Columns: cols}
				p.beforeCols = nodes
			default:
				if hasRow {
					return errors.New("envelope has both after and record")
				}
				hasRow = true
				ef.role = roleAfter
				if f.Name() == "record" {
					ef.role = roleRecord
				}
				p.table = &model.Table{Name: name, Columns: cols}
				p.cols = nodes
			}
		case "updated", "mvcc_timestamp", "resolved":
			nullIdx, valIdx, _, ok := unionLayout(f.Type(), isString)
			if !ok {
				return fmt.Errorf("envelope field %q is not [\"null\",\"string\"]", f.Name())
			}
			ef.nullIdx, ef.valIdx = nullIdx, valIdx
			switch f.Name() {
			case "updated":
				ef.role = roleUpdated
				hasUpdated = true
			case "mvcc_timestamp":
				ef.role = roleMVCC
			default:
				return errors.New("envelope has a resolved field beside row fields")
			}
		case "source", "op": // envelope = enriched (enriched.go)
			ef.role = roleOther
			var err error
			if f.Name() == "op" {
				err = compileOp(f, &ef)
			} else {
				ef.src, err = compileSource(c, f)
			}
			if err != nil {
				return err
			}
		default:
			ef.role = roleOther
		}
		skip, err := c.skip(f.Type())
		if err != nil {
			return fmt.Errorf("envelope field %q: %w", f.Name(), err)
		}
		ef.skip = skip
		p.fields = append(p.fields, ef)
	}
	if !hasRow {
		return fmt.Errorf("value schema %q is not a CockroachDB changefeed envelope (no after or record field)", t.Name())
	}
	if !hasUpdated {
		if err := p.enrichedCommitHLC(); err != nil {
			return err
		}
	}
	p.bare = p.table.Name
	p.table.Name = qualifiedTableName(t, p.table.Name)
	if p.before != nil {
		p.before.Name = qualifiedTableName(t, p.before.Name)
	}
	return nil
}

// qualifiedTableName returns the table's identity: bare, the row record's
// unescaped name, or db.schema.table for a changefeed WITH full_table_name.
// CockroachDB names the envelope record after avro_schema_prefix + the
// target's statement-time name, which full_table_name qualifies
// (db.public.table), while the row record keeps the bare table name; so
// two tables of one name in two databases differ only in the envelope's
// name (encoder_avro.go rawTableName, changefeed_stmt.go
// getChangefeedTargetName).
func qualifiedTableName(env *avro.RecordSchema, bare string) string {
	name, err := model.UnescapeName(env.Name())
	if err != nil {
		return bare
	}
	name, ok := strings.CutSuffix(name, "_envelope")
	if !ok {
		return bare
	}
	// The namespace is the avro_schema_prefix, which also prefixes the name.
	name = strings.TrimPrefix(name, env.Namespace())
	if name == bare || !strings.HasSuffix(name, "."+bare) || strings.Count(name[:len(name)-len(bare)], ".") < 2 {
		return bare
	}
	return name
}

func compileKey(id int, text string, maxDepth int) *keyPlan {
	k := &keyPlan{id: id}
	s, err := parseAvroSchema(text, maxDepth)
	if err != nil {
		k.err = err
		return k
	}
	_, cols, nodes, _, err := newCompiler(len(text)).record(s, "key schema")
	if err != nil {
		k.err = err
		return k
	}
	for i := range cols {
		cols[i].PrimaryKey = true
		weigh(nodes[i])
	}
	k.cols, k.nodes = cols, nodes
	k.notPrimary = checkPrimaryKey(s) // keycolumn.go
	return k
}

// withKey returns t's copy with primary-key flags and Key indexes set from
// the key schema's fields, matched by Avro field name.
func withKey(t *model.Table, key *keyPlan) *model.Table {
	if t == nil {
		return nil
	}
	nt := &model.Table{Name: t.Name, Columns: append([]model.Column(nil), t.Columns...)}
	for _, kc := range key.cols {
		for i := range nt.Columns {
			if nt.Columns[i].AvroName == kc.AvroName {
				nt.Columns[i].PrimaryKey = true
				nt.Key = append(nt.Key, i)
				break
			}
		}
	}
	return nt
}
