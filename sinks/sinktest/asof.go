package sinktest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// Conformance tests of time travel: with a changelog, every mirror table
// has a function sinks.AsOfName(mirror)(hlc) returning the source table as
// of hlc, with the mirror's columns. The suite calls it as
// "<t>_asof"(<numeric literal>), which DuckDB's table macro and
// PostgreSQL's set-returning function both accept.

// asOfTests are run by Run.
func (s *suite) asOfTests() []struct {
	name string
	fn   func(t *testing.T)
} {
	return []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"AsOfReturnsTheTableAtEveryHLC", s.testAsOf},
		{"AsOfFollowsSchemaChanges", s.testAsOfSchemaChanges},
		{"AsOfNamesNeverCollide", s.testAsOfNames},
	}
}

// asOf returns the rows of a kv-shaped table as of h (id, name, n,
// _hw_updated), through its time-travel function, called with arg.
func (s *suite) asOf(t *testing.T, mirror, arg string) [][]string {
	t.Helper()
	return s.h.Query(t, fmt.Sprintf(`SELECT CAST(id AS VARCHAR), name, CAST(n AS VARCHAR), CAST(_hw_updated AS VARCHAR) FROM %s(%s) ORDER BY id`,
		s.q(sinks.AsOfName(mirror)), arg))
}

// sameAsMirror fails unless the time-travel function at arg returns
// exactly the mirror's rows, column for column (SELECT *: same number of
// columns, in the same order, of comparable types).
func (s *suite) sameAsMirror(t *testing.T, mirror, arg string) {
	t.Helper()
	fn := s.q(sinks.AsOfName(mirror)) + "(" + arg + ")"
	for _, q := range []string{
		`SELECT count(*) FROM (SELECT * FROM ` + fn + ` EXCEPT SELECT * FROM ` + s.q(mirror) + `) d`,
		`SELECT count(*) FROM (SELECT * FROM ` + s.q(mirror) + ` EXCEPT SELECT * FROM ` + fn + `) d`,
	} {
		if got := s.h.Query(t, q); len(got) != 1 || got[0][0] != "0" {
			t.Fatalf("%s: %v rows differ between %s and the mirror", q, got, fn)
		}
	}
}

// testAsOf: inserts, updates, deletes and a re-insert over five windows,
// HLCs with logical parts; the function at each HLC (exactly at a version,
// between versions, before the first, at a delete) returns what the
// source held then.
func (s *suite) testAsOf(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	tb := kv("t")
	h1, h2, h3, h4 := H(base+10, 0), H(base+20, 3), H(base+20, 4), H(base+30, 0)
	apply(t, w, nil, write{tb, []sinks.Change{ins(h1, int64(1), "a", int64(1)), ins(h1, int64(2), "b", int64(2))}})
	// One window holds two versions of key 1: the changelog keeps both.
	apply(t, w, nil, write{tb, []sinks.Change{upd(h2, int64(1), "a2", int64(3)), del(h2, int64(2), nil, nil),
		upd(h3, int64(1), "a3", int64(4))}})
	apply(t, w, nil, write{tb, []sinks.Change{ins(h4, int64(2), "b2", int64(5)), ins(h4, int64(3), "c", int64(6))}})
	apply(t, w, nil, write{tb, []sinks.Change{del(H(base+40, 0), int64(3), nil, nil)}})

	lit := func(h hlc.Timestamp) string { return S(h) }
	at1 := [][]string{{"1", "a", "1", S(h1)}, {"2", "b", "2", S(h1)}}
	at2 := [][]string{{"1", "a2", "3", S(h2)}}
	at3 := [][]string{{"1", "a3", "4", S(h3)}}
	at4 := [][]string{{"1", "a3", "4", S(h3)}, {"2", "b2", "5", S(h4)}, {"3", "c", "6", S(h4)}}
	at5 := [][]string{{"1", "a3", "4", S(h3)}, {"2", "b2", "5", S(h4)}}
	for _, tc := range []struct {
		what string
		arg  string
		want [][]string
	}{
		{"before the first version", lit(H(base+9, 2147483647)), nil},
		{"at the first version", lit(h1), at1},
		{"between versions", lit(H(base+20, 2)), at1},
		{"at a delete and an update", lit(h2), at2},
		{"one logical tick later", lit(h3), at3},
		{"at a re-insert", lit(h4), at4},
		{"just before a delete", lit(H(base+39, 999999999)), at4},
		{"at a delete", lit(H(base+40, 0)), at5},
		{"long after", lit(H(base+1_000_000_000_000, 0)), at5},
		{"an integer (wall nanoseconds)", fmt.Sprint(base + 30), at4},
		{"a string", "CAST('" + S(h2) + "' AS VARCHAR)", at2},
	} {
		expect(t, "t_asof "+tc.what+" ("+tc.arg+")", s.asOf(t, "t", tc.arg), tc.want)
	}
	s.sameAsMirror(t, "t", lit(H(base+50, 0)))
}

