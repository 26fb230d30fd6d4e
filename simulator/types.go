package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/highwater-dev/highwater/schemas"
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
	kind  schemas.Kind
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
		return finishType(&colType{fam: famEnum, kind: schemas.KindString, sql: raw, labels: labels})
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
		return finishType(&colType{fam: famArray, kind: schemas.KindArray, sql: elem.sql + "[]", elem: elem})
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
		return finishType(&colType{fam: famCollated, kind: schemas.KindString, sql: "STRING COLLATE " + loc})
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
		return noArgs(&colType{fam: famInt, kind: schemas.KindInt, sql: "INT8", width: 64})
	case "INT4":
		return noArgs(&colType{fam: famInt, kind: schemas.KindInt, sql: "INT4", width: 32})
	case "INT2", "SMALLINT":
		return noArgs(&colType{fam: famInt, kind: schemas.KindInt, sql: "INT2", width: 16})
	case "FLOAT", "FLOAT8", "DOUBLE PRECISION":
		return noArgs(&colType{fam: famFloat, kind: schemas.KindFloat, sql: "FLOAT8", width: 64})
	case "FLOAT4", "REAL":
		return noArgs(&colType{fam: famFloat, kind: schemas.KindFloat, sql: "FLOAT4", width: 32})
	case "BOOL", "BOOLEAN":
		return noArgs(&colType{fam: famBool, kind: schemas.KindBool, sql: "BOOL"})
	case "STRING", "TEXT", "VARCHAR", "CHAR":
		t := &colType{fam: famString, kind: schemas.KindString, sql: "STRING"}
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
		return noArgs(&colType{fam: famBytes, kind: schemas.KindBytes, sql: "BYTES"})
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
		return finishType(&colType{fam: famDecimal, kind: schemas.KindDecimal,
			sql: fmt.Sprintf("DECIMAL(%d,%d)", args[0], args[1]), prec: args[0], scale: args[1]})
	case "DATE":
		return noArgs(&colType{fam: famDate, kind: schemas.KindDate, sql: "DATE"})
	case "TIME":
		return noArgs(&colType{fam: famTime, kind: schemas.KindTime, sql: "TIME"})
	case "TIMESTAMP":
		return noArgs(&colType{fam: famTimestamp, kind: schemas.KindTimestamp, sql: "TIMESTAMP"})
	case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE":
		return noArgs(&colType{fam: famTimestampTZ, kind: schemas.KindTimestampTZ, sql: "TIMESTAMPTZ"})
	case "UUID":
		return noArgs(&colType{fam: famUUID, kind: schemas.KindUUID, sql: "UUID"})
	case "JSONB", "JSON":
		return noArgs(&colType{fam: famJSON, kind: schemas.KindJSON, sql: "JSONB"})
	case "INTERVAL":
		return noArgs(&colType{fam: famInterval, kind: schemas.KindInterval, sql: "INTERVAL"})
	case "INET":
		return noArgs(&colType{fam: famINet, kind: schemas.KindString, sql: "INET"})
	case "TIMETZ":
		return noArgs(&colType{fam: famTimeTZ, kind: schemas.KindString, sql: "TIMETZ"})
	case "BIT":
		n := 1
		if len(args) == 1 && args[0] > 0 {
			n = args[0]
		} else if args != nil {
			return nil, fmt.Errorf("type %s: bad length", raw)
		}
		return finishType(&colType{fam: famBit, kind: schemas.KindString, sql: fmt.Sprintf("BIT(%d)", n), width: n})
	case "VARBIT", "BIT VARYING":
		t := &colType{fam: famVarbit, kind: schemas.KindString, sql: "VARBIT"}
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

