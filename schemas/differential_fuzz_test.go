package schemas

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// FuzzDifferential checks the hand-written decoder against hamba/avro's
// generic decoding. From the fuzzer's bytes it builds a CockroachDB-shaped
// key and value schema (wrapped or bare envelope, with or without diff,
// mvcc_timestamp and enriched's extra fields, every column type CockroachDB
// writes, as arrays too, with and without __crdb__ hints) and Avro bodies
// for them (mostly valid, then possibly mutated). The two decoders must
// agree value for value, or both reject, with one exception: the fast
// decoder also enforces what CockroachDB guarantees and hamba cannot know
// (the per-message budget and BIT width, decimal digits within the
// precision, the DECIMAL union's string branch being NaN/±Infinity,
// INTERVAL and HLC text, TIME within a day, BIT's encoding). When only the
// fast decoder rejects, diffViolations must find such a broken rule in
// hamba's decoding of the same bytes, at the place the fast decoder's error
// names.
func FuzzDifferential(f *testing.F) {
	for _, seed := range []struct {
		shape, values string
		mut           uint32
	}{
		{"\x00\x03\x01\x01\x00\x00\x00", "\x02\x02\x05\x03", 0},
		{"\x07\x08\x02\x01\x05\x00\x06\x01\x08\x00\x0b\x01\x0d\x00\x13\x00\x17\x01", "\x03\x01\x02\x03\x04\x05\x06\x07\x08\x09", 0},
		{"\x0a\x06\x01\x01\x03\x00\x0c\x00\x10\x01\x12\x00\x14\x01\x16\x00", "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01", 0},
		{"\x13\x07\x02\x01\x02\x01\x04\x00\x09\x00\x0e\x01\x11\x00\x15\x01", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3", 0},
		{"\x1f\x05\x01\x01\x0f\x00\x0a\x00\x12\x00\x18\x01\x19\x00", "\x01\x02\x01\x02\x01\x02\x01\x02\x01\x02\x01\x02", 0x01_0003_01},
		{"\x00\x02\x01\x01\x07\x01\x08", "\x01\x01\x01\x41\x00", 0},
	} {
		f.Add([]byte(seed.shape), []byte(seed.values), seed.mut)
	}
	// The same shapes with longer value streams, so that every column gets
	// values.
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, shape := range []string{"\x00\x03\x01\x01\x00\x00\x00", "\x07\x08\x02\x01\x05\x00\x06\x01\x08\x00\x0b\x01\x0d\x00\x13\x00\x17\x01\x05",
		"\x0a\x06\x01\x01\x03\x00\x0c\x00\x10\x01\x12\x00\x14\x01\x16\x00", "\x13\x07\x02\x01\x02\x01\x04\x00\x09\x00\x0e\x01\x11\x00\x15\x01",
		"\x1f\x05\x01\x01\x0f\x00\x0a\x00\x12\x00\x18\x01\x19\x00"} {
		for range 4 {
			values := make([]byte, 300)
			for i := range values {
				values[i] = byte(rnd.Uint32())
			}
			f.Add([]byte(shape), values, uint32(0))
		}
	}
	ctx := context.Background()
	// Arrays of CockroachDB's shapes have items of at least one byte, so no
	// honest array has more items than its message has bytes; the cap keeps
	// hamba from allocating for a count the input cannot hold.
	api := avro.Config{MaxSliceAllocSize: 1 << 16, MaxByteSliceSize: 1 << 20}.Freeze()
	f.Fuzz(func(t *testing.T, shape, values []byte, mut uint32) {
		g := diffShape(shape)
		keyText, valueText := g.schemas()
		ks, err := avro.ParseWithCache(keyText, "", &avro.SchemaCache{})
		if err != nil {
			t.Fatalf("hamba rejects generated key schema %s: %v", keyText, err)
		}
		vs, err := avro.ParseWithCache(valueText, "", &avro.SchemaCache{})
		if err != nil {
			t.Fatalf("hamba rejects generated value schema %s: %v", valueText, err)
		}
		src := &diffBytes{b: values}
		kb := src.body(ks, "")
		vb := src.body(vs, "")
		kb, vb = mutate(kb, vb, mut)

		d := NewDecoder(schemaTexts{1: keyText, 2: valueText})
		key, value := frame(1, kb), frame(2, vb)
		row, errRow := d.DecodeRow(ctx, key, value)
		rec, errExt := d.Extract(ctx, "t", 0, 0, key, value)
		hk, errHK := hambaDecode(api, ks, kb)
		hv, errHV := hambaDecode(api, vs, vb)

		vp := compileValue(2, valueText, defaultMaxSchemaDepth)
		kp := compileKey(1, keyText, defaultMaxSchemaDepth)
		if vp.err != nil || kp.err != nil {
			t.Fatalf("generated schemas unusable: value %v, key %v\n%s\n%s", vp.err, kp.err, valueText, keyText)
		}
		if cols := vp.table.Columns; len(cols) > 1 && cols[1].Name != g.name1 {
			t.Fatalf("column %q, want %q", cols[1].Name, g.name1)
		}
		if vp.table.Name != g.table || (vp.hasBefore && vp.before.Name != g.table) {
			t.Fatalf("table %q (before %v), want %q", vp.table.Name, vp.before, g.table)
		}
		hambaOK := errHK == nil && errHV == nil
		var env map[string]any
		var viols []diffViolation
		if hambaOK {
			env = hv.(map[string]any)
			viols = diffViolations(vp, kp, env, hk.(map[string]any))
		}
		where := func() string {
			return fmt.Sprintf("\nvalue schema %s\nkey schema %s\nkey % x\nvalue % x", valueText, keyText, kb, vb)
		}

		switch {
		case errRow == nil && !hambaOK:
			t.Fatalf("fast decoder accepted what hamba rejects (key: %v, value: %v)%s", errHK, errHV, where())
		case errRow == nil:
			if len(viols) > 0 {
				t.Fatalf("fast decoder accepted a row that breaks CockroachDB's rules: %v%s", viols, where())
			}
			if err := diffRow(vp, kp, row, env, hk.(map[string]any)); err != nil {
				t.Fatalf("decoders disagree: %v%s", err, where())
			}
		// hamba reads an array block's byte size and ignores it; the fast
		// decoder's skip jumps by it, so a size its items do not fill is
		// refused (errBlockSize): the Avro spec makes it the block's bytes.
		case hambaOK && !errors.Is(errRow, ErrDecodeLimit) && !errors.Is(errRow, errBlockSize) && !explains(viols, errRow):
			t.Fatalf("fast decoder rejected what hamba accepts, and no CockroachDB rule is broken there: %v (broken: %v)%s", errRow, viols, where())
		}

		// Extract skips column values, so it accepts whatever DecodeRow
		// does, and rejects a message hamba accepts only over a limit or a
		// bad updated timestamp.
		switch {
		case errors.Is(errRow, errBlockSize) || errors.Is(errExt, errBlockSize):
			// A block size its items do not take: Extract jumps by it
			// where hamba reads the items, so the two may read other
			// fields after it; DecodeRow refuses the message, so the
			// window that meets it handles it as a poison record.
		case errRow == nil && errExt != nil:
			t.Fatalf("DecodeRow accepted, Extract rejected: %v%s", errExt, where())
		case errExt == nil && hambaOK:
			if want := envRow(env) == nil; rec.Delete != want {
				t.Fatalf("Extract delete %v, hamba's after is nil: %v%s", rec.Delete, want, where())
			}
			if h, err := hlc.Parse(env["updated"].(string)); err != nil || h != rec.Updated {
				t.Fatalf("Extract updated %v, hamba %q%s", rec.Updated, env["updated"], where())
			}
			if rec.Table != vp.table.Name || !bytes.Equal(rec.Key, kb) {
				t.Fatalf("Extract table %q key % x%s", rec.Table, rec.Key, where())
			}
		case errExt != nil && hambaOK && !errors.Is(errExt, ErrDecodeLimit):
			var upd []diffViolation
			for _, v := range viols {
				if v.loc == "updated" {
					upd = append(upd, v)
				}
			}
			if !explains(upd, errExt) {
				t.Fatalf("Extract rejected what hamba accepts with a valid updated: %v%s", errExt, where())
			}
		}
	})
}

// hambaDecode decodes one Avro body generically with hamba, refusing
// trailing bytes as the fast decoder does.
func hambaDecode(api avro.API, s avro.Schema, body []byte) (v any, err error) {
	r := avro.NewReader(nil, 0, avro.WithReaderConfig(api))
	r.Reset(body)
	r.ReadVal(s, &v)
	if r.Error != nil {
		return nil, r.Error
	}
	var one [1]byte
	if r.Read(one[:]); r.Error == nil {
		return nil, errors.New("trailing bytes")
	}
	return unwrapUnions(s, v), nil
}

// unwrapUnions undoes hamba's generic union representation where it wraps:
// a union value of a record or array branch comes as a one-entry map from
// the branch's name ("super.t", "array") to the value; a null or primitive
// branch comes bare.
func unwrapUnions(s avro.Schema, v any) any {
	switch t := deref(s).(type) {
	case *avro.UnionSchema:
		if v == nil {
			return nil
		}
		if m, ok := v.(map[string]any); ok && len(m) == 1 {
			for _, b := range t.Types() {
				var name string
				switch bt := deref(b).(type) {
				case *avro.RecordSchema:
					name = bt.FullName()
				case *avro.ArraySchema:
					name = "array"
				}
				if inner, ok := m[name]; ok && name != "" {
					return unwrapUnions(b, inner)
				}
			}
		}
		for _, b := range t.Types() {
			if b.Type() != avro.Null {
				return unwrapUnions(b, v)
			}
		}
	case *avro.RecordSchema:
		m := v.(map[string]any)
		for _, f := range t.Fields() {
			m[f.Name()] = unwrapUnions(f.Type(), m[f.Name()])
		}
	case *avro.ArraySchema:
		a := v.([]any)
		for i := range a {
			a[i] = unwrapUnions(t.Items(), a[i])
		}
	}
	return v
}

// envRow is the after (or record) image of a hamba-decoded envelope.
func envRow(env map[string]any) any {
	if v, ok := env["after"]; ok {
		return v
	}
	return env["record"]
}

// hlcOf parses an envelope timestamp field; a null is an error unless
// nullable.
func hlcOf(env map[string]any, name string, nullable bool) (hlc.Timestamp, error) {
	v, ok := env[name]
	if !ok || v == nil {
		if nullable {
			return hlc.Timestamp{}, nil
		}
		return hlc.Timestamp{}, fmt.Errorf("%s is null", name)
	}
	return hlc.Parse(v.(string))
}

// diffViolation is a CockroachDB rule that hamba's decoding of a message
// breaks, at loc as the fast decoder's errors name it ("updated", `after
// column "c0"`, `key column "c0"`).
type diffViolation struct {
	loc string
	err error
}

func (v diffViolation) String() string { return v.loc + ": " + v.err.Error() }

// explains reports whether err, the fast decoder's, is about the place of
// one of the violations.
func explains(viols []diffViolation, err error) bool {
	for _, v := range viols {
		if strings.Contains(err.Error(), "): "+v.loc) {
			return true
		}
	}
	return false
}

// diffViolations returns the CockroachDB rules that hamba's decoding of a
// message breaks, in the order the fast decoder meets them.
func diffViolations(vp *valuePlan, kp *keyPlan, env, key map[string]any) []diffViolation {
	var out []diffViolation
	for _, f := range vp.fields {
		switch f.role {
		case roleUpdated:
			if _, err := hlcOf(env, "updated", false); err != nil {
				out = append(out, diffViolation{"updated", err})
			}
		case roleMVCC:
			if _, err := hlcOf(env, "mvcc_timestamp", true); err != nil {
				out = append(out, diffViolation{"mvcc_timestamp", err})
			}
		case roleAfter, roleRecord:
			name := "after"
			if f.role == roleRecord {
				name = "record"
			}
			out = append(out, recordViolations(name, vp.table.Columns, envRow(env))...)
		case roleBefore:
			out = append(out, recordViolations("before", vp.before.Columns, env["before"])...)
		case roleOp:
			// envelope = enriched: "c", "u" or "d", which is "d" exactly
			// when after is null (changefeedccl deduceOp).
			if op, ok := env["op"].(string); ok && op != "c" && op != "u" && op != "d" {
				out = append(out, diffViolation{"op", fmt.Errorf("op %q", op)})
			} else if ok && (op == "d") != (envRow(env) == nil) {
				out = append(out, diffViolation{"op", fmt.Errorf("op %q with after %v", op, envRow(env))})
			}
		}
	}
	return append(out, recordViolations("key", kp.cols, key)...)
}

func recordViolations(name string, cols []model.Column, rec any) []diffViolation {
	if rec == nil {
		return nil
	}
	var out []diffViolation
	m := rec.(map[string]any)
	for _, c := range cols {
		if err := valueViolation(c.Type, c.SQLType, m[c.AvroName]); err != nil {
			out = append(out, diffViolation{fmt.Sprintf("%s column %q", name, c.Name), err})
		}
	}
	return out
}

// valueViolation checks one hamba-decoded value against what CockroachDB
// guarantees for its column type.
func valueViolation(ty model.Type, sqlType string, v any) error {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		switch ty.Kind {
		case model.KindDecimal:
			if x != "NaN" && x != "Infinity" && x != "-Infinity" {
				return fmt.Errorf("decimal string %q", x)
			}
		case model.KindInterval:
			_, err := model.ParseInterval(x)
			return err
		}
	case *big.Rat:
		lim := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(ty.Precision)), nil)
		u := new(big.Rat).Mul(x, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(ty.Scale)), nil)))
		if new(big.Int).Abs(u.Num()).Cmp(lim) >= 0 {
			return fmt.Errorf("decimal %s has more than %d digits", x.FloatString(ty.Scale), ty.Precision)
		}
	case time.Duration:
		if ty.Kind == model.KindTime && (x < 0 || x > 24*time.Hour) {
			return fmt.Errorf("time of day %v", x)
		}
	case []any:
		if ty.Kind == model.KindString { // BIT/VARBIT
			_, err := bitText(x, sqlType)
			return err
		}
		for _, e := range x {
			if err := valueViolation(*ty.Elem, "", e); err != nil {
				return err
			}
		}
	}
	return nil
}

