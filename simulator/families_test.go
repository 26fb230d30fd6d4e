package simulator

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func familiesFoo() TableDef {
	return TableDef{Name: "foo", Columns: []ColumnDef{{Name: "a", Type: "INT8"}, {Name: "b", Type: "STRING"}, {Name: "c", Type: "STRING"}},
		PrimaryKey: []string{"a"}, Families: []FamilyDef{{Name: "most", Columns: []string{"a", "b"}}, {Name: "only_c", Columns: []string{"c"}}}}
}

// The feed of a table with two column families is CockroachDB's (changefeed_test.go
// TestChangefeedEachColumnFamily): one message per family written, an
// update only for the family it changes, no message on insert for a
// family without values, a tombstone for a family set to NULL, tombstones
// on delete; the family's record lacks the key it does not hold, and the
// key is registered under the first family only. The Oracle knows the
// whole table.
func TestSplitColumnFamiliesFeed(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(1)
	if _, err := New(context.Background(), opts, familiesFoo()); err == nil || !strings.Contains(err.Error(), "split_column_families") {
		t.Fatalf("two families without SplitColumnFamilies: error %v, want one naming split_column_families", err)
	}
	opts.SplitColumnFamilies = true
	s := newSim(t, opts, familiesFoo())
	if got := strings.Join(s.Topics(), ","); got != "foo.most,foo.only_c" {
		t.Fatalf("topics %s, want foo.most,foo.only_c", got)
	}
	ctx := context.Background()
	txn := func(fn func(tx *Txn) error) {
		t.Helper()
		if _, err := s.Txn(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	txn(func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 0, "b": "dog", "c": "cat"}) })
	txn(func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 0, "b": "dog", "c": "lion"}) })
	txn(func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 1, "b": "puppy"}) })
	txn(func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 2, "c": "kitten"}) })
	txn(func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 2}) })
	before, err := s.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	txn(func(tx *Txn) error { return tx.Delete("foo", 0) })
	if _, err := s.Resolve(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	d := newDecoder(opts.RegistryURL)
	for _, r := range consumeAll(t, opts.Brokers, "foo.most", "foo.only_c") {
		if r.Key == nil {
			continue
		}
		_, k := d.decode(t, r.Key)
		_, v := d.decode(t, r.Value)
		after := "null"
		if a, ok := v["after"].(map[string]any); ok {
			after = fmt.Sprint(a["foo_u002e_"+strings.TrimPrefix(r.Topic, "foo.")])
		}
		got[r.Topic] = append(got[r.Topic], fmt.Sprint(k["a"], "->", after))
	}
	want := map[string][]string{
		"foo.most": {"map[long:0]->map[a:map[long:0] b:map[string:dog]]", "map[long:1]->map[a:map[long:1] b:map[string:puppy]]",
			"map[long:2]->map[a:map[long:2] b:<nil>]", "map[long:0]->null"},
		// Row 2's c set to NULL deletes the family's KV: a tombstone.
		"foo.only_c": {"map[long:0]->map[c:map[string:cat]]", "map[long:0]->map[c:map[string:lion]]",
			"map[long:2]->map[c:map[string:kitten]]", "map[long:2]->null"},
	}
	// The delete of row 0 tombstones only_c too (it holds a value either way).
	want["foo.only_c"] = append(want["foo.only_c"], "map[long:0]->null")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("feed\n got %v\nwant %v", got, want)
	}
	for subject, exists := range map[string]bool{"foo.most-key": true, "foo.most-value": true, "foo.only_c-value": true, "foo.only_c-key": false} {
		if e.reg.SubjectExists(subject) != exists {
			t.Errorf("subject %s registered: %v, want %v", subject, !exists, exists)
		}
	}
	rows := s.Oracle().Rows("foo", before)
	var gotRows []string
	for _, r := range rows {
		gotRows = append(gotRows, fmt.Sprintf("%v %v %v", r.Values["a"], r.Values["b"], r.Values["c"]))
	}
	if want := []string{"0 dog lion", "1 puppy <nil>", "2 <nil> <nil>"}; !reflect.DeepEqual(gotRows, want) {
		t.Errorf("oracle rows %v, want %v", gotRows, want)
	}
	if n := len(s.Oracle().Rows("foo", s.LastResolved())); n != 2 {
		t.Errorf("after the delete the oracle has %d rows, want 2", n)
	}
	if got := strings.Join(s.Oracle().Tables(), ","); got != "foo" {
		t.Errorf("oracle tables %s, want foo", got)
	}
}

// Loaded rows reach the feed through the initial scan family by family
// (a family without values has no KV, so no message), and the telemetry
// feed with families updates mostly one family (the nodes' heartbeat).
func TestSplitColumnFamiliesScanAndTelemetry(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(1)
	opts.SplitColumnFamilies = true
	s := newSim(t, opts, append(TelemetryFamilies(), familiesFoo())...)
	ctx := context.Background()
	if err := s.Load("foo", map[string]any{"a": 7, "b": "x"}, map[string]any{"a": 8, "c": "y"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InitialScan(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.RunTelemetry(ctx, Workload{Txns: 200, RowsPerTxn: 2, DeleteProb: 0.1}); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, r := range consumeAll(t, opts.Brokers, s.Topics()...) {
		if r.Key != nil {
			count[r.Topic]++
		}
	}
	if count["foo.most"] != 2 || count["foo.only_c"] != 1 {
		t.Errorf("initial scan: %d foo.most and %d foo.only_c messages, want 2 and 1", count["foo.most"], count["foo.only_c"])
	}
	if count["nodes.heartbeat"] < 150 || count["nodes.primary"] >= 50 {
		t.Errorf("nodes: %d heartbeat and %d primary messages, want most of the 200 reports in heartbeat", count["nodes.heartbeat"], count["nodes.primary"])
	}
	if count["features.counters"] == 0 || count["features.primary"] == 0 {
		t.Errorf("features: %v, want messages in both families", count)
	}
}
