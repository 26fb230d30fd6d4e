package files

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// A record's key (see recHeader) is its primary-key values in an
// order-preserving encoding: bytes.Compare on two keys orders them as the
// values compare, column by column, so that a window's rows of one HLC come
// out in primary-key order (docs/SINK_FILES.md) while sorting and merging
// stay byte comparisons. Each column's encoding is self-delimiting (fixed
// width or terminated), so a key is never a prefix of another and the
// column boundaries need no length. Two keys are equal exactly when the
// values are the same row for the files writer (as appendValue would store
// them), so the key is also the row's identity within an HLC.
//
// Per column, after a tag (0x00 NULL, only inside arrays; 0x01 present):
//
//	INT, DATE, TIME, TIMESTAMP[TZ]  int64, sign bit flipped, big endian
//	FLOAT                           0x00 NaN bits | 0x01 IEEE bits made monotonic
//	BOOL                            0 or 1
//	STRING, BYTES, JSON, UUID       bytes with 0x00 escaped as 0x00 0xFF, then 0x00 0x01
//	                                (UUID as canonical lower-case text: byte order)
//	INTERVAL                        its length (months as 30 days, days as 24 hours)
//	                                as a signed 128-bit number, then months, days,
//	                                micros, each as an int64
//	DECIMAL                         numerically (see appendDecimalKey)
//	ARRAY                           per element 0x02 and the element, then 0x01:
//	                                element by element, a prefix first

// keyTag* order decimal classes as CockroachDB does: NaN first, then
// -Infinity, negatives, zero, positives, +Infinity.
const (
	keyTagNaN byte = iota + 1
	keyTagNegInf
	keyTagNeg
	keyTagZero
	keyTagPos
	keyTagPosInf
)

// appendKey appends v's order-preserving key encoding.
func (c *column) appendKey(b []byte, v any) ([]byte, error) {
	if v == nil {
		return append(b, 0), nil
	}
	bad := func() ([]byte, error) {
		return b, fmt.Errorf("%s column: unexpected Go value of type %T", c.t, v)
	}
	b = append(b, 1)
	switch c.t.Kind {
	case model.KindInt:
		switch x := v.(type) {
		case int64:
			return appendOrderedInt(b, x), nil
		case int:
			return appendOrderedInt(b, int64(x)), nil
		case int32:
			return appendOrderedInt(b, int64(x)), nil
		}
	case model.KindFloat:
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case float32:
			f = float64(x)
		default:
			return bad()
		}
		u := math.Float64bits(f)
		if math.IsNaN(f) {
			return binary.BigEndian.AppendUint64(append(b, 0), u), nil
		}
		if u&(1<<63) != 0 {
			u = ^u
		} else {
			u |= 1 << 63
		}
		return binary.BigEndian.AppendUint64(append(b, 1), u), nil
	case model.KindBool:
		if x, ok := v.(bool); ok {
			if x {
				return append(b, 1), nil
			}
			return append(b, 0), nil
		}
	case model.KindString, model.KindJSON, model.KindBytes:
		switch x := v.(type) {
		case string:
			return appendOrderedBytes(b, x), nil
		case []byte:
			return appendOrderedBytes(b, x), nil
		}
	case model.KindUUID:
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case []byte:
			if len(x) != 16 {
				return b, fmt.Errorf("invalid UUID of %d bytes", len(x))
			}
			s = formatUUID(x)
		default:
			return bad()
		}
		u, err := canonicalUUID(s)
		if err != nil {
			return b, err
		}
		return appendOrderedBytes(b, u), nil
	case model.KindInterval:
		if x, ok := v.(model.Interval); ok {
			const day = int64(24 * time.Hour / time.Microsecond)
			total := big.NewInt(int64(x.Months)*30 + int64(x.Days))
			total.Mul(total, big.NewInt(day))
			total.Add(total, big.NewInt(x.Micros))
			b = appendOrderedInt128(b, total)
			b = appendOrderedInt(b, int64(x.Months))
			b = appendOrderedInt(b, int64(x.Days))
			return appendOrderedInt(b, x.Micros), nil
		}
	case model.KindDecimal:
		d, ok := v.(model.Decimal)
		if !ok {
			return bad()
		}
		return c.appendDecimalKey(b, d)
	case model.KindDate:
		if x, ok := v.(time.Time); ok {
			return appendOrderedInt(b, epochDays(x)), nil
		}
	case model.KindTime:
		if x, ok := v.(time.Duration); ok {
			if err := checkTime(x); err != nil {
				return b, err
			}
			return appendOrderedInt(b, x.Microseconds()), nil
		}
	case model.KindTimestamp, model.KindTimestampTZ:
		if x, ok := v.(time.Time); ok {
			return appendOrderedInt(b, x.UnixMicro()), nil
		}
	case model.KindArray:
		x, ok := v.([]any)
		if !ok {
			return bad()
		}
		for i, e := range x {
			var err error
			if b, err = c.elem.appendKey(append(b, 2), e); err != nil {
				return b, fmt.Errorf("element %d: %w", i, err)
			}
		}
		return append(b, 1), nil
	}
	return bad()
}