// bitText renders CockroachDB's BIT encoding (the count of bits used in
// the last word, then 64-bit words, most significant bit first) as a bit
// string, independently of the fast decoder's implementation.
func bitText(words []any, sqlType string) (string, error) {
	if len(words) == 0 {
		return "", errors.New("bit array without its length")
	}
	used := words[0].(int64)
	n := len(words) - 1
	if used < 0 || used > 64 || (n == 0 && used != 0) {
		return "", fmt.Errorf("bit array: %d bits used of %d words", used, n)
	}
	if n > 0 && used == 0 {
		used = 64
	}
	width := max(n-1, 0)*64 + int(used)
	if w := bitWidth(sqlType); (w > 0 && width > w) || width > DefaultMaxBitWidth {
		return "", fmt.Errorf("%d bits in a %s", width, sqlType)
	}
	var sb strings.Builder
	for i, w := range words[1:] {
		u := uint64(w.(int64))
		for j := 0; j < 64 && (i < n-1 || j < int(used)); j++ {
			sb.WriteByte('0' + byte(u>>(63-j)&1))
		}
	}
	return sb.String(), nil
}

// diffRow compares the fast decoder's row with hamba's decoding.
func diffRow(vp *valuePlan, kp *keyPlan, row Row, env, key map[string]any) error {
	if err := diffRecord(vp.table.Columns, row.After, envRow(env)); err != nil {
		return fmt.Errorf("after: %w", err)
	}
	if row.Diff != vp.hasBefore {
		return fmt.Errorf("Diff %v", row.Diff)
	}
	if vp.hasBefore {
		if err := diffRecord(vp.before.Columns, row.Before, env["before"]); err != nil {
			return fmt.Errorf("before: %w", err)
		}
	}
	if err := diffRecord(kp.cols, row.KeyValues, key); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if h, _ := hlcOf(env, "updated", false); h != row.Updated {
		return fmt.Errorf("updated %v, hamba %v", row.Updated, h)
	}
	if h, _ := hlcOf(env, "mvcc_timestamp", true); h != row.MVCC {
		return fmt.Errorf("mvcc_timestamp %v, hamba %v", row.MVCC, h)
	}
	return nil
}

