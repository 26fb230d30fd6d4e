package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// Schema texts as CockroachDB registers them (docs/CHANGEFEED.md §1.2, §4.2, §8.2).
const (
	goldenFooKey        = `{"type":"record","name":"foo","fields":[{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"}]}`
	goldenFooValue      = `{"type":"record","name":"foo_envelope","fields":[{"type":["null",{"type":"record","name":"foo","fields":[{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"},{"type":["null","string"],"name":"b","default":null,"__crdb__":"b STRING NULL"}]}],"name":"after","default":null}]}`
	goldenFooValueFull  = `{"type":"record","name":"foo_envelope","fields":[{"type":["null",{"type":"record","name":"foo_before","fields":[{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"},{"type":["null","string"],"name":"b","default":null,"__crdb__":"b STRING NULL"}]}],"name":"before","default":null},{"type":["null",{"type":"record","name":"foo","fields":[{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"},{"type":["null","string"],"name":"b","default":null,"__crdb__":"b STRING NULL"}]}],"name":"after","default":null},{"type":["null","string"],"name":"updated","default":null},{"type":["null","string"],"name":"mvcc_timestamp","default":null}]}`
	goldenResolvedV1    = `{"type":"record","name":"foo_envelope","fields":[{"type":["null","string"],"name":"resolved","default":null}]}`
	goldenResolvedV2    = `{"type":"record","name":"_envelope","fields":[{"type":["null","string"],"name":"resolved","default":null}]}`
	goldenSnowmanSchema = `{"type":"record","name":"_u2603_","fields":[{"type":["null","long"],"name":"_u0001f366_","default":null,"__crdb__":"🍦 INT8 NOT NULL"}]}`
)

func mustTable(t *testing.T, def TableDef) *table {
	t.Helper()
	s := &Sim{opts: Options{Enums: def.Enums}}
	tb, err := s.buildTable(def)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestSchemaGoldens(t *testing.T) {
	foo := mustTable(t, fooTable())
	v := foo.cur()
	snow := mustTable(t, TableDef{Name: "☃", Columns: []ColumnDef{{Name: "🍦", Type: "INT"}}, PrimaryKey: []string{"🍦"}})
	cases := []struct{ name, got, want string }{
		{"key", keySchema("foo", "", v), goldenFooKey},
		{"value default", valueSchema("foo", "foo", envelopeOpts{}, v, v), goldenFooValue},
		{"value diff updated mvcc", valueSchema("foo", "foo", envelopeOpts{diff: true, updated: true, mvcc: true}, v, v), goldenFooValueFull},
		{"resolved v1", resolvedSchema("foo", ""), goldenResolvedV1},
		{"resolved v2", resolvedSchema("", ""), goldenResolvedV2},
		// TestAvroSchema/escaping: the key schema and the table record are the same string.
		{"escaping key", keySchema("☃", "", snow.cur()), goldenSnowmanSchema},
		{"escaping record", marshalSchema(&avroRecord{SchemaType: "record", Name: "_u2603_", Fields: snow.cur().fields()}), goldenSnowmanSchema},
		// §8.2 with avro_schema_prefix=super.
		{"prefix key", keySchema("foo", "super", v),
			`{"type":"record","name":"superfoo","fields":[{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"}],"namespace":"super"}`},
		{"prefix value", valueSchema("foo", "foo", envelopeOpts{updated: true, prefix: "super"}, v, v),
			`{"type":"record","name":"superfoo_envelope","fields":[{"type":["null",{"type":"record","name":"foo","fields":[{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"},{"type":["null","string"],"name":"b","default":null,"__crdb__":"b STRING NULL"}],"namespace":"super"}],"name":"after","default":null},{"type":["null","string"],"name":"updated","default":null}],"namespace":"super"}`},
		// full_table_name with avro_schema_prefix=super: key and envelope
		// after prefix + db.public.table, the row record after the bare table
		// (encoder_avro.go rawTableName).
		{"full name key", keySchema("movr.public.foo", "super", v),
			`{"type":"record","name":"supermovr_u002e_public_u002e_foo","fields":[{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"}],"namespace":"super"}`},
		{"full name value", valueSchema("movr.public.foo", "foo", envelopeOpts{updated: true, prefix: "super"}, v, v),
			`{"type":"record","name":"supermovr_u002e_public_u002e_foo_envelope","fields":[{"type":["null",{"type":"record","name":"foo","fields":[{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"},{"type":["null","string"],"name":"b","default":null,"__crdb__":"b STRING NULL"}],"namespace":"super"}],"name":"after","default":null},{"type":["null","string"],"name":"updated","default":null}],"namespace":"super"}`},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, c.got, c.want)
		}
		if _, err := goavro.NewCodec(c.got); err != nil {
			t.Errorf("%s: goavro rejects the schema: %v", c.name, err)
		}
	}
}

