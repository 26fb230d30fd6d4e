package schemas

import (
	"encoding/json"
	"fmt"
	"strings"
)

// This file parses Avro schema JSON into a small tree. We parse it ourselves
// rather than through an Avro library because we need the custom __crdb__
// field property, full control over what is rejected (recursive and repeated
// named types, maps, enums, fixed), and no process-wide schema cache: two
// versions of one table carry records of the same name.

// avroKind is the Avro type of a schema node.
type avroKind uint8

const (
	avroNull avroKind = iota
	avroBoolean
	avroInt
	avroLong
	avroFloat
	avroDouble
	avroBytes
	avroString
	avroRecord
	avroArray
	avroUnion
)

var avroKindNames = [...]string{"null", "boolean", "int", "long", "float", "double", "bytes", "string", "record", "array", "union"}

func (k avroKind) String() string { return avroKindNames[k] }

// avroType is one node of a parsed schema.
type avroType struct {
	kind      avroKind
	logical   string // logicalType, e.g. "decimal", "date", "timestamp-micros"
	precision int    // decimal
	scale     int    // decimal
	name      string // record: name without namespace
	namespace string // record
	fields    []avroField
	items     *avroType   // array
	branches  []*avroType // union
}

type avroField struct {
	name    string
	typ     *avroType
	crdb    string // the __crdb__ hint, "" when absent
	hasCRDB bool
}

// defaultMaxSchemaDepth bounds the nesting of a schema. CockroachDB's
// deepest shape is envelope -> union -> record -> union -> array -> union ->
// scalar, far below it.
const defaultMaxSchemaDepth = 32

// parseAvroSchema parses a writer schema's JSON text.
func parseAvroSchema(text string, maxDepth int) (*avroType, error) {
	var raw any
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse schema JSON: %w", err)
	}
	p := schemaParser{maxDepth: maxDepth, named: map[string]bool{}}
	return p.parse(raw, "", 0, "schema")
}

type schemaParser struct {
	maxDepth int
	named    map[string]bool // full names of records already defined
}

func (p *schemaParser) parse(v any, ns string, depth int, where string) (*avroType, error) {
	if depth > p.maxDepth {
		return nil, fmt.Errorf("%s: schema nested deeper than %d levels", where, p.maxDepth)
	}
	switch t := v.(type) {
	case string:
		return p.primitive(t, where)
	case []any:
		u := &avroType{kind: avroUnion}
		if len(t) == 0 {
			return nil, fmt.Errorf("%s: empty union", where)
		}
		for i, b := range t {
			bt, err := p.parse(b, ns, depth+1, fmt.Sprintf("%s branch %d", where, i))
			if err != nil {
				return nil, err
			}
			if bt.kind == avroUnion {
				return nil, fmt.Errorf("%s: union directly inside a union", where)
			}
			u.branches = append(u.branches, bt)
		}
		return u, nil
	case map[string]any:
		return p.object(t, ns, depth, where)
	}
	return nil, fmt.Errorf("%s: unexpected JSON %T in schema", where, v)
}

func (p *schemaParser) primitive(name, where string) (*avroType, error) {
	switch name {
	case "null":
		return &avroType{kind: avroNull}, nil
	case "boolean":
		return &avroType{kind: avroBoolean}, nil
	case "int":
		return &avroType{kind: avroInt}, nil
	case "long":
		return &avroType{kind: avroLong}, nil
	case "float":
		return &avroType{kind: avroFloat}, nil
	case "double":
		return &avroType{kind: avroDouble}, nil
	case "bytes":
		return &avroType{kind: avroBytes}, nil
	case "string":
		return &avroType{kind: avroString}, nil
	case "map", "enum", "fixed":
		return nil, fmt.Errorf("%s: unsupported Avro type %q", where, name)
	}
	// A reference to a named type. CockroachDB never reuses a name inside one
	// schema, and a reference to an enclosing record would be recursive.
	return nil, fmt.Errorf("%s: reference to named type %q (recursive or repeated named types are not supported)", where, name)
}