func diffRecord(cols []model.Column, fast []any, rec any) error {
	if rec == nil || fast == nil {
		if (rec == nil) != (fast == nil) {
			return fmt.Errorf("fast %v, hamba %v", fast, rec)
		}
		return nil
	}
	m := rec.(map[string]any)
	if len(fast) != len(cols) || len(m) != len(cols) {
		return fmt.Errorf("%d values for %d columns, hamba %d", len(fast), len(cols), len(m))
	}
	for i, c := range cols {
		if err := diffValue(c.Type, c.SQLType, fast[i], m[c.AvroName]); err != nil {
			return fmt.Errorf("column %q: %w", c.Name, err)
		}
	}
	return nil
}

// diffValue compares a fast-decoded value (the Go type its Kind documents)
// with hamba's generic value of the same bytes.
func diffValue(ty model.Type, sqlType string, fast, h any) error {
	if fast == nil || h == nil {
		if (fast == nil) != (h == nil) {
			return fmt.Errorf("fast %#v, hamba %#v", fast, h)
		}
		return nil
	}
	bad := func() error { return fmt.Errorf("fast %#v, hamba %#v", fast, h) }
	switch ty.Kind {
	case model.KindInt:
		var n int64
		switch x := h.(type) {
		case int:
			n = int64(x)
		case int64:
			n = x
		default:
			return bad()
		}
		if fast != n {
			return bad()
		}
	case model.KindFloat:
		var g float64
		switch x := h.(type) {
		case float32:
			g = float64(x)
		case float64:
			g = x
		default:
			return bad()
		}
		if f, ok := fast.(float64); !ok || math.Float64bits(f) != math.Float64bits(g) {
			return bad()
		}
	case model.KindBool, model.KindUUID, model.KindJSON:
		if fast != h {
			return bad()
		}
	case model.KindString:
		if words, ok := h.([]any); ok {
			s, err := bitText(words, sqlType)
			if err != nil || fast != s {
				return bad()
			}
		} else if fast != h {
			return bad()
		}
	case model.KindBytes:
		b, ok := fast.([]byte)
		if !ok || !bytes.Equal(b, h.([]byte)) {
			return bad()
		}
	case model.KindDecimal:
		d := fast.(model.Decimal)
		switch x := h.(type) {
		case string:
			if d.Special != x || d.Unscaled != nil {
				return bad()
			}
		case *big.Rat:
			if d.Special != "" || d.Scale != ty.Scale {
				return bad()
			}
			r := new(big.Rat).SetFrac(d.Unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale)), nil))
			if r.Cmp(x) != 0 {
				return bad()
			}
		default:
			return bad()
		}
	case model.KindDate, model.KindTimestamp, model.KindTimestampTZ:
		a, b := fast.(time.Time), h.(time.Time)
		if !a.Equal(b) || a.Location() != time.UTC {
			return bad()
		}
	case model.KindTime:
		if fast != h {
			return bad()
		}
	case model.KindInterval:
		iv, err := model.ParseInterval(h.(string))
		if err != nil || fast != iv {
			return bad()
		}
	case model.KindArray:
		a, b := fast.([]any), h.([]any)
		if len(a) != len(b) {
			return bad()
		}
		for i := range a {
			if err := diffValue(*ty.Elem, "", a[i], b[i]); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
	default:
		return fmt.Errorf("kind %s", ty.Kind)
	}
	return nil
}

