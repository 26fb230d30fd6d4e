package simulator

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/highwater-dev/highwater/model"
)

// family is the simulator's finer split of CockroachDB types: it decides the
// Avro schema, the accepted Go values and the random generator.
type family uint8

const (
	famInt family = iota
	famFloat
	famBool
	famString
	famCollated
	famBytes
	famDecimal
	famDate
	famTime
	famTimestamp
	famTimestampTZ
	famUUID
	famJSON
	famInterval
	famINet
	famTimeTZ
	famBit
	famVarbit
	famEnum
	famArray
)

// colType is a parsed CockroachDB column type.
type colType struct {
	fam   family
	kind  model.Kind
	sql   string // Type.SQLString() as __crdb__ prints it
	width int    // INT2/4/8 and FLOAT4/8 bit width; BIT(n)/VARBIT(n) length (0 = unbounded VARBIT)
	prec  int    // DECIMAL precision
	scale int    // DECIMAL scale
	// labels are an ENUM's values.
	labels []string
	elem   *colType
	// avro is the non-null member(s) of the column's union, JSON-marshallable.
	avro []any
	// branch is the goavro union branch name of the main member.
	branch string
}

// parseType parses a CockroachDB SQL type spelling. enums maps user-defined
// ENUM type names to their labels.
func parseType(s string, enums map[string][]string) (*colType, error) {
	raw := strings.TrimSpace(s)
	if raw == "" {
		return nil, errors.New("empty column type")
	}
	if labels, ok := enums[raw]; ok {
		if len(labels) == 0 {
			return nil, fmt.Errorf("enum %s has no labels", raw)
		}
		return finishType(&colType{fam: famEnum, kind: model.KindString, sql: raw, labels: labels})
	}
	up := strings.ToUpper(raw)
	if strings.HasSuffix(up, "[]") {
		elem, err := parseType(raw[:len(raw)-2], enums)
		if err != nil {
			return nil, err
		}
		if elem.fam == famArray {
			return nil, fmt.Errorf("type %s: nested arrays are not supported", raw)
		}
		return finishType(&colType{fam: famArray, kind: model.KindArray, sql: elem.sql + "[]", elem: elem})
	}
	if i := strings.Index(up, " COLLATE "); i > 0 {
		base := strings.TrimSpace(up[:i])
		if base != "STRING" && base != "TEXT" && base != "VARCHAR" {
			return nil, fmt.Errorf("type %s: COLLATE needs a string type", raw)
		}
		loc := strings.TrimSpace(raw[i+len(" COLLATE "):])
		if loc == "" {
			return nil, fmt.Errorf("type %s: missing collation", raw)
		}
		return finishType(&colType{fam: famCollated, kind: model.KindString, sql: "STRING COLLATE " + loc})
	}
	name, args, err := splitTypeArgs(up)
	if err != nil {
		return nil, fmt.Errorf("type %s: %w", raw, err)
	}
	noArgs := func(t *colType) (*colType, error) {
		if args != nil {
			return nil, fmt.Errorf("type %s: unexpected arguments", raw)
		}
		return finishType(t)
	}
	switch name {
	case "INT", "INT8", "INTEGER", "BIGINT", "INT64":
		return noArgs(&colType{fam: famInt, kind: model.KindInt, sql: "INT8", width: 64})
	case "INT4":
		return noArgs(&colType{fam: famInt, kind: model.KindInt, sql: "INT4", width: 32})
	case "INT2", "SMALLINT":
		return noArgs(&colType{fam: famInt, kind: model.KindInt, sql: "INT2", width: 16})
	case "FLOAT", "FLOAT8", "DOUBLE PRECISION":
		return noArgs(&colType{fam: famFloat, kind: model.KindFloat, sql: "FLOAT8", width: 64})
	case "FLOAT4", "REAL":
		return noArgs(&colType{fam: famFloat, kind: model.KindFloat, sql: "FLOAT4", width: 32})
	case "BOOL", "BOOLEAN":
		return noArgs(&colType{fam: famBool, kind: model.KindBool, sql: "BOOL"})
	case "STRING", "TEXT", "VARCHAR", "CHAR":
		t := &colType{fam: famString, kind: model.KindString, sql: "STRING"}
		if name == "VARCHAR" || name == "CHAR" {
			t.sql = name
		}
		if len(args) == 1 {
			t.sql = fmt.Sprintf("%s(%d)", t.sql, args[0])
			t.width = args[0]
			return finishType(t)
		}
		return noArgs(t)
	case "BYTES", "BYTEA", "BLOB":
		return noArgs(&colType{fam: famBytes, kind: model.KindBytes, sql: "BYTES"})
	case "DECIMAL", "NUMERIC", "DEC":
		switch len(args) {
		case 0:
			return nil, fmt.Errorf("type %s: decimal with no precision not yet supported with avro", raw)
		case 1:
			args = append(args, 0)
		}
		if len(args) != 2 || args[0] < 1 || args[1] < 0 || args[1] > args[0] {
			return nil, fmt.Errorf("type %s: bad precision/scale", raw)
		}
		return finishType(&colType{fam: famDecimal, kind: model.KindDecimal,
			sql: fmt.Sprintf("DECIMAL(%d,%d)", args[0], args[1]), prec: args[0], scale: args[1]})
	case "DATE":
		return noArgs(&colType{fam: famDate, kind: model.KindDate, sql: "DATE"})
	case "TIME":
		return noArgs(&colType{fam: famTime, kind: model.KindTime, sql: "TIME"})
	case "TIMESTAMP":
		return noArgs(&colType{fam: famTimestamp, kind: model.KindTimestamp, sql: "TIMESTAMP"})
	case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE":
		return noArgs(&colType{fam: famTimestampTZ, kind: model.KindTimestampTZ, sql: "TIMESTAMPTZ"})
	case "UUID":
		return noArgs(&colType{fam: famUUID, kind: model.KindUUID, sql: "UUID"})
	case "JSONB", "JSON":
		return noArgs(&colType{fam: famJSON, kind: model.KindJSON, sql: "JSONB"})
	case "INTERVAL":
		return noArgs(&colType{fam: famInterval, kind: model.KindInterval, sql: "INTERVAL"})
	case "INET":
		return noArgs(&colType{fam: famINet, kind: model.KindString, sql: "INET"})
	case "TIMETZ":
		return noArgs(&colType{fam: famTimeTZ, kind: model.KindString, sql: "TIMETZ"})
	case "BIT":
		n := 1
		if len(args) == 1 && args[0] > 0 {
			n = args[0]
		} else if args != nil {
			return nil, fmt.Errorf("type %s: bad length", raw)
		}
		return finishType(&colType{fam: famBit, kind: model.KindString, sql: fmt.Sprintf("BIT(%d)", n), width: n})
	case "VARBIT", "BIT VARYING":
		t := &colType{fam: famVarbit, kind: model.KindString, sql: "VARBIT"}
		if len(args) == 1 && args[0] > 0 {
			t.width = args[0]
			t.sql = fmt.Sprintf("VARBIT(%d)", args[0])
			return finishType(t)
		}
		return noArgs(t)
	}
	return nil, fmt.Errorf("type %s not supported by the simulator (declare ENUM types in Options.Enums)", raw)
}

