package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// HLC is a CockroachDB hybrid logical clock timestamp: wall time in
// nanoseconds since the Unix epoch plus a logical counter. It is the
// `updated`, `mvcc_timestamp` and `resolved` value of a changefeed, and every
// write of one CockroachDB transaction carries the same HLC.
//
// The zero HLC sorts before every real timestamp and means "none".
type HLC struct {
	WallTime int64
	Logical  int32
}

// ParseHLC parses CockroachDB's text form "<wallnanos>.<logical>", as written
// by hlc.Timestamp.AsOfSystemTime: the fraction is the logical counter,
// zero-padded to 10 digits. Like CockroachDB's own parser it treats the text
// as a decimal, so a shorter fraction is scaled ("5.1" is logical 1000000000)
// and a missing fraction means logical 0. A trailing '?' (synthetic
// timestamps on v20.2-v22.x clusters) is accepted and ignored.
func ParseHLC(s string) (HLC, error) {
	orig := s
	s = strings.TrimSuffix(s, "?")
	if s == "" {
		return HLC{}, fmt.Errorf("parse HLC %s: empty", clip(orig))
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	if intPart == "" || !allDigits(intPart) || (hasFrac && !allDigits(frac)) || len(frac) > 10 {
		return HLC{}, fmt.Errorf("parse HLC %s: want <wallnanos>.<logical, 10 digits>", clip(orig))
	}
	wall, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil {
		return HLC{}, fmt.Errorf("parse HLC %s: wall time: %w", clip(orig), numErr(err))
	}
	var logical int64
	if frac != "" {
		padded := frac + strings.Repeat("0", 10-len(frac))
		logical, err = strconv.ParseInt(padded, 10, 64)
		if err != nil || logical > 1<<31-1 {
			return HLC{}, fmt.Errorf("parse HLC %s: logical counter out of range", clip(orig))
		}
	}
	return HLC{WallTime: wall, Logical: int32(logical)}, nil
}

// MustParseHLC is ParseHLC for constants in tests and examples; it panics on
// malformed input.
func MustParseHLC(s string) HLC {
	h, err := ParseHLC(s)
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
// ParseHLC(h.String()) == h and the text matches the changefeed's.
func (h HLC) String() string {
	return string(h.AppendText(make([]byte, 0, 32)))
}

// AppendText appends h's CockroachDB text form to b.
func (h HLC) AppendText(b []byte) []byte {
	b = strconv.AppendInt(b, h.WallTime, 10)
	b = append(b, '.')
	l := strconv.AppendInt(nil, int64(h.Logical), 10)
	for i := len(l); i < 10; i++ {
		b = append(b, '0')
	}
	return append(b, l...)
}

// Compare returns -1, 0 or +1 as h is before, equal to or after o.
func (h HLC) Compare(o HLC) int {
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
func (h HLC) Less(o HLC) bool { return h.Compare(o) < 0 }

// IsZero reports whether h is the zero HLC ("no timestamp").
func (h HLC) IsZero() bool { return h == HLC{} }

// Time returns the wall-clock part of h.
func (h HLC) Time() time.Time { return time.Unix(0, h.WallTime).UTC() }

// Next returns the smallest HLC after h.
func (h HLC) Next() HLC {
	if h.Logical == 1<<31-1 {
		return HLC{WallTime: h.WallTime + 1}
	}
	return HLC{WallTime: h.WallTime, Logical: h.Logical + 1}
}

// Unscaled returns h as the unscaled integer of DECIMAL(38,10), that is
// WallTime*10^10 + Logical: the value warehouses store in _hw_updated.
func (h HLC) Unscaled() *big.Int {
	v := big.NewInt(h.WallTime)
	v.Mul(v, big.NewInt(10_000_000_000))
	return v.Add(v, big.NewInt(int64(h.Logical)))
}

// HLCFromUnscaled is the inverse of HLC.Unscaled.
func HLCFromUnscaled(v *big.Int) (HLC, error) {
	if v.Sign() < 0 {
		return HLC{}, fmt.Errorf("negative HLC %s", v)
	}
	q, r := new(big.Int).QuoRem(v, big.NewInt(10_000_000_000), new(big.Int))
	if !q.IsInt64() || r.Int64() > 1<<31-1 {
		return HLC{}, fmt.Errorf("HLC %s out of range", v)
	}
	return HLC{WallTime: q.Int64(), Logical: int32(r.Int64())}, nil
}

// HLCSize is the length of HLC.AppendBinary's encoding.
const HLCSize = 12

// AppendBinary appends a 12-byte encoding of h whose byte order is h's time
// order, for use in sorted keys.
func (h HLC) AppendBinary(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(h.WallTime)^(1<<63))
	return binary.BigEndian.AppendUint32(b, uint32(h.Logical)^(1<<31))
}

// DecodeHLC decodes the first HLCSize bytes of b written by AppendBinary.
func DecodeHLC(b []byte) (HLC, error) {
	if len(b) < HLCSize {
		return HLC{}, errors.New("decode HLC: short buffer")
	}
	return HLC{
		WallTime: int64(binary.BigEndian.Uint64(b) ^ (1 << 63)),
		Logical:  int32(binary.BigEndian.Uint32(b[8:]) ^ (1 << 31)),
	}, nil
}
