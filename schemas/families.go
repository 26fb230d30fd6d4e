package schemas

import (
	"strings"

	"github.com/highwater-dev/highwater/model"
)

// Column families (changefeed option split_column_families).
//
// CockroachDB emits one message per column family and KV write: the topic,
// the subjects and the envelope are named after "<table>.<family>" (with
// avro_schema_prefix and full_table_name as usual), the row record after
// "<bare table>.<family>", escaped (`foo_u002e_most`); the key is the whole
// primary key, but the value record holds only the family's columns, key
// columns included only where the family holds them (changefeedccl
// avro/avro.go TableToAvroSchema, encoder_avro.go rawTableName, cdcevent
// event.go newEventDescriptor; docs changefeeds-on-tables-with-column-families).
//
// The decoder completes such a table with the key columns its record lacks
// (from the key record, appended after the record's columns), so that every
// family is a table with its full primary key. With WithSplitColumnFamilies it
// also tags the table with its Family and Source, which the writers use to
// present the families of one source table together (docs/DECODING.md).

// WithSplitColumnFamilies tells the decoder that the feed was created WITH
// split_column_families: a row record named "<table>.<family>" (the last
// dot of the unescaped name) is column family <family> of <table>
// (model.Table.Family and Source). Without it, and for records without a
// dot, tables are untagged. Avro alone cannot tell a family from a table
// whose name contains a dot: both escape the dot as _u002e_.
func WithSplitColumnFamilies() DecoderOption {
	return decoderOptionFunc(func(d *Decoder) { d.families = true })
}

// familyTable returns t with primary-key flags and Key from the key
// schema: the key columns t lacks (a family that does not hold them) are
// appended when t is a family's record (its name has a dot). With d.families it sets Family and Source.
func (d *Decoder) familyTable(t *model.Table, p *valuePlan, key *keyPlan) *model.Table {
	nt := withKey(t, key)
	if nt == nil {
		return nil
	}
	// Only a family's record, named "<table>.<family>", may lack key
	// columns; any other record that does is a value of another table
	// under this key, which the key/value check must still catch.
	if len(nt.Key) != len(key.cols) && strings.Contains(p.bare, ".") {
		nt.Key = nt.Key[:0]
		for _, kc := range key.cols {
			at := -1
			for i := range nt.Columns {
				if nt.Columns[i].AvroName == kc.AvroName {
					at = i
					break
				}
			}
			if at < 0 {
				at = len(nt.Columns)
				nt.Columns = append(nt.Columns, kc)
			}
			nt.Columns[at].PrimaryKey = true
			nt.Key = append(nt.Key, at)
		}
	}
	if d.families {
		if i := strings.LastIndexByte(p.bare, '.'); i > 0 && i < len(p.bare)-1 {
			fam := p.bare[i+1:]
			if src, ok := strings.CutSuffix(nt.Name, "."+fam); ok && src != "" {
				nt.Family, nt.Source = fam, src
			}
		}
	}
	return nt
}

// withKeyValues extends a decoded record (vals) to t's columns: the key
// columns appended by familyTable take their values from the key. vals of
// a table without appended columns, and nil (a delete's after), are
// returned as they are.
func withKeyValues(vals []any, t *model.Table, keyValues []any) []any {
	if vals == nil || t == nil || len(vals) >= len(t.Columns) || len(keyValues) != len(t.Key) {
		return vals
	}
	out := make([]any, len(t.Columns))
	copy(out, vals)
	for i, c := range t.Key {
		if c >= len(vals) {
			out[c] = keyValues[i]
		}
	}
	return out
}
