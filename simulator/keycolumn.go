package simulator

import (
	"context"
	"fmt"

	"github.com/linkedin/goavro/v2"
)

// The changefeed option key_column (with unordered, which CockroachDB
// requires with it; Options.KeyColumn): the Kafka key of a row message is a
// record of that one column instead of the primary key, named like the key
// record and registered under the key subject (encoder_avro.go EncodeKey:
// avro.NewSchemaForRow over row.DatumNamed(customKeyColumn)); the topic
// partition follows from those key bytes. The primary key stays the rows'
// identity inside the simulator and the Oracle. A delete's key holds NULL:
// a deleted row has no value for a column outside the primary key.
//
// CockroachDB refuses unordered together with resolved, so such a feed has
// no resolved messages; the simulator still sends them when asked (Resolve),
// for tests that need its acknowledgements.

// customKey is one table's key_column key codec.
type customKey struct {
	codec  *goavro.Codec
	header [5]byte
	name   string
}

// checkKeyColumn refuses a table without the column, as CREATE CHANGEFEED
// does for key_column (a required column).
func (s *Sim) checkKeyColumn(t *table) error {
	if s.opts.KeyColumn == "" {
		return nil
	}
	if _, ok := t.cur().byName[s.opts.KeyColumn]; !ok {
		return fmt.Errorf("key_column: required column %s not present on table %s", s.opts.KeyColumn, t.name)
	}
	return nil
}

// registerCustomKey registers t's key_column key schema under the key
// subject.
func (s *Sim) registerCustomKey(ctx context.Context, t *table) error {
	sch := t.cur()
	i := sch.byName[s.opts.KeyColumn]
	one := &tableSchema{cols: []*column{sch.cols[i]}, byName: map[string]int{s.opts.KeyColumn: 0}, key: []int{0}}
	text := keySchema(t.name, s.opts.SchemaPrefix, one)
	codec, err := goavro.NewCodec(text)
	if err != nil {
		return fmt.Errorf("key_column schema: %w", err)
	}
	id, err := s.reg.register(ctx, t.keySubject, text)
	if err != nil {
		return err
	}
	t.custom = &customKey{codec: codec, header: header(id), name: s.opts.KeyColumn}
	return nil
}

// customKeyOf is the Kafka key of a row version of t with values vals of
// schema sch (nil for a delete), or nil without key_column.
func (t *table) customKeyOf(sch *tableSchema, vals []any) ([]byte, error) {
	if t.custom == nil {
		return nil, nil
	}
	i, ok := sch.byName[t.custom.name]
	if !ok {
		return nil, fmt.Errorf("key_column %s was dropped", t.custom.name)
	}
	c := sch.cols[i]
	var v any
	if vals != nil && vals[i] != nil {
		one := &tableSchema{cols: []*column{c}}
		v = newRowScratch(one, []int{0}).fill(one, []int{0}, []any{vals[i]}, true)[c.avroName]
	}
	buf := make([]byte, 5, 32)
	copy(buf, t.custom.header[:])
	out, err := t.custom.codec.BinaryFromNative(buf, map[string]any{c.avroName: v})
	if err != nil {
		return nil, fmt.Errorf("encode key_column key: %w", err)
	}
	return out, nil
}
