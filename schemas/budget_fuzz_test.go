package schemas

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/highwater-dev/highwater/model"
)

// schemaTexts serves writer schemas from memory. The fuzz target below
// needs a fresh pair of schemas per input at memory speed; the registry
// client is not what it tests (registry_test.go runs it against srfake).
type schemaTexts map[int]string

func (s schemaTexts) Schema(_ context.Context, id int) (string, error) {
	if t, ok := s[id]; ok {
		return t, nil
	}
	return "", fmt.Errorf("schema id %d: %w", id, ErrUnknownSchema)
}

// Hostile shapes for the budget fuzz seeds: CockroachDB's envelope with an
// extra field (as enriched envelopes carry `source`) of nested arrays,
// records and unions, some of zero-width items.
const (
	hostileNestedSchema = `{"type":"record","name":"h_envelope","fields":[` +
		`{"type":["null",{"type":"record","name":"h","fields":[` +
		`{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"},` +
		`{"type":["null",{"type":"array","items":["null",{"type":"bytes","logicalType":"decimal","precision":4,"scale":1}]}],"name":"ds","default":null,"__crdb__":"ds DECIMAL(4,1)[] NULL"},` +
		`{"type":["null",{"type":"array","items":"long"}],"name":"vb","default":null,"__crdb__":"vb VARBIT(200) NULL"}]}],"name":"after","default":null},` +
		`{"type":{"type":"array","items":{"type":"record","name":"s","fields":[` +
		`{"name":"n","type":"null"},` +
		`{"name":"e","type":{"type":"record","name":"empty","fields":[]}},` +
		`{"name":"u","type":["null",{"type":"array","items":{"type":"array","items":{"type":"record","name":"z","fields":[{"name":"x","type":"null"},{"name":"y","type":"null"}]}}}]}]}},"name":"source"},` +
		`{"type":["null","string"],"name":"updated","default":null}]}`
	hostileKeySchema = `{"type":"record","name":"h","fields":[` +
		`{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"},` +
		`{"type":["null",{"type":"bytes","logicalType":"decimal","precision":3,"scale":0},"string"],"name":"k","default":null,"__crdb__":"k DECIMAL(3) NOT NULL"},` +
		`{"type":["null",{"type":"array","items":"long"}],"name":"b","default":null,"__crdb__":"b BIT(5) NOT NULL"}]}`
)

// addBudgetSeeds adds CockroachDB-shaped schemas with honest bodies (the
// bodies without their Confluent header). The hostile seeds are files in
// testdata/fuzz/FuzzDecodeBudget: nested arrays of zero-width items, BIT
// values wider than their column or of many zero words, decimals over their
// precision.
func addBudgetSeeds(f *testing.F) {
	body := func(framed []byte) []byte { return framed[FrameHeaderSize:] }
	fooKey := schemaFile(f, "foo-key.avsc")
	key := body(hx(f, goldenKey))
	for _, tc := range goldenCases {
		if tc.key == "" {
			continue
		}
		v := hx(f, tc.value)
		id, b, _ := ParseFrame(v)
		for name, sid := range map[string]int{"foo-value-updated.avsc": idFooUpdated, "foo-value-diff-updated.avsc": idFooDiffUpdated,
			"foo-value-diff-updated-mvcc.avsc": idFooDiffMVCC, "foo-value-bare-updated.avsc": idFooBare} {
			if id == sid {
				f.Add(fooKey, schemaFile(f, name), key, b)
			}
		}
	}
	f.Add(fooKey, zeroWidthValueSchema, key, body(zeroWidthMessageSmall(f, 100)))
	for _, v := range [][]byte{
		budgetRow(f, 6, avroNullItems(50)),
		budgetRow(f, 4, avroBits(64, 0, -1, 0)),
		budgetRow(f, 2, avroDecimal(decimalOf("-99999999999999999999999999999999999999"))),
	} {
		f.Add(fooKey, budgetValueSchema, key, body(v))
	}
	// key (1, 123, B'00000'); row (1, {5.2, NULL}, B'0...0 1...1'), source
	// [{u: null}, {u: [[100 zero-width records]]}].
	hk := hx(f, "02 02 02 02 7b 02 04 0a 00 00")
	f.Add(hostileKeySchema, hostileNestedSchema, hk, hx(f, "02 02 02 02 04 02 02 34 00 00 02 06 02 00 01 00 04 00 02 02 c801 00 00 00 "+tsUpdated))
	// Generated shapes (shapeSchema): a row of (1, NULL) and a source of
	// nested arrays of zero-width records.
	for _, prog := range []string{"\x00\x00\x07\x03\x06\x02\x00\x00", "\x01\x03\x05\x02\x04\x06\x03\x00\x00\x00"} {
		f.Add(fooKey, prog, key, hx(f, "02 02 02 00 00 02 04 02 06 00 00 "+tsUpdated))
	}
	kt, vt := typesSchemas()
	kc, err := goavro.NewCodec(kt)
	if err != nil {
		f.Fatal(err)
	}
	vc, err := goavro.NewCodec(strings.Replace(vt, `"precision":5}`, `"precision":5,"scale":0}`, 1))
	if err != nil {
		f.Fatal(err)
	}
	for _, row := range typeRows {
		after := map[string]any{}
		for _, c := range typeCols {
			after[model.SQLNameToAvroName(c.name)] = row.native[c.name]
		}
		kb, err := kc.BinaryFromNative(nil, map[string]any{"a": row.native["a"]})
		if err != nil {
			f.Fatal(err)
		}
		vb, err := vc.BinaryFromNative(nil, map[string]any{"after": u("types", after), "updated": u("string", "1.0000000001")})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(kt, vt, kb, vb)
	}
}

