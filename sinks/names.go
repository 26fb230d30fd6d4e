package sinks

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Name mapping: see NameRule. The record's tables are TablesTable and
// ColumnsTable (sinks.go).
const (
	// ReservedTablePrefix starts the name of every object highwater keeps
	// beside the mirror tables; a source table whose name starts with it
	// (in any case) is always mapped.
	ReservedTablePrefix = "highwater_"
	// ReservedColumnPrefix starts the name of every column highwater adds
	// (UpdatedColumn, OpColumn, staging columns); a source column whose
	// name starts with it (in any case) is always mapped.
	ReservedColumnPrefix = "_hw_"
	// MappedMark starts the suffix of a mapped name: the mark, then
	// MappedHashLen lowercase hex digits.
	MappedMark = "_h"
	// MappedHashLen is the number of hex digits of a mapped name's hash.
	MappedHashLen = 8
)

// NameRule says which names a warehouse can hold, and maps every source
// name to one it can. It is the one rule every writer applies to table
// names (and, within a table, to column names):
//
//   - A name is kept as it is when it is valid UTF-8 without NUL, fits
//     MaxBytes together with each of Suffixes, does not start with
//     ReservedPrefix, is not one of Reserved (both in any case), does not
//     end like a mapped name (MappedMark and MappedHashLen hex digits,
//     optionally followed by one of Suffixes), and neither it nor its
//     suffixed forms are taken by another source name (compared case-folded
//     when FoldCase).
//   - Otherwise it is mapped: cut at a UTF-8 boundary so that the result
//     fits, NUL and invalid bytes replaced by '_', then MappedMark and the
//     first MappedHashLen hex digits of the SHA-256 of the full source
//     name. Should that be taken too (two long names with the same prefix
//     and hash), the hash of the source name, a NUL and "1" (then "2", …)
//     is used instead, until the name is free.
//
// Kept names never end like mapped ones, mapped ones always do, and a
// mapped name is only chosen when free, so two source names never share a
// warehouse name: collisions are impossible, not errors. Writers record
// every mapping (TablesTable, ColumnsTable, the files catalog) and consult
// the record first, so a name once given never changes.
type NameRule struct {
	// MaxBytes is the longest name the warehouse holds, in bytes; 0 means
	// no limit.
	MaxBytes int
	// FoldCase says the warehouse compares names case-insensitively
	// (DuckDB): names equal but for case collide.
	FoldCase bool
	// Suffixes are appended to a name to derive its companions (the
	// changelog's ChangesSuffix); they must fit and be free too.
	Suffixes []string
	// ReservedPrefix starts names only highwater may use.
	ReservedPrefix string
	// Reserved are names of highwater's own objects.
	Reserved []string
	// Escape, if set, turns a source name into the form the warehouse
	// stores (the files writer's path segment) before the rule applies.
	Escape func(string) string
}

// Fold returns name as the warehouse compares it.
func (r NameRule) Fold(name string) string {
	if r.FoldCase {
		return strings.ToLower(name)
	}
	return name
}

// Keeps reports whether source is kept as it is (or as Escape makes it)
// when nothing else holds its name.
func (r NameRule) Keeps(source string) bool {
	return r.keeps(r.base(source))
}

func (r NameRule) base(source string) string {
	if r.Escape != nil {
		return r.Escape(source)
	}
	return source
}

func (r NameRule) keeps(base string) bool {
	if base == "" || !utf8.ValidString(base) || strings.IndexByte(base, 0) >= 0 {
		return false
	}
	longest := 0
	for _, s := range r.Suffixes {
		longest = max(longest, len(s))
	}
	if r.MaxBytes > 0 && len(base)+longest > r.MaxBytes {
		return false
	}
	// Reserved names are reserved in any case, even where the warehouse
	// tells case apart: a reader should never have to.
	lower := strings.ToLower(base)
	if r.ReservedPrefix != "" && strings.HasPrefix(lower, strings.ToLower(r.ReservedPrefix)) {
		return false
	}
	for _, n := range r.derived(lower) {
		for _, res := range r.Reserved {
			if n == strings.ToLower(res) {
				return false
			}
		}
	}
	f := r.Fold(base)
	if looksMapped(f) {
		return false
	}
	for _, s := range r.Suffixes {
		if rest, ok := strings.CutSuffix(f, r.Fold(s)); ok && looksMapped(rest) {
			return false
		}
	}
	return true
}

// derived returns name and its suffixed companions.
func (r NameRule) derived(name string) []string {
	out := make([]string, 0, 1+len(r.Suffixes))
	out = append(out, name)
	for _, s := range r.Suffixes {
		out = append(out, name+s)
	}
	return out
}

