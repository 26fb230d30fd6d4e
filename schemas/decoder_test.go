package schemas

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// Schema ids of the goldens; texts as CockroachDB registers them
// (docs/CHANGEFEED.md §1.2, §4.2 and §8.2; testdata/*.avsc).
const (
	idFooKey           = 1
	idFooValue         = 2 // default options: no updated
	idFooUpdated       = 3
	idFooDiffUpdated   = 4
	idFooDiffMVCC      = 5
	idFooBare          = 6
	idResolvedV1       = 7
	idResolvedV2       = 8
	idSuperKey         = 9
	idSuperValue       = 10
	idSnowmanKey       = 11
	idSnowmanValue     = 12
	idUnknownInFixture = 999
)

func goldenDecoder(t testing.TB) *Decoder {
	t.Helper()
	_, reg := newSeededRegistry(t, map[int]string{
		idFooKey:         schemaFile(t, "foo-key.avsc"),
		idFooValue:       schemaFile(t, "foo-value.avsc"),
		idFooUpdated:     schemaFile(t, "foo-value-updated.avsc"),
		idFooDiffUpdated: schemaFile(t, "foo-value-diff-updated.avsc"),
		idFooDiffMVCC:    schemaFile(t, "foo-value-diff-updated-mvcc.avsc"),
		idFooBare:        schemaFile(t, "foo-value-bare-updated.avsc"),
		idResolvedV1:     schemaFile(t, "resolved-v1.avsc"),
		idResolvedV2:     schemaFile(t, "resolved-v2.avsc"),
		idSuperKey:       schemaFile(t, "superfoo-key.avsc"),
		idSuperValue:     schemaFile(t, "superfoo-value-updated.avsc"),
		idSnowmanKey:     schemaFile(t, "snowman-key.avsc"),
		idSnowmanValue:   schemaFile(t, "snowman-value-updated.avsc"),
	})
	return NewDecoder(reg)
}

// The §8.3 byte-level examples. The key is `00 00000001 02 02`; a row
// (1,'bar') is `02 02 02 06 'bar'`; `updated` "1.0000000002" is
// `02 18 '1.0000000002'`.
const (
	goldenKey = "00 00000001 02 02"
	rowBar    = "02 02 02 06 'bar'"
	tsUpdated = "02 18 '1.0000000002'"
)

type goldenCase struct {
	name       string
	key, value string // hex; key "" is a null Kafka key
	want       Record
	wantAfter  []any
	wantBefore []any
	wantDiff   bool
	wantMVCC   hlc.Timestamp
	wantTable  string
	wantCols   []string
}

