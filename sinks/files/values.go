package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// Values are converted once, in Tx.Write, into a compact binary form that
// the window's spill files hold; Commit decodes them into Parquet values or
// JSON. The form is private to one process and one window.
//
//	null:           0x00
//	non-null:       0x01, then by the column's codec:
//	  int64         varint (INT, DATE days, TIME micros, TIMESTAMP micros, DECIMAL p<=18 unscaled)
//	  double        8 bytes little endian
//	  bool          1 byte
//	  bytes         uvarint length, bytes (STRING, BYTES, UUID, JSON, INTERVAL text, wide DECIMAL text)
//	  decimal128    16 bytes, big-endian two's complement unscaled (DECIMAL p 19..38)
//	  list          uvarint count, each element as above

// codec is how a column's values are encoded.
type codec uint8

const (
	codecInt64 codec = iota
	codecDouble
	codecBool
	codecBytes
	codecDecimal128
	codecList
)

// column is one column of a table version as the files hold it.
type column struct {
	name  string
	t     model.Type
	codec codec
	// decText marks a DECIMAL stored as its text.
	decText bool
	// bound is 10^precision for a numeric DECIMAL.
	bound *big.Int
	elem  *column
	key   bool
}

func newColumn(name string, t model.Type, key bool) (*column, error) {
	c := &column{name: name, t: t, key: key}
	switch t.Kind {
	case model.KindInt, model.KindDate, model.KindTime, model.KindTimestamp, model.KindTimestampTZ:
		c.codec = codecInt64
	case model.KindFloat:
		c.codec = codecDouble
	case model.KindBool:
		c.codec = codecBool
	case model.KindString, model.KindBytes, model.KindUUID, model.KindJSON, model.KindInterval:
		c.codec = codecBytes
	case model.KindDecimal:
		switch {
		case sinks.DecimalAsText(t):
			c.codec, c.decText = codecBytes, true
		case t.Precision <= 18:
			c.codec = codecInt64
		default:
			c.codec = codecDecimal128
		}
		if !c.decText {
			c.bound = new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Precision)), nil)
		}
	case model.KindArray:
		if t.Elem == nil {
			return nil, fmt.Errorf("column %q: array type without element type", name)
		}
		if t.Elem.Kind == model.KindArray {
			return nil, fmt.Errorf("column %q: nested array type %s is not supported", name, t)
		}
		e, err := newColumn(name, *t.Elem, false)
		if err != nil {
			return nil, err
		}
		c.codec, c.elem = codecList, e
	default:
		return nil, fmt.Errorf("column %q: unsupported type %s", name, t)
	}
	return c, nil
}

// node returns the column's Parquet schema node (without its repetition).
func (c *column) node() parquet.Node {
	switch c.t.Kind {
	case model.KindInt:
		return parquet.Int(64)
	case model.KindFloat:
		return parquet.Leaf(parquet.DoubleType)
	case model.KindBool:
		return parquet.Leaf(parquet.BooleanType)
	case model.KindBytes:
		return parquet.Leaf(parquet.ByteArrayType)
	case model.KindJSON:
		return parquet.JSON()
	case model.KindDecimal:
		switch {
		case c.decText:
			return parquet.String()
		case c.t.Precision <= 9:
			return parquet.Decimal(c.t.Scale, c.t.Precision, parquet.Int32Type)
		case c.t.Precision <= 18:
			return parquet.Decimal(c.t.Scale, c.t.Precision, parquet.Int64Type)
		}
		return parquet.Decimal(c.t.Scale, c.t.Precision, parquet.FixedLenByteArrayType(16))
	case model.KindDate:
		return parquet.Date()
	case model.KindTime:
		return parquet.TimeAdjusted(parquet.Microsecond, false)
	case model.KindTimestamp:
		return parquet.TimestampAdjusted(parquet.Microsecond, false)
	case model.KindTimestampTZ:
		return parquet.TimestampAdjusted(parquet.Microsecond, true)
	case model.KindArray:
		return parquet.List(parquet.Optional(c.elem.node()))
	}
	// STRING, UUID (as canonical text: not every reader knows Parquet's
	// UUID type), INTERVAL (as PostgreSQL-style text).
	return parquet.String()
}

