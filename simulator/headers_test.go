package simulator

import (
	"context"
	"strings"
	"testing"
)

// TestHeadersJSONColumnGoesToHeaders checks headers_json_column_name: the
// column is absent from the value schema, each row message carries its
// object's members as headers (strings as text, other members as JSON
// text), a NULL column, a delete and a resolved message carry none, and the
// Oracle holds the column as a consumer can restore it.
func TestHeadersJSONColumnGoesToHeaders(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(1)
	opts.HeadersJSONColumn = "meta"
	def := fooTable()
	def.Columns = append(def.Columns, ColumnDef{Name: "meta", Type: "JSONB"})
	s := newSim(t, opts, def)
	ctx := context.Background()
	if _, err := s.Txn(ctx, func(tx *Txn) error {
		if err := tx.Upsert("foo", map[string]any{"a": 1, "b": "x", "meta": `{"trace_id": "abc", "n": 1, "o": {"k": [1, "v"]}, "z": null}`}); err != nil {
			return err
		}
		return tx.Upsert("foo", map[string]any{"a": 2, "b": "y"})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Txn(ctx, func(tx *Txn) error { return tx.Delete("foo", 1) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx); err != nil {
		t.Fatal(err)
	}
	want := `{"n": "1", "o": "{\"k\": [1, \"v\"]}", "trace_id": "abc", "z": "null"}`
	vs := s.Oracle().Versions("foo")
	if len(vs) != 3 || vs[0].Values["meta"] != want || vs[1].Values["meta"] != nil {
		t.Fatalf("oracle versions %v, want meta %s then NULL", vs, want)
	}
	var headers []string
	rows := 0
	for _, r := range consumeAll(t, opts.Brokers, "foo") {
		var hs []string
		for _, h := range r.Headers {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
		if r.Key == nil {
			if len(hs) != 0 {
				t.Errorf("resolved message with headers %v", hs)
			}
			continue
		}
		rows++
		headers = append(headers, strings.Join(hs, ","))
		_, v := newDecoder(e.reg.URL()).decode(t, r.Value)
		if after, ok := v["after"].(map[string]any); ok {
			if _, has := after["foo"].(map[string]any)["meta"]; has {
				t.Errorf("the value carries the headers column: %v", after)
			}
		}
	}
	wantHeaders := []string{`n=1,o={"k": [1, "v"]},trace_id=abc,z=null`, "", ""}
	if rows != 3 || strings.Join(headers, "|") != strings.Join(wantHeaders, "|") {
		t.Fatalf("row message headers %q, want %q", headers, wantHeaders)
	}
}

// TestHeadersJSONColumnMustExist checks the checks of CREATE CHANGEFEED:
// every table has the column, and it is JSONB.
func TestHeadersJSONColumnMustExist(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(1)
	opts.HeadersJSONColumn = "b"
	if _, err := New(context.Background(), opts, fooTable()); err == nil || !strings.Contains(err.Error(), "column b of type STRING does not match required type json") {
		t.Errorf("STRING column: %v", err)
	}
	opts.HeadersJSONColumn = "idk"
	if _, err := New(context.Background(), opts, fooTable()); err == nil || !strings.Contains(err.Error(), "required column idk not present on table foo") {
		t.Errorf("missing column: %v", err)
	}
	defs := WithHeadersColumn(TelemetryTables(), "labels")
	if n := len(defs[1].Columns); n != len(TelemetryTables()[1].Columns) {
		t.Errorf("nodes has labels already, got %d columns", n)
	}
	if c := defs[0].Columns[len(defs[0].Columns)-1]; c.Name != "labels" || c.Type != "JSONB" {
		t.Errorf("features got %+v", c)
	}
}
