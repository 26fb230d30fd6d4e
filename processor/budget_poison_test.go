package processor

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/schemas"
)

// Schemas of messages that cost more to decode than their size allows.
const (
	idValueTSource = 20 // t's envelope with a source field of arrays of arrays of null
	idKeyV         = 21
	idValueV       = 22 // v: id, d DECIMAL(4,2), b BIT(3)

	valTSource = `{"type":"record","name":"t_envelope","fields":[{"type":["null",{"type":"record","name":"t","fields":[` +
		`{"type":["null","long"],"name":"id","default":null,"__crdb__":"id INT8 NOT NULL"},` +
		`{"type":["null","string"],"name":"name","default":null,"__crdb__":"name STRING NULL"}]}],"name":"after","default":null},` +
		`{"type":{"type":"array","items":{"type":"array","items":"null"}},"name":"source"},` +
		`{"type":["null","string"],"name":"updated","default":null}]}`
	keyV = `{"type":"record","name":"v","fields":[{"type":["null","long"],"name":"id","default":null,"__crdb__":"id INT8 NOT NULL"}]}`
	valV = `{"type":"record","name":"v_envelope","fields":[{"type":["null",{"type":"record","name":"v","fields":[` +
		`{"type":["null","long"],"name":"id","default":null,"__crdb__":"id INT8 NOT NULL"},` +
		`{"type":["null",{"type":"bytes","logicalType":"decimal","precision":4,"scale":2},"string"],"name":"d","default":null,"__crdb__":"d DECIMAL(4,2) NULL"},` +
		`{"type":["null",{"type":"array","items":"long"}],"name":"b","default":null,"__crdb__":"b BIT(3) NULL"}]}],"name":"after","default":null},` +
		`{"type":["null","string"],"name":"updated","default":null}]}`
)

// valueOfTZeroWidth is a row of t of about 250 bytes (the in-memory
// buffer's values stay under 1 KB) whose source field holds 40 arrays of
// 2^20 nulls, 5 bytes each: 42M items before the budget, 1 s to skip.
func valueOfTZeroWidth(id int64, updated hlc.Timestamp) []byte {
	b := avroLong(nil, 1)
	b = avroLong(avroLong(b, 1), id)
	b = avroString(avroLong(b, 1), "z")
	b = avroLong(b, 40)
	for range 40 {
		b = append(avroLong(b, 1<<20), 0)
	}
	b = append(b, 0)
	b = avroString(avroLong(b, 1), updated.String())
	return framed(idValueTSource, b)
}

func keyOfV(id int64) []byte { return framed(idKeyV, avroLong(avroLong(nil, 1), id)) }

// valueOfV is a row of v with d's unscaled value as big-endian bytes
// (nil: NULL) and b's bit array elements (nil: NULL).
func valueOfV(id int64, d []byte, bits []int64, updated hlc.Timestamp) []byte {
	b := avroLong(nil, 1)
	b = avroLong(avroLong(b, 1), id)
	if d == nil {
		b = avroLong(b, 0)
	} else {
		b = append(avroLong(avroLong(b, 1), int64(len(d))), d...)
	}
	if bits == nil {
		b = avroLong(b, 0)
	} else {
		b = avroLong(avroLong(b, 1), int64(len(bits)))
		for _, w := range bits {
			b = avroLong(b, w)
		}
		b = append(b, 0)
	}
	b = avroString(avroLong(b, 1), updated.String())
	return framed(idValueV, b)
}

// TestCostlyRecordsArePoison feeds records that would cost far more to
// decode than their size (nested arrays of zero-width items, a BIT wider
// than its column, a DECIMAL over its precision) through the dlq policy:
// each is set aside with its location and the feed goes on.
func TestCostlyRecordsArePoison(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, OnErrorDLQ)
	fake := srfake.New()
	t.Cleanup(fake.Close)
	for id, s := range map[int]string{idKeyT: keyT, idValueT: valT, idResolved: valResolved, idValueTSource: valTSource, idKeyV: keyV, idValueV: valV} {
		fake.SeedSchema(fmt.Sprintf("s%d-value", id), 1, id, sr.Schema{Schema: s, Type: sr.TypeAvro})
	}
	reg, err := schemas.NewRegistry(fake.URL())
	if err != nil {
		t.Fatal(err)
	}
	r.p.cfg.Decoder = schemas.NewDecoder(reg)
	feed := []*kgo.Record{
		{Key: keyOfT(1), Value: valueOfT(1, "a", t1)},                               // 0 good
		{Key: keyOfT(2), Value: valueOfTZeroWidth(2, t1)},                           // 1 ingest: zero-width items over budget
		{Key: keyOfV(3), Value: valueOfV(3, []byte{0x27, 0x10}, nil, t1)},           // 2 apply: 10000 in DECIMAL(4,2)
		{Key: keyOfV(4), Value: valueOfV(4, nil, []int64{1, 0, 0}, t1)},             // 3 apply: 65 bits in BIT(3)
		{Key: keyOfV(5), Value: valueOfV(5, []byte{0x27, 0x0f}, []int64{3, 0}, t1)}, // 4 good: 9999, B'000'
		{Value: resolvedOf(t1, idResolved)},                                         // 5 resolved t1
	}
	if err := r.ingest(t, feed...); err != nil {
		t.Fatal(err)
	}
	if s := r.p.Stats(); s.DeadLettersIngest != 1 {
		t.Fatalf("dead letters at ingest = %d, want 1", s.DeadLettersIngest)
	}
	res := r.p.flush(ctx, r.window(t1))
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.poison.dead) != 2 {
		t.Fatalf("dead letters at apply = %d, want 2", len(res.poison.dead))
	}
	got := r.query(t, `SELECT CAST("offset" AS VARCHAR), stage, CAST(schema_id AS VARCHAR), error FROM highwater_dlq ORDER BY "offset"`)
	want := [][]string{
		{"1", "ingest", "20", "t[0]@1 (schema id 20): envelope field: array items exceed the budget"},
		{"2", "apply", "22", "t[0]@2 (schema id 22): after column \"d\": decimal with 5 digits exceeds its precision 4"},
		{"3", "apply", "22", "t[0]@3 (schema id 22): after column \"b\": bit string of 65 bits or more is wider than its column's 3"},
	}
	if len(got) != len(want) {
		t.Fatalf("highwater_dlq = %v", got)
	}
	for i, w := range want {
		if g := got[i]; g[0] != w[0] || g[1] != w[1] || g[2] != w[2] || !strings.Contains(g[3], w[3]) {
			t.Errorf("dead letter %v, want %v", g, w)
		}
	}
	if got := r.query(t, `SELECT CAST(id AS VARCHAR) FROM t`); !reflect.DeepEqual(got, [][]string{{"1"}}) {
		t.Errorf("mirror t = %v", got)
	}
	if got := r.query(t, `SELECT CAST(id AS VARCHAR), CAST(d AS VARCHAR), b FROM v`); !reflect.DeepEqual(got, [][]string{{"5", "99.99", "000"}}) {
		t.Errorf("mirror v = %v", got)
	}
}