// normalize turns a caller's Go value into the canonical value the oracle
// keeps (the Go type schemas.Kind documents), or an error naming what is
// wrong. nil stays nil (SQL NULL).
func (t *colType) normalize(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch t.fam {
	case famInt:
		n, ok := toInt64(v)
		if !ok {
			return nil, fmt.Errorf("want an integer for %s, got %T", t.sql, v)
		}
		if t.width < 64 && (n < -(1<<(t.width-1)) || n >= 1<<(t.width-1)) {
			return nil, fmt.Errorf("integer %d out of range for %s", n, t.sql)
		}
		return n, nil
	case famFloat:
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case float32:
			f = float64(x)
		default:
			n, ok := toInt64(v)
			if !ok {
				return nil, fmt.Errorf("want a float64 for %s, got %T", t.sql, v)
			}
			f = float64(n)
		}
		if t.width == 32 {
			f = float64(float32(f))
		}
		return f, nil
	case famBool:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("want a bool for %s, got %T", t.sql, v)
		}
		return b, nil
	case famString, famCollated, famTimeTZ:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string for %s, got %T", t.sql, v)
		}
		if t.fam == famString && t.width > 0 && len([]rune(s)) > t.width {
			return nil, fmt.Errorf("value too long for type %s", t.sql)
		}
		return s, nil
	case famEnum:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string label for enum %s, got %T", t.sql, v)
		}
		for _, l := range t.labels {
			if l == s {
				return s, nil
			}
		}
		return nil, fmt.Errorf("invalid input value for enum %s: %q", t.sql, s)
	case famBytes:
		switch x := v.(type) {
		case []byte:
			return bytes.Clone(x), nil
		case string:
			return []byte(x), nil
		}
		return nil, fmt.Errorf("want []byte for BYTES, got %T", v)
	case famUUID:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string UUID, got %T", v)
		}
		return canonicalUUID(s)
	case famJSON:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want JSON text for JSONB, got %T", v)
		}
		return canonicalJSON(s)
	case famINet:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string for INET, got %T", v)
		}
		return canonicalINet(s)
	case famBit, famVarbit:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string of 0s and 1s for %s, got %T", t.sql, v)
		}
		if strings.Trim(s, "01") != "" {
			return nil, fmt.Errorf("%q is not a valid binary digit string", s)
		}
		if t.fam == famBit && len(s) != t.width {
			return nil, fmt.Errorf("bit string length %d does not match type %s", len(s), t.sql)
		}
		if t.fam == famVarbit && t.width > 0 && len(s) > t.width {
			return nil, fmt.Errorf("bit string length %d too long for type %s", len(s), t.sql)
		}
		return s, nil
	case famDecimal:
		return t.normalizeDecimal(v)
	case famDate:
		tm, ok := v.(time.Time)
		if !ok {
			return nil, fmt.Errorf("want time.Time for DATE, got %T", v)
		}
		y, m, d := tm.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
	case famTime:
		d, ok := v.(time.Duration)
		if !ok {
			return nil, fmt.Errorf("want time.Duration since midnight for TIME, got %T", v)
		}
		d = d.Round(time.Microsecond)
		if d < 0 || d > 24*time.Hour {
			return nil, fmt.Errorf("TIME %s out of range", d)
		}
		return d, nil
	case famTimestamp:
		tm, ok := v.(time.Time)
		if !ok {
			return nil, fmt.Errorf("want time.Time for TIMESTAMP, got %T", v)
		}
		// A TIMESTAMP keeps the wall clock and drops the zone.
		y, mo, d := tm.Date()
		h, mi, s := tm.Clock()
		return time.Date(y, mo, d, h, mi, s, tm.Nanosecond(), time.UTC).Round(time.Microsecond), nil
	case famTimestampTZ:
		tm, ok := v.(time.Time)
		if !ok {
			return nil, fmt.Errorf("want time.Time for TIMESTAMPTZ, got %T", v)
		}
		return tm.UTC().Round(time.Microsecond), nil
	case famInterval:
		switch x := v.(type) {
		case schemas.Interval:
			return x, nil
		case time.Duration:
			return schemas.Interval{Micros: x.Microseconds()}, nil
		}
		return nil, fmt.Errorf("want schemas.Interval for INTERVAL, got %T", v)
	case famArray:
		items, err := toAnySlice(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.sql, err)
		}
		out := make([]any, len(items))
		for i, it := range items {
			if out[i], err = t.elem.normalize(it); err != nil {
				return nil, fmt.Errorf("%s element %d: %w", t.sql, i, err)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported type %s", t.sql)
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

func toAnySlice(v any) ([]any, error) {
	switch x := v.(type) {
	case []any:
		return x, nil
	case []int64:
		return convSlice(x), nil
	case []int:
		return convSlice(x), nil
	case []string:
		return convSlice(x), nil
	case []float64:
		return convSlice(x), nil
	case []bool:
		return convSlice(x), nil
	}
	return nil, fmt.Errorf("want []any for an array, got %T", v)
}

func convSlice[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func (t *colType) normalizeDecimal(v any) (any, error) {
	var d schemas.Decimal
	switch x := v.(type) {
	case schemas.Decimal:
		d = x
		if d.Special == "" && d.Unscaled == nil {
			d.Unscaled = new(big.Int)
		}
	case string:
		var err error
		if d, err = parseDecimal(x); err != nil {
			return nil, err
		}
	default:
		n, ok := toInt64(v)
		if !ok {
			return nil, fmt.Errorf("want schemas.Decimal or a decimal string for %s, got %T", t.sql, v)
		}
		d = schemas.Decimal{Unscaled: big.NewInt(n)}
	}
	if d.Special != "" {
		switch d.Special {
		case "NaN", "Infinity", "-Infinity":
			return d, nil
		}
		return nil, fmt.Errorf("unknown special decimal %q", d.Special)
	}
	u := new(big.Int).Set(d.Unscaled)
	switch {
	case d.Scale < t.scale:
		u.Mul(u, pow10(t.scale-d.Scale))
	case d.Scale > t.scale:
		q, r := new(big.Int).QuoRem(u, pow10(d.Scale-t.scale), new(big.Int))
		if r.Sign() != 0 {
			return nil, fmt.Errorf("decimal %s has more than %d fractional digits for %s", d, t.scale, t.sql)
		}
		u = q
	}
	if new(big.Int).Abs(u).Cmp(pow10(t.prec)) >= 0 {
		return nil, fmt.Errorf("value with precision %d, scale %d must round to an absolute value less than 10^%d: %s",
			t.prec, t.scale, t.prec-t.scale, d)
	}
	return schemas.Decimal{Unscaled: u, Scale: t.scale}, nil
}

var pow10s = func() []*big.Int {
	out := make([]*big.Int, 80)
	for i := range out {
		out[i] = new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(i)), nil)
	}
	return out
}()

// pow10 returns 10^n; callers must not modify the result.
func pow10(n int) *big.Int {
	if n >= 0 && n < len(pow10s) {
		return pow10s[n]
	}
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
}

func parseDecimal(s string) (schemas.Decimal, error) {
	switch s {
	case "NaN", "Infinity", "-Infinity":
		return schemas.Decimal{Special: s}, nil
	}
	digits, frac, _ := strings.Cut(s, ".")
	u, ok := new(big.Int).SetString(digits+frac, 10)
	if !ok || strings.ContainsAny(frac, "+-") {
		return schemas.Decimal{}, fmt.Errorf("invalid decimal %q", s)
	}
	return schemas.Decimal{Unscaled: u, Scale: len(frac)}, nil
}

func canonicalUUID(s string) (string, error) {
	h := strings.ToLower(strings.ReplaceAll(strings.Trim(s, "{}"), "-", ""))
	if len(h) != 32 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("invalid UUID %q", s)
	}
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func canonicalINet(s string) (string, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return "", fmt.Errorf("invalid INET %q: %w", s, err)
		}
		if p.Bits() == p.Addr().BitLen() {
			return p.Addr().String(), nil
		}
		return p.String(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", fmt.Errorf("invalid INET %q: %w", s, err)
	}
	return a.String(), nil
}