// appendDecimalKey orders decimals numerically. A numeric column's value
// is first brought to the column's scale, as appendDecimal stores it, so
// 1.5 and 1.50 are one key there; a column stored as text keeps the text
// after the number, so 1.5 and 1.50 stay two keys (sorted by text), as the
// text is what the files hold.
//
// A finite non-zero |d| is 0.D × 10^E with D its digits without trailing
// zeros: E as an int64, then D's digits, then 0x00 (a shorter D is a
// smaller number with the same E). A negative d stores E and D's bytes
// complemented and ends in 0xFF, which reverses their order.
func (c *column) appendDecimalKey(b []byte, d model.Decimal) ([]byte, error) {
	switch d.Special {
	case "":
	case "NaN":
		return append(b, keyTagNaN), nil
	case "-Infinity":
		return append(b, keyTagNegInf), nil
	case "Infinity", "+Infinity":
		return append(b, keyTagPosInf), nil
	default:
		return b, fmt.Errorf("decimal with unknown special value %q", d.Special)
	}
	u, scale := d.Unscaled, d.Scale
	if u == nil {
		u = new(big.Int)
	}
	if !c.decText {
		v, err := d.Rescale(c.t.Scale)
		if err != nil {
			return b, err
		}
		if new(big.Int).Abs(v).Cmp(c.bound) >= 0 {
			return b, fmt.Errorf("decimal %s does not fit %s", d, c.t)
		}
		u, scale = v, c.t.Scale
	}
	switch u.Sign() {
	case 0:
		b = append(b, keyTagZero)
	default:
		digits := []byte(new(big.Int).Abs(u).String())
		exp := int64(len(digits)) - int64(scale)
		digits = bytes.TrimRight(digits, "0")
		if u.Sign() > 0 {
			b = append(b, keyTagPos)
			b = appendOrderedInt(b, exp)
			b = append(b, digits...)
			b = append(b, 0)
		} else {
			b = append(b, keyTagNeg)
			b = appendOrderedInt(b, ^exp)
			for _, ch := range digits {
				b = append(b, ^ch)
			}
			b = append(b, 0xFF)
		}
	}
	if !c.decText {
		return b, nil
	}
	return appendOrderedBytes(b, d.String()), nil
}

// appendOrderedInt appends x as 8 big-endian bytes with the sign bit
// flipped, so that byte order is numeric order.
func appendOrderedInt(b []byte, x int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(x)^(1<<63))
}

// appendOrderedInt128 appends v (|v| < 2^127) as 16 bytes of big-endian
// two's complement with the sign bit flipped.
func appendOrderedInt128(b []byte, v *big.Int) []byte {
	n := len(b)
	b = appendInt128(b, v)
	b[n] ^= 0x80
	return b
}

// appendOrderedBytes appends s with each 0x00 escaped as 0x00 0xFF and a
// 0x00 0x01 terminator: byte order, and never a prefix of another.
func appendOrderedBytes[T string | []byte](b []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			b = append(b, 0, 0xFF)
		} else {
			b = append(b, s[i])
		}
	}
	return append(b, 0, 1)
}

// compareRecords orders records by HLC, then key (by value, see appendKey),
// then arrival. The key's length in the header is skipped: it says where
// the key ends, not how it orders.
func compareRecords(a, b []byte) int {
	if c := bytes.Compare(a[:hlc.Size], b[:hlc.Size]); c != 0 {
		return c
	}
	ia, ib := recIdentity(a), recIdentity(b)
	if c := bytes.Compare(ia[recHeader:], ib[recHeader:]); c != 0 {
		return c
	}
	return bytes.Compare(a[len(ia):], b[len(ib):])
}
