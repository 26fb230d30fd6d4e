package simulator

import (
	"context"
	"strings"
	"testing"
)

// TestFullTableNameNamesAndLookup checks what full_table_name changes:
// topics and subjects after <db>.public.<table> (with the prefixes), the
// envelope after the qualified name and the row record after the bare one,
// tables addressed by the qualified name or by an unambiguous bare name.
func TestFullTableNameNamesAndLookup(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(1)
	opts.FullTableName, opts.SchemaPrefix, opts.TopicPrefix = true, "super", "cdc_"
	east, west, bar := fooTable(), fooTable(), fooTable()
	east.Database, west.Database, bar.Name = "east", "west", "bar"
	s := newSim(t, opts, east, west, bar)
	if got := strings.Join(s.Topics(), ","); got != "cdc_east.public.foo,cdc_west.public.foo,cdc_defaultdb.public.bar" {
		t.Errorf("topics %s", got)
	}
	ctx := context.Background()
	if _, err := s.Txn(ctx, func(tx *Txn) error {
		if err := tx.Upsert("west.public.foo", map[string]any{"a": 1, "b": "w"}); err != nil {
			return err
		}
		return tx.Upsert("bar", map[string]any{"a": 2, "b": "bare name"})
	}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Txn(ctx, func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 3}) })
	if err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("bare name of two tables: error %v, want ambiguous", err)
	}
	if _, err := s.Resolve(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Oracle().Rows("west.public.foo", s.LastResolved())); n != 1 {
		t.Errorf("west.public.foo has %d rows, want 1", n)
	}
	if n := len(s.Oracle().Rows("east.public.foo", s.LastResolved())); n != 0 {
		t.Errorf("east.public.foo has %d rows, want 0", n)
	}
	d := newDecoder(opts.RegistryURL)
	for _, r := range consumeAll(t, opts.Brokers, "cdc_west.public.foo") {
		if r.Key == nil {
			continue
		}
		_, v := d.decode(t, r.Value)
		if _, ok := v["after"].(map[string]any)["super.foo"]; !ok {
			t.Errorf("after %v: want the row record super.foo", v["after"])
		}
	}
	for _, subject := range []string{"superwest.public.foo-key", "superwest.public.foo-value", "superdefaultdb.public.bar-value"} {
		if !e.reg.SubjectExists(subject) {
			t.Errorf("subject %s not registered", subject)
		}
	}
}

// A virtual column (virtual_columns = 'null') is emitted NULL whatever is
// written to it, with its computed-column hint.
func TestVirtualColumnIsAlwaysNull(t *testing.T) {
	e := newEnv(t)
	def := fooTable()
	def.Columns = append(def.Columns, ColumnDef{Name: "v", Type: "INT8", NotNull: true, Virtual: "a * 2"})
	s := newSim(t, e.opts(1), def)
	ctx := context.Background()
	if _, err := s.Txn(ctx, func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 1, "v": 7}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx); err != nil {
		t.Fatal(err)
	}
	rows := s.Oracle().Rows("foo", s.LastResolved())
	if len(rows) != 1 || rows[0].Values["v"] != nil {
		t.Fatalf("oracle rows %v, want one with v NULL", rows)
	}
	if c := s.byName["foo"].cur().cols[2].crdb; c != "v INT8 NOT NULL AS (a * 2) VIRTUAL" {
		t.Errorf("hint %q", c)
	}
	n := 0
	for _, r := range consumeAll(t, e.opts(1).Brokers, "foo") {
		if r.Key == nil {
			continue
		}
		_, v := newDecoder(e.reg.URL()).decode(t, r.Value)
		if got := v["after"].(map[string]any)["foo"].(map[string]any)["v"]; got != nil {
			t.Errorf("v = %v in the message, want null", got)
		}
		n++
	}
	if n != 1 {
		t.Errorf("%d row messages, want 1", n)
	}
}