var goldenCases = []goldenCase{
	{
		name: "insert with updated", key: goldenKey,
		value:     "00 00000003 02 " + rowBar + " " + tsUpdated,
		want:      Record{Table: "foo", Key: []byte{2, 2}, Updated: hlc.Timestamp{WallTime: 1, Logical: 2}, KeySchemaID: 1, ValueSchemaID: 3},
		wantAfter: []any{int64(1), "bar"}, wantTable: "foo", wantCols: []string{"a", "b"},
	},
	{
		name: "delete with updated", key: goldenKey,
		value: "00 00000003 00 " + tsUpdated,
		want:  Record{Table: "foo", Key: []byte{2, 2}, Updated: hlc.Timestamp{WallTime: 1, Logical: 2}, Delete: true, KeySchemaID: 1, ValueSchemaID: 3},
	},
	{
		name: "diff insert: before null comes first", key: goldenKey,
		value:     "00 00000004 00 02 " + rowBar + " " + tsUpdated,
		want:      Record{Table: "foo", Key: []byte{2, 2}, Updated: hlc.Timestamp{WallTime: 1, Logical: 2}, KeySchemaID: 1, ValueSchemaID: 4},
		wantAfter: []any{int64(1), "bar"}, wantDiff: true,
	},
	{
		name: "diff delete: before holds the old row", key: goldenKey,
		value:      "00 00000004 02 " + rowBar + " 00 " + tsUpdated,
		want:       Record{Table: "foo", Key: []byte{2, 2}, Updated: hlc.Timestamp{WallTime: 1, Logical: 2}, Delete: true, KeySchemaID: 1, ValueSchemaID: 4},
		wantBefore: []any{int64(1), "bar"}, wantDiff: true,
	},
	{
		name: "diff update with mvcc_timestamp", key: goldenKey,
		value:      "00 00000005 02 02 02 02 06 'old' 02 " + rowBar + " " + tsUpdated + " 02 18 '1.0000000001'",
		want:       Record{Table: "foo", Key: []byte{2, 2}, Updated: hlc.Timestamp{WallTime: 1, Logical: 2}, KeySchemaID: 1, ValueSchemaID: 5},
		wantAfter:  []any{int64(1), "bar"},
		wantBefore: []any{int64(1), "old"}, wantDiff: true, wantMVCC: hlc.Timestamp{WallTime: 1, Logical: 1},
	},
	{
		name: "bare envelope: record after metadata", key: goldenKey,
		value:     "00 00000006 " + tsUpdated + " 02 " + rowBar,
		want:      Record{Table: "foo", Key: []byte{2, 2}, Updated: hlc.Timestamp{WallTime: 1, Logical: 2}, KeySchemaID: 1, ValueSchemaID: 6},
		wantAfter: []any{int64(1), "bar"},
	},
	{
		name: "bare delete", key: goldenKey,
		value: "00 00000006 " + tsUpdated + " 00",
		want:  Record{Table: "foo", Key: []byte{2, 2}, Updated: hlc.Timestamp{WallTime: 1, Logical: 2}, Delete: true, KeySchemaID: 1, ValueSchemaID: 6},
	},
	{
		name:  "resolved, v1 sink (<topic>_envelope)",
		value: "00 00000007 " + tsUpdated,
		want:  Record{Resolved: true, Updated: hlc.Timestamp{WallTime: 1, Logical: 2}, KeySchemaID: -1, ValueSchemaID: 7},
	},
	{
		name:  "resolved, v2 sink (_envelope), real timestamp",
		value: "00 00000008 02 3c '1659643584586630201.0000000000'",
		want:  Record{Resolved: true, Updated: hlc.Timestamp{WallTime: 1659643584586630201, Logical: 0}, KeySchemaID: -1, ValueSchemaID: 8},
	},
	{
		name:  "resolved with old synthetic marker",
		value: "00 00000008 02 1a '1.0000000002?'",
		want:  Record{Resolved: true, Updated: hlc.Timestamp{WallTime: 1, Logical: 2}, KeySchemaID: -1, ValueSchemaID: 8},
	},
	{
		name: "avro_schema_prefix namespace is stripped", key: "00 00000009 02 02",
		value:     "00 0000000a 02 " + rowBar + " " + tsUpdated,
		want:      Record{Table: "foo", Key: []byte{2, 2}, Updated: hlc.Timestamp{WallTime: 1, Logical: 2}, KeySchemaID: 9, ValueSchemaID: 10},
		wantAfter: []any{int64(1), "bar"}, wantTable: "foo", wantCols: []string{"a", "b"},
	},
	{
		name: "escaped names are unescaped", key: "00 0000000b 02 54",
		value:     "00 0000000c 02 02 54 " + tsUpdated,
		want:      Record{Table: "☃", Key: []byte{2, 0x54}, Updated: hlc.Timestamp{WallTime: 1, Logical: 2}, KeySchemaID: 11, ValueSchemaID: 12},
		wantAfter: []any{int64(42)}, wantTable: "☃", wantCols: []string{"🍦"},
	},
}

