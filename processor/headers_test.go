package processor

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/schemas"
)

// TestHeadersColumnIsRestored follows one record's headers from ingest
// (bufferValue) through the buffered payload (splitEvent) into the decoded
// row (restore): the column is appended as a nullable JSONB column, holds
// the headers as a JSON object of strings in CockroachDB's text form, is
// NULL for a record without headers, and the table pointer stays one per
// schema version.
func TestHeadersColumnIsRestored(t *testing.T) {
	h := newHeadersColumn("kafka_meta")
	value := []byte{0x00, 0, 0, 0, 1, 0x02}
	rec := &kgo.Record{Value: value, Headers: []kgo.RecordHeader{
		{Key: "trace_id", Value: []byte("abc123")}, {Key: "n", Value: []byte("1")},
		{Key: "nested", Value: []byte(`{"a": [1, 2]}`)}, {Key: "nil", Value: nil},
	}}
	ev, hdrs, err := splitEvent(buffer.Event{Value: h.bufferValue(rec)})
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Value) != string(value) {
		t.Fatalf("value after the buffer %x, want %x", ev.Value, value)
	}
	tbl := &model.Table{Name: "compliance_events", Key: []int{0}, Columns: []model.Column{
		{Name: "id", Type: model.Type{Kind: model.KindInt}, PrimaryKey: true},
		{Name: "details", Type: model.Type{Kind: model.KindString}, Nullable: true},
	}}
	row := h.restore(schemas.Row{Table: tbl, After: []any{int64(1), "x"}}, hdrs)
	if len(row.Table.Columns) != 3 || len(tbl.Columns) != 2 {
		t.Fatalf("columns %v (the decoder's table has %d)", row.Table.Columns, len(tbl.Columns))
	}
	c := row.Table.Columns[2]
	if c.Name != "kafka_meta" || c.Type.Kind != model.KindJSON || c.SQLType != "JSONB" || !c.Nullable || c.PrimaryKey {
		t.Fatalf("restored column %+v", c)
	}
	want := `{"n": "1", "nested": "{\"a\": [1, 2]}", "nil": null, "trace_id": "abc123"}`
	if got := row.After[2]; got != want {
		t.Fatalf("column holds %v, want %s", got, want)
	}

	// No headers: NULL, same table pointer.
	_, none, _ := splitEvent(buffer.Event{Value: h.bufferValue(&kgo.Record{Value: value})})
	row2 := h.restore(schemas.Row{Table: tbl, After: []any{int64(2), nil}}, none)
	if row2.Table != row.Table {
		t.Fatal("a second row of the same schema got another table")
	}
	if row2.After[2] != nil {
		t.Fatalf("no headers: column holds %v, want NULL", row2.After[2])
	}
	// A delete keeps After nil; a before image gets NULL (its headers were
	// never sent).
	del := h.restore(schemas.Row{Table: tbl, BeforeTable: tbl, Before: []any{int64(2), "y"}, Diff: true}, nil)
	if del.After != nil || len(del.Before) != 3 || del.Before[2] != nil || del.BeforeTable != row.Table {
		t.Fatalf("delete: after %v before %v", del.After, del.Before)
	}
	// A value schema that has the column already is left alone.
	own := &model.Table{Name: "t", Columns: []model.Column{{Name: "kafka_meta", Type: model.Type{Kind: model.KindJSON}}}}
	if r := h.restore(schemas.Row{Table: own, After: []any{`{}`}}, hdrs); r.Table != own || len(r.After) != 1 {
		t.Fatalf("own column: %v", r.After)
	}
	// Without the option nothing is kept or added.
	var off *headersColumn
	if v := off.bufferValue(rec); string(v) != string(value) {
		t.Fatalf("headers kept without the option: %x", v)
	}
	if r := off.restore(schemas.Row{Table: tbl, After: []any{int64(1), "x"}}, hdrs); r.Table != tbl || len(r.After) != 2 {
		t.Fatal("column added without the option")
	}
}
