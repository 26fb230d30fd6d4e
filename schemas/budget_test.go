package schemas

import (
	"context"
	"errors"
	"math/big"
	"runtime"
	"strings"
	"testing"
)

// Allocation budget of one Extract plus one DecodeRow of a message: at most
// allocPerByte bytes per byte of key and value, plus allocSlack. The worst
// honest case is BIT: a zero word takes one byte and decodes into 64
// characters (plus the word itself while decoding).
const (
	allocPerByte = 256
	allocSlack   = 64 << 10
)

// allocated returns the bytes fn allocates, averaged over runs calls.
// runtime.ReadMemStats flushes the per-P caches, so TotalAlloc is exact.
func allocated(runs int, fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		fn()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestHostileMessagesStayWithinBudget decodes messages whose decoding
// could cost far more than their size and checks, for each, the outcome of
// Extract and DecodeRow, the array items visited against the per-message
// budget, and the bytes allocated against allocPerByte.
func TestHostileMessagesStayWithinBudget(t *testing.T) {
	_, reg := newSeededRegistry(t, map[int]string{
		idFooKey:    schemaFile(t, "foo-key.avsc"),
		idZeroWidth: zeroWidthValueSchema,
		idBudget:    budgetValueSchema,
	})
	key := hx(t, goldenKey)
	_, zeroWidth2K := zeroWidthMessage(t, 2048)
	maxWords := DefaultMaxBitWidth / 64
	zeroWords := func(n int) []int64 { return make([]int64, n) }
	for _, tc := range []struct {
		name  string
		value []byte
		// wantExtract and wantDecode are substrings of the errors, "" for
		// success; limit says they must wrap ErrDecodeLimit.
		wantExtract, wantDecode string
		limit                   bool
		maxAlloc                uint64 // 0: the allocPerByte budget
		check                   func(t *testing.T, row Row)
	}{
		{name: "nested arrays of 2^20 nulls each, 2 KB", value: zeroWidth2K,
			wantExtract: "budget", wantDecode: "budget", limit: true},
		{name: "an array of 100 nulls within the slack", value: zeroWidthMessageSmall(t, 100)},
		{name: "an array of 2^20 nulls beyond the budget", value: zeroWidthMessageSmall(t, 1<<20),
			wantExtract: "budget", wantDecode: "budget", limit: true},
		{name: "INT8[] of 10000 NULLs", value: budgetRow(t, 6, avroNullItems(10000)),
			check: func(t *testing.T, row Row) {
				if a, _ := row.After[6].([]any); len(a) != 10000 {
					t.Errorf("arr has %d items", len(a))
				}
			}},
		{name: "VARBIT one bit over the default width", value: budgetRow(t, 4, avroBits(1, zeroWords(maxWords+1)...)),
			wantDecode: "exceeds the limit", limit: true},
		{name: "VARBIT at the default width", value: budgetRow(t, 4, avroBits(64, zeroWords(maxWords)...)),
			check: func(t *testing.T, row Row) {
				if s, _ := row.After[4].(string); len(s) != DefaultMaxBitWidth || row.Size < DefaultMaxBitWidth {
					t.Errorf("vb of %d bits, Row.Size %d", len(s), row.Size)
				}
			}},
		{name: "VARBIT of 1 MB of zero words (a 64 MB string)", value: budgetRow(t, 4, avroBits(64, zeroWords(1<<20-1)...)),
			wantDecode: "exceeds the limit", limit: true, maxAlloc: allocSlack},
		{name: "BIT(3) holding 65 bits", value: budgetRow(t, 3, avroBits(1, 0, 0)), wantDecode: "wider than its column's 3"},
		{name: "BIT(3) holding 3 bits", value: budgetRow(t, 3, avroBits(3, 1<<62)),
			check: func(t *testing.T, row Row) {
				if row.After[3] != "010" {
					t.Errorf("bit = %#v", row.After[3])
				}
			}},
		{name: "VARBIT(64) holding 64 bits", value: budgetRow(t, 5, avroBits(64, -1))},
		{name: "VARBIT(64) holding 65 bits", value: budgetRow(t, 5, avroBits(1, -1, -1)), wantDecode: "wider than its column's 64"},
		{name: "DECIMAL(10,2) of 10 digits", value: budgetRow(t, 1, avroDecimal(decimalOf("-9999999999"))),
			check: func(t *testing.T, row Row) {
				if !sameValue(row.After[1], dec("-9999999999", 2)) {
					t.Errorf("d = %v", row.After[1])
				}
			}},
		{name: "DECIMAL(10,2) of 11 digits", value: budgetRow(t, 1, avroDecimal(decimalOf("10000000000"))), wantDecode: "precision 10"},
		{name: "DECIMAL(10,2) of -11 digits", value: budgetRow(t, 1, avroDecimal(decimalOf("-10000000000"))), wantDecode: "precision 10"},
		{name: "DECIMAL(38,10) of 38 digits", value: budgetRow(t, 2, avroDecimal(decimalOf(strings.Repeat("9", 38))))},
		{name: "DECIMAL(38,10) of 39 digits", value: budgetRow(t, 2, avroDecimal(decimalOf("1"+strings.Repeat("0", 38)))), wantDecode: "precision 38"},
		// Avro allows redundant sign bytes; they add no digits.
		{name: "DECIMAL(10,2) of 0 in 8 bytes", value: budgetRow(t, 1, avroPaddedDecimal(0x00, 7, decimalOf("0"))),
			check: func(t *testing.T, row Row) {
				if !sameValue(row.After[1], dec("0", 2)) {
					t.Errorf("d = %v", row.After[1])
				}
			}},
		{name: "DECIMAL(10,2) of 10 digits after 8 sign bytes", value: budgetRow(t, 1, avroPaddedDecimal(0xff, 8, decimalOf("-9999999999"))),
			check: func(t *testing.T, row Row) {
				if !sameValue(row.After[1], dec("-9999999999", 2)) {
					t.Errorf("d = %v", row.After[1])
				}
			}},
		{name: "DECIMAL(10,2) of 11 digits after 8 sign bytes", value: budgetRow(t, 1, avroPaddedDecimal(0x00, 8, decimalOf("10000000000"))), wantDecode: "precision 10"},
		{name: "DECIMAL(38,10) of 1 MB", value: budgetRow(t, 2, avroDecimal(new(big.Int).Lsh(big.NewInt(1), 8<<20))),
			wantDecode: "precision 38", maxAlloc: allocSlack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(reg)
			items := 0
			d.observe = func(n, _ int) { items = n }
			ctx := context.Background()
			_, body, _ := ParseFrame(tc.value)
			budget := itemBudget(len(body)) + itemBudget(len(key)-FrameHeaderSize)
			check := func(what string, err error, want string) {
				t.Helper()
				switch {
				case want == "" && err != nil:
					t.Fatalf("%s: %v", what, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Fatalf("%s: error %v, want one containing %q", what, err, want)
				case want != "" && tc.limit && !errors.Is(err, ErrDecodeLimit):
					t.Errorf("%s: %v does not wrap ErrDecodeLimit", what, err)
				}
				var de *DecodeError
				if err != nil && !errors.As(err, &de) {
					t.Errorf("%s: error %T is not a *DecodeError", what, err)
				}
				if items > budget {
					t.Errorf("%s visited %d array items, budget %d for %d bytes", what, items, budget, len(body))
				}
			}
			_, err := d.Extract(ctx, "t", 0, 7, key, tc.value)
			check("Extract", err, tc.wantExtract)
			row, err := d.DecodeRow(ctx, key, tc.value)
			check("DecodeRow", err, tc.wantDecode)
			if tc.check != nil {
				tc.check(t, row)
			}
			limit := tc.maxAlloc
			if limit == 0 {
				limit = uint64(allocPerByte*(len(key)+len(tc.value)) + allocSlack)
			}
			d.observe = nil
			if n := allocated(4, func() {
				_, _ = d.Extract(ctx, "t", 0, 7, key, tc.value)
				_, _ = d.DecodeRow(ctx, key, tc.value)
			}); n > limit {
				t.Errorf("decoding a %d-byte message allocated %d bytes, budget %d", len(tc.value), n, limit)
			}
		})
	}
}

// TestDecimalLimitBytes checks the byte-length bound of each precision
// against the longest values of that precision, both signs, and the exact
// digit check one past them.
func TestDecimalLimitBytes(t *testing.T) {
	for _, tc := range []struct {
		precision int
		fits      string // the largest unscaled value of that precision
	}{
		{1, "9"}, {2, "99"}, {3, "999"}, {18, "999999999999999999"}, {19, "9999999999999999999"},
		{38, strings.Repeat("9", 38)}, {4096, strings.Repeat("9", 4096)}, {5000, strings.Repeat("9", 5000)},
	} {
		l := newDecimalLimit(tc.precision)
		for _, s := range []string{tc.fits, "-" + tc.fits} {
			if err := l.checkLen(twosComplement(decimalOf(s))); err != nil {
				t.Errorf("precision %d: %v", tc.precision, err)
			}
			if err := l.check(decimalOf(s)); err != nil {
				t.Errorf("precision %d: %v", tc.precision, err)
			}
		}
		over := new(big.Int).Add(decimalOf(tc.fits), big.NewInt(1))
		if err := l.check(over); err == nil && tc.precision <= maxExactPrecision {
			t.Errorf("precision %d accepts %d digits", tc.precision, len(over.String()))
		}
		if err := l.checkLen(make([]byte, l.maxBytes+1)); err == nil {
			t.Errorf("precision %d accepts %d bytes", tc.precision, l.maxBytes+1)
		}
	}
	if l := newDecimalLimit(1 << 62); l.maxBytes <= 0 {
		t.Errorf("precision 2^62: maxBytes %d", l.maxBytes)
	}
}