func TestGoldenMessagesFromSpec(t *testing.T) {
	d := goldenDecoder(t)
	ctx := context.Background()
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			var key []byte
			if tc.key != "" {
				key = hx(t, tc.key)
			}
			value := hx(t, tc.value)
			rec, err := d.Extract(ctx, "foo", 0, 7, key, value)
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if rec.Resolved != tc.want.Resolved || rec.Updated != tc.want.Updated || rec.Table != tc.want.Table ||
				string(rec.Key) != string(tc.want.Key) || rec.Delete != tc.want.Delete ||
				rec.KeySchemaID != tc.want.KeySchemaID || rec.ValueSchemaID != tc.want.ValueSchemaID {
				t.Fatalf("Extract = %+v\nwant      %+v", rec, tc.want)
			}
			if len(rec.Key) > 0 && &rec.Key[0] != &key[5] {
				t.Error("Record.Key does not alias the key argument")
			}
			if rec.Resolved {
				if _, err := d.DecodeRow(ctx, key, value); err == nil {
					t.Error("DecodeRow of a resolved message succeeded")
				}
				return
			}
			row, err := d.DecodeRow(ctx, key, value)
			if err != nil {
				t.Fatalf("DecodeRow: %v", err)
			}
			if row.Updated != rec.Updated || row.Delete() != rec.Delete || row.Table.Name != rec.Table {
				t.Errorf("DecodeRow disagrees with Extract: %+v vs %+v", row, rec)
			}
			if !sameValue(row.After, tc.wantAfter) {
				t.Errorf("After = %#v, want %#v", row.After, tc.wantAfter)
			}
			if !sameValue(row.Before, tc.wantBefore) {
				t.Errorf("Before = %#v, want %#v", row.Before, tc.wantBefore)
			}
			if row.Diff != tc.wantDiff || row.MVCC != tc.wantMVCC {
				t.Errorf("Diff, MVCC = %v, %v; want %v, %v", row.Diff, row.MVCC, tc.wantDiff, tc.wantMVCC)
			}
			if row.Diff && row.BeforeTable == nil {
				t.Error("diff row without BeforeTable")
			}
			if len(row.KeyValues) != 1 {
				t.Fatalf("KeyValues = %#v", row.KeyValues)
			}
			if tc.wantTable != "" {
				if row.Table.Name != tc.wantTable {
					t.Errorf("table %q, want %q", row.Table.Name, tc.wantTable)
				}
				for i, c := range tc.wantCols {
					if row.Table.Columns[i].Name != c {
						t.Errorf("column %d %q, want %q", i, row.Table.Columns[i].Name, c)
					}
				}
				if !row.Table.Columns[0].PrimaryKey || len(row.Table.Key) != 1 || row.Table.Key[0] != 0 {
					t.Errorf("primary key not set from key schema: %+v", row.Table)
				}
			}
			if rec.Delete {
				vals := row.Values()
				if len(vals) != len(row.Table.Columns) || !sameValue(vals[0], row.KeyValues[0]) || vals[1] != nil {
					t.Errorf("Values() of delete = %#v", vals)
				}
			}
		})
	}
}

func TestColumnModelFromGoldenSchema(t *testing.T) {
	d := goldenDecoder(t)
	row, err := d.DecodeRow(context.Background(), hx(t, goldenKey), hx(t, "00 00000004 00 02 "+rowBar+" "+tsUpdated))
	if err != nil {
		t.Fatal(err)
	}
	want := []model.Column{
		{Name: "a", AvroName: "a", Type: model.Type{Kind: model.KindInt}, SQLType: "INT8", Nullable: false, PrimaryKey: true},
		{Name: "b", AvroName: "b", Type: model.Type{Kind: model.KindString}, SQLType: "STRING", Nullable: true},
	}
	for i, c := range want {
		got := row.Table.Columns[i]
		if got.Name != c.Name || got.AvroName != c.AvroName || !got.Type.Equal(c.Type) || got.SQLType != c.SQLType ||
			got.Nullable != c.Nullable || got.PrimaryKey != c.PrimaryKey {
			t.Errorf("column %d = %+v, want %+v", i, got, c)
		}
	}
	if row.BeforeTable.Name != "foo" || len(row.BeforeTable.Columns) != 2 || !row.BeforeTable.Columns[0].PrimaryKey {
		t.Errorf("BeforeTable = %+v", row.BeforeTable)
	}
	row2, err := d.DecodeRow(context.Background(), hx(t, goldenKey), hx(t, "00 00000004 02 "+rowBar+" 00 "+tsUpdated))
	if err != nil {
		t.Fatal(err)
	}
	if row2.Table != row.Table || row2.BeforeTable != row.BeforeTable {
		t.Error("two records of one schema id got different *Table pointers")
	}
}

