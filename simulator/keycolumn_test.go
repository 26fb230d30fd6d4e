package simulator

import (
	"context"
	"strings"
	"testing"
)

// TestKeyColumnKeysRowsByThatColumn checks key_column: the key subject
// holds a record of the one column (with its __crdb__ hint), row messages
// carry that column's value as their key (NULL for a delete), and CREATE
// CHANGEFEED's check that every table has the column.
func TestKeyColumnKeysRowsByThatColumn(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(1)
	opts.KeyColumn = "b"
	s := newSim(t, opts, fooTable())
	ctx := context.Background()
	if _, err := s.Txn(ctx, func(tx *Txn) error {
		if err := tx.Upsert("foo", map[string]any{"a": 1, "b": "x"}); err != nil {
			return err
		}
		return tx.Upsert("foo", map[string]any{"a": 2, "b": "x"})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Txn(ctx, func(tx *Txn) error { return tx.Delete("foo", 1) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Oracle().Rows("foo", s.LastResolved())); n != 1 {
		t.Fatalf("oracle has %d rows, want 1: the primary key stays the identity", n)
	}
	d := newDecoder(e.reg.URL())
	var keys []string
	for _, r := range consumeAll(t, opts.Brokers, "foo") {
		if r.Key == nil {
			continue
		}
		_, k := d.decode(t, r.Key)
		if _, has := k["a"]; has || len(k) != 1 {
			t.Fatalf("key %v: want the one field b", k)
		}
		if b, ok := k["b"].(map[string]any); ok {
			keys = append(keys, b["string"].(string))
		} else {
			keys = append(keys, "NULL")
		}
	}
	if strings.Join(keys, ",") != "x,x,NULL" {
		t.Fatalf("keys %v, want x,x,NULL", keys)
	}
	if ss, ok := e.reg.GetSchema("foo-key", 1); !ok || !strings.Contains(ss.Schema.Schema, `"b STRING NULL"`) || strings.Contains(ss.Schema.Schema, `"name":"a"`) {
		t.Errorf("key schema %q: want the record of b with its hint", ss.Schema.Schema)
	}
	if _, two := e.reg.GetSchema("foo-key", 2); two {
		t.Error("a second key schema under foo-key: the primary key's was registered too")
	}
	opts.KeyColumn = "nope"
	if _, err := New(ctx, opts, fooTable()); err == nil || !strings.Contains(err.Error(), "required column nope not present on table foo") {
		t.Errorf("missing key_column: %v", err)
	}
}
