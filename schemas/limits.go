package schemas

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// This file bounds what decoding one message may cost, relative to its
// size: array items (which can take zero bytes each), BIT widths and
// DECIMAL digits. Without these bounds a 2 KB message of nested arrays of
// nulls claims 2^20 items per 5 bytes and costs seconds of CPU, and a 2 MB
// message of zero BIT words decodes into a 128 MB string.

// ErrDecodeLimit is wrapped by decode errors for a message that would cost
// more to decode than its size allows: more array items than the per-message
// budget (DecodeItemsPerByte), or a BIT value wider than WithMaxBitWidth.
// Like every decode error it is the record's fault (a poison record).
var ErrDecodeLimit = errors.New("decode limit exceeded")

// DecodeItemsPerByte and DecodeItemsSlack set the per-message budget of
// array items: a message body of n bytes may decode or skip at most
// DecodeItemsPerByte*n + DecodeItemsSlack items, counted over all its
// arrays, nested ones included. An item counts once per plan node it visits
// (an item of ["null", T] counts 2, an item of a record of three fields 4).
// CockroachDB's items take at least one byte each (["null", T] unions and
// BIT words) and count at most 2, so its messages use at most a quarter of
// the budget; only items of zero-width types (null, empty records), which
// CockroachDB never writes, can exceed it.
const (
	DecodeItemsPerByte = 8
	DecodeItemsSlack   = 4096
)

// DefaultMaxBitWidth is the default of WithMaxBitWidth: 2^23 bits, 1 MiB
// of bit data (CockroachDB recommends keeping BIT values under 1 MB), which
// decodes into an 8 MiB string.
const DefaultMaxBitWidth = 1 << 23

// WithMaxBitWidth bounds the width of a decoded BIT/VARBIT value (default
// DefaultMaxBitWidth). A column declared BIT(n) or VARBIT(n) is bounded by
// n as well. A wider value is a decode error wrapping ErrDecodeLimit.
func WithMaxBitWidth(bits int) DecoderOption {
	return decoderOptionFunc(func(d *Decoder) {
		if bits > 0 {
			d.maxBits = bits
		}
	})
}

// itemBudget is the array-item budget of a message body of n bytes.
func itemBudget(n int) int { return DecodeItemsPerByte*n + DecodeItemsSlack }

// chargeItems takes c items of elem from r's budget.
func (r *reader) chargeItems(c int, elem *node) error {
	w := max(elem.weight, 1)
	if c > r.budget/w {
		return fmt.Errorf("array items exceed the budget of %d for a %d-byte message (%d per byte + %d): %w",
			itemBudget(len(r.b)), len(r.b), DecodeItemsPerByte, DecodeItemsSlack, ErrDecodeLimit)
	}
	r.budget -= c * w
	return nil
}

// weigh sets the weight of n and of every node below it: the plan nodes one
// value of n visits, not counting the items of nested arrays (they are
// charged by their own block headers). A union weighs its heaviest branch.
func weigh(n *node) int {
	if n == nil {
		return 0
	}
	w := 1
	switch n.op {
	case opUnion:
		hb := 0
		for _, b := range n.branches {
			hb = max(hb, weigh(b))
		}
		w += hb
	case opRecord:
		for _, f := range n.fields {
			w += weigh(f)
		}
	case opArray, opBits:
		weigh(n.elem)
	}
	n.weight = w
	return w
}

// bitWidth returns n of a BIT(n)/VARBIT(n) SQL type, or 0 when the type
// declares no width (VARBIT, or no hint).
func bitWidth(sqlType string) int {
	u := strings.ToUpper(strings.TrimSpace(sqlType))
	i, j := strings.IndexByte(u, '('), strings.IndexByte(u, ')')
	if i < 0 || j < i {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(u[i+1 : j]))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// maxExactPrecision bounds the precisions whose 10^p is computed for an
// exact digit check; beyond it (no CockroachDB type comes near) a byte
// length check stands in, exact to within one digit.
const maxExactPrecision = 4096

// decimalLimit is what a DECIMAL(p, s) node checks unscaled values against:
// |unscaled| < 10^p.
type decimalLimit struct {
	precision int
	maxBytes  int      // the most two's-complement bytes a p-digit value takes
	pow64     int64    // 10^p when p <= 18, else 0
	pow       *big.Int // 10^p when 18 < p <= maxExactPrecision
}

func newDecimalLimit(p int) *decimalLimit {
	l := &decimalLimit{precision: p}
	// |v| < 10^p < 2^ceil(p*log2(10)), plus a sign bit, plus one byte of
	// leeway for a writer that pads with a redundant sign byte.
	// (A precision beyond 2^30, which only a hostile schema has, is taken
	// as 2^30 here so that the product cannot overflow.)
	l.maxBytes = int(math.Ceil(float64(min(p, 1<<30))*math.Log2(10)))/8 + 2
	switch {
	case p <= 18:
		l.pow64 = 1
		for range p {
			l.pow64 *= 10
		}
	case p <= maxExactPrecision:
		l.pow = new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(p)), nil)
	}
	return l
}

// minimalTwos returns b without redundant leading sign bytes (0x00 before
// a byte below 0x80, 0xff before one of 0x80 or above): they do not change
// the value, and Avro allows them, so a padded value of few digits must not
// fail checkLen. goavro, CockroachDB's encoder, writes at most one.
func minimalTwos(b []byte) []byte {
	for len(b) > 1 && ((b[0] == 0 && b[1] < 0x80) || (b[0] == 0xff && b[1] >= 0x80)) {
		b = b[1:]
	}
	return b
}

// checkLen rejects, before any big.Int is built, an unscaled value whose
// two's-complement bytes b (minimal, see minimalTwos) are too many for the
// precision.
func (l *decimalLimit) checkLen(b []byte) error {
	if len(b) > l.maxBytes {
		return fmt.Errorf("decimal of %d bytes has more digits than its precision %d", len(b), l.precision)
	}
	return nil
}

// check rejects an unscaled value v with more digits than the precision.
func (l *decimalLimit) check(v *big.Int) error {
	switch {
	case l.pow64 != 0:
		if v.IsInt64() {
			if x := v.Int64(); x > -l.pow64 && x < l.pow64 {
				return nil
			}
		}
	case l.pow != nil:
		if v.CmpAbs(l.pow) < 0 {
			return nil
		}
	default:
		return nil // checkLen is the bound
	}
	return fmt.Errorf("decimal with %d digits exceeds its precision %d", len(v.Text(10))-boolInt(v.Sign() < 0), l.precision)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
