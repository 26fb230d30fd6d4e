// Package bytesize parses sizes written for people: flags such as
// --memory-limit 512MiB and DuckDB's settings such as "102.0 MiB".
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

var units = map[string]float64{
	"": 1, "b": 1, "byte": 1, "bytes": 1,
	"k": 1 << 10, "kb": 1e3, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1e6, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1e9, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1e12, "tib": 1 << 40,
}

// Parse parses a non-negative number with an optional unit, binary (KiB,
// MiB, GiB, TiB, and K, M, G, T) or decimal (KB, MB, GB, TB), in any case
// and with or without a space: 512MiB, 1.5GB, "102.0 MiB", 1048576. An
// empty string is 0.
func Parse(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	}
	n, err := strconv.ParseFloat(num, 64)
	mult, ok := units[unit]
	if err != nil || !ok || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (KiB, MiB, GiB, TiB)", s)
	}
	return int64(n * mult), nil
}