func (p *schemaParser) object(m map[string]any, ns string, depth int, where string) (*avroType, error) {
	typ, ok := m["type"]
	if !ok {
		return nil, fmt.Errorf("%s: schema object without \"type\"", where)
	}
	ts, isString := typ.(string)
	if !isString {
		// {"type": {...}} or {"type": [...]}: a wrapped schema.
		return p.parse(typ, ns, depth+1, where)
	}
	switch ts {
	case "record", "error":
		return p.record(m, ns, depth, where)
	case "array":
		items, ok := m["items"]
		if !ok {
			return nil, fmt.Errorf("%s: array without items", where)
		}
		it, err := p.parse(items, ns, depth+1, where+" items")
		if err != nil {
			return nil, err
		}
		return &avroType{kind: avroArray, items: it}, nil
	case "map", "enum", "fixed":
		return nil, fmt.Errorf("%s: unsupported Avro type %q", where, ts)
	}
	t, err := p.primitive(ts, where)
	if err != nil {
		return nil, err
	}
	if lt, ok := m["logicalType"].(string); ok {
		t.logical = lt
		if lt == "decimal" {
			if t.kind != avroBytes {
				return nil, fmt.Errorf("%s: decimal logical type on %s is not supported", where, t.kind)
			}
			prec, err := intProp(m, "precision")
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			// CockroachDB before #118815 omitted "scale" when it was 0.
			scale, err := intProp(m, "scale")
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if prec <= 0 || scale < 0 || scale > prec {
				return nil, fmt.Errorf("%s: bad decimal precision %d scale %d", where, prec, scale)
			}
			t.precision, t.scale = prec, scale
		}
	}
	return t, nil
}

func intProp(m map[string]any, key string) (int, error) {
	v, ok := m[key]
	if !ok {
		return 0, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s is not a number", key)
	}
	i, err := n.Int64()
	if err != nil || i < 0 || i > 1<<16 {
		return 0, fmt.Errorf("bad %s %s", key, n)
	}
	return int(i), nil
}

func (p *schemaParser) record(m map[string]any, ns string, depth int, where string) (*avroType, error) {
	name, _ := m["name"].(string)
	if n, ok := m["namespace"].(string); ok {
		ns = n
	}
	// A dotted name carries its own namespace.
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		ns, name = name[:i], name[i+1:]
	}
	full := name
	if ns != "" {
		full = ns + "." + name
	}
	if p.named[full] {
		return nil, fmt.Errorf("%s: record %q defined twice", where, full)
	}
	p.named[full] = true
	rawFields, ok := m["fields"].([]any)
	if !ok {
		return nil, fmt.Errorf("%s: record %q without fields", where, full)
	}
	r := &avroType{kind: avroRecord, name: name, namespace: ns}
	seen := make(map[string]bool, len(rawFields))
	for i, rf := range rawFields {
		fm, ok := rf.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: record %q field %d is not an object", where, full, i)
		}
		fname, _ := fm["name"].(string)
		if fname == "" {
			return nil, fmt.Errorf("%s: record %q field %d has no name", where, full, i)
		}
		if seen[fname] {
			return nil, fmt.Errorf("%s: record %q has two fields named %q", where, full, fname)
		}
		seen[fname] = true
		ft, ok := fm["type"]
		if !ok {
			return nil, fmt.Errorf("%s: field %q has no type", where, fname)
		}
		t, err := p.parse(ft, ns, depth+1, fmt.Sprintf("field %q", fname))
		if err != nil {
			return nil, err
		}
		f := avroField{name: fname, typ: t}
		if c, ok := fm["__crdb__"].(string); ok {
			f.crdb, f.hasCRDB = c, true
		}
		r.fields = append(r.fields, f)
	}
	return r, nil
}