func TestTypeSchemas(t *testing.T) {
	cases := []struct{ sqlType, crdbType, avro string }{
		{"INT", "INT8", `["null","long"]`},
		{"INT4", "INT4", `["null","long"]`},
		{"INT2", "INT2", `["null","long"]`},
		{"BOOL", "BOOL", `["null","boolean"]`},
		{"FLOAT", "FLOAT8", `["null","double"]`},
		{"FLOAT4", "FLOAT4", `["null","double"]`},
		{"DECIMAL(3,2)", "DECIMAL(3,2)", `["null",{"type":"bytes","logicalType":"decimal","precision":3,"scale":2},"string"]`},
		{"DECIMAL(10)", "DECIMAL(10,0)", `["null",{"type":"bytes","logicalType":"decimal","precision":10,"scale":0},"string"]`},
		{"STRING", "STRING", `["null","string"]`},
		{"STRING COLLATE de", "STRING COLLATE de", `["null","string"]`},
		{"BYTES", "BYTES", `["null","bytes"]`},
		{"DATE", "DATE", `["null",{"type":"int","logicalType":"date"}]`},
		{"TIME", "TIME", `["null",{"type":"long","logicalType":"time-micros"}]`},
		{"TIMETZ", "TIMETZ", `["null","string"]`},
		{"TIMESTAMP", "TIMESTAMP", `["null",{"type":"long","logicalType":"timestamp-micros"}]`},
		{"TIMESTAMPTZ", "TIMESTAMPTZ", `["null",{"type":"long","logicalType":"timestamp-micros"}]`},
		{"INTERVAL", "INTERVAL", `["null","string"]`},
		{"UUID", "UUID", `["null","string"]`},
		{"INET", "INET", `["null","string"]`},
		{"JSONB", "JSONB", `["null","string"]`},
		{"mood", "mood", `["null","string"]`},
		{"BOOL[]", "BOOL[]", `["null",{"type":"array","items":["null","boolean"]}]`},
		{"DECIMAL(6,2)[]", "DECIMAL(6,2)[]", `["null",{"type":"array","items":["null",{"type":"bytes","logicalType":"decimal","precision":6,"scale":2},"string"]}]`},
		{"BIT(3)", "BIT(3)", `["null",{"type":"array","items":"long"}]`},
		{"VARBIT", "VARBIT", `["null",{"type":"array","items":"long"}]`},
	}
	for _, c := range cases {
		ct, err := parseType(c.sqlType, map[string][]string{"mood": {"ok"}})
		if err != nil {
			t.Errorf("%s: %v", c.sqlType, err)
			continue
		}
		b, _ := json.Marshal(ct.unionSchema())
		if string(b) != c.avro || ct.sql != c.crdbType {
			t.Errorf("%s: got %s %s, want %s %s", c.sqlType, ct.sql, b, c.crdbType, c.avro)
		}
	}
	if _, err := parseType("DECIMAL", nil); err == nil || !bytes.Contains([]byte(err.Error()), []byte("decimal with no precision not yet supported with avro")) {
		t.Errorf("DECIMAL without precision: got %v", err)
	}
}

func TestCrdbMetadata(t *testing.T) {
	cases := []struct {
		def  ColumnDef
		want string
	}{
		{ColumnDef{Name: "a", Type: "INT", NotNull: true}, "a INT8 NOT NULL"},
		{ColumnDef{Name: "b", Type: "STRING"}, "b STRING NULL"},
		{ColumnDef{Name: "rowid", Type: "INT8", NotNull: true, Default: "unique_rowid()"}, "rowid INT8 NOT NULL DEFAULT unique_rowid()"},
		{ColumnDef{Name: "order items", Type: "INT8"}, `"order items" INT8 NULL`},
		{ColumnDef{Name: "select", Type: "STRING"}, `"select" STRING NULL`},
		{ColumnDef{Name: "timestamp", Type: "TIMESTAMPTZ"}, `"timestamp" TIMESTAMPTZ NULL`},
		{ColumnDef{Name: "Upper", Type: "BOOL"}, `"Upper" BOOL NULL`},
		{ColumnDef{Name: `say "hi"`, Type: "BOOL"}, `"say ""hi""" BOOL NULL`},
		{ColumnDef{Name: "🍦", Type: "INT8", NotNull: true}, "🍦 INT8 NOT NULL"},
		{ColumnDef{Name: "n", Type: "DECIMAL(10,2)", Default: "0"}, "n DECIMAL(10,2) NULL DEFAULT 0"},
	}
	for _, c := range cases {
		col, err := newColumn(c.def, nil)
		if err != nil {
			t.Fatal(err)
		}
		if col.crdb != c.want {
			t.Errorf("got %q, want %q", col.crdb, c.want)
		}
	}
	// A table without a primary key gets CockroachDB's hidden rowid key.
	tb := mustTable(t, TableDef{Name: "nopk", Columns: []ColumnDef{{Name: "x", Type: "STRING"}}})
	if got := keySchema("nopk", "", tb.cur()); got != `{"type":"record","name":"nopk","fields":[{"type":["null","long"],"name":"rowid","default":null,"__crdb__":"rowid INT8 NOT NULL DEFAULT unique_rowid()"}]}` {
		t.Errorf("rowid key schema: %s", got)
	}
}

