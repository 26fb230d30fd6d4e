package postgres

import (
	"testing"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// TestStagedKeys checks which staged keys count as repeated: only a key
// seen twice, or a key with a column whose Go equality is not PostgreSQL's.
func TestStagedKeys(t *testing.T) {
	ints := kv("t")
	composite := table("c", col("a", kind(model.KindInt)), col("b", kind(model.KindString)), col("v", kind(model.KindInt)))
	composite.Key = []int{0, 1}
	uuids := table("u", col("id", kind(model.KindUUID)))
	for _, c := range []struct {
		name     string
		t        *model.Table
		changes  []sinks.Change
		repeated bool
	}{
		{"distinct ints", ints, []sinks.Change{change(sinks.OpInsert, ts(1), int64(1), "a"), change(sinks.OpDelete, ts(1), int64(2), nil)}, false},
		{"repeated int", ints, []sinks.Change{change(sinks.OpInsert, ts(1), int64(1), "a"), change(sinks.OpUpdate, ts(2), int64(1), "b")}, true},
		{"distinct composite", composite, []sinks.Change{change(sinks.OpInsert, ts(1), int64(1), "ab", int64(0)),
			change(sinks.OpInsert, ts(1), int64(1), "a", int64(0)), change(sinks.OpInsert, ts(1), int64(2), "ab", int64(0))}, false},
		// ("as", "b") and ("a", "sb") are two keys, though tag and bytes
		// concatenated are the same.
		{"composite, ambiguous concatenation", table("s2", col("a", kind(model.KindString)), col("b", kind(model.KindString))), nil, false},
		{"repeated composite", composite, []sinks.Change{change(sinks.OpInsert, ts(1), int64(1), "ab", int64(0)),
			change(sinks.OpDelete, ts(2), int64(1), "ab", nil)}, true},
		{"uuid key", uuids, []sinks.Change{change(sinks.OpInsert, ts(1), "00000000-0000-0000-0000-000000000001")}, true},
	} {
		var s stagedKeys
		if c.changes == nil { // the ambiguous-concatenation case
			c.t.Key = []int{0, 1}
			c.changes = []sinks.Change{change(sinks.OpInsert, ts(1), "as", "b"), change(sinks.OpInsert, ts(1), "a", "sb")}
		}
		for i := range c.changes {
			s.add(c.t, &c.changes[i])
		}
		if s.repeated != c.repeated {
			t.Errorf("%s: repeated = %v, want %v", c.name, s.repeated, c.repeated)
		}
	}
}

// TestMergeUniqueKeys applies windows whose keys are each staged once (the
// merge without a sort): newer versions replace and delete, older ones
// never overwrite or delete, the changelog keeps each (key, HLC) once, and
// a replay of a window changes nothing.
func TestMergeUniqueKeys(t *testing.T) {
	url := server.CreateDB(t)
	w := openWriter(t, url, sinks.Options{Changelog: true})
	tb := kv("u")
	apply(t, w, nil, write{tb, []sinks.Change{
		change(sinks.OpInsert, ts(10), int64(1), "one"),
		change(sinks.OpInsert, ts(10), int64(2), "two"),
		change(sinks.OpInsert, ts(10), int64(3), "three"),
		change(sinks.OpInsert, ts(10), int64(4), "four"),
	}})
	second := []sinks.Change{
		change(sinks.OpUpdate, ts(20), int64(1), "one v2"), // newer: replaces
		change(sinks.OpUpdate, ts(5), int64(2), "two old"), // older: ignored
		change(sinks.OpDelete, ts(20), int64(3), nil),      // newer delete: deletes
		change(sinks.OpDelete, ts(5), int64(4), nil),       // older delete: ignored
		change(sinks.OpInsert, ts(20), int64(5), "five"),   // new key
		change(sinks.OpDelete, ts(20), int64(6), nil),      // delete of an absent key
	}
	for range 2 { // the second time a replay
		tx, err := w.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// Two Write calls: the keys are tracked across them.
		if err := tx.Write(t.Context(), tb, second[:3]); err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(t.Context(), tb, second[3:]); err != nil {
			t.Fatal(err)
		}
		if rep := tx.(*Tx).tables["u"].keys.repeated; rep {
			t.Fatal("keys staged once are taken as repeated: the test does not reach the unsorted merge")
		}
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		expectRows(t, "u", query(t, url, `SELECT id::text, v, _hw_updated::text FROM u ORDER BY id`), [][]string{
			{"1", "one v2", ts(20).String()},
			{"2", "two", ts(10).String()},
			{"4", "four", ts(10).String()},
			{"5", "five", ts(20).String()},
		})
		expectRows(t, "u_changes", query(t, url, `SELECT count(*)::text, count(DISTINCT (id, _hw_updated))::text FROM u_changes`),
			[][]string{{"10", "10"}})
	}
}

// TestStagedKeysBounded checks that the key set stops growing at
// maxStagedKeys: the table is then taken as repeated and the set dropped.
func TestStagedKeysBounded(t *testing.T) {
	tb := kv("t")
	var s stagedKeys
	ch := change(sinks.OpInsert, ts(1), int64(0), "v")
	for i := range maxStagedKeys {
		ch.Values[0] = int64(i)
		s.add(tb, &ch)
	}
	if s.repeated {
		t.Fatalf("%d distinct keys taken as repeated", maxStagedKeys)
	}
	ch.Values[0] = int64(maxStagedKeys)
	s.add(tb, &ch)
	if !s.repeated || s.ints != nil {
		t.Fatalf("past %d keys: repeated = %v, %d keys kept; want repeated and none kept", maxStagedKeys, s.repeated, len(s.ints))
	}
}