// mutate damages one of the bodies as mut says: 0 leaves them, otherwise
// the low two bits pick flipping a byte, truncating or appending, bit 2
// the key or the value, and the rest where and what.
func mutate(kb, vb []byte, mut uint32) ([]byte, []byte) {
	b := &vb
	if mut&4 != 0 {
		b = &kb
	}
	pos, x := int(mut>>8&0xffff), byte(mut>>24)|1
	switch mut & 3 {
	case 1:
		if len(*b) > 0 {
			(*b)[pos%len(*b)] ^= x
		}
	case 2:
		if len(*b) > 0 {
			*b = (*b)[:pos%len(*b)]
		}
	case 3:
		*b = append(*b, x)
	}
	return kb, vb
}

// diffGen builds CockroachDB-shaped schemas from a fuzzer's bytes.
type diffGen struct {
	b     []byte
	i     int
	opts  byte
	cols  []string // field JSON of the row record's columns
	nkey  int
	name1 string // the SQL name of the second column
	table string // the SQL table name (set by schemas)
}

func (g *diffGen) next() int {
	if g.i >= len(g.b) {
		return 0
	}
	g.i++
	return int(g.b[g.i-1])
}

// diffScalar returns a CockroachDB column type (the union members after
// "null") and its SQL type; arrays only when array is set.
func (g *diffGen) diffScalar(array bool) (avroType, sql string) {
	n := 26
	if !array {
		n = 23 // no arrays or BIT in arrays
	}
	switch g.next() % n {
	case 0:
		return `"long"`, "INT8"
	case 1:
		return `"long"`, "INT2"
	case 2:
		return `"double"`, "FLOAT8"
	case 3:
		return `"double"`, "FLOAT4"
	case 4:
		return `"boolean"`, "BOOL"
	case 5, 6:
		prec := 1 + g.next()%40
		scale := g.next() % (prec + 1)
		if scale == 0 && g.next()%2 == 0 {
			// CockroachDB before #118815 omitted a zero scale.
			return fmt.Sprintf(`{"type":"bytes","logicalType":"decimal","precision":%d},"string"`, prec), fmt.Sprintf("DECIMAL(%d)", prec)
		}
		return fmt.Sprintf(`{"type":"bytes","logicalType":"decimal","precision":%d,"scale":%d},"string"`, prec, scale),
			fmt.Sprintf("DECIMAL(%d,%d)", prec, scale)
	case 7:
		return `"string"`, "STRING"
	case 8:
		return `"string"`, "VARCHAR(10)"
	case 9:
		return `"string"`, "STRING COLLATE de"
	case 10:
		return `"string"`, "TIMETZ"
	case 11:
		return `"string"`, "INET"
	case 12:
		return `"string"`, "public.status"
	case 13:
		return `"bytes"`, "BYTES"
	case 14:
		return `"bytes"`, "GEOGRAPHY"
	case 15:
		return `{"type":"int","logicalType":"date"}`, "DATE"
	case 16:
		return `{"type":"long","logicalType":"time-micros"}`, "TIME"
	case 17:
		return `{"type":"long","logicalType":"timestamp-micros"}`, "TIMESTAMP"
	case 18:
		return `{"type":"long","logicalType":"timestamp-micros"}`, "TIMESTAMPTZ"
	case 19:
		return `"string"`, "INTERVAL"
	case 20:
		return `"string"`, "UUID"
	case 21:
		return `"string"`, "JSONB"
	case 22:
		return `"string"`, "BOX2D"
	case 23:
		et, es := g.diffScalar(false)
		return `{"type":"array","items":["null",` + et + `]}`, es + "[]"
	case 24:
		return `{"type":"array","items":"long"}`, fmt.Sprintf("BIT(%d)", 1+g.next()%130)
	}
	return `{"type":"array","items":"long"}`, "VARBIT"
}

