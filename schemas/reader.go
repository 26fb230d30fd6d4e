package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/highwater-dev/highwater/internal/redact"
	"github.com/highwater-dev/highwater/model"
)

// op is what a compiled plan node does with its bytes.
type op uint8

const (
	opNull op = iota
	opBool
	opInt    // Avro int -> int64
	opLong   // Avro long -> int64
	opFloat  // Avro float -> float64
	opDouble // Avro double -> float64
	opString // string (also UUID, JSON, ENUM, INET, ...)
	opBytes  // []byte (copied)
	opDecimal
	opDecimalSpecial // the string branch of a DECIMAL union: NaN, Infinity, -Infinity
	opDate
	opTimeMicros
	opTimeMillis
	opTimestampMicros
	opTimestampMillis
	opInterval
	opArray
	opBits
	opUnion
	opRecord // skip only
)

// node is a compiled plan for one Avro type: how to skip it and how to
// decode it into the Go value of its Kind.
type node struct {
	op       op
	scale    int           // opDecimal
	dec      *decimalLimit // opDecimal: the precision; nil when skipping only
	bits     int           // opBits: the declared BIT(n)/VARBIT(n) width, 0 if none
	elem     *node         // opArray
	branches []*node       // opUnion
	fields   []*node       // opRecord
	// minSize is the fewest bytes an encoded value takes; it bounds array
	// block counts by the remaining input.
	minSize int
	// weight is how many plan nodes one value visits (see weigh); array
	// items are charged by it against the message's budget.
	weight int
}

var (
	errTruncated = errors.New("truncated value")
	errOverflow  = errors.New("varint overflows 64 bits")
	// errBlockSize: an array block's byte size (after a negative count)
	// is negative, past the message, or not the bytes its items take.
	// skip jumps by it, so the decoders that read the items refuse a size
	// that lies: Extract and DecodeRow then read the same fields.
	errBlockSize = errors.New("array block byte size does not match its items")
)

// reader reads Avro binary from b. Every read checks bounds; nothing is
// allocated on the strength of a length that the remaining input does not
// cover.
type reader struct {
	b        []byte
	i        int
	maxArray int
	maxBits  int
	// budget is what is left of the message's array-item budget
	// (itemBudget), charged per block by count times item weight.
	budget int
	// items counts the array items visited; out approximates the bytes
	// the decoded values hold (Row.Size). Both are cheap: they change per
	// array block or per allocation, not per value.
	items, out int
	// str is b as one string, made on the first string value: string
	// values are substrings of it, one allocation per message instead of
	// one per value.
	str string
}

// text reads a string value as a substring of r.str.
func (r *reader) text() (string, error) {
	n, err := r.length()
	if err != nil {
		return "", err
	}
	if r.str == "" {
		r.str = string(r.b)
		r.out += len(r.b)
	}
	s := r.str[r.i : r.i+n]
	r.i += n
	return s, nil
}

func (r *reader) remaining() int { return len(r.b) - r.i }

func (r *reader) long() (int64, error) {
	var v uint64
	var shift uint
	b := r.b
	for i := r.i; i < len(b); i++ {
		c := b[i]
		if shift == 63 && c > 1 {
			return 0, errOverflow
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			r.i = i + 1
			return int64(v>>1) ^ -int64(v&1), nil
		}
		shift += 7
	}
	return 0, errTruncated
}

func (r *reader) skipVarint() error {
	b := r.b
	end := min(len(b), r.i+10)
	for i := r.i; i < end; i++ {
		if b[i] < 0x80 {
			r.i = i + 1
			return nil
		}
	}
	if end-r.i == 10 {
		return errOverflow
	}
	return errTruncated
}

// length reads a bytes/string length and checks it against the input.
func (r *reader) length() (int, error) {
	n, err := r.long()
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("negative length %d", n)
	}
	if n > int64(r.remaining()) {
		return 0, fmt.Errorf("length %d exceeds the %d remaining bytes: %w", n, r.remaining(), errTruncated)
	}
	return int(n), nil
}

