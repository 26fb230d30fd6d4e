package postgres

import (
	"encoding/binary"
	"math/big"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/highwater-dev/highwater/hlc"
)

// pgx encodes pgtype.Numeric through math/big (an Exp and a DivMod per
// base-10000 digit): a third of the writer's CPU when it COPYs 100k rows of
// a window, every one with an _hw_updated and most with a DECIMAL. fastNum
// is a NUMERIC whose digits fit in 64 bits, encoded in PostgreSQL's binary
// form with integer arithmetic only; every other value still takes pgx's
// codec.

// fastNum is the NUMERIC whole + frac/10^scale, negated if neg, with
// 0 <= frac < 10^scale and scale <= maxFastScale.
type fastNum struct {
	whole uint64
	frac  uint64
	scale int16
	neg   bool
}

// maxFastScale keeps frac, padded to a multiple of 4 digits, below 10^16.
const maxFastScale = 16

var upow10 = [...]uint64{1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000,
	100_000_000, 1_000_000_000, 10_000_000_000, 100_000_000_000, 1_000_000_000_000,
	10_000_000_000_000, 100_000_000_000_000, 1_000_000_000_000_000,
	10_000_000_000_000_000, 100_000_000_000_000_000, 1_000_000_000_000_000_000}

// hlcNum returns h as the DECIMAL(38,10) of _hw_updated (HLC.Unscaled with
// scale 10), and false for an HLC outside what fastNum holds.
func hlcNum(h hlc.Timestamp) (fastNum, bool) {
	if h.WallTime < 0 || h.Logical < 0 {
		return fastNum{}, false
	}
	return fastNum{whole: uint64(h.WallTime), frac: uint64(h.Logical), scale: 10}, true
}

// hlcValue is what COPY sends for _hw_updated.
func hlcValue(h hlc.Timestamp) any {
	if n, ok := hlcNum(h); ok {
		return n
	}
	return hlcToPG(h)
}

// decimalNum returns the finite decimal unscaled*10^-scale as a fastNum,
// and false if it does not fit one.
func decimalNum(unscaled *big.Int, scale int) (fastNum, bool) {
	if scale < 0 || scale > maxFastScale || (unscaled != nil && !unscaled.IsInt64()) {
		return fastNum{}, false
	}
	var u int64
	if unscaled != nil {
		u = unscaled.Int64()
	}
	n := fastNum{scale: int16(scale), neg: u < 0}
	abs := uint64(u)
	if n.neg {
		abs = -abs // two's complement: right for math.MinInt64 too
	}
	n.whole, n.frac = abs/upow10[scale], abs%upow10[scale]
	return n, true
}

// appendBinary appends n in NUMERIC's binary form: ndigits, weight, sign,
// dscale (int16 each), then base-10000 digits, most significant first,
// without leading or trailing zero digits.
func (n fastNum) appendBinary(buf []byte) []byte {
	var digits [10]uint16 // 5 for a uint64's whole part, 4 for 16 fraction digits
	// Whole part, least significant digit first into the front of digits.
	nw := 0
	var whole [5]uint16
	for w := n.whole; w != 0; w /= 10_000 {
		whole[nw] = uint16(w % 10_000)
		nw++
	}
	nd := 0
	for i := nw - 1; i >= 0; i-- {
		digits[nd] = whole[i]
		nd++
	}
	// Fraction, padded on the right to whole base-10000 digits.
	nf := (int(n.scale) + 3) / 4
	f := n.frac * upow10[nf*4-int(n.scale)]
	for i := nf - 1; i >= 0; i-- {
		digits[nd+i] = uint16(f % 10_000)
		f /= 10_000
	}
	nd += nf
	weight := nw - 1
	// Leading zeros (only in the fraction of a number below 1) and
	// trailing zeros are not stored.
	first := 0
	for first < nd && digits[first] == 0 {
		first++
		weight--
	}
	for nd > first && digits[nd-1] == 0 {
		nd--
	}
	var sign uint16
	if n.neg && nd > first {
		sign = 0x4000
	}
	if nd == first {
		weight = 0
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(nd-first))
	buf = binary.BigEndian.AppendUint16(buf, uint16(int16(weight)))
	buf = binary.BigEndian.AppendUint16(buf, sign)
	buf = binary.BigEndian.AppendUint16(buf, uint16(n.scale))
	for _, d := range digits[first:nd] {
		buf = binary.BigEndian.AppendUint16(buf, d)
	}
	return buf
}

// fastNumericCodec is pgx's NumericCodec that also encodes fastNum in
// binary.
type fastNumericCodec struct{ pgtype.NumericCodec }

func (c fastNumericCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(fastNum); ok && format == pgtype.BinaryFormatCode {
		return fastNumPlan{}
	}
	return c.NumericCodec.PlanEncode(m, oid, format, value)
}

type fastNumPlan struct{}

func (fastNumPlan) Encode(value any, buf []byte) ([]byte, error) {
	return value.(fastNum).appendBinary(buf), nil
}

// registerFastNumeric makes conn encode fastNum values for NUMERIC columns.
func registerFastNumeric(conn *pgx.Conn) {
	conn.TypeMap().RegisterType(&pgtype.Type{Name: "numeric", OID: pgtype.NumericOID, Codec: fastNumericCodec{}})
}
