package sinks

import "fmt"

// uuidDigits are the offsets of the 16 hex-digit pairs in the 36-character
// form 8-4-4-4-12.
var uuidDigits = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// ParseUUID parses a UUID column value, the one rule every writer applies
// (Write and CheckChange alike), so that a record a warehouse stores is one
// every warehouse stores.
//
// CockroachDB's changefeeds send a UUID as its canonical text: 36
// characters, 8-4-4-4-12 hex digits with hyphens, lower case. ParseUUID
// accepts exactly that form, in either case (the value is the same;
// PostgreSQL and DuckDB read both); the 32-digit form, braces, a "urn:uuid:"
// prefix and surrounding space, which the warehouses' own parsers differ on
// and CockroachDB never sends, are refused. The error quotes at most 64
// bytes of s.
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, invalidUUID(s)
	}
	for i, o := range uuidDigits {
		hi, ok1 := unhex(s[o])
		lo, ok2 := unhex(s[o+1])
		if !ok1 || !ok2 {
			return u, invalidUUID(s)
		}
		u[i] = hi<<4 | lo
	}
	return u, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func invalidUUID(s string) error {
	if len(s) > 64 {
		return fmt.Errorf("invalid UUID %q... (%d bytes)", s[:64], len(s))
	}
	return fmt.Errorf("invalid UUID %q", s)
}