// canonicalJSON renders JSON text the way CockroachDB prints a JSONB value:
// object keys sorted, ", " and ": " separators, numbers as written.
func canonicalJSON(s string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("invalid JSON %q: %w", s, err)
	}
	if dec.More() {
		return "", fmt.Errorf("invalid JSON %q: trailing data", s)
	}
	var b strings.Builder
	writeJSON(&b, v)
	return b.String(), nil
}

func writeJSON(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case json.Number:
		b.WriteString(x.String())
	case string:
		writeJSONString(b, x)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSON(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, k)
			b.WriteString(": ")
			writeJSON(b, x[k])
		}
		b.WriteByte('}')
	}
}

func writeJSONString(b *strings.Builder, s string) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	b.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// bitWords encodes a bit string as CockroachDB's Avro encoder does: the
// number of bits used in the last word, then 64-bit words MSB first, as
// signed longs (B'010' -> [3, 4611686018427387904]).
func bitWords(s string) []any {
	nWords := (len(s) + 63) / 64
	out := make([]any, 1, nWords+1)
	last := int64(len(s) % 64)
	if last == 0 && len(s) > 0 {
		last = 64
	}
	out[0] = last
	for w := 0; w < nWords; w++ {
		var word uint64
		for i := 0; i < 64; i++ {
			word <<= 1
			if j := w*64 + i; j < len(s) && s[j] == '1' {
				word |= 1
			}
		}
		out = append(out, int64(word))
	}
	return out
}

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
	if t.fam == famDecimal && v.(schemas.Decimal).Special != "" {
		return "string"
	}
	return t.branch
}

func (t *colType) nativeInner(v any) any {
	switch t.fam {
	case famDecimal:
		d := v.(schemas.Decimal)
		if d.Special != "" {
			return d.Special
		}
		return new(big.Rat).SetFrac(d.Unscaled, pow10(d.Scale))
	case famInterval:
		return v.(schemas.Interval).String()
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
