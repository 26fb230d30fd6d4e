package schemas

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/highwater-dev/highwater/model"
)

// A writer may reuse a record by name instead of spelling it out again:
// here `after` names the record that `before` defines. hamba resolves the
// reference and both images decode with the same columns.
func TestNamedTypeReferenceDecodes(t *testing.T) {
	value := `{"type":"record","name":"foo_envelope","fields":[` +
		`{"type":["null",{"type":"record","name":"foo","namespace":"super","fields":[` +
		`{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"},` +
		`{"type":["null","string"],"name":"b","default":null,"__crdb__":"b STRING NULL"}]}],"name":"before","default":null},` +
		`{"type":["null","super.foo"],"name":"after","default":null},` +
		`{"type":["null","string"],"name":"updated","default":null}]}`
	_, reg := newSeededRegistry(t, map[int]string{idFooKey: schemaFile(t, "foo-key.avsc"), 40: value})
	d := NewDecoder(reg)
	// before (1, 'bar'), after (1, NULL), updated.
	body := hx(t, "02 02 02 02 06 'bar' 02 02 02 00 "+tsUpdated)
	row, err := d.DecodeRow(context.Background(), hx(t, goldenKey), frame(40, body))
	if err != nil {
		t.Fatal(err)
	}
	if row.Table.Name != "foo" || len(row.Table.Columns) != 2 || !row.Table.Columns[0].PrimaryKey || row.Table.Columns[1].SQLType != "STRING" {
		t.Fatalf("table %+v", row.Table)
	}
	if got := fmt.Sprint(row.Before, row.After); got != "[1 bar] [1 <nil>]" {
		t.Fatalf("before, after = %s", got)
	}
}

func TestSchemaRefusals(t *testing.T) {
	envelope := func(extra string) string {
		return `{"type":"record","name":"t_envelope","fields":[{"type":["null",{"type":"record","name":"t","fields":[` +
			`{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"}]}],"name":"after","default":null},` +
			extra + `,{"type":["null","string"],"name":"updated","default":null}]}`
	}
	// A record of two references to a record of two references ...: 2^25
	// plan nodes from a few kilobytes of schema.
	doubling := `{"type":"record","name":"r0","fields":[{"name":"x","type":"long"}]}`
	for i := 1; i <= 25; i++ {
		doubling = fmt.Sprintf(`{"type":"record","name":"r%d","fields":[{"name":"a","type":%s},{"name":"b","type":"r%d"}]}`, i, doubling, i-1)
	}
	// Nested 4 levels as written, 6 through the references.
	deepByRef := `{"name":"s1","type":{"type":"record","name":"A","fields":[{"name":"x","type":{"type":"array","items":{"type":"array","items":"long"}}}]}},` +
		`{"name":"s2","type":{"type":"record","name":"B","fields":[{"name":"y","type":"A"}]}},` +
		`{"name":"s3","type":{"type":"record","name":"C","fields":[{"name":"w","type":"B"}]}}`
	cases := []struct {
		name, schema string
		depth        int
		wantIn       string
	}{
		{"exponential references", envelope(`{"name":"source","type":` + doubling + `}`), 0, "plan nodes through named-type references"},
		{"deep through references", envelope(deepByRef), 5, "nested deeper than 5"},
		{"decimal on a long", envelope(`{"name":"x","type":{"type":"long","logicalType":"decimal","precision":4,"scale":1}}`), 0, "decimal logical type on long"},
		{"decimal of precision 0", envelope(`{"name":"x","type":{"type":"bytes","logicalType":"decimal","precision":0}}`), 0, "decimal logical type on bytes"},
		{"decimal scale above precision", envelope(`{"name":"x","type":{"type":"bytes","logicalType":"decimal","precision":2,"scale":3}}`), 0, "decimal logical type on bytes"},
		{"enum in an extra field", envelope(`{"name":"op","type":{"type":"enum","name":"op","symbols":["c","u","d"]}}`), 0, `envelope field "op": unsupported Avro type "enum"`},
		{"invalid Avro name", envelope(`{"name":"my col","type":"long"}`), 0, "invalid name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			depth := c.depth
			if depth == 0 {
				depth = defaultMaxSchemaDepth
			}
			p := compileValue(1, c.schema, depth)
			if p.err == nil || !strings.Contains(p.err.Error(), c.wantIn) {
				t.Fatalf("error %v, want one containing %q", p.err, c.wantIn)
			}
		})
	}
	// The same reference chain, shallow enough and without doubling, is
	// fine.
	if p := compileValue(1, envelope(deepByRef), 6); p.err != nil {
		t.Fatalf("depth 6: %v", p.err)
	}
}

// Two versions of one table define records of the same names with other
// fields; each schema id is parsed with its own named-type cache, so the
// second version is read with its own columns, and a schema cannot use a
// name that only another schema defines.
func TestSchemaVersionsDoNotShareNames(t *testing.T) {
	v1 := schemaFile(t, "foo-value-updated.avsc")
	v2 := strings.Replace(v1, `"b STRING NULL"}]`, `"b STRING NULL"},{"type":["null","double"],"name":"c","default":null,"__crdb__":"c FLOAT8 NULL"}]`, 1)
	if v1 == v2 {
		t.Fatal("schema not changed")
	}
	p1, p2 := compileValue(1, v1, defaultMaxSchemaDepth), compileValue(2, v2, defaultMaxSchemaDepth)
	if p1.err != nil || p2.err != nil {
		t.Fatal(p1.err, p2.err)
	}
	if len(p1.table.Columns) != 2 || len(p2.table.Columns) != 3 || p2.table.Columns[2].Type.Kind != model.KindFloat {
		t.Fatalf("v1 %+v, v2 %+v", p1.table.Columns, p2.table.Columns)
	}
	borrowed := `{"type":"record","name":"foo_envelope","fields":[{"type":["null","foo"],"name":"after","default":null},` +
		`{"type":["null","string"],"name":"updated","default":null}]}`
	if p := compileValue(3, borrowed, defaultMaxSchemaDepth); p.err == nil || !strings.Contains(p.err.Error(), "unknown type: foo") {
		t.Fatalf("a reference to another schema's record: %v", p.err)
	}
}
