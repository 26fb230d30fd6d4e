package integration

import (
	"slices"
	"testing"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/simulator"
)

// TestHeadersJSONColumnEndToEnd plays a changefeed WITH
// headers_json_column_name = 'meta': the JSONB column meta is missing from
// every value schema and travels as Kafka headers (random objects with
// numbers, arrays and arbitrary strings, or NULL), through duplicates,
// reordering, deletes and the buffer. highwater run with
// --headers-json-column meta must put it back, so that the mirror equals
// the source (as the headers can carry it: an object of strings) in every
// column, meta included, in DuckDB and PostgreSQL.
func TestHeadersJSONColumnEndToEnd(t *testing.T) {
	defs := []simulator.TableDef{{Name: "events", Columns: []simulator.ColumnDef{
		{Name: "id", Type: "INT8", NotNull: true}, {Name: "v", Type: "STRING"},
		{Name: "meta", Type: "JSONB"}, {Name: "n", Type: "INT8"},
	}, PrimaryKey: []string{"id"}}}
	opts := hostileOptions(31)
	opts.HeadersJSONColumn = "meta"
	playAndCompare(t, opts, defs, []string{"events"}, []string{"id", "v", "n", "meta"}, "events")
}

// withHeadersColumn is the oracle's column model of a feed WITH
// headers_json_column_name = name: the value schema's columns and a
// nullable JSONB column name, which the value schema lacks.
func withHeadersColumn(tbl *model.Table, name string) *model.Table {
	if name == "" {
		return tbl
	}
	if _, ok := tbl.Column(name); ok {
		return tbl
	}
	out := *tbl
	out.Columns = append(slices.Clip(tbl.Columns), model.Column{Name: name, AvroName: name, Type: model.Type{Kind: model.KindJSON}, SQLType: "JSONB", Nullable: true})
	return &out
}
