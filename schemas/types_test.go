package schemas

import (
	"context"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// typeCol is one column of the all-types table: its Avro type exactly as
// CockroachDB writes it (the §3 type goldens), its __crdb__ hint, and the
// column model the decoder must derive.
type typeCol struct {
	name     string // SQL name
	avroType string // JSON of the field's type
	hint     string
	want     model.Type
	sqlType  string
	nullable bool
}

var typeCols = []typeCol{
	{"a", `["null","long"]`, "a INT8 NOT NULL", model.Type{Kind: model.KindInt}, "INT8", false},
	{"i2", `["null","long"]`, "i2 INT2 NULL", model.Type{Kind: model.KindInt}, "INT2", true},
	{"f8", `["null","double"]`, "f8 FLOAT8 NULL", model.Type{Kind: model.KindFloat}, "FLOAT8", true},
	{"f4", `["null","double"]`, "f4 FLOAT4 NULL", model.Type{Kind: model.KindFloat}, "FLOAT4", true},
	{"bo", `["null","boolean"]`, "bo BOOL NULL", model.Type{Kind: model.KindBool}, "BOOL", true},
	{"d", `["null",{"type":"bytes","logicalType":"decimal","precision":10,"scale":2},"string"]`, "d DECIMAL(10,2) NULL", model.Type{Kind: model.KindDecimal, Precision: 10, Scale: 2}, "DECIMAL(10,2)", true},
	{"d0", `["null",{"type":"bytes","logicalType":"decimal","precision":5,"scale":0},"string"]`, "d0 DECIMAL(5) NULL", model.Type{Kind: model.KindDecimal, Precision: 5}, "DECIMAL(5)", true},
	// Before CockroachDB #118815 a zero scale was omitted.
	{"dold", `["null",{"type":"bytes","logicalType":"decimal","precision":5},"string"]`, "dold DECIMAL(5) NULL", model.Type{Kind: model.KindDecimal, Precision: 5}, "DECIMAL(5)", true},
	{"dbig", `["null",{"type":"bytes","logicalType":"decimal","precision":38,"scale":10},"string"]`, "dbig DECIMAL(38,10) NULL", model.Type{Kind: model.KindDecimal, Precision: 38, Scale: 10}, "DECIMAL(38,10)", true},
	{"s", `["null","string"]`, "s STRING NULL", model.Type{Kind: model.KindString}, "STRING", true},
	{"vc", `["null","string"]`, "vc VARCHAR(10) NULL", model.Type{Kind: model.KindString}, "VARCHAR(10)", true},
	{"col", `["null","string"]`, "col STRING COLLATE de NULL", model.Type{Kind: model.KindString}, "STRING COLLATE de", true},
	{"by", `["null","bytes"]`, "by BYTES NULL", model.Type{Kind: model.KindBytes}, "BYTES", true},
	{"dt", `["null",{"type":"int","logicalType":"date"}]`, "dt DATE NULL", model.Type{Kind: model.KindDate}, "DATE", true},
	{"tm", `["null",{"type":"long","logicalType":"time-micros"}]`, "tm TIME NULL", model.Type{Kind: model.KindTime}, "TIME", true},
	{"ttz", `["null","string"]`, "ttz TIMETZ NULL", model.Type{Kind: model.KindString}, "TIMETZ", true},
	{"ts", `["null",{"type":"long","logicalType":"timestamp-micros"}]`, "ts TIMESTAMP NULL", model.Type{Kind: model.KindTimestamp}, "TIMESTAMP", true},
	{"tstz", `["null",{"type":"long","logicalType":"timestamp-micros"}]`, "tstz TIMESTAMPTZ NULL", model.Type{Kind: model.KindTimestampTZ}, "TIMESTAMPTZ", true},
	{"iv", `["null","string"]`, "iv INTERVAL NULL", model.Type{Kind: model.KindInterval}, "INTERVAL", true},
	{"u", `["null","string"]`, "u UUID NULL", model.Type{Kind: model.KindUUID}, "UUID", true},
	{"ip", `["null","string"]`, "ip INET NULL", model.Type{Kind: model.KindString}, "INET", true},
	{"j", `["null","string"]`, "j JSONB NULL", model.Type{Kind: model.KindJSON}, "JSONB", true},
	{"e", `["null","string"]`, "e public.status NULL", model.Type{Kind: model.KindString}, "public.status", true},
	{"arr", `["null",{"type":"array","items":["null","long"]}]`, "arr INT8[] NULL", model.Type{Kind: model.KindArray, Elem: &model.Type{Kind: model.KindInt}}, "INT8[]", true},
	{"uarr", `["null",{"type":"array","items":["null","string"]}]`, "uarr UUID[] NULL", model.Type{Kind: model.KindArray, Elem: &model.Type{Kind: model.KindUUID}}, "UUID[]", true},
	{"barr", `["null",{"type":"array","items":["null","boolean"]}]`, "barr BOOL[] NULL", model.Type{Kind: model.KindArray, Elem: &model.Type{Kind: model.KindBool}}, "BOOL[]", true},
	{"tsarr", `["null",{"type":"array","items":["null",{"type":"long","logicalType":"timestamp-micros"}]}]`, "tsarr TIMESTAMPTZ[] NULL", model.Type{Kind: model.KindArray, Elem: &model.Type{Kind: model.KindTimestampTZ}}, "TIMESTAMPTZ[]", true},
	{"bit", `["null",{"type":"array","items":"long"}]`, "bit BIT(3) NULL", model.Type{Kind: model.KindString}, "BIT(3)", true},
	{"vb", `["null",{"type":"array","items":"long"}]`, "vb VARBIT NULL", model.Type{Kind: model.KindString}, "VARBIT", true},
	{"geo", `["null","bytes"]`, "geo GEOGRAPHY NULL", model.Type{Kind: model.KindBytes}, "GEOGRAPHY", true},
	{"box", `["null","string"]`, "box BOX2D NULL", model.Type{Kind: model.KindString}, "BOX2D", true},
	{"my col", `["null","string"]`, `"my col" STRING NOT NULL DEFAULT 'x'`, model.Type{Kind: model.KindString}, "STRING", false},
}

// typesSchemas builds the key and value schemas of the all-types table the
// way CockroachDB marshals them (field keys type, name, default, __crdb__).
func typesSchemas() (key, value string) {
	var fields []string
	for _, c := range typeCols {
		fields = append(fields, `{"type":`+c.avroType+`,"name":"`+model.SQLNameToAvroName(c.name)+`","default":null,"__crdb__":"`+strings.ReplaceAll(c.hint, `"`, `\"`)+`"}`)
	}
	key = `{"type":"record","name":"types","fields":[` + fields[0] + `]}`
	value = `{"type":"record","name":"types_envelope","fields":[{"type":["null",{"type":"record","name":"types","fields":[` +
		strings.Join(fields, ",") + `]}],"name":"after","default":null},{"type":["null","string"],"name":"updated","default":null}]}`
	return key, value
}

func u(branch string, v any) any { return goavro.Union(branch, v) }

func rat(unscaled string, scale int) *big.Rat {
	n, _ := new(big.Int).SetString(unscaled, 10)
	return new(big.Rat).SetFrac(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
}

type typeRow struct {
	name   string
	native map[string]any // goavro input, by SQL column name
	want   map[string]any // decoded values, by SQL column name (absent = nil)
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

var (
	varbitWord1 = int64(-9223372036854775807) // 0x8000000000000001
	varbitWord2 = int64(-288230376151711744)  // 0xFC00000000000000: 6 bits used
	varbitText  = "1" + strings.Repeat("0", 62) + "1" + "111111"
	all64       = strings.Repeat("10", 32)
	uuid1       = "d1f1c2a4-5b6e-4f70-8a9b-0c1d2e3f4a5b"
	ewkb        = []byte{0x01, 0x01, 0x00, 0x00, 0x20, 0xe6, 0x10, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f}
)

var typeRows = []typeRow{
	{
		name: "typical values",
		native: map[string]any{
			"a": u("long", int64(1)), "i2": u("long", int64(-7)), "f8": u("double", 1.5), "f4": u("double", 0.25),
			"bo": u("boolean", true), "d": u("bytes.decimal", rat("12345", 2)), "d0": u("bytes.decimal", rat("99999", 0)),
			"dold": u("bytes.decimal", rat("-42", 0)), "dbig": u("bytes.decimal", rat("1234567890123456789012345678", 10)),
			"s": u("string", "hello ☃"), "vc": u("string", "abc"), "col": u("string", "Straße"),
			"by": u("bytes", []byte{0, 1, 255}), "dt": u("int.date", date(2019, 1, 2)),
			"tm": u("long.time-micros", 3*time.Hour+4*time.Minute+5*time.Second), "ttz": u("string", "03:04:05+01:00:00"),
			"ts":   u("long.timestamp-micros", time.Date(2019, 1, 2, 3, 4, 5, 0, time.UTC)),
			"tstz": u("long.timestamp-micros", time.Date(2019, 1, 2, 3, 4, 5, 123456000, time.UTC)),
			"iv":   u("string", "P1Y2M3DT4H5M6S"), "u": u("string", uuid1), "ip": u("string", "190.0.0.0/24"),
			"j": u("string", `{"b": 1}`), "e": u("string", "open"),
			"arr":   u("array", []any{u("long", int64(42)), nil, u("long", int64(42)), u("long", int64(43))}),
			"uarr":  u("array", []any{u("string", uuid1), nil}),
			"barr":  u("array", []any{u("boolean", true), nil, u("boolean", false)}),
			"tsarr": u("array", []any{u("long.timestamp-micros", time.Date(2020, 2, 29, 23, 59, 59, 999999000, time.UTC))}),
			"bit":   u("array", []any{int64(3), int64(4611686018427387904)}),
			"vb":    u("array", []any{int64(6), varbitWord1, varbitWord2}),
			"geo":   u("bytes", ewkb), "box": u("string", "BOX(1 2,3 4)"), "my col": u("string", "x"),
		},
		want: map[string]any{
			"a": int64(1), "i2": int64(-7), "f8": 1.5, "f4": 0.25, "bo": true,
			"d": dec("12345", 2), "d0": dec("99999", 0), "dold": dec("-42", 0), "dbig": dec("1234567890123456789012345678", 10),
			"s": "hello ☃", "vc": "abc", "col": "Straße", "by": []byte{0, 1, 255}, "dt": date(2019, 1, 2),
			"tm": 11045000000 * time.Microsecond, "ttz": "03:04:05+01:00:00",
			"ts":   time.Date(2019, 1, 2, 3, 4, 5, 0, time.UTC),
			"tstz": time.Date(2019, 1, 2, 3, 4, 5, 123456000, time.UTC),
			"iv":   model.Interval{Months: 14, Days: 3, Micros: 14706 * 1e6}, "u": uuid1, "ip": "190.0.0.0/24",
			"j": `{"b": 1}`, "e": "open",
			"arr":   []any{int64(42), nil, int64(42), int64(43)},
			"uarr":  []any{uuid1, nil},
			"barr":  []any{true, nil, false},
			"tsarr": []any{time.Date(2020, 2, 29, 23, 59, 59, 999999000, time.UTC)},
			"bit":   "010", "vb": varbitText, "geo": ewkb, "box": "BOX(1 2,3 4)", "my col": "x",
		},
	},
	{
		name: "special and out-of-range values",
		native: map[string]any{
			"a": u("long", int64(-9223372036854775808)), "i2": u("long", int64(9223372036854775807)),
			"d": u("string", "NaN"), "d0": u("string", "Infinity"), "dold": u("string", "-Infinity"),
			"dbig": u("bytes.decimal", rat("-99999999999999999999999999999999999999", 10)),
			"s":    u("string", ""), "by": u("bytes", []byte{}),
			"dt": u("int.date", date(1500, 3, 1)), "tm": u("long.time-micros", 24*time.Hour),
			"ts":   u("long.timestamp-micros", time.Date(2290, 1, 1, 12, 0, 0, 0, time.UTC)),
			"tstz": u("long.timestamp-micros", time.Date(1600, 6, 1, 0, 0, 0, 1000, time.UTC)),
			"iv":   u("string", "P1YT-0.006S"), "j": u("string", "null"),
			"arr": u("array", []any{}), "uarr": u("array", []any{nil}), "barr": u("array", []any{}),
			"tsarr": u("array", []any{nil, u("long.timestamp-micros", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))}),
			"bit":   u("array", []any{int64(0)}), "vb": u("array", []any{int64(64), int64(-6148914691236517206)}),
			"my col": u("string", `it's "quoted"`),
		},
		want: map[string]any{
			"a": int64(-9223372036854775808), "i2": int64(9223372036854775807),
			"d": model.Decimal{Special: "NaN", Scale: 2}, "d0": model.Decimal{Special: "Infinity"}, "dold": model.Decimal{Special: "-Infinity"},
			"dbig": dec("-99999999999999999999999999999999999999", 10),
			"s":    "", "by": []byte{},
			"dt": date(1500, 3, 1), "tm": 24 * time.Hour,
			"ts":   time.Date(2290, 1, 1, 12, 0, 0, 0, time.UTC),
			"tstz": time.Date(1600, 6, 1, 0, 0, 0, 1000, time.UTC),
			"iv":   model.Interval{Months: 12, Micros: -6000}, "j": "null",
			"arr": []any{}, "uarr": []any{nil}, "barr": []any{},
			"tsarr": []any{nil, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
			"bit":   "", "vb": all64, "my col": `it's "quoted"`,
		},
	},
	{
		name:   "all null but the key",
		native: map[string]any{"a": u("long", int64(5))},
		want:   map[string]any{"a": int64(5)},
	},
}

// TestEveryTypeRoundTripsThroughGoavro encodes rows with goavro (the library
// CockroachDB encodes with) from CockroachDB-shaped schemas and checks that
// both decode speeds give them back.
func TestEveryTypeRoundTripsThroughGoavro(t *testing.T) {
	keyText, valueText := typesSchemas()
	keyCodec, err := goavro.NewCodec(keyText)
	if err != nil {
		t.Fatal(err)
	}
	// goavro itself panics on a decimal without "scale" (the crash behind
	// CockroachDB #118815), so encode with scale 0 spelled out: the bytes
	// are the same.
	valueCodec, err := goavro.NewCodec(strings.Replace(valueText, `"precision":5}`, `"precision":5,"scale":0}`, 1))
	if err != nil {
		t.Fatal(err)
	}
	_, reg := newSeededRegistry(t, map[int]string{21: keyText, 22: valueText})
	d := NewDecoder(reg)
	ctx := context.Background()
	for ri, row := range typeRows {
		t.Run(row.name, func(t *testing.T) {
			after := map[string]any{}
			for _, c := range typeCols {
				after[model.SQLNameToAvroName(c.name)] = row.native[c.name] // nil when absent
			}
			kb, err := keyCodec.BinaryFromNative(nil, map[string]any{"a": row.native["a"]})
			if err != nil {
				t.Fatal(err)
			}
			ts := hlc.Timestamp{WallTime: 1700000000000000000 + int64(ri), Logical: 3}
			vb, err := valueCodec.BinaryFromNative(nil, map[string]any{"after": u("types", after), "updated": u("string", ts.String())})
			if err != nil {
				t.Fatal(err)
			}
			key, value := frame(21, kb), frame(22, vb)
			rec, err := d.Extract(ctx, "types", 0, int64(ri), key, value)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Table != "types" || rec.Updated != ts || rec.Delete || string(rec.Key) != string(kb) {
				t.Errorf("Extract = %+v", rec)
			}
			got, err := d.DecodeRow(ctx, key, value)
			if err != nil {
				t.Fatal(err)
			}
			if got.Updated != ts || len(got.After) != len(typeCols) {
				t.Fatalf("DecodeRow = %+v", got)
			}
			for i, c := range typeCols {
				col := got.Table.Columns[i]
				if col.Name != c.name || !col.Type.Equal(c.want) || col.SQLType != c.sqlType || col.Nullable != c.nullable {
					t.Errorf("column %d = %+v (type %s), want name %q type %s sql %q nullable %v", i, col, col.Type, c.name, c.want, c.sqlType, c.nullable)
				}
				if !sameValue(got.After[i], row.want[c.name]) {
					t.Errorf("column %q = %#v, want %#v", c.name, got.After[i], row.want[c.name])
				}
			}
			if !sameValue(got.KeyValues, []any{row.want["a"]}) {
				t.Errorf("KeyValues = %#v", got.KeyValues)
			}
			// goavro must read back what we read (a cross-check of the
			// test's own encoding, not of our decoder).
			if _, _, err := valueCodec.NativeFromBinary(vb); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTypesWithoutHintsFallBackToAvro checks the column model of a schema
// that carries no __crdb__ hints (e.g. one re-serialized by a registry that
// drops unknown properties).
func TestTypesWithoutHintsFallBackToAvro(t *testing.T) {
	_, valueText := typesSchemas()
	noHints := valueText
	for _, c := range typeCols {
		noHints = strings.Replace(noHints, `,"__crdb__":"`+strings.ReplaceAll(c.hint, `"`, `\"`)+`"`, "", 1)
	}
	if strings.Contains(noHints, "__crdb__") {
		t.Fatal("hints left in schema")
	}
	p := compileValue(1, noHints, defaultMaxSchemaDepth)
	if p.err != nil {
		t.Fatal(p.err)
	}
	want := map[string]model.Kind{"tstz": model.KindTimestamp, "ts": model.KindTimestamp, "u": model.KindString, "j": model.KindString, "iv": model.KindString, "bit": model.KindString, "arr": model.KindArray}
	for _, col := range p.table.Columns {
		if k, ok := want[col.Name]; ok && col.Type.Kind != k {
			t.Errorf("column %q kind %s without hint, want %s", col.Name, col.Type.Kind, k)
		}
		if col.SQLType != "" || !col.Nullable {
			t.Errorf("column %q: SQLType %q Nullable %v without hint", col.Name, col.SQLType, col.Nullable)
		}
	}
}
