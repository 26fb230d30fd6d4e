// Package hlc is CockroachDB's hybrid logical clock timestamp as highwater
// uses it: the `updated`, `mvcc_timestamp` and `resolved` values of a
// changefeed, parsed from and printed as CockroachDB's text, ordered,
// encoded into sorted buffer keys and stored in warehouses as DECIMAL(38,10).
// It imports only the standard library (and internal/redact), so that the
// buffer and the writers can share it without the Avro decoder.
//
// The type is named Timestamp, as in CockroachDB (pkg/util/hlc), so that
// callers read hlc.Timestamp, hlc.Parse and hlc.Decode.
package hlc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/highwater-dev/highwater/internal/redact"
)

// Timestamp is a CockroachDB hybrid logical clock timestamp: wall time in
// nanoseconds since the Unix epoch plus a logical counter. It is the
// `updated`, `mvcc_timestamp` and `resolved` value of a changefeed, and every
// write of one CockroachDB transaction carries the same HLC.
//
// The zero Timestamp sorts before every real timestamp and means "none".
type Timestamp struct {
	WallTime int64
	Logical  int32
}

// Parse parses CockroachDB's text form "<wallnanos>.<logical>", as written
// by CockroachDB's hlc.Timestamp.AsOfSystemTime: the fraction is the
// logical counter, zero-padded to 10 digits. Like CockroachDB's own parser
// it treats the text as a decimal, so a shorter fraction is scaled ("5.1"
// is logical 1000000000) and a missing fraction means logical 0. A
// trailing '?' (synthetic timestamps on v20.2-v22.x clusters) is accepted
// and ignored.
func Parse(s string) (Timestamp, error) {
	orig := s
	s = strings.TrimSuffix(s, "?")
	if s == "" {
		return Timestamp{}, fmt.Errorf("parse HLC %s: empty", redact.Clip(orig))
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	if intPart == "" || !allDigits(intPart) || (hasFrac && !allDigits(frac)) || len(frac) > 10 {
		return Timestamp{}, fmt.Errorf("parse HLC %s: want <wallnanos>.<logical, 10 digits>", redact.Clip(orig))
	}
	wall, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil {
		return Timestamp{}, fmt.Errorf("parse HLC %s: wall time: %w", redact.Clip(orig), redact.NumErr(err))
	}
	var logical int64
	if frac != "" {
		padded := frac + strings.Repeat("0", 10-len(frac))
		logical, err = strconv.ParseInt(padded, 10, 64)
		if err != nil || logical > 1<<31-1 {
			return Timestamp{}, fmt.Errorf("parse HLC %s: logical counter out of range", redact.Clip(orig))
		}
	}
	return Timestamp{WallTime: wall, Logical: int32(logical)}, nil
}

// MustParse is Parse for constants in tests and examples; it panics on
// malformed input.
func MustParse(s string) Timestamp {
	h, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return h
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats h exactly as CockroachDB does ("%d.%010d"), so that
// Parse(h.String()) == h and the text matches the changefeed's.
func (h Timestamp) String() string {
	return string(h.AppendText(make([]byte, 0, 32)))
}

// AppendText appends h's CockroachDB text form to b.
func (h Timestamp) AppendText(b []byte) []byte {
	b = strconv.AppendInt(b, h.WallTime, 10)
	b = append(b, '.')
	l := strconv.AppendInt(nil, int64(h.Logical), 10)
	for i := len(l); i < 10; i++ {
		b = append(b, '0')
	}
	return append(b, l...)
}

// Compare returns -1, 0 or +1 as h is before, equal to or after o.
func (h Timestamp) Compare(o Timestamp) int {
	switch {
	case h.WallTime < o.WallTime:
		return -1
	case h.WallTime > o.WallTime:
		return 1
	case h.Logical < o.Logical:
		return -1
	case h.Logical > o.Logical:
		return 1
	}
	return 0
}

// Less reports whether h is strictly before o.
func (h Timestamp) Less(o Timestamp) bool { return h.Compare(o) < 0 }

// IsZero reports whether h is the zero Timestamp ("no timestamp").
func (h Timestamp) IsZero() bool { return h == Timestamp{} }

// Time returns the wall-clock part of h.
func (h Timestamp) Time() time.Time { return time.Unix(0, h.WallTime).UTC() }

// Next returns the smallest Timestamp after h.
func (h Timestamp) Next() Timestamp {
	if h.Logical == 1<<31-1 {
		return Timestamp{WallTime: h.WallTime + 1}
	}
	return Timestamp{WallTime: h.WallTime, Logical: h.Logical + 1}
}

// Unscaled returns h as the unscaled integer of DECIMAL(38,10), that is
// WallTime*10^10 + Logical: the value warehouses store in _hw_updated.
func (h Timestamp) Unscaled() *big.Int {
	v := big.NewInt(h.WallTime)
	v.Mul(v, big.NewInt(10_000_000_000))
	return v.Add(v, big.NewInt(int64(h.Logical)))
}

// FromUnscaled is the inverse of Timestamp.Unscaled.
func FromUnscaled(v *big.Int) (Timestamp, error) {
	if v.Sign() < 0 {
		return Timestamp{}, fmt.Errorf("negative HLC %s", v)
	}
	q, r := new(big.Int).QuoRem(v, big.NewInt(10_000_000_000), new(big.Int))
	if !q.IsInt64() || r.Int64() > 1<<31-1 {
		return Timestamp{}, fmt.Errorf("HLC %s out of range", v)
	}
	return Timestamp{WallTime: q.Int64(), Logical: int32(r.Int64())}, nil
}

// Size is the length of Timestamp.AppendBinary's encoding.
const Size = 12

// AppendBinary appends a 12-byte encoding of h whose byte order is h's time
// order, for use in sorted keys.
func (h Timestamp) AppendBinary(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(h.WallTime)^(1<<63))
	return binary.BigEndian.AppendUint32(b, uint32(h.Logical)^(1<<31))
}

// Decode decodes the first Size bytes of b written by AppendBinary.
func Decode(b []byte) (Timestamp, error) {
	if len(b) < Size {
		return Timestamp{}, errors.New("decode HLC: short buffer")
	}
	return Timestamp{
		WallTime: int64(binary.BigEndian.Uint64(b) ^ (1 << 63)),
		Logical:  int32(binary.BigEndian.Uint32(b[8:]) ^ (1 << 31)),
	}, nil
}
