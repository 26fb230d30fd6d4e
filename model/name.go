package model

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// CockroachDB (changefeedbase/name.go) escapes SQL names into Avro and Kafka
// names by replacing every disallowed rune with _uXXXX_ (_uXXXXXXXX_ above
// U+FFFF), and escapes text that already looks like an escape so that the
// mapping can be reversed exactly.
var escapeLike = regexp.MustCompile(`_u[0-9a-fA-F]{2,8}_`)

const kafkaNameMaxLength = 249

// SQLNameToAvroName escapes a SQL identifier into an Avro name as CockroachDB
// does: [A-Za-z0-9_] pass through, except a leading digit.
func SQLNameToAvroName(s string) string {
	return escapeSQLName(s, func(r rune, i int) bool {
		return r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
	})
}

// SQLNameToKafkaName escapes a SQL name into a Kafka topic or registry
// subject name as CockroachDB does: [a-zA-Z0-9._-] pass through, "." and ".."
// are escaped whole, and the result is cut to 249 bytes.
func SQLNameToKafkaName(s string) string {
	switch s {
	case ".":
		return escapeRune('.')
	case "..":
		return escapeRune('.') + escapeRune('.')
	}
	out := escapeSQLName(s, func(r rune, _ int) bool {
		return r == '.' || r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
	})
	if len(out) > kafkaNameMaxLength {
		out = out[:kafkaNameMaxLength]
	}
	return out
}

func escapeRune(r rune) string {
	if r <= 1<<16 {
		return fmt.Sprintf("_u%04x_", r)
	}
	return fmt.Sprintf("_u%08x_", r)
}

func escapeSQLName(s string, allowed func(r rune, i int) bool) string {
	var b strings.Builder
	b.Grow(len(s))
	marks := escapeLike.FindAllStringIndex(s, -1)
	for i, r := range s {
		inMark := false
		for _, m := range marks {
			if i >= m[0] && i < m[1] {
				inMark = true
				break
			}
		}
		if inMark || !allowed(r, i) {
			b.WriteString(escapeRune(r))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// UnescapeName reverses SQLNameToAvroName and SQLNameToKafkaName (for names
// not cut at 249 bytes): every _uXXXX_ or _uXXXXXXXX_ becomes its rune.
// It returns an error for an escape that is not a valid rune.
func UnescapeName(s string) (string, error) {
	if !strings.Contains(s, "_u") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "_u") {
			j := i + 2
			for j < len(s) && j-i-2 < 8 && isHex(s[j]) {
				j++
			}
			if n := j - i - 2; n >= 4 && j < len(s) && s[j] == '_' {
				v, err := strconv.ParseUint(s[i+2:j], 16, 32)
				if err != nil || v > 0x10FFFF {
					return "", fmt.Errorf("unescape name %q: bad escape %q", s, s[i:j+1])
				}
				b.WriteRune(rune(v))
				i = j + 1
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