func TestFeedsWithoutUpdatedAreRefused(t *testing.T) {
	d := goldenDecoder(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		key, value []byte
	}{
		{"default options (§8.3 insert bytes)", hx(t, goldenKey), hx(t, "00 00000002 02 "+rowBar)},
		{"default options delete", hx(t, goldenKey), hx(t, "00 00000002 00")},
		{"key_only: null value", hx(t, goldenKey), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Extract(ctx, "foo", 1, 2, tc.key, tc.value)
			if !errors.Is(err, ErrNoUpdated) {
				t.Fatalf("Extract error %v, want ErrNoUpdated", err)
			}
			if !strings.Contains(err.Error(), "WITH updated, resolved") {
				t.Errorf("error %q does not tell the user what to do", err)
			}
			if _, err := d.DecodeRow(ctx, tc.key, tc.value); !errors.Is(err, ErrNoUpdated) {
				t.Errorf("DecodeRow error %v, want ErrNoUpdated", err)
			}
		})
	}
}

func TestBadRecordsGiveDecodeErrors(t *testing.T) {
	d := goldenDecoder(t)
	ctx := context.Background()
	key := hx(t, goldenKey)
	for _, tc := range []struct {
		name       string
		key, value []byte
		wantID     int
		wantIn     string
		wantIs     error
	}{
		{"empty value", key, []byte{}, -1, "shorter than the 5-byte header", ErrBadFrame},
		{"short value frame", key, []byte{0, 0, 0}, -1, "shorter than the 5-byte header", ErrBadFrame},
		{"wrong magic", key, hx(t, "01 00000003 00 "+tsUpdated), -1, "magic byte 0x01", ErrBadFrame},
		{"short key frame", []byte{0, 0}, hx(t, "00 00000003 00 "+tsUpdated), -1, "key", ErrBadFrame},
		{"unknown schema id", key, hx(t, "00 000003e7 00"), idUnknownInFixture, "999", ErrUnknownSchema},
		{"truncated after record", key, hx(t, "00 00000003 02 02 02 02 06 'ba'"), 3, "truncated value", nil},
		{"truncated updated", key, hx(t, "00 00000003 00 02 18 '1.00'"), 3, "truncated value", nil},
		{"length 2^31", key, hx(t, "00 00000003 02 02 02 02 80808080 10 'bar'"), 3, "exceeds", nil},
		{"negative length", key, hx(t, "00 00000003 02 02 02 02 05 'bar'"), 3, "negative length", nil},
		{"union branch out of range", key, hx(t, "00 00000003 06 "), 3, "out of range", nil},
		{"varint overflow", key, hx(t, "00 00000003 02 02 ffffffffffffffffffff01"), 3, "overflow", nil},
		{"trailing bytes", key, hx(t, "00 00000003 00 "+tsUpdated+" 00"), 3, "trailing", nil},
		{"null updated", key, hx(t, "00 00000003 00 00"), 3, "updated is null", nil},
		{"bad HLC text", key, hx(t, "00 00000003 00 02 06 'abc'"), 3, "parse HLC", nil},
		{"row with null key", nil, hx(t, "00 00000003 00 "+tsUpdated), 3, "null key", nil},
		{"resolved with a key", key, hx(t, "00 00000007 "+tsUpdated), 7, "non-null key", nil},
		{"null key and value", nil, nil, -1, "neither key nor value", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Extract(ctx, "orders", 3, 1042, tc.key, tc.value)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T), want *DecodeError", err, err)
			}
			if de.Topic != "orders" || de.Partition != 3 || de.Offset != 1042 || de.SchemaID != tc.wantID {
				t.Errorf("DecodeError %+v", de)
			}
			if !strings.HasPrefix(err.Error(), "decode orders[3]@1042") || !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("error %q, want it to contain %q", err, tc.wantIn)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tc.wantIs)
			}
			if tc.value != nil && tc.key != nil {
				if _, err := d.DecodeRow(ctx, tc.key, tc.value); err == nil {
					t.Error("DecodeRow accepted what Extract refused")
				}
			}
		})
	}
}