// diffShape reads the envelope options and columns from shape: bit 0 of
// the first byte is envelope=bare, bit 1 diff, bit 2 mvcc_timestamp, bit 3
// enriched's extra fields, bit 4 an avro_schema_prefix namespace, bit 5 a
// column family's table name (split_column_families); then the
// column count, key column count and per column its type and hint.
func diffShape(shape []byte) *diffGen {
	g := &diffGen{b: shape}
	g.opts = byte(g.next())
	n := 1 + g.next()%8
	g.nkey = 1 + g.next()%min(n, 3)
	for i := range n {
		t, sql := g.diffScalar(true)
		sqlName := fmt.Sprintf("c%d", i)
		col := sqlName
		if i == 1 {
			// Any SQL name: its escaped form must be a valid Avro name
			// for hamba, and unescape to it. It ends in "1", so it
			// differs from the other columns' names.
			b := make([]byte, g.next()%8)
			for j := range b {
				b[j] = byte(g.next())
			}
			sqlName = strings.ToValidUTF8(string(b), "?") + "1"
			col = `"` + strings.ReplaceAll(sqlName, `"`, `""`) + `"`
			g.name1 = sqlName
		}
		name := model.SQLNameToAvroName(sqlName)
		field := `{"type":["null",` + t + `],"name":"` + name + `","default":null`
		switch h := g.next() % 4; {
		case h == 0 && i >= g.nkey:
			// No hint: the Avro type alone decides.
		default:
			null := "NULL"
			if h == 1 || i < g.nkey {
				null = "NOT NULL"
			}
			hint, _ := json.Marshal(col + " " + sql + " " + null)
			field += `,"__crdb__":` + string(hint)
		}
		g.cols = append(g.cols, field+"}")
	}
	return g
}