// parquetType names the column's Parquet type for docs and the table
// catalog, e.g. "DECIMAL(12,2)", "TIMESTAMP(MICROS,UTC)", "LIST<STRING>".
func (c *column) parquetType() string {
	switch c.t.Kind {
	case model.KindInt:
		return "INT64"
	case model.KindFloat:
		return "DOUBLE"
	case model.KindBool:
		return "BOOLEAN"
	case model.KindBytes:
		return "BINARY"
	case model.KindJSON:
		return "JSON"
	case model.KindDecimal:
		if c.decText {
			return "STRING"
		}
		return fmt.Sprintf("DECIMAL(%d,%d)", c.t.Precision, c.t.Scale)
	case model.KindDate:
		return "DATE"
	case model.KindTime:
		return "TIME(MICROS)"
	case model.KindTimestamp:
		return "TIMESTAMP(MICROS)"
	case model.KindTimestampTZ:
		return "TIMESTAMP(MICROS,UTC)"
	case model.KindArray:
		return "LIST<" + c.elem.parquetType() + ">"
	}
	return "STRING"
}

// appendValue encodes v (a Go value as documented on model.Kind) and
// returns how many NaN/Infinity decimals it stored as NULL.
func (c *column) appendValue(b []byte, v any) ([]byte, int, error) {
	if v == nil {
		return append(b, 0), 0, nil
	}
	bad := func() ([]byte, int, error) {
		return b, 0, fmt.Errorf("%s column: unexpected Go value of type %T", c.t, v)
	}
	switch c.t.Kind {
	case model.KindInt:
		switch x := v.(type) {
		case int64:
			return binary.AppendVarint(append(b, 1), x), 0, nil
		case int:
			return binary.AppendVarint(append(b, 1), int64(x)), 0, nil
		case int32:
			return binary.AppendVarint(append(b, 1), int64(x)), 0, nil
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
		return binary.LittleEndian.AppendUint64(append(b, 1), math.Float64bits(f)), 0, nil
	case model.KindBool:
		if x, ok := v.(bool); ok {
			if x {
				return append(b, 1, 1), 0, nil
			}
			return append(b, 1, 0), 0, nil
		}
	case model.KindString, model.KindJSON, model.KindBytes:
		switch x := v.(type) {
		case string:
			return appendBytes(append(b, 1), x), 0, nil
		case []byte:
			return appendBytes(append(b, 1), x), 0, nil
		}
	case model.KindUUID:
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case []byte:
			if len(x) != 16 {
				return b, 0, fmt.Errorf("invalid UUID of %d bytes", len(x))
			}
			s = formatUUID(x)
		default:
			return bad()
		}
		u, err := canonicalUUID(s)
		if err != nil {
			return b, 0, err
		}
		return appendBytes(append(b, 1), u), 0, nil
	case model.KindInterval:
		if x, ok := v.(model.Interval); ok {
			return appendBytes(append(b, 1), formatInterval(x)), 0, nil
		}
	case model.KindDecimal:
		d, ok := v.(model.Decimal)
		if !ok {
			return bad()
		}
		return c.appendDecimal(b, d)
	case model.KindDate:
		if x, ok := v.(time.Time); ok {
			return binary.AppendVarint(append(b, 1), epochDays(x)), 0, nil
		}
	case model.KindTime:
		if x, ok := v.(time.Duration); ok {
			if err := checkTime(x); err != nil {
				return b, 0, err
			}
			return binary.AppendVarint(append(b, 1), x.Microseconds()), 0, nil
		}
	case model.KindTimestamp, model.KindTimestampTZ:
		if x, ok := v.(time.Time); ok {
			return binary.AppendVarint(append(b, 1), x.UnixMicro()), 0, nil
		}
	case model.KindArray:
		x, ok := v.([]any)
		if !ok {
			return bad()
		}
		b = binary.AppendUvarint(append(b, 1), uint64(len(x)))
		nf := 0
		for i, e := range x {
			var n int
			var err error
			if b, n, err = c.elem.appendValue(b, e); err != nil {
				return b, 0, fmt.Errorf("element %d: %w", i, err)
			}
			nf += n
		}
		return b, nf, nil
	}
	return bad()
}