// TestValueGoldens checks value encodings against the goldens of §3
// (avro_test.go value_goldens), through goavro.
func TestValueGoldens(t *testing.T) {
	cases := []struct {
		sqlType string
		in      any
		want    string // goavro textual form of the union
	}{
		{"DATE", time.Date(2019, 1, 2, 0, 0, 0, 0, time.UTC), `{"int.date":17898}`},
		{"TIME", 3*time.Hour + 4*time.Minute + 5*time.Second, `{"long.time-micros":11045000000}`},
		{"TIMESTAMP", time.Date(2019, 1, 2, 3, 4, 5, 0, time.UTC), `{"long.timestamp-micros":1546398245000000}`},
		{"TIMESTAMPTZ", time.Date(2019, 1, 2, 4, 4, 5, 0, time.FixedZone("x", 3600)), `{"long.timestamp-micros":1546398245000000}`},
		{"DECIMAL(4,1)", "1.2", `{"bytes.decimal":"\f"}`},
		{"DECIMAL(4,2)", "1.2", `{"bytes.decimal":"x"}`},
		{"DECIMAL(12,2)", "100", `{"bytes.decimal":"'\u0010"}`},
		{"DECIMAL(4,2)", "NaN", `{"string":"NaN"}`},
		{"INTERVAL", model.Interval{Months: 14, Days: 3, Micros: (4*3600 + 5*60 + 6) * 1e6}, `{"string":"P1Y2M3DT4H5M6S"}`},
		{"INTERVAL", model.Interval{Months: 12, Micros: -6000}, `{"string":"P1YT-0.006S"}`},
		{"INTERVAL", model.Interval{}, `{"string":"PT0S"}`},
		{"BIT(3)", "010", `{"array":[3,4611686018427387904]}`},
		{"INT8[]", []any{int64(42), nil, int64(42), int64(43)}, `{"array":[{"long":42},null,{"long":42},{"long":43}]}`},
		{"JSONB", `{"b":1,"a":[1,2]}`, `{"string":"{\"a\": [1, 2], \"b\": 1}"}`},
		{"UUID", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", `{"string":"6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`},
		{"INET", "190.0.0.0/24", `{"string":"190.0.0.0\/24"}`},
	}
	for _, c := range cases {
		ct, err := parseType(c.sqlType, nil)
		if err != nil {
			t.Fatal(err)
		}
		v, err := ct.normalize(c.in)
		if err != nil {
			t.Errorf("%s %v: %v", c.sqlType, c.in, err)
			continue
		}
		sch, _ := json.Marshal(ct.unionSchema())
		codec, err := goavro.NewCodec(string(sch))
		if err != nil {
			t.Fatal(err)
		}
		bin, err := codec.BinaryFromNative(nil, ct.native(v))
		if err != nil {
			t.Errorf("%s: encode: %v", c.sqlType, err)
			continue
		}
		back, _, err := codec.NativeFromBinary(bin)
		if err != nil {
			t.Fatal(err)
		}
		txt, err := codec.TextualFromNative(nil, back)
		if err != nil {
			t.Fatal(err)
		}
		if string(txt) != c.want {
			t.Errorf("%s %v: got %s, want %s", c.sqlType, c.in, txt, c.want)
		}
	}
}

func TestPartitionGolden(t *testing.T) {
	key1 := []byte{0, 0, 0, 0, 1, 2, 2}
	key2 := []byte{0, 0, 0, 0, 2, 2, 2}
	cases := []struct {
		key  []byte
		n    int
		want int32
	}{{key1, 2, 0}, {key1, 3, 1}, {key1, 16, 8}, {key2, 3, 2}, {key2, 16, 5}}
	p := NewPartitioner().ForTopic("foo")
	for _, c := range cases {
		if got := Partition(c.key, c.n); got != c.want {
			t.Errorf("Partition(% x, %d) = %d, want %d", c.key, c.n, got, c.want)
		}
		if got := p.Partition(&kgo.Record{Key: c.key}, c.n); got != int(c.want) {
			t.Errorf("partitioner(% x, %d) = %d, want %d", c.key, c.n, got, c.want)
		}
	}
	// Resolved messages have a nil key and go where they are addressed.
	for want := int32(0); want < 5; want++ {
		if got := p.Partition(&kgo.Record{Partition: want}, 5); got != int(want) {
			t.Errorf("nil-key record for partition %d went to %d", want, got)
		}
	}
	if !p.RequiresConsistency(&kgo.Record{Key: key1}) {
		t.Error("keyed records must require consistency")
	}
}

// TestSrfakeIDs records how srfake numbers schemas, which the wire goldens
// rely on: ids start at 1, an identical schema re-registered under a subject
// gets its existing id, and under another subject it shares the id (as a
// real Confluent registry does).
func TestSrfakeIDs(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	r, err := newRegistry(reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	post := func(subject, schema string) uint32 {
		delete(r.cache, [2]string{subject, schema}) // always ask the registry
		id, err := r.register(ctx, subject, schema)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	if id := post("foo-key", goldenFooKey); id != 1 {
		t.Errorf("first id = %d, want 1", id)
	}
	if id := post("foo-key", goldenFooKey); id != 1 {
		t.Errorf("re-registered id = %d, want 1", id)
	}
	if id := post("foo-value", goldenFooValue); id != 2 {
		t.Errorf("second schema id = %d, want 2", id)
	}
	if id := post("bar-key", goldenFooKey); id != 1 {
		t.Errorf("same schema under another subject: id %d, want 1", id)
	}
	if id := post("-value", goldenResolvedV2); id != 3 {
		t.Errorf("resolved v2 under subject -value: id %d, want 3", id)
	}
	vs, ok := reg.GetSchema("foo-key", 1)
	if !ok || vs.Schema.Schema != goldenFooKey {
		t.Errorf("srfake keeps the posted text: got %q", vs.Schema.Schema)
	}
}

// registered returns the schema text of subject's version v.
func registered(t *testing.T, reg *srfake.Registry, subject string, v int) sr.SubjectSchema {
	t.Helper()
	s, ok := reg.GetSchema(subject, v)
	if !ok {
		t.Fatalf("subject %s version %d not registered", subject, v)
	}
	return s
}

// TestWireBytes checks §8.3 byte for byte on a real produce/consume path, and
// that New registers exactly the golden schemas under the right subjects.
func TestWireBytes(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(3)
	s := newSim(t, opts, fooTable())
	ctx := context.Background()
	// The simulator always runs with `updated` (and resolved).
	withUpdated := goldenFooValue[:len(goldenFooValue)-2] + `,{"type":["null","string"],"name":"updated","default":null}]}`
	for subject, want := range map[string]string{"foo-key": goldenFooKey, "foo-value": withUpdated, "-value": goldenResolvedV2} {
		if got := registered(t, e.reg, subject, 1); got.Schema.Schema != want {
			t.Errorf("%s: registered %s", subject, got.Schema.Schema)
		}
	}
	ts1, err := s.Txn(ctx, func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 1, "b": "bar"}) })
	if err != nil {
		t.Fatal(err)
	}
	ts2, err := s.Txn(ctx, func(tx *Txn) error { return tx.Delete("foo", 1) })
	if err != nil {
		t.Fatal(err)
	}
	rts, err := s.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs := consumeAll(t, opts.Brokers, "foo")
	str := func(h hlc.Timestamp) []byte { return append([]byte{0x02, byte(2 * len(h.String()))}, h.String()...) }
	wantKey := []byte{0, 0, 0, 0, 1, 0x02, 0x02}
	wantInsert := append([]byte{0, 0, 0, 0, 2, 0x02, 0x02, 0x02, 0x02, 0x06, 'b', 'a', 'r'}, str(ts1)...)
	wantDelete := append([]byte{0, 0, 0, 0, 2, 0x00}, str(ts2)...)
	wantResolved := append([]byte{0, 0, 0, 0, 3}, str(rts)...)
	var rows, resolved int
	for _, r := range recs {
		if r.Key == nil {
			resolved++
			if !bytes.Equal(r.Value, wantResolved) {
				t.Errorf("resolved on %d: % x, want % x", r.Partition, r.Value, wantResolved)
			}
			continue
		}
		if !bytes.Equal(r.Key, wantKey) || r.Partition != 1 {
			t.Errorf("key % x on partition %d, want % x on 1", r.Key, r.Partition, wantKey)
		}
		want := wantInsert
		if rows == 1 {
			want = wantDelete
		}
		if !bytes.Equal(r.Value, want) {
			t.Errorf("row %d: % x, want % x", rows, r.Value, want)
		}
		rows++
	}
	if rows != 2 || resolved != 3 {
		t.Errorf("got %d rows and %d resolved, want 2 and 3 (one per partition)", rows, resolved)
	}
}

// TestWireBytesDiffAndV1 checks the diff envelope bytes (§8.3: before first)
// and the v1 resolved schema under "<topic>-value" with a topic prefix.
func TestWireBytesDiffAndV1(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(2)
	opts.Diff, opts.MVCCTimestamp, opts.ResolvedV1, opts.TopicPrefix = true, true, true, "cdc."
	s := newSim(t, opts, fooTable())
	ctx := context.Background()
	if got := s.Topics(); len(got) != 1 || got[0] != "cdc.foo" {
		t.Fatalf("topics %v", got)
	}
	if got := registered(t, e.reg, "foo-value", 1); got.Schema.Schema != goldenFooValueFull {
		t.Errorf("diff value schema: %s", got.Schema.Schema)
	}
	if got := registered(t, e.reg, "cdc.foo-value", 1); got.Schema.Schema != `{"type":"record","name":"cdc_u002e_foo_envelope","fields":[{"type":["null","string"],"name":"resolved","default":null}]}` {
		t.Errorf("v1 resolved schema: %s", got.Schema.Schema)
	}
	ts1, err := s.Txn(ctx, func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 1, "b": "bar"}) })
	if err != nil {
		t.Fatal(err)
	}
	ts2, err := s.Txn(ctx, func(tx *Txn) error { return tx.Delete("foo", 1) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx); err != nil {
		t.Fatal(err)
	}
	str := func(h hlc.Timestamp) []byte { return append([]byte{0x02, byte(2 * len(h.String()))}, h.String()...) }
	rec := []byte{0x02, 0x02, 0x02, 0x06, 'b', 'a', 'r'} // a: branch 1, long 1; b: branch 1, "bar"
	wantInsert := append(append(append([]byte{0, 0, 0, 0, 2, 0x00, 0x02}, rec...), str(ts1)...), str(ts1)...)
	wantDelete := append(append(append(append([]byte{0, 0, 0, 0, 2, 0x02}, rec...), 0x00), str(ts2)...), str(ts2)...) // mvcc = updated
	var rows [][]byte
	for _, r := range consumeAll(t, opts.Brokers, "cdc.foo") {
		if r.Key != nil {
			rows = append(rows, r.Value)
		}
	}
	if len(rows) != 2 || !bytes.Equal(rows[0], wantInsert) || !bytes.Equal(rows[1], wantDelete) {
		t.Errorf("rows:\n% x\n% x\nwant\n% x\n% x", rows[0], rows[1], wantInsert, wantDelete)
	}
}

// TestRegistrationRequest checks the HTTP request CockroachDB sends.
func TestRegistrationRequest(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	var gotCT, gotBody, gotPath string
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost {
			gotCT, gotPath = r.Header.Get("Content-Type"), r.URL.Path
			var b bytes.Buffer
			_, _ = b.ReadFrom(r.Body)
			gotBody = b.String()
			w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
			fmt.Fprint(w, `{"id":7}`)
			return true
		}
		return false
	})
	r, _ := newRegistry(reg.URL())
	id, err := r.register(context.Background(), "foo-key", goldenFooKey)
	if err != nil || id != 7 {
		t.Fatalf("id %d err %v", id, err)
	}
	wantBody, _ := json.Marshal(map[string]string{"schema": goldenFooKey})
	if gotCT != "application/vnd.schemaregistry.v1+json" || gotPath != "/subjects/foo-key/versions" || gotBody != string(wantBody)+"\n" {
		t.Errorf("request: %s %s %q", gotCT, gotPath, gotBody)
	}
}

// ratOf is d as a big.Rat, for comparisons.
func ratOf(d model.Decimal) *big.Rat { return new(big.Rat).SetFrac(d.Unscaled, pow10(d.Scale)) }

func TestFNV32aMatchesStdlib(t *testing.T) {
	for _, b := range [][]byte{nil, {0}, []byte("hello"), {0, 0, 0, 0, 1, 2, 2}} {
		h := fnv.New32a()
		h.Write(b)
		if got := fnv32a(b); got != h.Sum32() {
			t.Errorf("fnv32a(% x) = %x, want %x", b, got, h.Sum32())
		}
	}
}