func (r *reader) bytes() ([]byte, error) {
	n, err := r.length()
	if err != nil {
		return nil, err
	}
	b := r.b[r.i : r.i+n : r.i+n]
	r.i += n
	return b, nil
}

func (r *reader) unionIndex(n *node) (*node, error) {
	idx, err := r.long()
	if err != nil {
		return nil, err
	}
	if idx < 0 || idx >= int64(len(n.branches)) {
		return nil, fmt.Errorf("union branch %d out of range (%d branches)", idx, len(n.branches))
	}
	return n.branches[idx], nil
}

// blockCount reads an array block header. A negative count is followed by
// the block's byte size (Avro spec); size is -1 when absent.
func (r *reader) blockCount(elem *node) (count int, size int, err error) {
	c, err := r.long()
	if err != nil {
		return 0, 0, err
	}
	size = -1
	if c < 0 {
		if c == math.MinInt64 {
			return 0, 0, fmt.Errorf("array block count %d out of range", c)
		}
		c = -c
		s, err := r.long()
		if err != nil {
			return 0, 0, err
		}
		if s < 0 || s > int64(r.remaining()) {
			return 0, 0, fmt.Errorf("array block size %d out of range (%d bytes left): %w", s, r.remaining(), errBlockSize)
		}
		size = int(s)
	}
	if elem.minSize > 0 {
		if c > int64(r.remaining()/elem.minSize) {
			return 0, 0, fmt.Errorf("array block of %d items exceeds the %d remaining bytes: %w", c, r.remaining(), errTruncated)
		}
	} else if c > int64(r.maxArray) {
		return 0, 0, fmt.Errorf("array block of %d items exceeds the limit of %d", c, r.maxArray)
	}
	if err := r.chargeItems(int(c), elem); err != nil {
		return 0, 0, err
	}
	return int(c), size, nil
}

// skip advances past one value of n without materialising it.
func (r *reader) skip(n *node) error {
	switch n.op {
	case opNull:
		return nil
	case opBool:
		if r.i >= len(r.b) {
			return errTruncated
		}
		r.i++
		return nil
	case opInt, opLong, opDate, opTimeMicros, opTimeMillis, opTimestampMicros, opTimestampMillis:
		return r.skipVarint()
	case opFloat, opDouble:
		w := 8
		if n.op == opFloat {
			w = 4
		}
		if r.remaining() < w {
			return errTruncated
		}
		r.i += w
		return nil
	case opString, opBytes, opDecimal, opDecimalSpecial, opInterval:
		l, err := r.length()
		if err != nil {
			return err
		}
		r.i += l
		return nil
	case opUnion:
		b, err := r.unionIndex(n)
		if err != nil {
			return err
		}
		return r.skip(b)
	case opRecord:
		for _, f := range n.fields {
			if err := r.skip(f); err != nil {
				return err
			}
		}
		return nil
	case opArray, opBits:
		elem := n.elem
		total := 0
		for {
			c, size, err := r.blockCount(elem)
			if err != nil {
				return err
			}
			if c == 0 {
				return nil
			}
			if total += c; total > r.maxArray {
				return fmt.Errorf("array exceeds the limit of %d items", r.maxArray)
			}
			if size >= 0 {
				r.i += size
				continue
			}
			r.items += c
			for range c {
				if err := r.skip(elem); err != nil {
					return err
				}
			}
		}
	}
	return fmt.Errorf("internal: cannot skip op %d", n.op)
}

