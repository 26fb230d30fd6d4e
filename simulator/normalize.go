package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/highwater-dev/highwater/model"
)

// normalize turns a caller's Go value into the canonical value the oracle
// keeps (the Go type model.Kind documents), or an error naming what is
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
		case model.Interval:
			return x, nil
		case time.Duration:
			return model.Interval{Micros: x.Microseconds()}, nil
		}
		return nil, fmt.Errorf("want model.Interval for INTERVAL, got %T", v)
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
	var d model.Decimal
	switch x := v.(type) {
	case model.Decimal:
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
			return nil, fmt.Errorf("want model.Decimal or a decimal string for %s, got %T", t.sql, v)
		}
		d = model.Decimal{Unscaled: big.NewInt(n)}
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
	return model.Decimal{Unscaled: u, Scale: t.scale}, nil
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

func parseDecimal(s string) (model.Decimal, error) {
	switch s {
	case "NaN", "Infinity", "-Infinity":
		return model.Decimal{Special: s}, nil
	}
	digits, frac, _ := strings.Cut(s, ".")
	u, ok := new(big.Int).SetString(digits+frac, 10)
	if !ok || strings.ContainsAny(frac, "+-") {
		return model.Decimal{}, fmt.Errorf("invalid decimal %q", s)
	}
	return model.Decimal{Unscaled: u, Scale: len(frac)}, nil
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