func TestDecodeErrorText(t *testing.T) {
	e := &DecodeError{Topic: "orders", Partition: 3, Offset: 1042, SchemaID: 7, Err: errTruncated}
	if got, want := e.Error(), "decode orders[3]@1042 (schema id 7): truncated value"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, errTruncated) {
		t.Error("Unwrap lost the cause")
	}
	if got := (&DecodeError{SchemaID: -1, Err: errTruncated}).Error(); got != "decode: truncated value" {
		t.Errorf("Error() = %q", got)
	}
}

func TestUnusableSchemasGiveClearErrors(t *testing.T) {
	envelope := func(col string) string {
		return `{"type":"record","name":"t_envelope","fields":[{"type":["null",{"type":"record","name":"t","fields":[` + col +
			`]}],"name":"after","default":null},{"type":["null","string"],"name":"updated","default":null}]}`
	}
	cases := []struct {
		name, schema, wantIn string
	}{
		{"map column", envelope(`{"type":["null",{"type":"map","values":"long"}],"name":"m"}`), `"map"`},
		{"enum column", envelope(`{"type":["null",{"type":"enum","name":"e","symbols":["a"]}],"name":"e"}`), `"enum"`},
		{"fixed column", envelope(`{"type":["null",{"type":"fixed","name":"f","size":4}],"name":"f"}`), `"fixed"`},
		{"recursive record", envelope(`{"type":["null","t"],"name":"self"}`), "recursive"},
		{"odd union", envelope(`{"type":["null","long","string"],"name":"u"}`), `column "u": unsupported union`},
		{"nested record column", envelope(`{"type":["null",{"type":"record","name":"n","fields":[]}],"name":"n"}`), "nested record"},
		{"not an envelope", `{"type":"record","name":"x","fields":[{"type":"long","name":"a"}]}`, "not a CockroachDB changefeed envelope"},
		{"too deep", strings.Repeat(`{"type":"array","items":`, 40) + `"long"` + strings.Repeat("}", 40), "nested deeper"},
	}
	// The registry refuses text that is not JSON, so that case is checked
	// on the compiler directly.
	if p := compileValue(1, `{"type":`, defaultMaxSchemaDepth); p.err == nil || !strings.Contains(p.err.Error(), "parse schema JSON") {
		t.Errorf("non-JSON schema: %v", p.err)
	}
	schemas := map[int]string{idFooKey: schemaFile(t, "foo-key.avsc")}
	for i, c := range cases {
		schemas[100+i] = c.schema
	}
	_, reg := newSeededRegistry(t, schemas)
	d := NewDecoder(reg)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := d.Extract(context.Background(), "t", 0, 0, hx(t, goldenKey), frame(100+i, []byte{0}))
			if err == nil || !strings.Contains(err.Error(), c.wantIn) {
				t.Fatalf("error %v, want one containing %q", err, c.wantIn)
			}
		})
	}
}

func TestCRDBHintParsing(t *testing.T) {
	for _, tc := range []struct {
		hint, sqlType string
		nullable      bool
	}{
		{"a INT8 NOT NULL", "INT8", false},
		{"b STRING NULL", "STRING", true},
		{"rowid INT8 NOT NULL DEFAULT unique_rowid()", "INT8", false},
		{"c DECIMAL(10,2) NULL AS (a * 2) STORED", "DECIMAL(10,2)", true},
		{`"my col" STRING COLLATE de NULL`, "STRING COLLATE de", true},
		{`"say ""hi""" TIMESTAMPTZ NOT NULL`, "TIMESTAMPTZ", false},
		{"🍦 INT8 NOT NULL", "INT8", false},
		{`e public."NULL type" NULL`, `public."NULL type"`, true},
		{"x INT8[]", "INT8[]", true},
	} {
		st, n := parseCRDBHint(tc.hint)
		if st != tc.sqlType || n != tc.nullable {
			t.Errorf("parseCRDBHint(%q) = %q, %v; want %q, %v", tc.hint, st, n, tc.sqlType, tc.nullable)
		}
	}
}