// value decodes one value of n into its Kind's Go type.
func (r *reader) value(n *node) (any, error) {
	switch n.op {
	case opNull:
		return nil, nil
	case opBool:
		if r.i >= len(r.b) {
			return nil, errTruncated
		}
		c := r.b[r.i]
		r.i++
		if c > 1 {
			return nil, fmt.Errorf("boolean byte 0x%02x", c)
		}
		return c == 1, nil
	case opInt, opLong:
		v, err := r.long()
		if err != nil {
			return nil, err
		}
		if n.op == opInt && (v < math.MinInt32 || v > math.MaxInt32) {
			return nil, fmt.Errorf("int %d out of range", v)
		}
		return v, nil
	case opFloat:
		if r.remaining() < 4 {
			return nil, errTruncated
		}
		v := math.Float32frombits(binary.LittleEndian.Uint32(r.b[r.i:]))
		r.i += 4
		return float64(v), nil
	case opDouble:
		if r.remaining() < 8 {
			return nil, errTruncated
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(r.b[r.i:]))
		r.i += 8
		return v, nil
	case opString:
		s, err := r.text()
		if err != nil {
			return nil, err
		}
		return s, nil
	case opBytes:
		b, err := r.bytes()
		if err != nil {
			return nil, err
		}
		// Never nil: an empty BYTES value is not NULL.
		out := make([]byte, len(b))
		copy(out, b)
		r.out += len(b) + sliceHeader
		return out, nil
	case opDecimal:
		b, err := r.bytes()
		if err != nil {
			return nil, err
		}
		b = minimalTwos(b)
		if n.dec != nil {
			if err := n.dec.checkLen(b); err != nil {
				return nil, err
			}
		}
		v := signedBytesToInt(b)
		if n.dec != nil {
			if err := n.dec.check(v); err != nil {
				return nil, err
			}
		}
		r.out += len(b) + decimalSize
		return model.Decimal{Unscaled: v, Scale: n.scale}, nil
	case opDecimalSpecial:
		b, err := r.bytes()
		if err != nil {
			return nil, err
		}
		switch s := string(b); s {
		case "NaN", "Infinity", "-Infinity":
			return model.Decimal{Special: s, Scale: n.scale}, nil
		default:
			return nil, fmt.Errorf("decimal string branch %s is not NaN, Infinity or -Infinity", redact.Clip(s))
		}
	case opDate:
		v, err := r.long()
		if err != nil {
			return nil, err
		}
		if v < math.MinInt32 || v > math.MaxInt32 {
			return nil, fmt.Errorf("date %d out of range", v)
		}
		return time.Unix(v*86400, 0).UTC(), nil
	case opTimeMicros, opTimeMillis:
		v, err := r.long()
		if err != nil {
			return nil, err
		}
		if n.op == opTimeMillis {
			return time.Duration(v) * time.Millisecond, nil
		}
		if v < 0 || v > 24*int64(time.Hour/time.Microsecond) {
			return nil, fmt.Errorf("time of day %dµs out of range", v)
		}
		return time.Duration(v) * time.Microsecond, nil
	case opTimestampMicros:
		v, err := r.long()
		if err != nil {
			return nil, err
		}
		return time.UnixMicro(v).UTC(), nil
	case opTimestampMillis:
		v, err := r.long()
		if err != nil {
			return nil, err
		}
		return time.UnixMilli(v).UTC(), nil
	case opInterval:
		b, err := r.bytes()
		if err != nil {
			return nil, err
		}
		iv, err := model.ParseInterval(string(b))
		if err != nil {
			return nil, err
		}
		return iv, nil
	case opUnion:
		b, err := r.unionIndex(n)
		if err != nil {
			return nil, err
		}
		return r.value(b)
	case opArray:
		return r.array(n)
	case opBits:
		return r.bits(n)
	}
	return nil, fmt.Errorf("internal: cannot decode op %d", n.op)
}