// schemas returns the key and value schema texts as CockroachDB writes
// them (field order of docs/CHANGEFEED.md §2.1).
func (g *diffGen) schemas() (key, value string) {
	ns := ""
	if g.opts&16 != 0 {
		ns = `,"namespace":"super"`
	}
	rec := func(name string) string {
		return `{"type":"record","name":"` + name + `","fields":[` + strings.Join(g.cols, ",") + `]` + ns + `}`
	}
	// With split_column_families the table is "table.family", escaped.
	g.table = "t"
	if g.opts&32 != 0 {
		g.table = "t.primary"
	}
	tn := model.SQLNameToAvroName(g.table)
	key = `{"type":"record","name":"` + tn + `","fields":[` + strings.Join(g.cols[:g.nkey], ",") + `]` + ns + `}`
	ts := func(name string) string {
		return `{"type":["null","string"],"name":"` + name + `","default":null}`
	}
	var fields []string
	bare := g.opts&1 != 0
	if !bare && g.opts&2 != 0 {
		fields = append(fields, `{"type":["null",`+rec(tn+"_before")+`],"name":"before","default":null}`)
	}
	if !bare {
		fields = append(fields, `{"type":["null",`+rec(tn)+`],"name":"after","default":null}`)
	}
	fields = append(fields, ts("updated"))
	if g.opts&4 != 0 {
		fields = append(fields, ts("mvcc_timestamp"))
	}
	if bare {
		fields = append(fields, `{"type":["null",`+rec(tn)+`],"name":"record","default":null}`)
	} else if g.opts&8 != 0 {
		fields = append(fields,
			`{"type":["null",{"type":"record","name":"`+tn+`_source","fields":[{"name":"ts_hlc","type":["null","string"]},`+
				`{"name":"origin","type":"string"},{"name":"ids","type":{"type":"array","items":"long"}},{"name":"w","type":"double"},{"name":"b","type":"boolean"}]}],"name":"source","default":null}`,
			`{"type":["null","long"],"name":"ts_ns","default":null}`, ts("op"))
	}
	value = `{"type":"record","name":"` + tn + `_envelope","fields":[` + strings.Join(fields, ",") + `]` + ns + `}`
	return key, value
}

