package simulator

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/highwater-dev/highwater/hlc"
)

// goldenFooEnriched is what CockroachDB v25.2+ registers for foo WITH
// envelope = enriched and no enriched_properties (avro.go
// NewEnvelopeRecord with AfterField, TsField, OpField); the same text as
// schemas/testdata/foo-value-enriched.avsc.
const goldenFooEnriched = `{"type":"record","name":"foo_envelope","fields":[{"type":["null",{"type":"record","name":"foo","fields":[{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"},{"type":["null","string"],"name":"b","default":null,"__crdb__":"b STRING NULL"}]}],"name":"after","default":null},{"type":["null","long"],"name":"ts_ns","default":null},{"type":["null","string"],"name":"op","default":null}]}`

func TestEnrichedSchemas(t *testing.T) {
	v := mustTable(t, fooTable()).cur()
	if got := valueSchema("foo", "foo", envelopeOpts{enriched: true, updated: true}, v, v); got != goldenFooEnriched {
		t.Errorf("enriched schema\n got %s\nwant %s", got, goldenFooEnriched)
	}
	type field struct {
		Name string          `json:"name"`
		Type json.RawMessage `json:"type"`
	}
	type record struct {
		Name      string  `json:"name"`
		Namespace string  `json:"namespace"`
		Fields    []field `json:"fields"`
	}
	sourceOrder := func(seed int64) []string {
		var env record
		text := valueSchema("foo", "foo", envelopeOpts{enriched: true, source: true, diff: true, prefix: "super", seed: seed}, v, v)
		if err := json.Unmarshal([]byte(text), &env); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range env.Fields {
			names = append(names, f.Name)
		}
		if env.Name != "superfoo_envelope" || env.Namespace != "super" || strings.Join(names, ",") != "before,after,source,ts_ns,op" {
			t.Fatalf("envelope %s.%s fields %v, want super.superfoo_envelope before,after,source,ts_ns,op", env.Namespace, env.Name, names)
		}
		var u []json.RawMessage
		var src record
		if err := json.Unmarshal(env.Fields[2].Type, &u); err != nil || string(u[0]) != `"null"` || json.Unmarshal(u[1], &src) != nil {
			t.Fatalf("source type %s, want [\"null\", record]", env.Fields[2].Type)
		}
		if src.Name != "source" || src.Namespace != "super" {
			t.Errorf("source record %s.%s, want super.source", src.Namespace, src.Name)
		}
		var fs []string
		for _, f := range src.Fields {
			fs = append(fs, f.Name)
			want := map[string]string{"ts_ns": `["null","long"]`, "crdb_internal_table_id": `["null","int"]`,
				"primary_keys": `["null",{"items":"string","type":"array"}]`}[f.Name]
			if want == "" {
				want = `["null","string"]`
			}
			var got any
			_ = json.Unmarshal(f.Type, &got)
			if b, _ := json.Marshal(got); string(b) != want {
				t.Errorf("source field %s type %s, want %s", f.Name, b, want)
			}
		}
		return fs
	}
	a, b := sourceOrder(1), sourceOrder(2)
	if slices.Equal(a, b) {
		t.Errorf("seeds 1 and 2 give one source field order %v; CockroachDB's varies (Go map order)", a)
	}
	sort.Strings(a)
	want := slices.Clone(sourceFieldNames)
	sort.Strings(want)
	if !slices.Equal(a, want) {
		t.Errorf("source fields %v, want %v", a, want)
	}
}

// An enriched feed: op follows the row's history, the commit HLC is
// source.ts_hlc (ts_ns is later), mvcc_timestamp is in the source, and no
// top-level updated.
func TestEnrichedFeed(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(1)
	opts.Envelope, opts.EnrichedProperties, opts.MVCCTimestamp = EnvelopeEnriched, "source,schema", true
	s := newSim(t, opts, fooTable())
	ctx := context.Background()
	var commits []hlc.Timestamp
	for _, fn := range []func(tx *Txn) error{
		func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 1, "b": "x"}) },
		func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 1, "b": "y"}) },
		func(tx *Txn) error { return tx.Delete("foo", 1) },
		func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 1, "b": "z"}) },
	} {
		ts, err := s.Txn(ctx, fn)
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, ts)
	}
	if _, err := s.Resolve(ctx); err != nil {
		t.Fatal(err)
	}
	d := newDecoder(opts.RegistryURL)
	var ops []string
	for _, r := range consumeAll(t, opts.Brokers, "foo") {
		if r.Key == nil {
			continue
		}
		_, v := d.decode(t, r.Value)
		i := len(ops)
		if _, ok := v["updated"]; ok {
			t.Error("enriched message has a top-level updated")
		}
		ops = append(ops, v["op"].(map[string]any)["string"].(string))
		src := v["source"].(map[string]any)["source"].(map[string]any)
		if got := src["ts_hlc"].(map[string]any)["string"]; got != commits[i].String() {
			t.Errorf("message %d: source.ts_hlc %v, want %v", i, got, commits[i])
		}
		if got := src["ts_ns"].(map[string]any)["long"]; got != commits[i].WallTime {
			t.Errorf("message %d: source.ts_ns %v, want %v", i, got, commits[i].WallTime)
		}
		if got := v["ts_ns"].(map[string]any)["long"].(int64); got <= commits[i].WallTime {
			t.Errorf("message %d: ts_ns %v, want the (later) processing time", i, got)
		}
		if src["mvcc_timestamp"] == nil || src["table_name"].(map[string]any)["string"] != "foo" ||
			src["database_name"].(map[string]any)["string"] != "defaultdb" {
			t.Errorf("message %d: source %v", i, src)
		}
		if pk := src["primary_keys"].(map[string]any)["array"].([]any); len(pk) != 1 || pk[0] != "a" {
			t.Errorf("primary_keys %v, want [a]", pk)
		}
	}
	if got := strings.Join(ops, ","); got != "c,u,d,c" {
		t.Errorf("ops %s, want c,u,d,c", got)
	}
	var oracle []string
	for _, v := range s.Oracle().Versions("foo") {
		oracle = append(oracle, v.Op)
	}
	if got := strings.Join(oracle, ","); got != "insert,update,delete,insert" {
		t.Errorf("oracle ops %s, want insert,update,delete,insert (enriched's op tells them apart without diff)", got)
	}
}

// NoUpdated: an enriched source record with null ts_hlc and ts_ns.
func TestEnrichedNoUpdated(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(1)
	opts.Envelope, opts.EnrichedProperties, opts.NoUpdated = EnvelopeEnriched, "source", true
	s := newSim(t, opts, fooTable())
	ctx := context.Background()
	if _, err := s.Txn(ctx, func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 1}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx); err != nil {
		t.Fatal(err)
	}
	d := newDecoder(opts.RegistryURL)
	n := 0
	for _, r := range consumeAll(t, opts.Brokers, "foo") {
		if r.Key == nil {
			continue
		}
		_, v := d.decode(t, r.Value)
		src := v["source"].(map[string]any)["source"].(map[string]any)
		if src["ts_hlc"] != nil || src["ts_ns"] != nil || src["mvcc_timestamp"] != nil {
			t.Errorf("source %v: want null ts_hlc, ts_ns and mvcc_timestamp", src)
		}
		n++
	}
	if n != 1 {
		t.Errorf("%d row messages, want 1", n)
	}
}

func TestEnrichedOptionsAreChecked(t *testing.T) {
	for _, o := range []Options{
		{Envelope: "bare"},
		{EnrichedProperties: "source"},
		{Envelope: EnvelopeEnriched, EnrichedProperties: "sauce"},
	} {
		if _, _, err := validateEnvelope(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
