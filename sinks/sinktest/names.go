package sinktest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// Conformance tests of the name mapping (sinks.NameRule): names a
// warehouse cannot hold as they are still get a table of their own, with
// the right rows, and the record (sinks.TablesTable, sinks.ColumnsTable)
// says where each source table and renamed column is.

// nameTests are run by Run.
func (s *suite) nameTests() []struct {
	name string
	fn   func(t *testing.T)
} {
	return []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"NamesLongTableWithChangelogIsMapped", s.testLongTableName},
		{"NamesCaseCollidingTablesStayDistinct", s.testCaseCollidingTables},
		{"NamesLikeHighwatersOwnAreMapped", s.testReservedTableNames},
		{"NamesEqualToAnothersMappedForm", s.testMappedFormLookalike},
		{"NamesLongAndCaseCollidingColumns", s.testColumnNames},
		{"NamesOlderMirrorsAreRecorded", s.testOlderMirrorsRecorded},
	}
}

// lit renders s as an SQL string literal.
func lit(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// names returns the recorded mirror and changelog names of a source table;
// the test fails if the table is not recorded.
func (s *suite) names(t *testing.T, source string) sinks.TableNames {
	t.Helper()
	rows := s.h.Query(t, `SELECT mirror_table, changes_table FROM `+sinks.TablesTable+` WHERE source_table = `+lit(source))
	if len(rows) != 1 {
		t.Fatalf("%s holds %d rows for source table %q, want 1", sinks.TablesTable, len(rows), source)
	}
	return sinks.TableNames{Source: source, Mirror: rows[0][0], Changes: rows[0][1]}
}

// column returns the warehouse name of a source column: the recorded one,
// or its own.
func (s *suite) column(t *testing.T, table, col string) string {
	t.Helper()
	rows := s.h.Query(t, `SELECT warehouse_column FROM `+sinks.ColumnsTable+` WHERE source_table = `+lit(table)+
		` AND source_column = `+lit(col))
	if len(rows) == 1 {
		return rows[0][0]
	}
	return col
}

// checkTable checks a kv table by its source name: its rows (id, name, n,
// _hw_updated) and, with a changelog, the changelog's row count.
func (s *suite) checkTable(t *testing.T, source string, want [][]string, changes string) {
	t.Helper()
	tn := s.names(t, source)
	if tn.Changes != tn.Mirror+sinks.ChangesSuffix {
		t.Fatalf("table %q: changelog %q is not its mirror %q plus %s", source, tn.Changes, tn.Mirror, sinks.ChangesSuffix)
	}
	expect(t, "rows of "+source+" in "+tn.Mirror, s.kvRows(t, tn.Mirror), want)
	if changes != "" {
		if n := s.changelogCount(t, tn.Mirror); n != changes {
			t.Fatalf("changelog of %q (%s): %s rows, want %s", source, tn.Changes, n, changes)
		}
	}
}

// distinct fails unless the mirrors and changelogs of the sources are
// distinct names. (Where the warehouse folds case, two names equal but for
// case would be one table, which the rows checked show.)
func (s *suite) distinct(t *testing.T, sources ...string) {
	t.Helper()
	seen := map[string]string{}
	for _, src := range sources {
		tn := s.names(t, src)
		for _, n := range []string{tn.Mirror, tn.Changes} {
			if other, ok := seen[n]; ok {
				t.Fatalf("%q is stored in %q, which %q also holds", src, n, other)
			}
			seen[n] = src
		}
	}
}

// testLongTableName: a 60-byte table name with its changelog (68 bytes,
// more than PostgreSQL's 63) and a 60-byte name differing only in its
// last byte.
func (s *suite) testLongTableName(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	a, b := strings.Repeat("t", 59)+"a", strings.Repeat("t", 59)+"b"
	for i := range 2 { // the second window finds the mapping recorded
		apply(t, w, nil,
			write{kv(a), []sinks.Change{ins(ts(int64(1+i)), int64(1), "a", int64(i))}},
			write{kv(b), []sinks.Change{ins(ts(int64(1+i)), int64(1), "b", int64(i))}})
	}
	s.checkTable(t, a, [][]string{{"1", "a", "1", S(ts(2))}}, "2")
	s.checkTable(t, b, [][]string{{"1", "b", "1", S(ts(2))}}, "2")
	s.distinct(t, a, b)
}

// testCaseCollidingTables: Orders and orders are two CockroachDB tables.
func (s *suite) testCaseCollidingTables(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	const upper, lower, shout = "Orders", "orders", "ORDERS"
	apply(t, w, nil,
		write{kv(upper), []sinks.Change{ins(ts(1), int64(1), "upper", int64(1))}},
		write{kv(lower), []sinks.Change{ins(ts(1), int64(1), "lower", int64(2)), ins(ts(1), int64(2), "lower", int64(3))}})
	closeW(t, w)
	// After a restart, the record decides: no table moves.
	w = s.h.Reopen(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	apply(t, w, nil,
		write{kv(lower), []sinks.Change{upd(ts(2), int64(1), "lower2", int64(4))}},
		write{kv(shout), []sinks.Change{ins(ts(2), int64(9), "shout", int64(5))}},
		write{kv(upper), []sinks.Change{del(ts(2), int64(1), nil, nil), ins(ts(2), int64(7), "upper", int64(6))}})
	s.checkTable(t, upper, [][]string{{"7", "upper", "6", S(ts(2))}}, "3")
	s.checkTable(t, lower, [][]string{{"1", "lower2", "4", S(ts(2))}, {"2", "lower", "3", S(ts(1))}}, "3")
	s.checkTable(t, shout, [][]string{{"9", "shout", "5", S(ts(2))}}, "1")
	s.distinct(t, upper, lower, shout)
}

// testReservedTableNames: source tables named like highwater's own
// objects, and like another table's changelog or index, in both orders.
func (s *suite) testReservedTableNames(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	own := []string{sinks.CheckpointsTable, sinks.DeadLetterTable, sinks.WatermarkView, sinks.TablesTable, sinks.ColumnsTable, "highwater_new"}
	var writes []write
	// x before x_changes, y_changes before y, t before t_pkey (an index
	// name in PostgreSQL), x_changes_changes after both.
	sources := append([]string{"x", "x_changes", "y_changes", "y", "t", "t_pkey", "x_changes_changes"}, own...)
	for i, src := range sources {
		writes = append(writes, write{kv(src), []sinks.Change{ins(ts(1), int64(i), src, int64(i))}})
	}
	cp := []sinks.Checkpoint{{Group: "g", Topic: "topic", Partition: 0, Resolved: ts(1), NextOffset: 5}}
	ctx := context.Background()
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, wr := range writes {
		if err := tx.Write(ctx, wr.table, wr.changes); err != nil {
			t.Fatalf("Write %q: %v", wr.table.Name, err)
		}
	}
	if err := tx.Checkpoint(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if err := tx.DeadLetters(ctx, []sinks.DeadLetter{{Group: "g", Topic: "topic", Partition: 0, Offset: 3, Key: []byte("k"), SchemaID: -1, Stage: "ingest", Error: "bad"}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for i, src := range sources {
		s.checkTable(t, src, [][]string{{fmt.Sprint(i), src, fmt.Sprint(i), S(ts(1))}}, "1")
	}
	s.distinct(t, sources...)
	for _, src := range own {
		if tn := s.names(t, src); tn.Mirror == src || strings.HasPrefix(strings.ToLower(tn.Mirror), sinks.ReservedTablePrefix) &&
			!strings.Contains(tn.Mirror, sinks.MappedMark) {
			t.Fatalf("%q is stored in %q: want a mapped name", src, tn.Mirror)
		}
	}
	// highwater's own objects still work.
	expectCps(t, "checkpoints", checkpoints(t, w, "g"), cp)
	if got := s.h.Query(t, `SELECT CAST(resolved AS VARCHAR) FROM `+sinks.WatermarkView+` WHERE consumer_group = 'g' AND topic IS NULL`); len(got) != 1 || got[0][0] != S(ts(1)) {
		t.Fatalf("watermark: %v", got)
	}
	if got := s.deadLetterRows(t); len(got) != 1 || got[0][3] != "3" {
		t.Fatalf("dead letters: %v", got)
	}
}

// testMappedFormLookalike: a source table literally named like another
// table's mapped name, written before and after that table.
func (s *suite) testMappedFormLookalike(t *testing.T) {
	const src = "highwater_a" // mapped by every warehouse
	// Its mapped form where nothing else is taken; short enough for every
	// warehouse's limit, so the same in each.
	mapped := sinks.TableRule(0, false).Hashed(src, 0)
	for _, order := range [][]string{{src, mapped}, {mapped, src}} {
		t.Run(order[0], func(t *testing.T) {
			w := s.open(t, sinks.Options{Changelog: true})
			defer closeW(t, w)
			for i, n := range order {
				apply(t, w, nil, write{kv(n), []sinks.Change{ins(ts(int64(i+1)), int64(i), n, int64(i))}})
			}
			for i, n := range order {
				s.checkTable(t, n, [][]string{{fmt.Sprint(i), n, fmt.Sprint(i), S(ts(int64(i + 1)))}}, "1")
			}
			s.distinct(t, src, mapped)
			if got := s.names(t, src).Mirror; got != mapped {
				t.Fatalf("%q is stored in %q, want its mapped form %q", src, got, mapped)
			}
		})
	}
}

// testColumnNames: a 70-byte column, columns equal but for case, columns
// named like highwater's own, and a later version adding a column that
// collides with the key but for case.
func (s *suite) testColumnNames(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	long := strings.Repeat("c", 69) + "1"
	long2 := strings.Repeat("c", 69) + "2"
	cols := []model.Column{Col("id", model.KindInt), Col("a", model.KindString), Col("A", model.KindString),
		Col(long, model.KindInt), Col(long2, model.KindInt), Col(sinks.UpdatedColumn, model.KindString), Col("_HW_OP", model.KindString)}
	v1 := Table("cols", []int{0}, cols...)
	apply(t, w, nil, write{v1, []sinks.Change{
		ins(ts(1), int64(1), "a1", "A1", int64(11), int64(12), "u1", "o1"),
		ins(ts(1), int64(2), "a2", "A2", int64(21), int64(22), "u2", "o2"),
	}})
	closeW(t, w)
	w = s.h.Reopen(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	v2 := Table("cols", []int{0}, append(cols, Col("ID", model.KindInt))...)
	apply(t, w, nil, write{v2, []sinks.Change{
		upd(ts(2), int64(2), "a2'", "A2'", int64(210), int64(220), "u2'", "o2'", int64(-2)),
	}})
	tn := s.names(t, "cols")
	var sel []string
	seen := map[string]string{}
	for _, c := range v2.Columns {
		wh := s.column(t, "cols", c.Name)
		if other, ok := seen[wh]; ok {
			t.Fatalf("columns %q and %q share the warehouse column %q", c.Name, other, wh)
		}
		seen[wh] = c.Name
		sel = append(sel, "CAST("+s.q(wh)+" AS VARCHAR)")
	}
	q := `SELECT ` + strings.Join(sel, ", ") + ` FROM %s ORDER BY ` + s.q(s.column(t, "cols", "id"))
	expect(t, "mirror", s.h.Query(t, fmt.Sprintf(q, s.q(tn.Mirror))), [][]string{
		{"1", "a1", "A1", "11", "12", "u1", "o1", Null},
		{"2", "a2'", "A2'", "210", "220", "u2'", "o2'", "-2"},
	})
	if got := s.h.Query(t, fmt.Sprintf(`SELECT count(*) FROM %s`, s.q(tn.Changes))); got[0][0] != "3" {
		t.Fatalf("changelog rows: %v, want 3", got)
	}
	for _, c := range []string{sinks.UpdatedColumn, "_HW_OP"} {
		if s.column(t, "cols", c) == c {
			t.Errorf("column %q kept its name", c)
		}
	}
}

// testOlderMirrorsRecorded: a warehouse written before the name record
// existed gets its mirrors recorded under their own names when a writer
// opens it, and a new source table named like an existing changelog is
// mapped.
func (s *suite) testOlderMirrorsRecorded(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	apply(t, w, nil, write{kv("old"), []sinks.Change{ins(ts(1), int64(1), "a", int64(1))}})
	closeW(t, w)
	// As an older highwater left it: no record.
	w = s.h.Reopen(t, sinks.Options{Changelog: true})
	s.h.Query(t, `DROP TABLE `+sinks.TablesTable)
	s.h.Query(t, `DROP TABLE `+sinks.ColumnsTable)
	closeW(t, w)
	w = s.h.Reopen(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	if tn := s.names(t, "old"); tn.Mirror != "old" || tn.Changes != "old_changes" {
		t.Fatalf("older mirror recorded as %+v", tn)
	}
	apply(t, w, nil,
		write{kv("old_changes"), []sinks.Change{ins(ts(2), int64(5), "new", int64(5))}},
		write{kv("old"), []sinks.Change{upd(ts(2), int64(1), "b", int64(2))}})
	s.checkTable(t, "old", [][]string{{"1", "b", "2", S(ts(2))}}, "2")
	s.checkTable(t, "old_changes", [][]string{{"5", "new", "5", S(ts(2))}}, "1")
	s.distinct(t, "old", "old_changes")
}