// diffBytes writes Avro bodies for a schema from a fuzzer's bytes: mostly
// valid encodings, with CockroachDB's text values (timestamps, intervals,
// decimal specials) drawn from lists of good and bad ones.
type diffBytes struct {
	b []byte
	i int
}

func (s *diffBytes) next() int {
	if s.i >= len(s.b) {
		return 0
	}
	s.i++
	return int(s.b[s.i-1])
}

func (s *diffBytes) word(n int) uint64 {
	var w uint64
	for range n {
		w = w<<8 | uint64(s.next())
	}
	return w
}

func (s *diffBytes) body(sc avro.Schema, flavour string) []byte {
	var out []byte
	s.write(&out, sc, flavour)
	return out
}

func appendLong(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

var (
	diffHLCs      = []string{"1.0000000002", "1712345678901234567.0000000003", "0.0000000000", "1.2?", "9223372036854775807.2147483647", "17.0000000001", "5", "x.y", "", "-1.0000000000"}
	diffIntervals = []string{"P1Y2M3DT4H5M6S", "PT0S", "P1YT-0.006S", "-P1D", "bogus", "P", "PT1.5S", "P-1Y-2M3DT-4H"}
	diffSpecials  = []string{"NaN", "Infinity", "-Infinity", "nan", "1.5", ""}
)

func (s *diffBytes) pick(list []string) string { return list[s.next()%len(list)] }

func (s *diffBytes) write(out *[]byte, sc avro.Schema, flavour string) {
	switch t := deref(sc).(type) {
	case *avro.NullSchema:
	case *avro.RecordSchema:
		for _, f := range t.Fields() {
			fl := ""
			if h, ok := crdbHint(f); ok {
				typ, _ := parseCRDBHint(h)
				fl = sqlBase(typ)
			}
			switch f.Name() {
			case "updated", "mvcc_timestamp", "ts_hlc":
				fl = "HLC"
			}
			s.write(out, f.Type(), fl)
		}
	case *avro.UnionSchema:
		types := t.Types()
		// Mostly a value branch: a byte under 32 (also the end of the
		// fuzzer's bytes) picks the first branch, null.
		i := 0
		if v := s.next(); v >= 32 && len(types) > 1 {
			i = 1 + v%(len(types)-1)
		}
		*out = appendLong(*out, int64(i))
		if i > 0 && types[i].Type() == avro.String && types[i-1].Type() == avro.Bytes {
			flavour = "DECSPECIAL"
		}
		s.write(out, types[i], flavour)
	case *avro.ArraySchema:
		var items []byte
		n := s.next() % 5
		if flavour == "BIT" || flavour == "VARBIT" {
			n = s.next() % 4
			if n > 0 {
				items = appendLong(items, int64(s.next()%67))
			}
			for range max(n-1, 0) {
				items = appendLong(items, int64(s.word(8)))
			}
		} else {
			for range n {
				s.write(&items, t.Items(), flavour)
			}
		}
		switch {
		case n == 0:
		case s.next()%3 == 0:
			// A negative count carries the block's byte size.
			*out = appendLong(*out, -int64(n))
			*out = appendLong(*out, int64(len(items)))
			*out = append(*out, items...)
		default:
			*out = appendLong(*out, int64(n))
			*out = append(*out, items...)
		}
		*out = appendLong(*out, 0)
	case *avro.PrimitiveSchema:
		lt, dec, _ := logicalOf(t)
		switch t.Type() {
		case avro.Boolean:
			*out = append(*out, byte(s.next()&1))
		case avro.Int:
			v := int64(int32(s.word(4))) >> (s.next() % 32)
			*out = appendLong(*out, v)
		case avro.Long:
			var v int64
			switch lt {
			case avro.TimeMicros:
				v = int64(s.word(8)%uint64(24*time.Hour/time.Microsecond+2)) - int64(s.next()%2)
			default:
				v = int64(s.word(8)) >> (s.next() % 64)
			}
			*out = appendLong(*out, v)
		case avro.Float:
			*out = binary.LittleEndian.AppendUint32(*out, uint32(s.word(4)))
		case avro.Double:
			*out = binary.LittleEndian.AppendUint64(*out, s.word(8))
		case avro.Bytes:
			n := s.next() % 16
			if dec != nil {
				n = s.next() % (dec.Precision()/2 + 3)
			}
			*out = appendLong(*out, int64(n))
			for range n {
				*out = append(*out, byte(s.next()))
			}
		case avro.String:
			var v string
			switch flavour {
			case "HLC":
				// Mostly valid, so that the columns after it get compared.
				if s.next()%4 != 0 {
					v = s.pick(diffHLCs[:6])
				} else {
					v = s.pick(diffHLCs)
				}
			case "INTERVAL":
				v = s.pick(diffIntervals)
			case "DECSPECIAL":
				v = s.pick(diffSpecials)
			default:
				b := make([]byte, s.next()%12)
				for i := range b {
					b[i] = byte(s.next())
				}
				v = string(b)
			}
			*out = appendLong(*out, int64(len(v)))
			*out = append(*out, v...)
		}
	}
}
