// Package jsontext inspects the escapes of JSON text as CockroachDB sends
// it for JSONB, for the warehouse writers that must refuse what their JSON
// type cannot hold.
package jsontext

// Escapes reports what JSON text s escapes that some warehouses refuse:
// \u0000 (PostgreSQL's JSONB cannot convert it to text), and a UTF-16
// surrogate escape that is not part of a high-low pair (PostgreSQL and
// DuckDB refuse it). Escapes are read in order, so an escaped backslash
// followed by "u0000" (the text \u0000) is not taken for one. s need not
// be valid JSON; only its escapes are read.
func Escapes(s string) (nul, loneSurrogate bool) {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if i+1 >= len(s) {
			break
		}
		if s[i+1] != 'u' {
			i++ // \", \\, \n, ...: skip the escaped character
			continue
		}
		u, ok := hex4(s, i+2)
		if !ok {
			i++
			continue
		}
		switch {
		case u == 0:
			nul = true
			i += 5
		case u >= 0xD800 && u <= 0xDBFF:
			if lo, ok := hex4(s, i+8); !ok || s[i+6] != '\\' || s[i+7] != 'u' || lo < 0xDC00 || lo > 0xDFFF {
				loneSurrogate = true
				i += 5
				continue
			}
			i += 11
		case u >= 0xDC00 && u <= 0xDFFF:
			loneSurrogate = true
			i += 5
		default:
			i += 5
		}
	}
	return nul, loneSurrogate
}

// hex4 parses the four hex digits of s at i.
func hex4(s string, i int) (rune, bool) {
	if i < 0 || i+4 > len(s) {
		return 0, false
	}
	var r rune
	for j := i; j < i+4; j++ {
		c := s[j]
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