// looksMapped reports whether a (folded) name ends like a mapped name.
func looksMapped(name string) bool {
	n := len(MappedMark) + MappedHashLen
	if len(name) < n || name[len(name)-n:len(name)-MappedHashLen] != MappedMark {
		return false
	}
	for _, c := range []byte(name[len(name)-MappedHashLen:]) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Hashed returns the mapped form of source: its (escaped) name cut to fit,
// MappedMark and the hash; attempt 0 hashes source alone, attempt k > 0
// source, a NUL and k.
func (r NameRule) Hashed(source string, attempt int) string {
	in := source
	if attempt > 0 {
		in += "\x00" + strconv.Itoa(attempt)
	}
	sum := sha256.Sum256([]byte(in))
	suffix := MappedMark + hex.EncodeToString(sum[:])[:MappedHashLen]
	prefix := sanitize(r.base(source))
	if r.MaxBytes > 0 {
		longest := 0
		for _, s := range r.Suffixes {
			longest = max(longest, len(s))
		}
		room := max(r.MaxBytes-longest-len(suffix), 0)
		if len(prefix) > room {
			prefix = prefix[:room]
			for len(prefix) > 0 && !utf8.ValidString(prefix) {
				prefix = prefix[:len(prefix)-1]
			}
		}
	}
	return prefix + suffix
}

// sanitize replaces NUL and invalid UTF-8 by '_'.
func sanitize(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "_"), "\x00", "_")
}

// maxAttempts bounds the search for a free mapped name; each attempt is a
// fresh 32-bit hash, so only a taken function that claims every name
// reaches it.
const maxAttempts = 1 << 16

// ErrEmptyName is returned by Map for an empty source name, which no
// source table or column has.
var ErrEmptyName = errors.New("empty name")

// ErrNoFreeName is returned by Map when every candidate is taken.
var ErrNoFreeName = errors.New("no free warehouse name")

// Map returns the warehouse name of source: source itself (or as Escape
// makes it) if the rule keeps it and it is free, else the first free
// mapped form. taken reports whether a folded warehouse name is held by
// another source name (or by any object the warehouse has that is not
// this source's); nil means nothing is taken. Map asks taken about a name
// and each of its suffixed forms.
func (r NameRule) Map(source string, taken func(folded string) (bool, error)) (string, error) {
	if source == "" {
		return "", ErrEmptyName
	}
	free := func(n string) (bool, error) {
		if taken == nil {
			return true, nil
		}
		for _, d := range r.derived(r.Fold(n)) {
			t, err := taken(d)
			if err != nil || t {
				return false, err
			}
		}
		return true, nil
	}
	if base := r.base(source); r.keeps(base) {
		ok, err := free(base)
		if err != nil {
			return "", err
		}
		if ok {
			return base, nil
		}
	}
	for k := range maxAttempts {
		n := r.Hashed(source, k)
		ok, err := free(n)
		if err != nil {
			return "", err
		}
		if ok {
			return n, nil
		}
	}
	return "", ErrNoFreeName
}

// TableNames is where one source table lives in a warehouse.
type TableNames struct {
	// Source is the CockroachDB table name.
	Source string
	// Mirror is the mirror table's name.
	Mirror string
	// Changes is the changelog's name: Mirror + ChangesSuffix.
	Changes string
	// AsOf is the time-travel function's name: AsOfName(Mirror).
	AsOf string
}

// TableNamesFor returns the names of a source table whose mirror is named
// mirror.
func TableNamesFor(source, mirror string) TableNames {
	return TableNames{Source: source, Mirror: mirror, Changes: mirror + ChangesSuffix, AsOf: AsOfName(mirror)}
}

// TableRule is the rule for table names in a SQL warehouse whose
// identifiers hold maxBytes bytes (0: no limit) and that folds case or not:
// the changelog's and the time-travel function's names must fit and be
// free too, and highwater_ names are highwater's.
func TableRule(maxBytes int, foldCase bool) NameRule {
	return NameRule{MaxBytes: maxBytes, FoldCase: foldCase, Suffixes: []string{ChangesSuffix, AsOfSuffix}, ReservedPrefix: ReservedTablePrefix}
}

// ColumnRule is the rule for column names within a table of a SQL
// warehouse: _hw_ names are highwater's.
func ColumnRule(maxBytes int, foldCase bool) NameRule {
	return NameRule{MaxBytes: maxBytes, FoldCase: foldCase, ReservedPrefix: ReservedColumnPrefix}
}
