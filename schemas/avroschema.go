package schemas

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hamba/avro/v2"
)

// This file parses writer schemas with hamba/avro, so that names,
// namespaces, named-type references, logical types, defaults and custom
// properties such as CockroachDB's __crdb__ follow a maintained Avro
// implementation. plan.go compiles the parsed tree into the plans the hot
// path runs; hamba does not decode messages.
//
// Every schema id is parsed with a cache of its own: hamba's default cache
// is process-wide, and two versions of one table define records of the same
// name (orders, orders_envelope) with different fields.

// defaultMaxSchemaDepth bounds the nesting of a schema. CockroachDB's
// deepest shape is envelope -> union -> record -> union -> array -> union ->
// scalar, far below it.
const defaultMaxSchemaDepth = 32

// parseAvroSchema parses a writer schema's JSON text and checks that its
// nesting, named-type references included, stays within maxDepth and that
// it is not recursive.
func parseAvroSchema(text string, maxDepth int) (s avro.Schema, err error) {
	// hamba reads a text that is not JSON as a bare type name; a registry
	// only holds JSON, so anything else is a broken schema.
	if !json.Valid([]byte(text)) {
		return nil, errors.New("parse schema JSON: not valid JSON")
	}
	defer func() {
		// A writer schema is input: a defect in the parser must become this
		// schema id's error, not take the process down.
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("parse schema: avro parser panicked: %v", r)
		}
	}()
	s, err = avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	h := heights{}
	if _, err := h.of(s); err != nil {
		return nil, err
	}
	if d := h.max - 1; d > maxDepth {
		return nil, fmt.Errorf("schema nested deeper than %d levels (%d)", maxDepth, d)
	}
	return s, nil
}

// heights measures how deeply a schema nests, counting a value as deep as
// the deepest schema it can contain: a record field, union branch or array
// items is one level below its parent, and a named-type reference is as
// deep as the type it names. Heights of named types are memoized, so a
// schema that references one type many times is measured in linear time.
type heights struct {
	named map[string]int // full name -> height; -1 while being measured
	max   int
}

func (h *heights) of(s avro.Schema) (int, error) {
	var kids []avro.Schema
	var name string
	switch t := s.(type) {
	case *avro.RefSchema:
		return h.of(t.Schema())
	case *avro.RecordSchema:
		name = t.FullName()
		if v, ok := h.named[name]; ok {
			if v < 0 {
				return 0, fmt.Errorf("recursive reference to record %q (recursive schemas are not supported)", name)
			}
			return v, nil
		}
		if h.named == nil {
			h.named = map[string]int{}
		}
		h.named[name] = -1
		for _, f := range t.Fields() {
			kids = append(kids, f.Type())
		}
	case *avro.UnionSchema:
		kids = t.Types()
	case *avro.ArraySchema:
		kids = []avro.Schema{t.Items()}
	case *avro.MapSchema:
		kids = []avro.Schema{t.Values()}
	}
	height := 1
	for _, k := range kids {
		kh, err := h.of(k)
		if err != nil {
			return 0, err
		}
		height = max(height, kh+1)
	}
	if name != "" {
		h.named[name] = height
	}
	h.max = max(h.max, height)
	return height, nil
}

// deref returns the named type a reference stands for, or s itself.
func deref(s avro.Schema) avro.Schema {
	if r, ok := s.(*avro.RefSchema); ok {
		return r.Schema()
	}
	return s
}

// logicalOf returns the logical type of a primitive schema ("" for none)
// and its decimal parameters. hamba keeps a logicalType it could not apply
// (a decimal on a long, a precision of 0, a scale above the precision) as a
// plain property; such a decimal is an error here, since its bytes would
// otherwise be read as something else.
func logicalOf(s avro.Schema) (avro.LogicalType, *avro.DecimalLogicalSchema, error) {
	p, ok := s.(*avro.PrimitiveSchema)
	if !ok {
		return "", nil, nil
	}
	if p.Logical() == nil {
		if lt, _ := p.Prop("logicalType").(string); lt == string(avro.Decimal) {
			return "", nil, fmt.Errorf("decimal logical type on %s with precision %v and scale %v is not supported",
				p.Type(), p.Prop("precision"), p.Prop("scale"))
		}
		return "", nil, nil
	}
	lt := p.Logical().Type()
	if d, ok := p.Logical().(*avro.DecimalLogicalSchema); ok {
		// CockroachDB's precision is at most 1000; anything beyond 2^16 is
		// not a column's.
		if d.Precision() > 1<<16 {
			return "", nil, fmt.Errorf("bad decimal precision %d", d.Precision())
		}
		return lt, d, nil
	}
	return lt, nil, nil
}

// crdbHint returns a field's __crdb__ property.
func crdbHint(f *avro.Field) (string, bool) {
	h, ok := f.Prop("__crdb__").(string)
	return h, ok
}
