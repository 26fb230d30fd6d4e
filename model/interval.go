package model

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/highwater-dev/highwater/internal/redact"
)

// ParseInterval parses CockroachDB's ISO-8601 interval text, as written into
// Avro by duration.Duration.ISO8601String: "P1Y2M3DT4H5M6S", "P1YT-0.006S",
// "PT0S". Each component may be negative; years and months fold into
// Months, weeks and days into Days, hours, minutes and (fractional) seconds
// into Micros. Digits past microseconds are truncated.
func ParseInterval(s string) (Interval, error) {
	bad := func(why string) (Interval, error) {
		return Interval{}, fmt.Errorf("parse interval %s: %s", redact.Clip(s), why)
	}
	rest := s
	neg := false
	if strings.HasPrefix(rest, "-") {
		neg, rest = true, rest[1:]
	}
	if !strings.HasPrefix(rest, "P") {
		return bad("want a leading P")
	}
	rest = rest[1:]
	if rest == "" {
		return bad("no components")
	}
	var months, days, micros int64
	inTime := false
	seen := 0
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return bad("two T designators")
			}
			inTime, rest = true, rest[1:]
			continue
		}
		// A number: optional sign, digits, optional fraction.
		i := 0
		if i < len(rest) && (rest[i] == '-' || rest[i] == '+') {
			i++
		}
		ds := i
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == ds {
			return bad("want a number")
		}
		intText := rest[:i]
		frac := ""
		if i < len(rest) && rest[i] == '.' {
			j := i + 1
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			frac, i = rest[i+1:j], j
		}
		if i >= len(rest) {
			return bad("number without a designator")
		}
		unit := rest[i]
		rest = rest[i+1:]
		v, err := strconv.ParseInt(intText, 10, 64)
		if err != nil {
			return bad("number out of range")
		}
		if frac != "" && !(inTime && unit == 'S') {
			return bad("fraction allowed on seconds only")
		}
		seen++
		var ok bool
		switch {
		case !inTime && unit == 'Y':
			months, ok = addMul(months, v, 12)
		case !inTime && unit == 'M':
			months, ok = addMul(months, v, 1)
		case !inTime && unit == 'W':
			days, ok = addMul(days, v, 7)
		case !inTime && unit == 'D':
			days, ok = addMul(days, v, 1)
		case inTime && unit == 'H':
			micros, ok = addMul(micros, v, 3600e6)
		case inTime && unit == 'M':
			micros, ok = addMul(micros, v, 60e6)
		case inTime && unit == 'S':
			micros, ok = addMul(micros, v, 1e6)
			if ok && frac != "" {
				f := frac
				if len(f) > 6 {
					f = f[:6]
				}
				f += strings.Repeat("0", 6-len(f))
				fv, _ := strconv.ParseInt(f, 10, 64)
				if strings.HasPrefix(intText, "-") {
					fv = -fv
				}
				micros, ok = addMul(micros, fv, 1)
			}
		default:
			return bad(fmt.Sprintf("unexpected designator %q", unit))
		}
		if !ok {
			return bad("out of range")
		}
	}
	if seen == 0 {
		return bad("no components")
	}
	if neg {
		months, days, micros = -months, -days, -micros
	}
	if months < math.MinInt32 || months > math.MaxInt32 || days < math.MinInt32 || days > math.MaxInt32 {
		return bad("out of range")
	}
	return Interval{Months: int32(months), Days: int32(days), Micros: micros}, nil
}

// addMul returns acc + v*m and whether it did not overflow.
func addMul(acc, v, m int64) (int64, bool) {
	if v != 0 && (v > math.MaxInt64/m || v < math.MinInt64/m) {
		return 0, false
	}
	p := v * m
	s := acc + p
	if (p > 0 && s < acc) || (p < 0 && s > acc) {
		return 0, false
	}
	return s, true
}

// String renders iv in the ISO-8601 form ParseInterval reads, as CockroachDB
// writes it.
func (iv Interval) String() string {
	if iv == (Interval{}) {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteByte('P')
	if y := iv.Months / 12; y != 0 {
		fmt.Fprintf(&b, "%dY", y)
	}
	if m := iv.Months % 12; m != 0 {
		fmt.Fprintf(&b, "%dM", m)
	}
	if iv.Days != 0 {
		fmt.Fprintf(&b, "%dD", iv.Days)
	}
	if iv.Micros != 0 {
		b.WriteByte('T')
		us := iv.Micros
		if h := us / 3600e6; h != 0 {
			fmt.Fprintf(&b, "%dH", h)
		}
		us %= 3600e6
		if m := us / 60e6; m != 0 {
			fmt.Fprintf(&b, "%dM", m)
		}
		us %= 60e6
		if us != 0 {
			sign := ""
			if us < 0 {
				sign, us = "-", -us
			}
			sec := strconv.FormatInt(us/1e6, 10)
			if f := us % 1e6; f != 0 {
				sec += strings.TrimRight(fmt.Sprintf(".%06d", f), "0")
			}
			fmt.Fprintf(&b, "%s%sS", sign, sec)
		}
	}
	return b.String()
}