// testAsOfSchemaChanges: ADD COLUMN, a dropped column kept as NULL and a
// source column named hlc (the function's parameter); the function
// returns the mirror's columns at every HLC, after a restart too.
func (s *suite) testAsOfSchemaChanges(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	v1 := evolved("t", Col("hlc", model.KindInt))
	v2 := evolved("t", Col("hlc", model.KindInt), Col("b", model.KindInt))
	v3 := evolved("t", Col("b", model.KindInt))
	apply(t, w, nil, write{v1, []sinks.Change{ins(ts(1), int64(1), "x", int64(100)), ins(ts(1), int64(2), "y", int64(200))}})
	apply(t, w, nil, write{v2, []sinks.Change{upd(ts(2), int64(1), "x2", int64(101), int64(10))}})
	q := func(h hlc.Timestamp) [][]string {
		return s.h.Query(t, fmt.Sprintf(`SELECT CAST(id AS VARCHAR), a, CAST(hlc AS VARCHAR), CAST(b AS VARCHAR) FROM %s(%s) ORDER BY id`,
			s.q(sinks.AsOfName("t")), S(h)))
	}
	before := [][]string{{"1", "x", "100", Null}, {"2", "y", "200", Null}}
	after := [][]string{{"1", "x2", "101", "10"}, {"2", "y", "200", Null}}
	expect(t, "before ADD COLUMN", q(ts(1)), before)
	expect(t, "after ADD COLUMN", q(ts(2)), after)
	s.sameAsMirror(t, "t", S(ts(2)))
	closeW(t, w)
	// hlc dropped (kept as NULL), and ADD COLUMN again in the same window.
	w = s.h.Reopen(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	v4 := evolved("t", Col("b", model.KindInt), Col("c", model.KindString))
	apply(t, w, nil,
		write{v3, []sinks.Change{upd(ts(3), int64(2), "y3", int64(30))}},
		write{v4, []sinks.Change{ins(ts(4), int64(3), "z", int64(40), "c")}})
	expect(t, "before ADD COLUMN, after a restart", q(ts(1)), before)
	expect(t, "after the drop", q(ts(3)), [][]string{{"1", "x2", "101", "10"}, {"2", "y3", Null, "30"}})
	qc := fmt.Sprintf(`SELECT CAST(id AS VARCHAR), c FROM %s(%s) ORDER BY id`, s.q(sinks.AsOfName("t")), S(ts(4)))
	expect(t, "the second ADD COLUMN", s.h.Query(t, qc), [][]string{{"1", Null}, {"2", Null}, {"3", "c"}})
	s.sameAsMirror(t, "t", S(ts(4)))
}

// testAsOfNames: a source table named like another's time-travel
// function, in both orders, gets a mirror (and function) of its own, and
// every function returns its own table's rows; so does a long name's.
func (s *suite) testAsOfNames(t *testing.T) {
	long := strings.Repeat("t", 60)
	for _, order := range [][]string{{"x", "x" + sinks.AsOfSuffix}, {"y" + sinks.AsOfSuffix, "y"}, {long}} {
		t.Run(strings.Join(order, "_then_"), func(t *testing.T) {
			w := s.open(t, sinks.Options{Changelog: true})
			defer closeW(t, w)
			for i, src := range order {
				apply(t, w, nil, write{kv(src), []sinks.Change{ins(ts(int64(i+1)), int64(i+1), src, int64(i))}})
			}
			fns := map[string]string{}
			for i, src := range order {
				tn := s.names(t, src)
				fn := sinks.AsOfName(tn.Mirror)
				if other, ok := fns[strings.ToLower(fn)]; ok {
					t.Fatalf("%q and %q share the time-travel function %q", src, other, fn)
				}
				fns[strings.ToLower(fn)] = src
				for _, other := range order {
					if o := s.names(t, other); strings.EqualFold(o.Mirror, fn) || strings.EqualFold(o.Changes, fn) {
						t.Fatalf("the time-travel function of %q is named %q, like the mirror or changelog of %q", src, fn, other)
					}
				}
				// It fits wherever the changelog does (PostgreSQL: 63 bytes).
				if len(fn) > len(tn.Changes) {
					t.Fatalf("the time-travel function of %q, %q, is longer than its changelog's name %q", src, fn, tn.Changes)
				}
				expect(t, fn, s.asOf(t, tn.Mirror, S(ts(10))), [][]string{{fmt.Sprint(i + 1), src, fmt.Sprint(i), S(ts(int64(i + 1)))}})
			}
		})
	}
}