func TestHostileArraysAndLengths(t *testing.T) {
	arrValue := `{"type":"record","name":"t_envelope","fields":[{"type":["null",{"type":"record","name":"t","fields":[` +
		`{"type":["null",{"type":"array","items":["null","long"]}],"name":"arr","default":null,"__crdb__":"arr INT8[] NULL"},` +
		`{"type":["null",{"type":"array","items":"long"}],"name":"bits","default":null,"__crdb__":"bits VARBIT NULL"}` +
		`]}],"name":"after","default":null},{"type":["null","string"],"name":"updated","default":null}]}`
	_, reg := newSeededRegistry(t, map[int]string{idFooKey: schemaFile(t, "foo-key.avsc"), 30: arrValue})
	d := NewDecoder(reg, WithMaxArrayItems(100))
	ctx := context.Background()
	key := hx(t, goldenKey)
	ok := func(body string) []byte { return hx(t, "00 0000001e 02 "+body+" "+tsUpdated) }
	// A well-formed message first, so that the failures below are about
	// the hostile parts only.
	good := ok("02 06 02 54 00 02 56 00 02 04 06 80808080808080808001 00")
	row, err := d.DecodeRow(ctx, key, good)
	if err != nil {
		t.Fatal(err)
	}
	if !sameValue(row.After[0], []any{int64(42), nil, int64(43)}) {
		t.Errorf("arr = %#v", row.After[0])
	}
	if row.After[1] != "010" {
		t.Errorf("bits = %#v", row.After[1])
	}
	if _, err := d.DecodeRow(ctx, key, hx(t, "00 0000001e 02 02 02 02 54")); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("unterminated array: %v", err)
	}
	for _, tc := range []struct{ name, body, wantIn string }{
		{"block count 2^40", "02 808080808040 02 54 00 00", "exceeds"},
		{"block count beyond remaining bytes", "02 7e 02 54 00 00", "exceeds"},
		{"negative block count with huge size", "02 01 8080808010 00 00", "out of range"},
		{"more items than the limit", "02 ca01 " + strings.Repeat("02 00 ", 101) + "00 00", "limit"},
		{"block count min int64", "02 ffffffffffffffffff01 00 00", "out of range"},
		{"bits without length element", "00 02 00", "without its length"},
		{"bits used > 64", "00 02 04 8201 02 00", "bits used"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, fn := range []func() error{
				func() error { _, err := d.Extract(ctx, "t", 0, 0, key, ok(tc.body)); return err },
				func() error { _, err := d.DecodeRow(ctx, key, ok(tc.body)); return err },
			} {
				err := fn()
				if err == nil {
					if strings.HasPrefix(tc.name, "bits") {
						continue // Extract skips the bit words without interpreting them
					}
					t.Fatal("hostile input accepted")
				}
				if !strings.Contains(err.Error(), tc.wantIn) && !strings.Contains(err.Error(), "truncated") && !strings.Contains(err.Error(), "trailing") {
					t.Errorf("error %q, want %q", err, tc.wantIn)
				}
			}
		})
	}
	// A negative block count carries the block's byte size, which Extract
	// jumps by: with the true size (5 bytes) both decoders read the block,
	// and DecodeRow refuses a size its items do not take.
	sized := ok("02 05 0a 02 54 00 02 56 00 00")
	if _, err := d.Extract(ctx, "t", 0, 0, key, sized); err != nil {
		t.Errorf("Extract of a sized block: %v", err)
	}
	if row, err := d.DecodeRow(ctx, key, sized); err != nil || !sameValue(row.After[0], []any{int64(42), nil, int64(43)}) {
		t.Errorf("DecodeRow of a sized block: %v, %v", row.After, err)
	}
	if _, err := d.DecodeRow(ctx, key, ok("02 05 04 02 54 00 02 56 00 00")); !errors.Is(err, errBlockSize) {
		t.Errorf("block size 2 for 5 bytes of items: error %v, want errBlockSize", err)
	}
	// The same for a VARBIT's words: 11 bytes (the length element and one
	// word) decode, a size of 1 is refused.
	if row, err := d.DecodeRow(ctx, key, ok("00 02 03 16 06 80808080808080808001 00")); err != nil || row.After[1] != "010" {
		t.Errorf("DecodeRow of a sized VARBIT block: %v, %v", row.After, err)
	}
	if _, err := d.DecodeRow(ctx, key, ok("00 02 03 02 06 80808080808080808001 00")); !errors.Is(err, errBlockSize) {
		t.Errorf("VARBIT block size 1 for 11 bytes of items: error %v, want errBlockSize", err)
	}
}

