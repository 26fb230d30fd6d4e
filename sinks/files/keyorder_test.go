package files

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

func dec(unscaled int64, scale int) model.Decimal {
	return model.Decimal{Unscaled: big.NewInt(unscaled), Scale: scale}
}

// TestKeyEncodingOrdersByValue: for every key type, values listed in
// ascending order encode to strictly ascending bytes, and values that are
// one key encode equally.
func TestKeyEncodingOrdersByValue(t *testing.T) {
	ts := func(s string) time.Time {
		x, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	huge, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	cases := []struct {
		t model.Type
		// asc are in ascending order; same are pairs that are one key.
		asc  []any
		same [][2]any
	}{
		{t: model.Type{Kind: model.KindInt}, asc: []any{int64(math.MinInt64), int64(-300), int64(-64), int64(-63), int64(-2), int64(-1), int64(0), int64(1), int64(2), int64(9), int64(10), int64(63), int64(64), int64(128), int64(1 << 40), int64(math.MaxInt64)},
			same: [][2]any{{int64(7), 7}, {int32(-3), int64(-3)}}},
		{t: model.Type{Kind: model.KindFloat}, asc: []any{math.NaN(), math.Inf(-1), -1e300, -1.5, -1e-300, math.Copysign(0, -1), 0.0, 1e-300, 1.0, 2.5, 10.0, math.Inf(1)},
			same: [][2]any{{float32(1.5), 1.5}}},
		{t: model.Type{Kind: model.KindBool}, asc: []any{false, true}},
		{t: model.Type{Kind: model.KindString}, asc: []any{"", "\x00", "\x00\x00", "\x01", "A", "Z", "a", "a\x00", "a\x00b", "a\x01", "aa", "ab", "b", "é", "🍦"},
			same: [][2]any{{"x", []byte("x")}}},
		{t: model.Type{Kind: model.KindBytes}, asc: []any{[]byte{}, []byte{0}, []byte{0, 0xFF}, []byte{0, 0xFF, 0}, []byte{1}, []byte{0xFF}}},
		{t: model.Type{Kind: model.KindUUID}, asc: []any{"00000000-0000-0000-0000-000000000000", "0000000a-0000-0000-0000-000000000000", "7fffffff-ffff-ffff-ffff-ffffffffffff", "80000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"},
			same: [][2]any{{"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}, {[]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}}},
		{t: model.Type{Kind: model.KindInterval}, asc: []any{
			model.Interval{Months: -1}, model.Interval{Days: -1}, model.Interval{Micros: -1}, model.Interval{},
			model.Interval{Micros: 1}, model.Interval{Days: 1, Micros: -1}, model.Interval{Micros: 24 * 3600e6}, model.Interval{Days: 1},
			model.Interval{Days: 1, Micros: 3600e6}, model.Interval{Days: 29}, model.Interval{Days: 30}, model.Interval{Months: 1},
			model.Interval{Days: 31}, model.Interval{Months: math.MaxInt32}}},
		{t: model.Type{Kind: model.KindDate}, asc: []any{ts("1066-10-14T00:00:00Z"), ts("1969-12-31T00:00:00Z"), ts("1970-01-01T00:00:00Z"), ts("2024-02-29T00:00:00Z")}},
		{t: model.Type{Kind: model.KindTime}, asc: []any{time.Duration(0), time.Microsecond, time.Hour, 24 * time.Hour}},
		{t: model.Type{Kind: model.KindTimestampTZ}, asc: []any{ts("1900-01-01T00:00:00Z"), ts("1969-12-31T23:59:59.999999Z"), ts("1970-01-01T00:00:00Z"), ts("2024-01-01T00:00:00.000001Z")}},
		{t: model.Type{Kind: model.KindDecimal, Precision: 10, Scale: 2}, asc: []any{
			model.Decimal{Special: "NaN"}, model.Decimal{Special: "-Infinity"}, dec(-99999999, 2), dec(-1000, 2), dec(-999, 2),
			dec(-12, 1), dec(-5, 2), dec(0, 0), dec(1, 2), dec(10, 2), dec(1, 0), dec(999, 2), dec(10, 0), dec(99999999, 2), model.Decimal{Special: "Infinity"}},
			same: [][2]any{{dec(15, 1), dec(150, 2)}, {dec(0, 0), dec(0, 2)}}},
		{t: model.Type{Kind: model.KindDecimal, Precision: 38, Scale: 10}, asc: []any{dec(-1, -20), dec(-5, 0), dec(0, 0), dec(1, 10), dec(123, 1), model.Decimal{Unscaled: huge, Scale: 10}}},
		// No precision: stored as text, so 1.5 and 1.50 stay two keys,
		// numerically equal and ordered by their text.
		{t: model.Type{Kind: model.KindDecimal}, asc: []any{
			model.Decimal{Special: "NaN"}, model.Decimal{Special: "-Infinity"}, model.Decimal{Unscaled: new(big.Int).Neg(huge), Scale: 0}, dec(-10, 0),
			dec(-9, 0), dec(-12, 1), dec(-123, 3), dec(-12, 2), dec(-1, 3), dec(0, 0), dec(0, 2), dec(1, 3), dec(1, 2), dec(12, 2), dec(123, 3),
			dec(15, 1), dec(150, 2), dec(9, 0), dec(10, 0), dec(1, -3), model.Decimal{Unscaled: huge, Scale: 0}, model.Decimal{Special: "Infinity"}}},
		{t: model.Type{Kind: model.KindArray, Elem: &model.Type{Kind: model.KindInt}}, asc: []any{
			[]any{}, []any{nil}, []any{nil, int64(1)}, []any{int64(-1)}, []any{int64(1)}, []any{int64(1), nil}, []any{int64(1), int64(2)}, []any{int64(2)}, []any{int64(10)}}},
		{t: model.Type{Kind: model.KindArray, Elem: &model.Type{Kind: model.KindString}}, asc: []any{
			[]any{}, []any{""}, []any{"", ""}, []any{"a"}, []any{"a", "b"}, []any{"a\x00"}, []any{"ab"}}},
	}
	for _, tc := range cases {
		t.Run(tc.t.String(), func(t *testing.T) {
			c, err := newColumn("k", tc.t, true)
			if err != nil {
				t.Fatal(err)
			}
			enc := func(v any) []byte {
				b, err := c.appendKey(nil, v)
				if err != nil {
					t.Fatalf("appendKey(%v): %v", v, err)
				}
				return b
			}
			for i := 1; i < len(tc.asc); i++ {
				a, b := enc(tc.asc[i-1]), enc(tc.asc[i])
				if bytes.Compare(a, b) >= 0 {
					t.Errorf("key of %v (%x) not below key of %v (%x)", tc.asc[i-1], a, tc.asc[i], b)
				}
				if bytes.HasPrefix(b, a) || bytes.HasPrefix(a, b) {
					t.Errorf("keys of %v and %v: one is a prefix of the other", tc.asc[i-1], tc.asc[i])
				}
			}
			for _, p := range tc.same {
				if a, b := enc(p[0]), enc(p[1]); !bytes.Equal(a, b) {
					t.Errorf("keys of %v (%x) and %v (%x) differ: they are one key", p[0], a, p[1], b)
				}
			}
		})
	}
}

// TestInitialScanRowsAreInKeyOrder: an initial scan writes every row at one
// HLC; the files hold them in primary-key order, by value (negative numbers,
// 9 before 10, composite keys column by column), from memory and from
// spilled sort runs alike.
func TestInitialScanRowsAreInKeyOrder(t *testing.T) {
	for _, mem := range []int64{0, 512} {
		t.Run(fmt.Sprintf("memory=%d", mem), func(t *testing.T) {
			dir := t.TempDir()
			w := openDir(t, dir, Config{MemoryLimit: mem})
			ids := []int64{math.MinInt64, -1000, -64, -63, -10, -9, -2, -1, 0, 1, 2, 3, 8, 9, 10, 11, 63, 64, 99, 100, 127, 128, 1000, 1 << 40, math.MaxInt64}
			rng := rand.New(rand.NewPCG(1, 2))
			var ints []sinks.Change
			for _, i := range rng.Perm(len(ids)) {
				ints = append(ints, ch(sinks.OpInsert, h(1), ids[i], fmt.Sprint("v", ids[i]), int64(0)))
			}
			decT := model.Type{Kind: model.KindDecimal, Precision: 10, Scale: 2}
			comp := table("comp", []int{0, 1, 2},
				col("s", model.KindString), model.Column{Name: "d", Type: decT}, col("n", model.KindInt), col("v", model.KindInt))
			type ck struct {
				s string
				d int64 // hundredths
				n int64
			}
			want := []ck{{"", 0, 3}, {"a", -1000, 5}, {"a", -5, 10}, {"a", -5, 11}, {"a", 0, -1}, {"a", 0, 9}, {"a", 0, 10}, {"a", 5, -100},
				{"a", 90, 0}, {"a", 100, 0}, {"ab", -1, 0}, {"b", 0, -1}, {"b", 0, 1}}
			var comps []sinks.Change
			for _, i := range rng.Perm(len(want)) {
				k := want[i]
				comps = append(comps, ch(sinks.OpInsert, h(1), k.s, dec(k.d, 2), k.n, int64(i)))
			}
			ti := kv("ints")
			var writes []write
			for i := 0; i < len(ints); i += 4 {
				writes = append(writes, write{ti, ints[i:min(i+4, len(ints))]})
			}
			for i := 0; i < len(comps); i += 4 {
				writes = append(writes, write{comp, comps[i:min(i+4, len(comps))]})
			}
			commit(t, w, []sinks.Checkpoint{cp(0, h(1), 1)}, writes...)

			db := duck(t)
			got := query(t, db, `SELECT CAST(id AS VARCHAR) FROM `+parquetSrc(dir, "ints")+` ORDER BY filename, file_row_number`)
			var wantInts [][]string
			for _, id := range ids {
				wantInts = append(wantInts, []string{fmt.Sprint(id)})
			}
			eq(t, "ints in file order", got, wantInts)
			got = query(t, db, `SELECT s, CAST(d AS VARCHAR), CAST(n AS VARCHAR) FROM `+parquetSrc(dir, "comp")+` ORDER BY filename, file_row_number`)
			var wantComp [][]string
			for _, k := range want {
				wantComp = append(wantComp, []string{k.s, dec(k.d, 2).String(), fmt.Sprint(k.n)})
			}
			eq(t, "composite keys in file order", got, wantComp)
		})
	}
}
