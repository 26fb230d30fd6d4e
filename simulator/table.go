package simulator

import (
	"fmt"
	"slices"

	"github.com/linkedin/goavro/v2"

	"github.com/highwater-dev/highwater/hlc"
)

type table struct {
	// name is the statement-time name: the table, or db.public.table
	// WITH full_table_name. bare is the table's own name, which the row
	// records carry either way.
	name       string
	bare       string
	database   string
	topic      string
	keySubject string
	valSubject string
	partitions int
	versions   []*tableSchema
	keyCodec   *goavro.Codec
	keyHeader  [5]byte
	keyScratch *rowScratch
	custom     *customKey // key_column (keycolumn.go)
	values     map[[2]int]*valueCodec
	rows       map[string]*rowState
	order      []*rowState // creation order
	resolvedV1 []byte
	// families are a source table's column families (WITH
	// split_column_families, families.go): the source is not a feed table
	// itself. fam is the family a feed table carries.
	families []*colFamily
	fam      *colFamily
}

func (t *table) cur() *tableSchema { return t.versions[len(t.versions)-1] }

// schemaAt is the table version valid at ts.
func (t *table) schemaAt(ts hlc.Timestamp) *tableSchema {
	for i := len(t.versions) - 1; i > 0; i-- {
		if !ts.Less(t.versions[i].since) {
			return t.versions[i]
		}
	}
	return t.versions[0]
}

// rowScratch is a reusable native record for one schema version.
type rowScratch struct {
	row    map[string]any
	unions []map[string]any
}

func newRowScratch(sch *tableSchema, cols []int) *rowScratch {
	rs := &rowScratch{row: make(map[string]any, len(cols)), unions: make([]map[string]any, len(sch.cols))}
	for _, i := range cols {
		rs.unions[i] = map[string]any{sch.cols[i].typ.branch: nil}
	}
	return rs
}

// fill sets the record's fields for columns cols of sch from vals (indexed
// like sch.cols, or like cols when packed).
func (rs *rowScratch) fill(sch *tableSchema, cols []int, vals []any, packed bool) map[string]any {
	for j, i := range cols {
		c := sch.cols[i]
		var v any
		if packed {
			v = vals[j]
		} else {
			v = vals[i]
		}
		switch {
		case v == nil:
			rs.row[c.avroName] = nil
		case c.typ.simple():
			m := rs.unions[i]
			m[c.typ.branch] = v
			rs.row[c.avroName] = m
		default:
			rs.row[c.avroName] = c.typ.native(v)
		}
	}
	return rs.row
}

type rowState struct {
	key  []any
	kb   []byte // Confluent-framed key
	hist []rowVersion
	// sentTS is the newest version handed to the producer; versions are
	// sent in key order, so every emitted version at or below it was sent.
	sentTS hlc.Timestamp
}

const (
	flagEmitted = 1 << iota // part of the feed (not a Load)
	flagScan                // initial scan: before is null
)

type rowVersion struct {
	ts     hlc.Timestamp
	mvcc   hlc.Timestamp
	vals   []any // nil: deleted
	schema int32 // index into table.versions
	flags  uint8
}

func (s *Sim) table(name string) (*table, error) {
	if t, ok := s.byName[name]; ok {
		return t, nil
	}
	// WITH full_table_name a bare name finds the one table of that name.
	var found *table
	for _, t := range s.tables {
		if t.bare == name && t.name != name {
			if found != nil {
				return nil, fmt.Errorf("simulator: table %q is ambiguous (%q, %q): use the full name", name, found.name, t.name)
			}
			found = t
		}
	}
	if found == nil {
		return nil, fmt.Errorf("simulator: unknown table %q", name)
	}
	return found, nil
}

func (t *table) normalizeKey(key []any) ([]any, error) {
	sch := t.cur()
	if len(key) != len(sch.key) {
		return nil, fmt.Errorf("primary key has %d columns, got %d values", len(sch.key), len(key))
	}
	out := make([]any, len(key))
	for i, k := range sch.key {
		c := sch.cols[k]
		v, err := c.typ.normalize(key[i])
		if err != nil {
			return nil, fmt.Errorf("key column %q: %w", c.name, err)
		}
		if v == nil {
			return nil, fmt.Errorf("key column %q is NULL", c.name)
		}
		out[i] = v
	}
	return out, nil
}

// rowValues builds the canonical values of a full row of t's current
// version from row.
func (s *Sim) rowValues(t *table, row map[string]any, ts hlc.Timestamp) ([]any, error) {
	sch := t.cur()
	for name := range row {
		if _, ok := sch.byName[name]; !ok {
			return nil, fmt.Errorf("column %q does not exist", name)
		}
	}
	vals := make([]any, len(sch.cols))
	for i, c := range sch.cols {
		if c.virtual {
			continue // virtual_columns = 'null'
		}
		v, present := row[c.name]
		var err error
		if present {
			if v, err = c.typ.normalize(v); err != nil {
				return nil, fmt.Errorf("column %q: %w", c.name, err)
			}
		} else if c.dfn != nil {
			v = c.dfn(s, ts)
		}
		if v == nil && c.notNull {
			return nil, fmt.Errorf("null value in column %q violates not-null constraint", c.name)
		}
		vals[i] = v
	}
	s.headersRoundTrip(sch, vals) // headers.go
	return vals, nil
}

func (t *table) encodeKey(key []any) ([]byte, error) {
	sch := t.cur()
	if t.keyScratch == nil {
		t.keyScratch = newRowScratch(sch, sch.key)
	}
	native := t.keyScratch.fill(sch, sch.key, key, true)
	buf := make([]byte, 5, 32)
	copy(buf, t.keyHeader[:])
	return t.keyCodec.BinaryFromNative(buf, native)
}

// row returns the state of the row with framed key kb, creating it. Callers
// hold s.state.
func (t *table) row(key []any, kb []byte) *rowState {
	rs, ok := t.rows[string(kb)]
	if !ok {
		rs = &rowState{key: key, kb: kb}
		t.rows[string(kb)] = rs
		t.order = append(t.order, rs)
	}
	return rs
}

// liveRows returns t's rows that currently exist, in primary-key order.
func (t *table) liveRows() []*rowState {
	var out []*rowState
	for _, rs := range t.order {
		if n := len(rs.hist); n > 0 && rs.hist[n-1].vals != nil {
			out = append(out, rs)
		}
	}
	slices.SortFunc(out, func(a, b *rowState) int { return compareKeys(a.key, b.key) })
	return out
}