func (r *reader) array(n *node) (any, error) {
	out := []any{}
	for {
		c, size, err := r.blockCount(n.elem)
		if err != nil {
			return nil, err
		}
		if c == 0 {
			return out, nil
		}
		start := r.i
		if len(out)+c > r.maxArray {
			return nil, fmt.Errorf("array exceeds the limit of %d items", r.maxArray)
		}
		out = growAny(out, c)
		r.items += c
		r.out += c * slotSize
		for range c {
			v, err := r.value(n.elem)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if err := r.checkBlock(start, size); err != nil {
			return nil, err
		}
	}
}

// checkBlock refuses a block whose byte size, when given (size >= 0),
// is not what its items took from start: skip would have jumped elsewhere.
func (r *reader) checkBlock(start, size int) error {
	if size >= 0 && r.i-start != size {
		return fmt.Errorf("array block size %d, its items take %d bytes: %w", size, r.i-start, errBlockSize)
	}
	return nil
}

// Approximate sizes of decoded values, for Row.Size.
const (
	slotSize    = 40 // an interface slot and a boxed value (time.Time is 24 bytes)
	sliceHeader = 24
	decimalSize = 64 // Decimal and its big.Int
)

func growAny(s []any, n int) []any {
	if cap(s)-len(s) >= n {
		return s
	}
	ns := make([]any, len(s), len(s)+n)
	copy(ns, s)
	return ns
}

// bits decodes CockroachDB's BIT/VARBIT encoding: an array of longs whose
// first element is the number of bits used in the last word, followed by
// 64-bit words, most significant bit first.
func (r *reader) bits(n *node) (any, error) {
	var words []uint64
	first := true
	used := int64(0)
	limit := r.maxBits
	if n.bits > 0 && n.bits < limit {
		limit = n.bits
	}
	for {
		c, size, err := r.blockCount(n.elem)
		if err != nil {
			return nil, err
		}
		if c == 0 {
			break
		}
		start := r.i
		// Every word but the last holds 64 bits: refuse before the string
		// is built (or the words gathered) when they cannot fit.
		nw := len(words) + c
		if first {
			nw-- // the length element
		}
		if nw > 0 && (nw-1)*64 >= limit {
			return nil, r.bitsTooWide(n, limit, (nw-1)*64+1)
		}
		r.items += c
		for range c {
			v, err := r.long()
			if err != nil {
				return nil, err
			}
			if first {
				used, first = v, false
				continue
			}
			words = append(words, uint64(v))
		}
		if err := r.checkBlock(start, size); err != nil {
			return nil, err
		}
	}
	if first {
		return nil, errors.New("bit array without its length element")
	}
	if used < 0 || used > 64 || (len(words) == 0 && used != 0) {
		return nil, fmt.Errorf("bit array: %d bits used in the last of %d words", used, len(words))
	}
	if len(words) > 0 && used == 0 {
		used = 64
	}
	if width := max(len(words)-1, 0)*64 + int(used); width > limit {
		return nil, r.bitsTooWide(n, limit, width)
	}
	var sb strings.Builder
	sb.Grow(len(words) * 64)
	for i, w := range words {
		nb := 64
		if i == len(words)-1 {
			nb = int(used)
		}
		for j := range nb {
			if w&(1<<(63-j)) != 0 {
				sb.WriteByte('1')
			} else {
				sb.WriteByte('0')
			}
		}
	}
	r.out += sb.Len()
	return sb.String(), nil
}

// bitsTooWide is the error for a BIT value of at least width bits.
func (r *reader) bitsTooWide(n *node, limit, width int) error {
	if limit == n.bits {
		return fmt.Errorf("bit string of %d bits or more is wider than its column's %d", width, n.bits)
	}
	return fmt.Errorf("bit string of %d bits or more exceeds the limit of %d bits: %w", width, limit, ErrDecodeLimit)
}

// signedBytesToInt decodes a big-endian two's-complement integer, the
// encoding of Avro's decimal logical type.
func signedBytesToInt(b []byte) *big.Int {
	if len(b) <= 8 {
		var v int64
		if len(b) > 0 && b[0]&0x80 != 0 {
			v = -1
		}
		for _, c := range b {
			v = v<<8 | int64(c)
		}
		return big.NewInt(v)
	}
	v := new(big.Int).SetBytes(b)
	if b[0]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	return v
}