// splitTypeArgs splits "DECIMAL(10,2)" into "DECIMAL" and [10 2].
func splitTypeArgs(up string) (string, []int, error) {
	i := strings.IndexByte(up, '(')
	if i < 0 {
		return strings.Join(strings.Fields(up), " "), nil, nil
	}
	if !strings.HasSuffix(up, ")") {
		return "", nil, errors.New("unbalanced parentheses")
	}
	var args []int
	for _, p := range strings.Split(up[i+1:len(up)-1], ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return "", nil, fmt.Errorf("bad type argument %q", p)
		}
		args = append(args, n)
	}
	return strings.TrimSpace(up[:i]), args, nil
}

// Avro building blocks, marshalled with the key order CockroachDB's structs
// give (avro/avro.go).
type avroLogical struct {
	Type        string `json:"type"`
	LogicalType string `json:"logicalType"`
}

type avroDecimal struct {
	Type        string `json:"type"`
	LogicalType string `json:"logicalType"`
	Precision   int    `json:"precision"`
	Scale       int    `json:"scale"`
}

type avroArray struct {
	Type  string `json:"type"`
	Items any    `json:"items"`
}

// finishType fills the Avro schema of t (avro.go typeToSchema, §3).
func finishType(t *colType) (*colType, error) {
	switch t.fam {
	case famInt:
		t.avro, t.branch = []any{"long"}, "long"
	case famFloat:
		t.avro, t.branch = []any{"double"}, "double"
	case famBool:
		t.avro, t.branch = []any{"boolean"}, "boolean"
	case famBytes:
		t.avro, t.branch = []any{"bytes"}, "bytes"
	case famDecimal:
		t.avro = []any{avroDecimal{"bytes", "decimal", t.prec, t.scale}, "string"}
		t.branch = "bytes.decimal"
	case famDate:
		t.avro, t.branch = []any{avroLogical{"int", "date"}}, "int.date"
	case famTime:
		t.avro, t.branch = []any{avroLogical{"long", "time-micros"}}, "long.time-micros"
	case famTimestamp, famTimestampTZ:
		t.avro, t.branch = []any{avroLogical{"long", "timestamp-micros"}}, "long.timestamp-micros"
	case famBit, famVarbit:
		t.avro, t.branch = []any{avroArray{"array", "long"}}, "array"
	case famArray:
		items := append([]any{"null"}, t.elem.avro...)
		t.avro, t.branch = []any{avroArray{"array", items}}, "array"
	default: // every text-encoded type
		t.avro, t.branch = []any{"string"}, "string"
	}
	return t, nil
}

// unionSchema is the column's field type: ["null", T...].
func (t *colType) unionSchema() []any { return append([]any{"null"}, t.avro...) }

// simple reports whether the canonical value is goavro's native value
// itself, so that only the union wrapper is needed.
func (t *colType) simple() bool {
	switch t.fam {
	case famDecimal, famInterval, famBit, famVarbit, famArray:
		return false
	}
	return true
}

// native converts a canonical value into goavro's native form for the
// column's union ["null", T...].
func (t *colType) native(v any) any {
	if v == nil {
		return nil
	}
	return map[string]any{t.nativeBranch(v): t.nativeInner(v)}
}

func (t *colType) nativeBranch(v any) string {
	if t.fam == famDecimal && v.(model.Decimal).Special != "" {
		return "string"
	}
	return t.branch
}

func (t *colType) nativeInner(v any) any {
	switch t.fam {
	case famDecimal:
		d := v.(model.Decimal)
		if d.Special != "" {
			return d.Special
		}
		return new(big.Rat).SetFrac(d.Unscaled, pow10(d.Scale))
	case famInterval:
		return v.(model.Interval).String()
	case famBit, famVarbit:
		return bitWords(v.(string))
	case famArray:
		items := v.([]any)
		out := make([]any, len(items))
		for i, it := range items {
			out[i] = t.elem.native(it)
		}
		return out
	}
	return v
}
