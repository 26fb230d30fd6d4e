package schemas

import (
	"errors"
	"fmt"
	"strings"
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

// compileColumn compiles one column field of a table record.
func compileColumn(f avroField, where string) (Column, *node, error) {
	name, err := UnescapeName(f.name)
	if err != nil {
		return Column{}, nil, fmt.Errorf("%s field %q: %w", where, f.name, err)
	}
	col := Column{Name: name, AvroName: f.name, Nullable: true}
	if f.hasCRDB {
		col.SQLType, col.Nullable = parseCRDBHint(f.crdb)
	}
	t, n, err := compileType(f.typ, col.SQLType, f.hasCRDB)
	if err != nil {
		return Column{}, nil, fmt.Errorf("%s column %q: %w", where, name, err)
	}
	col.Type = t
	return col, n, nil
}

// compileType compiles a column's Avro type, which CockroachDB writes as
// ["null", T] (["null", decimal, "string"] for DECIMAL).
func compileType(t *avroType, sqlType string, hinted bool) (Type, *node, error) {
	if t.kind != avroUnion {
		return compileScalar(t, sqlType, hinted)
	}
	u := &node{op: opUnion, minSize: 1}
	var main *avroType
	var mainType Type
	for _, b := range t.branches {
		switch {
		case b.kind == avroNull:
			u.branches = append(u.branches, &node{op: opNull})
		case main == nil:
			ty, n, err := compileScalar(b, sqlType, hinted)
			if err != nil {
				return Type{}, nil, err
			}
			main, mainType = b, ty
			u.branches = append(u.branches, n)
		case main.logical == "decimal" && b.kind == avroString && b.logical == "":
			u.branches = append(u.branches, &node{op: opDecimalSpecial, scale: main.scale, minSize: 1})
		default:
			return Type{}, nil, fmt.Errorf("unsupported union of %s and %s", main.kind, b.kind)
		}
	}
	if main == nil {
		return Type{}, nil, errors.New("union of only null")
	}
	return mainType, u, nil
}

func compileScalar(t *avroType, sqlType string, hinted bool) (Type, *node, error) {
	base := sqlBase(sqlType)
	switch t.kind {
	case avroBoolean:
		return Type{Kind: KindBool}, &node{op: opBool, minSize: 1}, nil
	case avroInt:
		switch t.logical {
		case "date":
			return Type{Kind: KindDate}, &node{op: opDate, minSize: 1}, nil
		case "time-millis":
			return Type{Kind: KindTime}, &node{op: opTimeMillis, minSize: 1}, nil
		}
		return Type{Kind: KindInt}, &node{op: opInt, minSize: 1}, nil
	case avroLong:
		switch t.logical {
		case "time-micros":
			return Type{Kind: KindTime}, &node{op: opTimeMicros, minSize: 1}, nil
		case "timestamp-micros", "timestamp-millis":
			o := opTimestampMicros
			if t.logical == "timestamp-millis" {
				o = opTimestampMillis
			}
			k := KindTimestamp
			if base == "TIMESTAMPTZ" {
				k = KindTimestampTZ
			}
			return Type{Kind: k}, &node{op: o, minSize: 1}, nil
		}
		return Type{Kind: KindInt}, &node{op: opLong, minSize: 1}, nil
	case avroFloat:
		return Type{Kind: KindFloat}, &node{op: opFloat, minSize: 4}, nil
	case avroDouble:
		return Type{Kind: KindFloat}, &node{op: opDouble, minSize: 8}, nil
	case avroBytes:
		if t.logical == "decimal" {
			return Type{Kind: KindDecimal, Precision: t.precision, Scale: t.scale},
				&node{op: opDecimal, scale: t.scale, dec: newDecimalLimit(t.precision), minSize: 1}, nil
		}
		return Type{Kind: KindBytes}, &node{op: opBytes, minSize: 1}, nil
	case avroString:
		switch base {
		case "UUID":
			return Type{Kind: KindUUID}, &node{op: opString, minSize: 1}, nil
		case "JSONB", "JSON":
			return Type{Kind: KindJSON}, &node{op: opString, minSize: 1}, nil
		case "INTERVAL":
			return Type{Kind: KindInterval}, &node{op: opInterval, minSize: 1}, nil
		}
		return Type{Kind: KindString}, &node{op: opString, minSize: 1}, nil
	case avroArray:
		items := t.items
		// CockroachDB's arrays have nullable items; an array of plain longs
		// is its BIT/VARBIT encoding.
		if items.kind == avroLong && items.logical == "" && (!hinted || base == "BIT" || base == "VARBIT") {
			return Type{Kind: KindString}, &node{op: opBits, bits: bitWidth(sqlType), elem: &node{op: opLong, minSize: 1}, minSize: 1}, nil
		}
		// The element's SQL type is the array's without "[]" (INT8[] ->
		// INT8), which tells e.g. UUID[] and TIMESTAMPTZ[] elements apart.
		elemSQL := strings.TrimSuffix(strings.TrimSpace(sqlType), "[]")
		if elemSQL == strings.TrimSpace(sqlType) {
			elemSQL = ""
		}
		et, en, err := compileType(items, elemSQL, hinted && elemSQL != "")
		if err != nil {
			return Type{}, nil, fmt.Errorf("array items: %w", err)
		}
		if et.Kind == KindArray {
			return Type{}, nil, errors.New("nested arrays are not supported")
		}
		return Type{Kind: KindArray, Elem: &et}, &node{op: opArray, elem: en, minSize: 1}, nil
	case avroRecord:
		return Type{}, nil, fmt.Errorf("nested record %q is not a supported column type", t.name)
	case avroNull:
		return Type{}, nil, errors.New("column of type null")
	}
	return Type{}, nil, fmt.Errorf("unsupported Avro type %s", t.kind)
}

// compileSkip compiles any supported Avro type for skipping only (envelope
// fields highwater does not read, such as enriched's source).
func compileSkip(t *avroType) (*node, error) {
	switch t.kind {
	case avroNull:
		return &node{op: opNull}, nil
	case avroBoolean:
		return &node{op: opBool, minSize: 1}, nil
	case avroInt, avroLong:
		return &node{op: opLong, minSize: 1}, nil
	case avroFloat:
		return &node{op: opFloat, minSize: 4}, nil
	case avroDouble:
		return &node{op: opDouble, minSize: 8}, nil
	case avroBytes, avroString:
		return &node{op: opBytes, minSize: 1}, nil
	case avroArray:
		e, err := compileSkip(t.items)
		if err != nil {
			return nil, err
		}
		return &node{op: opArray, elem: e, minSize: 1}, nil
	case avroUnion:
		u := &node{op: opUnion, minSize: 1}
		for _, b := range t.branches {
			bn, err := compileSkip(b)
			if err != nil {
				return nil, err
			}
			u.branches = append(u.branches, bn)
		}
		return u, nil
	case avroRecord:
		r := &node{op: opRecord}
		for _, f := range t.fields {
			fn, err := compileSkip(f.typ)
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", f.name, err)
			}
			r.fields = append(r.fields, fn)
			r.minSize += fn.minSize
		}
		return r, nil
	}
	return nil, fmt.Errorf("unsupported Avro type %s", t.kind)
}

