package schemas

import (
	"context"
	"reflect"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/highwater-dev/highwater/model"
)

// familySchemas are CockroachDB's schemas for family only_c of
// foo (a INT PRIMARY KEY, b STRING, c STRING, FAMILY most (a, b), FAMILY
// only_c (c)) WITH split_column_families (changefeed_test.go
// TestChangefeedColumnFamilyAvro): the key is the whole primary key, the
// value record holds only c. stmt is the statement-time name (qualified
// WITH full_table_name); the row record is named after the bare table.
func familySchemas(stmt string) (key, value string) {
	a := `{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"}`
	key = `{"type":"record","name":"` + model.SQLNameToAvroName(stmt+".most") + `","fields":[` + a + `]}`
	value = `{"type":"record","name":"` + model.SQLNameToAvroName(stmt+".only_c") + `_envelope","fields":[{"type":["null",{"type":"record","name":"foo_u002e_only_c","fields":[` +
		`{"type":["null","string"],"name":"c","default":null,"__crdb__":"c STRING NULL"}]}],"name":"after","default":null},{"type":["null","string"],"name":"updated","default":null}]}`
	return key, value
}

func encodeFamily(t *testing.T, keySchema, valueSchema string, keyID, valueID int, a int64, c any) (key, value []byte) {
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
	var after any
	if c != nil {
		after = map[string]any{"foo_u002e_only_c": map[string]any{"c": map[string]any{"string": c}}}
	}
	vb, err := vc.BinaryFromNative(nil, map[string]any{"after": after, "updated": map[string]any{"string": "1700000000000000000.0000000001"}})
	if err != nil {
		t.Fatal(err)
	}
	return frame(keyID, kb), frame(valueID, vb)
}

// A family that does not hold the primary key still decodes into a table
// with its full key (appended from the key record), so that it can be
// mirrored and deleted by key; WithSplitColumnFamilies tags it with its
// family and source table, also WITH full_table_name.
func TestColumnFamilyGetsItsKeyAndItsSource(t *testing.T) {
	ctx := context.Background()
	k1, v1 := familySchemas("foo")
	k2, v2 := familySchemas("db.public.foo")
	_, reg := newSeededRegistry(t, map[int]string{1: k1, 2: v1, 3: k2, 4: v2})
	for _, tc := range []struct {
		split                bool
		keyID, valID         int
		name, source, family string
	}{
		{false, 1, 2, "foo.only_c", "", ""},
		{true, 1, 2, "foo.only_c", "foo", "only_c"},
		{true, 3, 4, "db.public.foo.only_c", "db.public.foo", "only_c"},
	} {
		var opts []DecoderOption
		if tc.split {
			opts = append(opts, WithSplitColumnFamilies())
		}
		d := NewDecoder(reg, opts...)
		ks, _ := reg.Schema(ctx, tc.keyID)
		vs, _ := reg.Schema(ctx, tc.valID)
		key, value := encodeFamily(t, ks, vs, tc.keyID, tc.valID, 4, "cat")
		row, err := d.DecodeRow(ctx, key, value)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		tb := row.Table
		if tb.Name != tc.name || tb.Source != tc.source || tb.Family != tc.family {
			t.Errorf("table %q source %q family %q, want %q %q %q", tb.Name, tb.Source, tb.Family, tc.name, tc.source, tc.family)
		}
		if len(tb.Columns) != 2 || tb.Columns[1].Name != "a" || !tb.Columns[1].PrimaryKey || !reflect.DeepEqual(tb.Key, []int{1}) {
			t.Fatalf("%s: columns %+v key %v, want c and the key column a appended", tc.name, tb.Columns, tb.Key)
		}
		if !reflect.DeepEqual(row.After, []any{"cat", int64(4)}) {
			t.Errorf("%s: after %v, want [cat 4]", tc.name, row.After)
		}
		key, value = encodeFamily(t, ks, vs, tc.keyID, tc.valID, 5, nil)
		row, err = d.DecodeRow(ctx, key, value)
		if err != nil {
			t.Fatalf("%s delete: %v", tc.name, err)
		}
		if !row.Delete() || !reflect.DeepEqual(row.Values(), []any{nil, int64(5)}) {
			t.Errorf("%s: delete values %v, want [<nil> 5]", tc.name, row.Values())
		}
	}
}
