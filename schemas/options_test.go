package schemas

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/highwater-dev/highwater/model"
)

// fooSchemas returns the key and value schema texts CockroachDB registers for
// CREATE TABLE foo (a INT PRIMARY KEY, b STRING) WITH updated, under the
// statement-time name stmt (foo, or db.public.foo WITH full_table_name) and
// avro_schema_prefix prefix (encoder_avro.go rawTableName: the key and the
// envelope are named after prefix+stmt, the row record after the bare table).
func fooSchemas(stmt, prefix string) (key, value string) {
	ns := ""
	if prefix != "" {
		ns = `,"namespace":"` + prefix + `"`
	}
	a := `{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"}`
	key = `{"type":"record","name":"` + model.SQLNameToAvroName(prefix+stmt) + `","fields":[` + a + `]` + ns + `}`
	value = `{"type":"record","name":"` + model.SQLNameToAvroName(prefix+stmt) + `_envelope","fields":[{"type":["null",{"type":"record","name":"foo","fields":[` + a +
		`,{"type":["null","string"],"name":"b","default":null,"__crdb__":"b STRING NULL"}]` + ns + `}],"name":"after","default":null},{"type":["null","string"],"name":"updated","default":null}]` + ns + `}`
	return key, value
}

func encodeFoo(t *testing.T, keySchema, valueSchema, prefix string, keyID, valueID int, a int64) (key, value []byte) {
	t.Helper()
	kc, err := goavro.NewCodec(keySchema)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := goavro.NewCodec(valueSchema)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := kc.BinaryFromNative(nil, map[string]any{"a": map[string]any{"long": a}})
	if err != nil {
		t.Fatal(err)
	}
	rec := "foo"
	if prefix != "" {
		rec = prefix + ".foo"
	}
	vb, err := vc.BinaryFromNative(nil, map[string]any{
		"after":   map[string]any{rec: map[string]any{"a": map[string]any{"long": a}, "b": nil}},
		"updated": map[string]any{"string": "1700000000000000000.0000000001"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return frame(keyID, kb), frame(valueID, vb)
}

// Two tables named foo in two databases, in one changefeed WITH
// full_table_name, must stay two tables: their row records are both named
// foo, only the envelope names tell them apart.
func TestFullTableNameQualifiesTheTable(t *testing.T) {
	ctx := context.Background()
	cases := []struct{ stmt, prefix, want string }{
		{"foo", "", "foo"},
		{"foo", "super", "foo"},
		{"movr.public.foo", "", "movr.public.foo"},
		{"other.public.foo", "", "other.public.foo"},
		{"movr.public.foo", "super", "movr.public.foo"},
		{"other.public.foo", "super", "other.public.foo"},
		// A database name that starts like the prefix is not cut.
		{"superdb.public.foo", "super", "superdb.public.foo"},
	}
	seeded := map[int]string{}
	for i, c := range cases {
		ks, vs := fooSchemas(c.stmt, c.prefix)
		seeded[2*i+1], seeded[2*i+2] = ks, vs
	}
	_, reg := newSeededRegistry(t, seeded)
	d := NewDecoder(reg)
	for i, c := range cases {
		key, value := encodeFoo(t, seeded[2*i+1], seeded[2*i+2], c.prefix, 2*i+1, 2*i+2, 7)
		rec, err := d.Extract(ctx, "t", 0, int64(i), key, value)
		if err != nil {
			t.Fatalf("%s (prefix %q): Extract: %v", c.stmt, c.prefix, err)
		}
		if rec.Table != c.want {
			t.Errorf("%s (prefix %q): Extract table %q, want %q", c.stmt, c.prefix, rec.Table, c.want)
		}
		row, err := d.DecodeRow(ctx, key, value)
		if err != nil {
			t.Fatalf("%s (prefix %q): DecodeRow: %v", c.stmt, c.prefix, err)
		}
		if row.Table.Name != c.want || row.After[0] != int64(7) {
			t.Errorf("%s (prefix %q): DecodeRow table %q values %v, want %q [7 <nil>]", c.stmt, c.prefix, row.Table.Name, row.After, c.want)
		}
	}
}

// format = protobuf (v25.4) and format = json messages have no Confluent
// header: the error must say which changefeed option to use instead.
func TestOtherFormatsAreRefusedNamingFormatAvro(t *testing.T) {
	d := goldenDecoder(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, value string }{
		// changefeedpb.Message: field 1 (a length-delimited submessage).
		{"protobuf", "0a 0c 0a 03 'foo' 12 05 0a 03 'bar'"},
		{"json", `'{"after": {"a": 1}, "updated": "1.0"}'`},
		{"short protobuf", "0a 00"},
	} {
		_, err := d.Extract(ctx, "foo", 2, 17, hx(t, "0a 02 08 01"), hx(t, tc.value))
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, ErrBadFrame) {
			t.Fatalf("%s: error %v, want a *DecodeError wrapping ErrBadFrame", tc.name, err)
		}
		for _, want := range []string{"foo[2]@17", "format = avro", "protobuf"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not contain %q", tc.name, err, want)
			}
		}
	}
}

// WITH virtual_columns = 'null' a virtual computed column is in every row
// record with a NULL value, even when declared NOT NULL: the column model
// must say nullable, or a warehouse would refuse the NULLs.
func TestVirtualColumnsAreNullable(t *testing.T) {
	for _, tc := range []struct {
		hint     string
		nullable bool
	}{
		{"v INT8 NOT NULL AS (a + 1) VIRTUAL", true},
		{"v INT8 NULL AS (a + 1) VIRTUAL", true},
		{`"V" STRING NOT NULL AS (lower(b)) VIRTUAL`, true},
		{"v INT8 NOT NULL AS (a + 1) STORED", false},
		{"v INT8 NOT NULL", false},
	} {
		schema := `{"type":"record","name":"foo","fields":[{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"},` +
			`{"type":["null","long"],"name":"v","default":null,"__crdb__":` + strconv.Quote(tc.hint) + `}]}`
		p := compileKey(1, schema, defaultMaxSchemaDepth)
		if p.err != nil {
			t.Fatalf("%s: %v", tc.hint, p.err)
		}
		if got := p.cols[1].Nullable; got != tc.nullable {
			t.Errorf("%s: nullable %v, want %v", tc.hint, got, tc.nullable)
		}
	}
}