func TestDecoderConcurrentUseFetchesOncePerID(t *testing.T) {
	fake, reg := newSeededRegistry(t, map[int]string{
		idFooKey:         schemaFile(t, "foo-key.avsc"),
		idFooDiffUpdated: schemaFile(t, "foo-value-diff-updated.avsc"),
	})
	n := countFetches(fake)
	d := NewDecoder(reg, WithLogger(zap.NewNop()))
	key := hx(t, goldenKey)
	value := hx(t, "00 00000004 00 02 "+rowBar+" "+tsUpdated)
	tables := make(chan *model.Table, 8*50)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				rec, err := d.Extract(context.Background(), "foo", 0, 0, key, value)
				if err != nil || rec.Updated != (hlc.Timestamp{WallTime: 1, Logical: 2}) {
					t.Error(rec, err)
					return
				}
				row, err := d.DecodeRow(context.Background(), key, value)
				if err != nil {
					t.Error(err)
					return
				}
				tables <- row.Table
			}
		})
	}
	wg.Wait()
	close(tables)
	first := <-tables
	for tb := range tables {
		if tb != first {
			t.Fatal("records of one schema id got different *Table pointers")
		}
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d registry fetches for 2 schema ids", got)
	}
}

func TestWithMaxSchemaDepth(t *testing.T) {
	_, reg := newSeededRegistry(t, map[int]string{
		idFooKey:     schemaFile(t, "foo-key.avsc"),
		idFooUpdated: schemaFile(t, "foo-value-updated.avsc"),
	})
	d := NewDecoder(reg, WithMaxSchemaDepth(3))
	_, err := d.Extract(context.Background(), "foo", 0, 0, hx(t, goldenKey), hx(t, "00 00000003 00 "+tsUpdated))
	if err == nil || !strings.Contains(err.Error(), "nested deeper than 3") {
		t.Fatalf("error %v, want a depth error", err)
	}
}

// A registry may hand back a schema re-serialized (other key order, spacing);
// the decoder must read the same thing from it.
func TestReserializedSchemaDecodesTheSame(t *testing.T) {
	orig := schemaFile(t, "foo-value-diff-updated-mvcc.avsc")
	var v any
	if err := json.Unmarshal([]byte(orig), &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(v, "", "  ") // keys sorted, spaced out
	if err != nil {
		t.Fatal(err)
	}
	if string(b) == orig {
		t.Fatal("re-serialization changed nothing")
	}
	p1, p2 := compileValue(1, orig, defaultMaxSchemaDepth), compileValue(1, string(b), defaultMaxSchemaDepth)
	if p1.err != nil || p2.err != nil {
		t.Fatal(p1.err, p2.err)
	}
	if !reflect.DeepEqual(p1.table, p2.table) || !reflect.DeepEqual(p1.before, p2.before) || len(p1.fields) != len(p2.fields) {
		t.Errorf("tables differ:\n%+v\n%+v", p1.table, p2.table)
	}
	for i := range p1.fields {
		if p1.fields[i].role != p2.fields[i].role {
			t.Errorf("field %d role %d vs %d", i, p1.fields[i].role, p2.fields[i].role)
		}
	}
}