// FuzzDecodeBudget decodes arbitrary bodies under arbitrary (mostly
// CockroachDB-shaped) key and value schemas and checks that decoding costs
// at most a budget relative to the input: the array items Extract and
// DecodeRow visit stay within the per-message budget (itemBudget), and the
// bytes one Extract plus one DecodeRow allocate (measured exactly with
// runtime.ReadMemStats, plans already compiled) stay within allocPerByte
// per byte of key and value plus allocSlack. It also checks that nothing
// panics, errors are *DecodeError, and Extract accepts whatever DecodeRow
// does. A value schema that does not start with "{" is a program for
// shapeSchema. Run: go test ./schemas -run '^$' -fuzz FuzzDecodeBudget -fuzztime 30s
func FuzzDecodeBudget(f *testing.F) {
	addBudgetSeeds(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, keySchema, valueSchema string, keyBody, valueBody []byte) {
		if !strings.HasPrefix(valueSchema, "{") {
			valueSchema = shapeSchema(valueSchema)
		}
		d := NewDecoder(schemaTexts{1: keySchema, 2: valueSchema})
		key, value := frame(1, keyBody), frame(2, valueBody)
		items := 0
		d.observe = func(n, _ int) { items = n }
		isDecodeError := func(what string, err error) {
			var de *DecodeError
			if err != nil && !errors.As(err, &de) {
				t.Fatalf("%s error %T is not *DecodeError: %v", what, err, err)
			}
		}
		_, errE := d.Extract(ctx, "t", 0, 1, key, value)
		isDecodeError("Extract", errE)
		if b := itemBudget(len(valueBody)); items > b {
			t.Fatalf("Extract visited %d array items, budget %d for %d bytes", items, b, len(valueBody))
		}
		items = 0
		row, errD := d.DecodeRow(ctx, key, value)
		isDecodeError("DecodeRow", errD)
		if b := itemBudget(len(valueBody)) + itemBudget(len(keyBody)); items > b {
			t.Fatalf("DecodeRow visited %d array items, budget %d for %d bytes", items, b, len(keyBody)+len(valueBody))
		}
		if errD == nil && errE != nil {
			t.Fatalf("DecodeRow accepted what Extract refused: %v", errE)
		}
		if errD == nil && row.Size < 0 {
			t.Fatalf("Row.Size %d", row.Size)
		}
		d.observe = nil
		limit := uint64(allocPerByte*(len(key)+len(value)) + allocSlack)
		if n := allocated(2, func() {
			_, _ = d.Extract(ctx, "t", 0, 1, key, value)
			_, _ = d.DecodeRow(ctx, key, value)
		}); n > limit {
			t.Fatalf("decoding %d bytes allocated %d bytes, budget %d", len(key)+len(value), n, limit)
		}
	})
}

// shapeSchema turns a fuzzer's bytes into a CockroachDB-shaped envelope:
// an after record of columns (["null", T] with a __crdb__ hint) and a
// source field of any nesting of arrays, records, unions and zero-width
// types, so that the fuzzer explores valid hostile schemas instead of
// mostly broken JSON.
func shapeSchema(prog string) string {
	p := &shapeGen{prog: prog}
	var cols []string
	for i := range 1 + p.next()%4 {
		t, hint := p.column()
		cols = append(cols, fmt.Sprintf(`{"type":["null",%s],"name":"c%d","default":null,"__crdb__":"c%d %s NULL"}`, t, i, i, hint))
	}
	return `{"type":"record","name":"g_envelope","fields":[{"type":["null",{"type":"record","name":"g","fields":[` +
		`{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"},` + strings.Join(cols, ",") +
		`]}],"name":"after","default":null},{"type":` + p.any(0) + `,"name":"source"},{"type":["null","string"],"name":"updated","default":null}]}`
}

type shapeGen struct {
	prog string
	i    int
	recs int
}

func (p *shapeGen) next() int {
	if p.i >= len(p.prog) {
		return 0
	}
	p.i++
	return int(p.prog[p.i-1])
}

// column returns a column type and its SQL type.
func (p *shapeGen) column() (avro, sql string) {
	switch p.next() % 6 {
	case 0:
		return `"long"`, "INT8"
	case 1:
		return `"string"`, "STRING"
	case 2:
		prec := 1 + p.next()%40
		scale := p.next() % (prec + 1)
		return fmt.Sprintf(`{"type":"bytes","logicalType":"decimal","precision":%d,"scale":%d},"string"`, prec, scale),
			fmt.Sprintf("DECIMAL(%d,%d)", prec, scale)
	case 3:
		switch w := p.next() % 130; w {
		case 0:
			return `{"type":"array","items":"long"}`, "VARBIT"
		default:
			return `{"type":"array","items":"long"}`, fmt.Sprintf("BIT(%d)", w)
		}
	case 4:
		return `{"type":"array","items":["null","long"]}`, "INT8[]"
	}
	return `"bytes"`, "BYTES"
}

// any returns any supported Avro type, at most 6 levels deep.
func (p *shapeGen) any(depth int) string {
	op := p.next() % 8
	if depth >= 6 {
		op %= 3
	}
	switch op {
	case 0:
		return `"null"`
	case 1:
		return `"long"`
	case 2:
		return `"string"`
	case 3, 4:
		return `{"type":"array","items":` + p.any(depth+1) + `}`
	case 5:
		return `["null",` + p.any(depth+1) + `]`
	}
	p.recs++
	name := fmt.Sprintf("r%d", p.recs)
	var fields []string
	for i := range p.next() % 4 {
		fields = append(fields, fmt.Sprintf(`{"name":"f%d","type":%s}`, i, p.any(depth+1)))
	}
	return `{"type":"record","name":"` + name + `","fields":[` + strings.Join(fields, ",") + `]}`
}