// compileRecord compiles a table record (after, before, record, or the key)
// into its column model and per-column nodes.
func compileRecord(t *avroType, where string) (name string, cols []Column, nodes []*node, skip *node, err error) {
	if t.kind != avroRecord {
		return "", nil, nil, nil, fmt.Errorf("%s is %s, want a record", where, t.kind)
	}
	name, err = UnescapeName(t.name)
	if err != nil {
		return "", nil, nil, nil, fmt.Errorf("%s record name: %w", where, err)
	}
	skip = &node{op: opRecord}
	for _, f := range t.fields {
		c, n, err := compileColumn(f, where)
		if err != nil {
			return "", nil, nil, nil, err
		}
		cols = append(cols, c)
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
}

// valuePlan is everything compiled from one value schema id.
type valuePlan struct {
	id       int
	err      error // permanent: the schema is not a usable changefeed envelope
	resolved bool
	fields   []envField

	table      *Table // after/record columns, no primary-key flags
	cols       []*node
	hasBefore  bool
	before     *Table
	beforeCols []*node

	rows syncMap[int, *rowTables] // by key schema id
}

// rowTables are the Tables of one (value schema, key schema) pair: the
// column models with primary-key flags set.
type rowTables struct {
	table, before *Table
}

// keyPlan is everything compiled from one key schema id.
type keyPlan struct {
	id    int
	err   error
	cols  []Column
	nodes []*node
}

func unionLayout(t *avroType, want func(*avroType) bool) (nullIdx, valIdx int64, val *avroType, ok bool) {
	if t.kind != avroUnion {
		if want(t) {
			return -1, 0, t, true
		}
		return 0, 0, nil, false
	}
	nullIdx, valIdx = -1, -1
	for i, b := range t.branches {
		switch {
		case b.kind == avroNull && nullIdx < 0:
			nullIdx = int64(i)
		case want(b) && valIdx < 0:
			valIdx, val = int64(i), b
		default:
			return 0, 0, nil, false
		}
	}
	return nullIdx, valIdx, val, valIdx >= 0
}

func isRecord(t *avroType) bool { return t.kind == avroRecord }
func isString(t *avroType) bool { return t.kind == avroString }

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
	t, err := parseAvroSchema(text, maxDepth)
	if err != nil {
		return err
	}
	if t.kind != avroRecord {
		return fmt.Errorf("value schema is %s, want a changefeed envelope record", t.kind)
	}
	if len(t.fields) == 1 && t.fields[0].name == "resolved" {
		nullIdx, valIdx, _, ok := unionLayout(t.fields[0].typ, isString)
		if !ok {
			return errors.New("resolved field is not [\"null\",\"string\"]")
		}
		p.resolved = true
		p.fields = []envField{{role: roleResolved, nullIdx: nullIdx, valIdx: valIdx}}
		return nil
	}
	hasUpdated, hasRow := false, false
	for _, f := range t.fields {
		ef := envField{}
		switch f.name {
		case "before", "after", "record":
			nullIdx, valIdx, rec, ok := unionLayout(f.typ, isRecord)
			if !ok {
				return fmt.Errorf("envelope field %q is not [\"null\", record]", f.name)
			}
			name, cols, nodes, skip, err := compileRecord(rec, fmt.Sprintf("envelope field %q", f.name))
			if err != nil {
				return err
			}
			ef.nullIdx, ef.valIdx, ef.rec = nullIdx, valIdx, skip
			switch f.name {
			case "before":
				ef.role = roleBefore
				p.hasBefore = true
				p.before = &Table{Name: strings.TrimSuffix(name, "_before"), Columns: cols}
				p.beforeCols = nodes
			default:
				if hasRow {
					return errors.New("envelope has both after and record")
				}
				hasRow = true
				ef.role = roleAfter
				if f.name == "record" {
					ef.role = roleRecord
				}
				p.table = &Table{Name: name, Columns: cols}
				p.cols = nodes
			}
		case "updated", "mvcc_timestamp", "resolved":
			nullIdx, valIdx, _, ok := unionLayout(f.typ, isString)
			if !ok {
				return fmt.Errorf("envelope field %q is not [\"null\",\"string\"]", f.name)
			}
			ef.nullIdx, ef.valIdx = nullIdx, valIdx
			switch f.name {
			case "updated":
				ef.role = roleUpdated
				hasUpdated = true
			case "mvcc_timestamp":
				ef.role = roleMVCC
			default:
				return errors.New("envelope has a resolved field beside row fields")
			}
		default:
			ef.role = roleOther
		}
		skip, err := compileSkip(f.typ)
		if err != nil {
			return fmt.Errorf("envelope field %q: %w", f.name, err)
		}
		ef.skip = skip
		p.fields = append(p.fields, ef)
	}
	if !hasRow {
		return fmt.Errorf("value schema %q is not a CockroachDB changefeed envelope (no after or record field)", t.name)
	}
	if !hasUpdated {
		return ErrNoUpdated
	}
	return nil
}

func compileKey(id int, text string, maxDepth int) *keyPlan {
	k := &keyPlan{id: id}
	t, err := parseAvroSchema(text, maxDepth)
	if err != nil {
		k.err = err
		return k
	}
	_, cols, nodes, _, err := compileRecord(t, "key schema")
	if err != nil {
		k.err = err
		return k
	}
	for i := range cols {
		cols[i].PrimaryKey = true
		weigh(nodes[i])
	}
	k.cols, k.nodes = cols, nodes
	return k
}

// withKey returns t's copy with primary-key flags and Key indexes set from
// the key schema's fields, matched by Avro field name.
func withKey(t *Table, key *keyPlan) *Table {
	if t == nil {
		return nil
	}
	nt := &Table{Name: t.Name, Columns: append([]Column(nil), t.Columns...)}
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