func (c *column) appendDecimal(b []byte, d model.Decimal) ([]byte, int, error) {
	if c.decText {
		return appendBytes(append(b, 1), d.String()), 0, nil
	}
	if d.Special != "" || d.Unscaled == nil {
		// Parquet's DECIMAL has no NaN or Infinity.
		return append(b, 0), 1, nil
	}
	v, err := d.Rescale(c.t.Scale)
	if err != nil {
		return b, 0, err
	}
	if new(big.Int).Abs(v).Cmp(c.bound) >= 0 {
		return b, 0, fmt.Errorf("decimal %s does not fit %s", d, c.t)
	}
	if c.codec == codecInt64 {
		return binary.AppendVarint(append(b, 1), v.Int64()), 0, nil
	}
	return appendInt128(append(b, 1), v), 0, nil
}

var two128 = new(big.Int).Lsh(big.NewInt(1), 128)

// appendInt128 appends v (|v| < 2^127) as 16 bytes of big-endian two's
// complement, Parquet's DECIMAL on FIXED_LEN_BYTE_ARRAY(16).
func appendInt128(b []byte, v *big.Int) []byte {
	var buf [16]byte
	if v.Sign() < 0 {
		new(big.Int).Add(two128, v).FillBytes(buf[:])
	} else {
		v.FillBytes(buf[:])
	}
	return append(b, buf[:]...)
}

func int128ToBig(b []byte) *big.Int {
	v := new(big.Int).SetBytes(b)
	if b[0]&0x80 != 0 {
		v.Sub(v, two128)
	}
	return v
}

func appendBytes[T string | []byte](b []byte, s T) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// reader decodes the encoded values of one row.
type reader struct {
	b   []byte
	err error
}

var errCorrupt = errors.New("corrupt spill record")

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.err = errCorrupt
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.err = errCorrupt
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

// skip advances r past one encoded column value.
func (c *column) skip(r *reader) {
	if r.byte() == 0 {
		return
	}
	if c.codec == codecList {
		n := int(r.uvarint())
		for i := 0; i < n && r.err == nil; i++ {
			if r.byte() != 0 {
				c.elem.skipLeaf(r)
			}
		}
		return
	}
	c.skipLeaf(r)
}

func (c *column) skipLeaf(r *reader) {
	switch c.codec {
	case codecInt64:
		r.varint()
	case codecDouble:
		r.bytes(8)
	case codecBool:
		r.byte()
	case codecDecimal128:
		r.bytes(16)
	default:
		r.bytes(int(r.uvarint()))
	}
}

// canonicalUUID returns s, a UUID as sinks.ParseUUID accepts it, in the
// canonical lowercase hyphenated form the files store.
func canonicalUUID(s string) (string, error) {
	u, err := sinks.ParseUUID(s)
	if err != nil {
		return "", err
	}
	return formatUUID(u[:]), nil
}

// epochDays is the day of t counted from 1970-01-01, rounded down (before
// the epoch too).
func epochDays(t time.Time) int64 {
	sec := t.Unix()
	days := sec / 86400
	if sec%86400 < 0 {
		days--
	}
	return days
}

// checkTime refuses a TIME outside 00:00:00..24:00:00, which no warehouse
// holds.
func checkTime(d time.Duration) error {
	if d < 0 || d > 24*time.Hour {
		return fmt.Errorf("TIME value %s out of range", d)
	}
	return nil
}
