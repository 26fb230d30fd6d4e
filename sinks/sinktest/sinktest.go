// Package sinktest is the conformance suite that every sinks.Writer must pass.
//
// A warehouse package calls Run from one of its tests with a Harness that
// opens its writer on a fresh, empty warehouse and reads that warehouse back
// with SQL. The suite only uses SQL that DuckDB and PostgreSQL both accept:
// double-quoted identifiers (through Harness.Quote), CAST(x AS VARCHAR), and
// the layout that the README ("Warehouse layout") promises users:
//
//   - a mirror table per source table, named as the source table, with the
//     same column names plus _hw_updated DECIMAL(38,10) (unless
//     sinks.NameRule maps a name: the Names tests find tables and columns
//     through sinks.TablesTable and sinks.ColumnsTable);
//   - <table>_changes with every version, _hw_updated and _hw_op, when
//     sinks.Options.Changelog is set;
//   - then also <table>_asof(hlc) (sinks.AsOfName), the table as of an HLC
//     given as a numeric literal, with the mirror's columns;
//   - highwater_checkpoints and the highwater_watermark view with the columns
//     consumer_group, topic (NULL on the feed-wide row of a group), resolved
//     (DECIMAL(38,10), the minimum resolved HLC) and partitions (the number
//     of partitions the row covers).
//
// The suite uses only INT and STRING columns; type mappings are each
// writer's own tests' business.
//
// This file is long (about 1000 lines) on purpose: it holds the suite's
// original scenarios, each a test that reads top to bottom beside the few
// helpers they share; the later groups have files of their own (fence.go,
// names.go, asof.go, rows.go).
package sinktest

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// Null is how Harness.Query must render SQL NULL.
const Null = "NULL"

// Harness gives the suite a fresh writer and a way to read the warehouse
// back. Its functions are called from the test goroutine of the subtest t
// they receive; each subtest uses its own warehouse.
type Harness struct {
	// Open returns a writer on a fresh, empty warehouse for t. The suite
	// closes every writer it gets.
	Open func(t *testing.T, opts sinks.Options) sinks.Writer
	// Reopen returns a new writer on the warehouse that the last Open for
	// t created. The suite closes the previous writer first.
	Reopen func(t *testing.T, opts sinks.Options) sinks.Writer
	// Query runs sql against the warehouse of t's current writer (while it
	// is open, committed data only) and returns every row, each column as
	// text and SQL NULL as Null. The suite CASTs non-text columns to VARCHAR
	// itself. Query fails t on error.
	Query func(t *testing.T, sql string) [][]string
	// Quote quotes an identifier for the warehouse's SQL dialect.
	Quote func(ident string) string
	// Second returns another writer on the warehouse of t's current
	// writer, open at the same time, as another member of the group would
	// have: the fence tests race two of them. The suite closes it. Nil
	// skips those tests.
	Second func(t *testing.T, opts sinks.Options) sinks.Writer
}

// QueryDB returns a Harness.Query that runs queries through db and scans
// every column as text. It suits any database/sql driver whose columns
// convert to strings; the suite casts its columns to VARCHAR.
func QueryDB(db func(t *testing.T) *sql.DB) func(t *testing.T, q string) [][]string {
	return func(t *testing.T, q string) [][]string {
		t.Helper()
		return Rows(t, db(t), q)
	}
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, h Harness) {
	s := &suite{h: h}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"InsertUpdateDeleteApply", s.testInsertUpdateDelete},
		{"NewestVersionPerKeyWinsInWindow", s.testNewestWinsInWindow},
		{"OlderVersionNeverOverwritesNewer", s.testOlderNeverOverwrites},
		{"DeleteOfAbsentRowIsFine", s.testDeleteAbsent},
		{"ReplayedWindowIsIdempotent", s.testReplayIdempotent},
		{"CompositePrimaryKey", s.testCompositeKey},
		{"OddNamesAreQuoted", s.testOddNames},
		{"UpdatedIsExactHLC", s.testExactHLC},
		{"ChangelogHoldsEveryVersionOnce", s.testChangelog},
		{"CheckpointsStoredPerGroupAndPersist", s.testCheckpoints},
		{"RollbackLeavesNothing", s.testRollback},
		{"FailedWriteLeavesWarehouseUnchanged", s.testFailedWrite},
		{"WatermarkIsMinResolved", s.testWatermark},
		{"CheckpointNeverMovesBack", s.testCheckpointNeverMovesBack},
		{"DeadLettersStoredOncePerOffset", s.testDeadLetters},
		{"DeadLettersRollBackWithTheWindow", s.testDeadLettersRollback},
		{"SchemaEvolutionAddColumn", s.testAddColumn},
		{"SchemaEvolutionAddColumnInOneWindow", s.testAddColumnSameWindow},
		{"SchemaEvolutionDroppedColumnBecomesNull", s.testDropColumn},
		{"SchemaEvolutionIncompatibleTypeFails", s.testIncompatibleType},
		{"LargeBatch", s.testLargeBatch},
	}
	tests = append(tests, s.nameTests()...)
	tests = append(tests, s.fenceTests()...)
	tests = append(tests, s.asOfTests()...)
	tests = append(tests, s.feedTests()...)
	for _, tc := range tests {
		t.Run(tc.name, tc.fn)
	}
}

type suite struct{ h Harness }

// Schema and value helpers.

// Col returns a nullable column of kind k named name.
func Col(name string, k model.Kind) model.Column {
	return model.Column{Name: name, AvroName: model.SQLNameToAvroName(name), Type: model.Type{Kind: k}, Nullable: true}
}

// Table builds a table version; key holds indexes into cols, in primary-key
// order.
func Table(name string, key []int, cols ...model.Column) *model.Table {
	t := &model.Table{Name: name, Columns: append([]model.Column(nil), cols...), Key: key}
	for _, k := range key {
		t.Columns[k].PrimaryKey = true
		t.Columns[k].Nullable = false
	}
	return t
}

// H returns the HLC wall.logical.
func H(wall int64, logical int32) hlc.Timestamp {
	return hlc.Timestamp{WallTime: wall, Logical: logical}
}

// base is a realistic wall time (2022-08-04) so the text form has 19 digits.
const base = int64(1659643584586630201)

func ts(i int64) hlc.Timestamp { return H(base+i, 0) }

func ins(h hlc.Timestamp, vals ...any) sinks.Change {
	return sinks.Change{Op: sinks.OpInsert, Updated: h, Values: vals}
}
func upd(h hlc.Timestamp, vals ...any) sinks.Change {
	return sinks.Change{Op: sinks.OpUpdate, Updated: h, Values: vals}
}
func ups(h hlc.Timestamp, vals ...any) sinks.Change {
	return sinks.Change{Op: sinks.OpUpsert, Updated: h, Values: vals}
}
func del(h hlc.Timestamp, vals ...any) sinks.Change {
	return sinks.Change{Op: sinks.OpDelete, Updated: h, Values: vals}
}

// kv is the suite's everyday table: id INT primary key, name STRING, n INT.
func kv(name string) *model.Table {
	return Table(name, []int{0}, Col("id", model.KindInt), Col("name", model.KindString), Col("n", model.KindInt))
}

// write is one Write call of a window.
type write struct {
	table   *model.Table
	changes []sinks.Change
}

func (s *suite) open(t *testing.T, opts sinks.Options) sinks.Writer {
	t.Helper()
	w := s.h.Open(t, opts)
	if w == nil {
		t.Fatal("Harness.Open returned nil")
	}
	return w
}

// apply commits one window with the given writes and checkpoints.
func apply(t *testing.T, w sinks.Writer, cps []sinks.Checkpoint, writes ...write) {
	t.Helper()
	ctx := context.Background()
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	for _, wr := range writes {
		if err := tx.Write(ctx, wr.table, wr.changes); err != nil {
			_ = tx.Rollback(ctx)
			t.Fatalf("Write %s: %v", wr.table.Name, err)
		}
	}
	if len(cps) > 0 {
		if err := tx.Checkpoint(ctx, cps); err != nil {
			_ = tx.Rollback(ctx)
			t.Fatalf("Checkpoint: %v", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("Rollback after Commit must be a no-op, got %v", err)
	}
}

func (s *suite) q(ident string) string { return s.h.Quote(ident) }

// kvRows reads an kv-shaped table ordered by id.
func (s *suite) kvRows(t *testing.T, table string) [][]string {
	t.Helper()
	return s.h.Query(t, fmt.Sprintf(`SELECT CAST(id AS VARCHAR), name, CAST(n AS VARCHAR), CAST(_hw_updated AS VARCHAR) FROM %s ORDER BY id`, s.q(table)))
}

func expect(t *testing.T, what string, got, want [][]string) {
	t.Helper()
	if len(want) == 0 {
		want = [][]string{}
	}
	if got == nil {
		got = [][]string{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func closeW(t *testing.T, w sinks.Writer) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// S renders an HLC as its DECIMAL(38,10) text, the form _hw_updated and
// resolved read back as.
func S(h hlc.Timestamp) string { return h.String() }

func (s *suite) testInsertUpdateDelete(t *testing.T) {
	w := s.open(t, sinks.Options{})
	defer closeW(t, w)
	tb := kv("users")
	apply(t, w, nil, write{tb, []sinks.Change{
		ins(ts(1), int64(1), "ann", int64(10)),
		ins(ts(1), int64(2), "bob", int64(20)),
		ins(ts(2), int64(3), "cy", nil),
	}})
	expect(t, "after inserts", s.kvRows(t, "users"), [][]string{
		{"1", "ann", "10", S(ts(1))},
		{"2", "bob", "20", S(ts(1))},
		{"3", "cy", Null, S(ts(2))},
	})
	apply(t, w, nil, write{tb, []sinks.Change{
		upd(ts(3), int64(2), "bobby", int64(21)),
		del(ts(3), int64(3), nil, nil),
		ups(ts(4), int64(1), nil, int64(11)),
	}})
	expect(t, "after update and delete", s.kvRows(t, "users"), [][]string{
		{"1", Null, "11", S(ts(4))},
		{"2", "bobby", "21", S(ts(3))},
	})
}

func (s *suite) testNewestWinsInWindow(t *testing.T) {
	w := s.open(t, sinks.Options{})
	defer closeW(t, w)
	tb := kv("t")
	apply(t, w, nil,
		write{tb, []sinks.Change{
			// Several versions of one key in one Write.
			ins(ts(1), int64(1), "v1", int64(1)),
			upd(ts(2), int64(1), "v2", int64(2)),
			upd(ts(3), int64(1), "v3", int64(3)),
			// Insert then delete: absent.
			ins(ts(1), int64(2), "gone", int64(1)),
			del(ts(2), int64(2), nil, nil),
			// Delete (of an absent row) then insert: present.
			del(ts(1), int64(3), nil, nil),
			ins(ts(2), int64(3), "back", int64(3)),
			ins(ts(1), int64(4), "w1", int64(1)),
		}},
		// Versions of one key spread over Writes of the window.
		write{tb, []sinks.Change{upd(ts(5), int64(4), "w2", int64(2))}},
		write{tb, []sinks.Change{upd(ts(6), int64(4), "w3", int64(3)), del(ts(6), int64(1), nil, nil)}},
		write{tb, []sinks.Change{ins(ts(7), int64(1), "reborn", int64(7))}},
	)
	expect(t, "newest version per key", s.kvRows(t, "t"), [][]string{
		{"1", "reborn", "7", S(ts(7))},
		{"3", "back", "3", S(ts(2))},
		{"4", "w3", "3", S(ts(6))},
	})
}

func (s *suite) testOlderNeverOverwrites(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	tb := kv("t")
	apply(t, w, nil, write{tb, []sinks.Change{
		ins(ts(10), int64(1), "new", int64(10)),
		ins(ts(10), int64(2), "keep", int64(10)),
		ins(ts(10), int64(3), "old-logical", int64(10)),
	}})
	// The next window carries versions older than what the warehouse has:
	// they must neither update nor delete.
	apply(t, w, nil, write{tb, []sinks.Change{
		upd(ts(5), int64(1), "old", int64(5)),
		del(ts(6), int64(2), nil, nil),
		ins(ts(7), int64(4), "fresh", int64(7)),
		// Same wall time, smaller logical: still older.
		upd(H(base+10, 0), int64(3), "old-logical", int64(10)),
	}})
	expect(t, "older versions ignored", s.kvRows(t, "t"), [][]string{
		{"1", "new", "10", S(ts(10))},
		{"2", "keep", "10", S(ts(10))},
		{"3", "old-logical", "10", S(ts(10))},
		{"4", "fresh", "7", S(ts(7))},
	})
	// A newer logical at the same wall time does replace.
	apply(t, w, nil, write{tb, []sinks.Change{upd(H(base+10, 1), int64(3), "newer-logical", int64(11))}})
	got := s.h.Query(t, fmt.Sprintf(`SELECT name, CAST(_hw_updated AS VARCHAR) FROM %s WHERE id = 3`, s.q("t")))
	expect(t, "newer logical applies", got, [][]string{{"newer-logical", S(H(base+10, 1))}})
}

func (s *suite) testDeleteAbsent(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	tb := kv("t")
	// The very first window of a table may be only deletes.
	apply(t, w, nil, write{tb, []sinks.Change{del(ts(1), int64(9), nil, nil)}})
	expect(t, "delete of absent row on a new table", s.kvRows(t, "t"), nil)
	apply(t, w, nil, write{tb, []sinks.Change{ins(ts(2), int64(1), "a", int64(1))}})
	apply(t, w, nil, write{tb, []sinks.Change{del(ts(3), int64(7), nil, nil), del(ts(3), int64(8), nil, nil)}})
	expect(t, "delete of absent rows", s.kvRows(t, "t"), [][]string{{"1", "a", "1", S(ts(2))}})
}

func (s *suite) testReplayIdempotent(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	tb := kv("t")
	window := []sinks.Change{
		ins(ts(1), int64(1), "a", int64(1)),
		upd(ts(2), int64(1), "b", int64(2)),
		ins(ts(2), int64(2), "c", int64(3)),
		ins(ts(2), int64(3), "d", int64(4)),
		del(ts(3), int64(3), nil, nil),
	}
	cps := []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 0, Resolved: ts(3), NextOffset: 5}}
	want := [][]string{
		{"1", "b", "2", S(ts(2))},
		{"2", "c", "3", S(ts(2))},
	}
	apply(t, w, cps, write{tb, window})
	expect(t, "first apply", s.kvRows(t, "t"), want)
	changes := s.changelogCount(t, "t")
	if changes != "5" {
		t.Fatalf("changelog rows after first apply: got %s, want 5", changes)
	}
	// The same window again (a restart between commit and Kafka offset
	// commit): nothing changes, the changelog gains nothing.
	apply(t, w, cps, write{tb, window})
	expect(t, "replayed apply", s.kvRows(t, "t"), want)
	if got := s.changelogCount(t, "t"); got != changes {
		t.Fatalf("changelog rows after replay: got %s, want %s", got, changes)
	}
	// Rows exactly at the frontier come again in the next window.
	apply(t, w, nil, write{tb, []sinks.Change{upd(ts(2), int64(2), "c", int64(3)), ins(ts(4), int64(4), "e", int64(5))}})
	expect(t, "frontier rows re-applied", s.kvRows(t, "t"), append(want, []string{"4", "e", "5", S(ts(4))}))
	if got := s.changelogCount(t, "t"); got != "6" {
		t.Fatalf("changelog rows: got %s, want 6", got)
	}
}

func (s *suite) changelogCount(t *testing.T, table string) string {
	t.Helper()
	rows := s.h.Query(t, fmt.Sprintf(`SELECT CAST(count(*) AS VARCHAR) FROM %s`, s.q(table+"_changes")))
	return rows[0][0]
}

func (s *suite) testCompositeKey(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	// PRIMARY KEY (id, region): key order differs from column order.
	tb := Table("orders", []int{1, 0}, Col("region", model.KindString), Col("id", model.KindInt), Col("v", model.KindString))
	apply(t, w, nil, write{tb, []sinks.Change{
		ins(ts(1), "eu", int64(1), "eu1"),
		ins(ts(1), "us", int64(1), "us1"),
		ins(ts(1), "eu", int64(2), "eu2"),
	}})
	apply(t, w, nil, write{tb, []sinks.Change{
		upd(ts(2), "us", int64(1), "us1b"),
		del(ts(2), "eu", int64(2), nil),
		upd(ts(0), "eu", int64(1), "older"),
	}})
	got := s.h.Query(t, fmt.Sprintf(`SELECT region, CAST(id AS VARCHAR), v, CAST(_hw_updated AS VARCHAR) FROM %s ORDER BY region, id`, s.q("orders")))
	expect(t, "composite key rows", got, [][]string{
		{"eu", "1", "eu1", S(ts(1))},
		{"us", "1", "us1b", S(ts(2))},
	})
	if n := s.changelogCount(t, "orders"); n != "6" {
		t.Fatalf("changelog rows: got %s, want 6", n)
	}
}

func (s *suite) testOddNames(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	names := []string{"select", "order items", `Mixed"Quote`, "a.b", "Robert'); DROP TABLE x;--"}
	var writes []write
	for i, name := range names {
		tb := Table(name, []int{0}, Col("from", model.KindInt), Col("☃", model.KindString), Col("a b", model.KindInt), Col(`"`, model.KindString))
		writes = append(writes, write{tb, []sinks.Change{
			ins(ts(1), int64(1), "snow'man", int64(i), `quote"d`),
			ins(ts(1), int64(2), "x", int64(i), nil),
			upd(ts(2), int64(2), "y", int64(i+10), "z"),
			ins(ts(1), int64(3), "gone", nil, nil),
			del(ts(2), int64(3), nil, nil, nil),
		}})
	}
	apply(t, w, nil, writes...)
	apply(t, w, nil, writes...) // replay: changelog conflicts by odd key names
	for i, name := range names {
		got := s.h.Query(t, fmt.Sprintf(`SELECT CAST(%s AS VARCHAR), %s, CAST(%s AS VARCHAR), %s FROM %s ORDER BY %s`,
			s.q("from"), s.q("☃"), s.q("a b"), s.q(`"`), s.q(name), s.q("from")))
		expect(t, "table "+name, got, [][]string{
			{"1", "snow'man", fmt.Sprint(i), `quote"d`},
			{"2", "y", fmt.Sprint(i + 10), "z"},
		})
		if n := s.changelogCount(t, name); n != "5" {
			t.Fatalf("changelog of %q: got %s rows, want 5", name, n)
		}
	}
}

func (s *suite) testExactHLC(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	tb := kv("t")
	cases := []struct {
		id int64
		h  hlc.Timestamp
		s  string
	}{
		{1, H(1659643584586630201, 7), "1659643584586630201.0000000007"},
		{2, H(1659643584586630201, 2147483647), "1659643584586630201.2147483647"},
		{3, H(1, 2), "1.0000000002"},
		{4, H(9223372036854775807, 0), "9223372036854775807.0000000000"},
	}
	var changes []sinks.Change
	for _, c := range cases {
		if c.h.String() != c.s {
			t.Fatalf("HLC.String %v = %s, suite expects %s", c.h, c.h.String(), c.s)
		}
		changes = append(changes, ins(c.h, c.id, "x", nil))
	}
	cps := []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 3, Resolved: cases[0].h, NextOffset: 1}}
	apply(t, w, cps, write{tb, changes})
	var want [][]string
	for _, c := range cases {
		want = append(want, []string{fmt.Sprint(c.id), c.s})
	}
	for _, tbl := range []string{"t", "t_changes"} {
		got := s.h.Query(t, fmt.Sprintf(`SELECT CAST(id AS VARCHAR), CAST(_hw_updated AS VARCHAR) FROM %s ORDER BY id`, s.q(tbl)))
		expect(t, "_hw_updated text in "+tbl, got, want)
	}
	// The value is a DECIMAL(38,10): comparable as a number to the literal.
	got := s.h.Query(t, fmt.Sprintf(`SELECT CAST(id AS VARCHAR) FROM %s WHERE _hw_updated = CAST('1659643584586630201.0000000007' AS DECIMAL(38,10))`, s.q("t")))
	expect(t, "_hw_updated numeric compare", got, [][]string{{"1"}})
	got = s.h.Query(t, `SELECT CAST(resolved AS VARCHAR) FROM highwater_checkpoints`)
	expect(t, "checkpoint resolved text", got, [][]string{{"1659643584586630201.0000000007"}})
}

func (s *suite) testChangelog(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	tb := kv("t")
	window := []write{
		{tb, []sinks.Change{
			ins(ts(1), int64(1), "a", int64(1)),
			upd(ts(2), int64(1), "b", int64(2)),
			ups(ts(1), int64(2), "c", int64(3)),
		}},
		{tb, []sinks.Change{del(ts(3), int64(2), nil, nil)}},
	}
	apply(t, w, nil, window...)
	want := [][]string{
		{"1", "a", "1", S(ts(1)), "insert"},
		{"1", "b", "2", S(ts(2)), "update"},
		{"2", "c", "3", S(ts(1)), "upsert"},
		{"2", Null, Null, S(ts(3)), "delete"},
	}
	q := fmt.Sprintf(`SELECT CAST(id AS VARCHAR), name, CAST(n AS VARCHAR), CAST(_hw_updated AS VARCHAR), _hw_op FROM %s ORDER BY id, _hw_updated`, s.q("t_changes"))
	expect(t, "changelog", s.h.Query(t, q), want)
	// Replays, whole or partial, add nothing.
	apply(t, w, nil, window...)
	apply(t, w, nil, write{tb, []sinks.Change{upd(ts(2), int64(1), "b", int64(2))}})
	expect(t, "changelog after replay", s.h.Query(t, q), want)
	// The mirror is still right.
	expect(t, "mirror", s.kvRows(t, "t"), [][]string{{"1", "b", "2", S(ts(2))}})
}

func sortCps(cps []sinks.Checkpoint) {
	sort.Slice(cps, func(i, j int) bool {
		if cps[i].Topic != cps[j].Topic {
			return cps[i].Topic < cps[j].Topic
		}
		return cps[i].Partition < cps[j].Partition
	})
}

func checkpoints(t *testing.T, w sinks.Writer, group string) []sinks.Checkpoint {
	t.Helper()
	cps, err := w.Checkpoints(context.Background(), group)
	if err != nil {
		t.Fatalf("Checkpoints(%q): %v", group, err)
	}
	sortCps(cps)
	if cps == nil {
		cps = []sinks.Checkpoint{}
	}
	return cps
}

func expectCps(t *testing.T, what string, got, want []sinks.Checkpoint) {
	t.Helper()
	want = append([]sinks.Checkpoint{}, want...)
	sortCps(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func (s *suite) testCheckpoints(t *testing.T) {
	w := s.open(t, sinks.Options{})
	tb := kv("t")
	expectCps(t, "empty warehouse", checkpoints(t, w, "g1"), nil)
	first := []sinks.Checkpoint{
		{Group: "g1", Topic: "t", Partition: 0, Resolved: H(base, 7), NextOffset: 100},
		{Group: "g1", Topic: "t", Partition: 1, Resolved: H(base, 7), NextOffset: 200},
		{Group: "g1", Topic: "odd topic'\"", Partition: 2147483647, Resolved: H(base-5, 2147483647), NextOffset: 1 << 62},
		{Group: "g2", Topic: "t", Partition: 0, Resolved: H(base+1, 0), NextOffset: 0},
	}
	apply(t, w, first, write{tb, []sinks.Change{ins(ts(0), int64(1), "a", nil)}})
	expectCps(t, "group g1", checkpoints(t, w, "g1"), first[:3])
	expectCps(t, "group g2", checkpoints(t, w, "g2"), first[3:])
	expectCps(t, "unknown group", checkpoints(t, w, "g3"), nil)

	// A window without rows still moves checkpoints, in place.
	second := []sinks.Checkpoint{{Group: "g1", Topic: "t", Partition: 0, Resolved: H(base+100, 1), NextOffset: 150}}
	apply(t, w, second)
	want := []sinks.Checkpoint{second[0], first[1], first[2]}
	expectCps(t, "updated in place", checkpoints(t, w, "g1"), want)
	got := s.h.Query(t, `SELECT CAST(count(*) AS VARCHAR) FROM highwater_checkpoints`)
	expect(t, "checkpoint row count", got, [][]string{{"4"}})
	got = s.h.Query(t, `SELECT CAST(count(*) AS VARCHAR) FROM highwater_checkpoints WHERE applied_at IS NULL`)
	expect(t, "applied_at set", got, [][]string{{"0"}})

	closeW(t, w)
	w = s.h.Reopen(t, sinks.Options{})
	defer closeW(t, w)
	expectCps(t, "after reopen", checkpoints(t, w, "g1"), want)
	expectCps(t, "after reopen g2", checkpoints(t, w, "g2"), first[3:])
	expect(t, "rows after reopen", s.kvRows(t, "t"), [][]string{{"1", "a", Null, S(ts(0))}})
}

func (s *suite) testRollback(t *testing.T) {
	ctx := context.Background()
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	tb := kv("t")
	cp0 := []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 0, Resolved: ts(1), NextOffset: 1}}
	apply(t, w, cp0, write{tb, []sinks.Change{ins(ts(1), int64(1), "a", nil)}})
	wantRows := s.kvRows(t, "t")

	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, tb, []sinks.Change{ins(ts(2), int64(2), "b", nil), del(ts(2), int64(1), nil, nil)}); err != nil {
		t.Fatal(err)
	}
	// (Checked before any schema change: a PostgreSQL reader would wait
	// for the ALTER's lock.)
	expect(t, "not visible before commit", s.kvRows(t, "t"), wantRows)
	// A new table, and a new version of the old one, inside the window.
	if err := tx.Write(ctx, kv("other"), []sinks.Change{ins(ts(2), int64(1), "x", nil)}); err != nil {
		t.Fatal(err)
	}
	tb2 := Table("t", []int{0}, append(append([]model.Column(nil), tb.Columns...), Col("extra", model.KindInt))...)
	if err := tx.Write(ctx, tb2, []sinks.Change{ins(ts(3), int64(3), "c", nil, int64(1))}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Checkpoint(ctx, []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 0, Resolved: ts(3), NextOffset: 9}, {Group: "g", Topic: "t", Partition: 1, Resolved: ts(3), NextOffset: 9}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("second Rollback: %v", err)
	}
	expect(t, "rows after rollback", s.kvRows(t, "t"), wantRows)
	expectCps(t, "checkpoints after rollback", checkpoints(t, w, "g"), cp0)
	if n := s.changelogCount(t, "t"); n != "1" {
		t.Fatalf("changelog rows after rollback: got %s, want 1", n)
	}
	// The rolled back evolution left no column behind: a later version
	// may add it with another type.
	tb3 := Table("t", []int{0}, append(append([]model.Column(nil), tb.Columns...), Col("extra", model.KindString))...)
	apply(t, w, nil, write{tb3, []sinks.Change{ins(ts(4), int64(4), "d", nil, "s")}})
	got := s.h.Query(t, fmt.Sprintf(`SELECT CAST(id AS VARCHAR), extra FROM %s ORDER BY id`, s.q("t")))
	expect(t, "after re-evolution", got, [][]string{{"1", Null}, {"4", "s"}})
}

func (s *suite) testFailedWrite(t *testing.T) {
	ctx := context.Background()
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	tb := kv("t")
	cp0 := []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 0, Resolved: ts(1), NextOffset: 1}}
	apply(t, w, cp0, write{tb, []sinks.Change{ins(ts(1), int64(1), "a", nil)}})
	wantRows := s.kvRows(t, "t")

	bad := []struct {
		name    string
		changes []sinks.Change
	}{
		{"too few values", []sinks.Change{ins(ts(2), int64(5), "x")}},
		{"too many values", []sinks.Change{ins(ts(2), int64(5), "x", nil, nil)}},
		{"wrong Go type", []sinks.Change{ins(ts(2), int64(5), "x", "not an int")}},
		{"NULL key", []sinks.Change{ins(ts(2), nil, "x", int64(1))}},
	}
	for _, b := range bad {
		tx, err := w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, tb, []sinks.Change{ins(ts(2), int64(2), "b", nil), del(ts(2), int64(1), nil, nil)}); err != nil {
			t.Fatalf("%s: good Write: %v", b.name, err)
		}
		werr := tx.Write(ctx, tb, b.changes)
		if werr != nil {
			// The transaction is unusable from now on.
			if err := tx.Write(ctx, tb, []sinks.Change{ins(ts(3), int64(3), "c", nil)}); err == nil {
				t.Errorf("%s: Write after a failed Write succeeded", b.name)
			}
			if err := tx.Checkpoint(ctx, []sinks.Checkpoint{{Group: "g", Topic: "t", Resolved: ts(3), NextOffset: 3}}); err == nil {
				t.Errorf("%s: Checkpoint after a failed Write succeeded", b.name)
			}
		}
		if err := tx.Commit(ctx); err == nil {
			t.Fatalf("%s: Commit after a bad Write succeeded (Write error: %v)", b.name, werr)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatalf("%s: Rollback after failed Commit: %v", b.name, err)
		}
		expect(t, b.name+": rows unchanged", s.kvRows(t, "t"), wantRows)
		expectCps(t, b.name+": checkpoints unchanged", checkpoints(t, w, "g"), cp0)
		if n := s.changelogCount(t, "t"); n != "1" {
			t.Fatalf("%s: changelog rows: got %s, want 1", b.name, n)
		}
	}
	// The writer still works.
	apply(t, w, nil, write{tb, []sinks.Change{ins(ts(4), int64(4), "d", nil)}})
	expect(t, "writer usable after failures", s.kvRows(t, "t"), append(wantRows, []string{"4", "d", Null, S(ts(4))}))
}

func (s *suite) testWatermark(t *testing.T) {
	w := s.open(t, sinks.Options{})
	defer closeW(t, w)
	apply(t, w, []sinks.Checkpoint{
		{Group: "g1", Topic: "a", Partition: 0, Resolved: ts(5), NextOffset: 1},
		{Group: "g1", Topic: "a", Partition: 1, Resolved: H(base+3, 4), NextOffset: 1},
		{Group: "g1", Topic: "b", Partition: 0, Resolved: ts(7), NextOffset: 1},
		{Group: "g2", Topic: "a", Partition: 0, Resolved: ts(1), NextOffset: 1},
	})
	q := `SELECT consumer_group, COALESCE(topic, '*'), CAST(resolved AS VARCHAR), CAST(partitions AS VARCHAR) FROM highwater_watermark ORDER BY consumer_group, topic NULLS FIRST`
	expect(t, "watermark", s.h.Query(t, q), [][]string{
		{"g1", "*", S(H(base+3, 4)), "3"},
		{"g1", "a", S(H(base+3, 4)), "2"},
		{"g1", "b", S(ts(7)), "1"},
		{"g2", "*", S(ts(1)), "1"},
		{"g2", "a", S(ts(1)), "1"},
	})
	apply(t, w, []sinks.Checkpoint{{Group: "g1", Topic: "a", Partition: 1, Resolved: ts(9), NextOffset: 2}})
	got := s.h.Query(t, q)
	if len(got) > 3 {
		got = got[:3]
	}
	expect(t, "watermark moves", got, [][]string{
		{"g1", "*", S(ts(5)), "3"},
		{"g1", "a", S(ts(5)), "2"},
		{"g1", "b", S(ts(7)), "1"},
	})
}

// testCheckpointNeverMovesBack: a late window of a partition's former
// owner, or the zero checkpoint a member registers for every partition at
// startup, must leave a further checkpoint in place; a zero checkpoint of a
// partition nobody applied yet holds the watermark at zero.
func (s *suite) testCheckpointNeverMovesBack(t *testing.T) {
	w := s.open(t, sinks.Options{})
	defer closeW(t, w)
	applied := sinks.Checkpoint{Group: "g", Topic: "t", Partition: 0, Resolved: ts(5), NextOffset: 50}
	apply(t, w, []sinks.Checkpoint{applied})
	// Registration at startup: partition 0 is applied, 1 and 2 are not.
	zero := []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 0}, {Group: "g", Topic: "t", Partition: 1}, {Group: "g", Topic: "t", Partition: 2}}
	apply(t, w, zero)
	expectCps(t, "after registration", checkpoints(t, w, "g"), []sinks.Checkpoint{applied, zero[1], zero[2]})
	q := `SELECT COALESCE(topic, '*'), CAST(resolved AS VARCHAR), CAST(partitions AS VARCHAR) FROM highwater_watermark WHERE consumer_group = 'g' ORDER BY topic NULLS FIRST`
	expect(t, "watermark held back by unapplied partitions", s.h.Query(t, q), [][]string{
		{"*", S(hlc.Timestamp{}), "3"},
		{"t", S(hlc.Timestamp{}), "3"},
	})
	// A late window of an older resolved timestamp does not move partition
	// 0 back; the same resolved timestamp may rewrite it.
	apply(t, w, []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 0, Resolved: ts(4), NextOffset: 40}})
	expectCps(t, "after a late window", checkpoints(t, w, "g"), []sinks.Checkpoint{applied, zero[1], zero[2]})
	more := []sinks.Checkpoint{
		{Group: "g", Topic: "t", Partition: 0, Resolved: ts(5), NextOffset: 51},
		{Group: "g", Topic: "t", Partition: 1, Resolved: ts(6), NextOffset: 60},
		{Group: "g", Topic: "t", Partition: 2, Resolved: ts(7), NextOffset: 70},
	}
	apply(t, w, more)
	expectCps(t, "every partition applied", checkpoints(t, w, "g"), more)
	expect(t, "watermark once every partition is applied", s.h.Query(t, q), [][]string{
		{"*", S(ts(5)), "3"},
		{"t", S(ts(5)), "3"},
	})
}

func evolved(name string, extra ...model.Column) *model.Table {
	return Table(name, []int{0}, append([]model.Column{Col("id", model.KindInt), Col("a", model.KindString)}, extra...)...)
}

func (s *suite) testAddColumn(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	v1 := evolved("t")
	v2 := evolved("t", Col("b", model.KindInt))
	apply(t, w, nil, write{v1, []sinks.Change{ins(ts(1), int64(1), "x"), ins(ts(1), int64(2), "y")}})
	apply(t, w, nil, write{v2, []sinks.Change{upd(ts(2), int64(1), "x2", int64(10)), ins(ts(2), int64(3), "z", int64(30))}})
	q := fmt.Sprintf(`SELECT CAST(id AS VARCHAR), a, CAST(b AS VARCHAR) FROM %s ORDER BY id`, s.q("t"))
	expect(t, "mirror after add column", s.h.Query(t, q), [][]string{{"1", "x2", "10"}, {"2", "y", Null}, {"3", "z", "30"}})
	qc := fmt.Sprintf(`SELECT CAST(id AS VARCHAR), a, CAST(b AS VARCHAR), _hw_op FROM %s ORDER BY id, _hw_updated`, s.q("t_changes"))
	expect(t, "changelog after add column", s.h.Query(t, qc), [][]string{
		{"1", "x", Null, "insert"}, {"1", "x2", "10", "update"}, {"2", "y", Null, "insert"}, {"3", "z", "30", "insert"},
	})
	// The old version still arrives (another partition lags): its rows
	// leave the new column NULL.
	apply(t, w, nil, write{v1, []sinks.Change{ins(ts(3), int64(4), "old")}})
	expect(t, "old version after add column", s.h.Query(t, q), [][]string{{"1", "x2", "10"}, {"2", "y", Null}, {"3", "z", "30"}, {"4", "old", Null}})
}

func (s *suite) testAddColumnSameWindow(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	v1 := evolved("t")
	v2 := evolved("t", Col("b", model.KindInt))
	v3 := evolved("t", Col("b", model.KindInt), Col("c", model.KindString))
	// The table is created, evolved twice, and the key updated in
	// between, all in one window.
	apply(t, w, nil,
		write{v1, []sinks.Change{ins(ts(1), int64(1), "x"), ins(ts(1), int64(2), "y")}},
		write{v2, []sinks.Change{upd(ts(2), int64(1), "x2", int64(10)), del(ts(2), int64(2), nil, nil)}},
		write{v3, []sinks.Change{ins(ts(3), int64(2), "y3", int64(20), "c"), upd(ts(3), int64(1), "x3", nil, "cc")}},
	)
	q := fmt.Sprintf(`SELECT CAST(id AS VARCHAR), a, CAST(b AS VARCHAR), c, CAST(_hw_updated AS VARCHAR) FROM %s ORDER BY id`, s.q("t"))
	expect(t, "mirror", s.h.Query(t, q), [][]string{{"1", "x3", Null, "cc", S(ts(3))}, {"2", "y3", "20", "c", S(ts(3))}})
	if n := s.changelogCount(t, "t"); n != "6" {
		t.Fatalf("changelog rows: got %s, want 6", n)
	}
}

func (s *suite) testDropColumn(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	v1 := evolved("t", Col("b", model.KindInt))
	v2 := evolved("t")
	apply(t, w, nil, write{v1, []sinks.Change{ins(ts(1), int64(1), "x", int64(10)), ins(ts(1), int64(2), "y", int64(20))}})
	apply(t, w, nil, write{v2, []sinks.Change{upd(ts(2), int64(1), "x2"), ins(ts(2), int64(3), "z")}})
	q := fmt.Sprintf(`SELECT CAST(id AS VARCHAR), a, CAST(b AS VARCHAR) FROM %s ORDER BY id`, s.q("t"))
	expect(t, "mirror after drop column", s.h.Query(t, q), [][]string{{"1", "x2", Null}, {"2", "y", "20"}, {"3", "z", Null}})
	qc := fmt.Sprintf(`SELECT CAST(id AS VARCHAR), CAST(b AS VARCHAR) FROM %s ORDER BY id, _hw_updated`, s.q("t_changes"))
	expect(t, "changelog after drop column", s.h.Query(t, qc), [][]string{{"1", "10"}, {"1", Null}, {"2", "20"}, {"3", Null}})
}

func (s *suite) testIncompatibleType(t *testing.T) {
	ctx := context.Background()
	w := s.open(t, sinks.Options{})
	defer closeW(t, w)
	v1 := Table("ledger_entries", []int{0}, Col("id", model.KindInt), Col("amount_cents", model.KindInt))
	v2 := Table("ledger_entries", []int{0}, Col("id", model.KindInt), Col("amount_cents", model.KindString))
	apply(t, w, nil, write{v1, []sinks.Change{ins(ts(1), int64(1), int64(100))}})
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = tx.Write(ctx, v1, []sinks.Change{ins(ts(2), int64(2), int64(200))})
	if err != nil {
		t.Fatal(err)
	}
	err = tx.Write(ctx, v2, []sinks.Change{ins(ts(3), int64(3), "300")})
	if err == nil {
		err = tx.Commit(ctx)
	} else {
		_ = tx.Rollback(ctx)
	}
	if err == nil {
		t.Fatal("changing a column from INT to STRING succeeded; want an error")
	}
	for _, name := range []string{"ledger_entries", "amount_cents"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %q", err, name)
		}
	}
	got := s.h.Query(t, fmt.Sprintf(`SELECT CAST(id AS VARCHAR), CAST(amount_cents AS VARCHAR) FROM %s ORDER BY id`, s.q("ledger_entries")))
	expect(t, "rows unchanged", got, [][]string{{"1", "100"}})
}

func (s *suite) testLargeBatch(t *testing.T) {
	w := s.open(t, sinks.Options{Changelog: true})
	defer closeW(t, w)
	tb := kv("big")
	const per = 10_000
	batch := func(from, to int, op sinks.Op, h hlc.Timestamp, nOff int64) write {
		changes := make([]sinks.Change, 0, to-from)
		for i := from; i < to; i++ {
			vals := []any{int64(i), nil, nil}
			if op != sinks.OpDelete {
				vals[1] = fmt.Sprintf("name-%d", i)
				vals[2] = int64(i) + nOff
			}
			changes = append(changes, sinks.Change{Op: op, Updated: h, Values: vals})
		}
		return write{tb, changes}
	}
	// 50k changes in five Writes: 30k inserts, 10k updates, 10k deletes.
	apply(t, w, nil,
		batch(0, per, sinks.OpInsert, ts(1), 0),
		batch(per, 2*per, sinks.OpInsert, ts(2), 0),
		batch(2*per, 3*per, sinks.OpInsert, ts(3), 0),
		batch(0, per, sinks.OpUpdate, ts(4), 1_000_000),
		batch(per, 2*per, sinks.OpDelete, ts(5), 0),
	)
	q := fmt.Sprintf(`SELECT CAST(count(*) AS VARCHAR), CAST(sum(n) AS VARCHAR), CAST(max(_hw_updated) AS VARCHAR), CAST(count(DISTINCT name) AS VARCHAR) FROM %s`, s.q("big"))
	// sum: updated 0..9999 (+1e6 each) and inserted 20000..29999.
	sum := int64(0)
	for i := int64(0); i < per; i++ {
		sum += i + 1_000_000
	}
	for i := int64(2 * per); i < 3*per; i++ {
		sum += i
	}
	expect(t, "large window", s.h.Query(t, q), [][]string{{"20000", fmt.Sprint(sum), S(ts(4)), "20000"}})
	if n := s.changelogCount(t, "big"); n != "50000" {
		t.Fatalf("changelog rows: got %s, want 50000", n)
	}
	// A second large window updating every live row once more, half of
	// them with an older HLC that must lose.
	apply(t, w, nil, batch(0, per, sinks.OpUpdate, ts(3), 5_000_000), batch(2*per, 3*per, sinks.OpUpsert, ts(6), 0))
	expect(t, "second large window", s.h.Query(t, q), [][]string{{"20000", fmt.Sprint(sum), S(ts(6)), "20000"}})
	if n := s.changelogCount(t, "big"); n != "70000" {
		t.Fatalf("changelog rows: got %s, want 70000", n)
	}
}

// deadLetterRows reads highwater_dlq in a portable way: raw bytes as their
// length (NULL when SQL NULL), the Kafka timestamp as Unix seconds.
func (s *suite) deadLetterRows(t *testing.T) [][]string {
	t.Helper()
	return s.h.Query(t, `SELECT consumer_group, topic, CAST("partition" AS VARCHAR), CAST("offset" AS VARCHAR),
	CAST(CAST(extract(epoch FROM kafka_timestamp) AS BIGINT) AS VARCHAR),
	CAST(octet_length("key") AS VARCHAR), CAST(octet_length("value") AS VARCHAR),
	CAST(schema_id AS VARCHAR), stage, error, CAST(recorded_at IS NOT NULL AS VARCHAR)
FROM highwater_dlq ORDER BY consumer_group, topic, "partition", "offset"`)
}

// testDeadLetters: dead letters land in highwater_dlq with the window,
// one row per (group, topic, partition, offset); a replay of the same
// offset (a restart re-reading the record) is a no-op, raw bytes and
// names with quotes are data.
func (s *suite) testDeadLetters(t *testing.T) {
	w := s.open(t, sinks.Options{})
	defer closeW(t, w)
	ctx := context.Background()
	expect(t, "empty dead-letter table", s.deadLetterRows(t), nil)
	stamp := time.Unix(1700000000, 0)
	hostile := `x"; DROP TABLE highwater_checkpoints; --`
	dls := []sinks.DeadLetter{
		{Group: "g", Topic: "t", Partition: 0, Offset: 7, Timestamp: stamp, Key: []byte("key"), Value: []byte{0, 0, 0, 0, 99, 1, 2}, SchemaID: 99, Stage: "ingest", Error: "unknown schema id"},
		{Group: "g", Topic: hostile, Partition: 2, Offset: 0, Key: nil, Value: []byte{}, SchemaID: -1, Stage: "apply", Error: hostile},
		// The same offset twice in one call: stored once.
		{Group: "g", Topic: "t", Partition: 0, Offset: 7, Timestamp: stamp, Key: []byte("key"), Value: []byte{1}, SchemaID: 99, Stage: "ingest", Error: "unknown schema id"},
	}
	cp := []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 0, Resolved: ts(1), NextOffset: 8}}
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.DeadLetters(ctx, dls); err != nil {
		_ = tx.Rollback(ctx)
		t.Fatalf("DeadLetters: %v", err)
	}
	if err := tx.Checkpoint(ctx, cp); err != nil {
		_ = tx.Rollback(ctx)
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	want := [][]string{
		{"g", "t", "0", "7", "1700000000", "3", "7", "99", "ingest", "unknown schema id", "true"},
		{"g", hostile, "2", "0", Null, Null, "0", "-1", "apply", hostile, "true"},
	}
	expect(t, "dead letters", s.deadLetterRows(t), want)

	// A replay (same offsets, another error text) and a new one.
	tx, err = w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	replay := append([]sinks.DeadLetter{}, dls[:2]...)
	replay[0].Error = "replayed"
	replay = append(replay, sinks.DeadLetter{Group: "g2", Topic: "t", Partition: 0, Offset: 7, SchemaID: 1, Stage: "ingest", Error: "other group"})
	if err := tx.DeadLetters(ctx, replay); err != nil {
		_ = tx.Rollback(ctx)
		t.Fatalf("DeadLetters replay: %v", err)
	}
	if err := tx.DeadLetters(ctx, nil); err != nil {
		_ = tx.Rollback(ctx)
		t.Fatalf("DeadLetters(nil): %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	want = append(want, []string{"g2", "t", "0", "7", Null, Null, Null, "1", "ingest", "other group", "true"})
	expect(t, "dead letters after a replay", s.deadLetterRows(t), want)
	got := s.h.Query(t, `SELECT CAST(count(*) AS VARCHAR) FROM highwater_checkpoints`)
	expect(t, "checkpoints untouched by hostile text", got, [][]string{{"1"}})

	closeW(t, w)
	w = s.h.Reopen(t, sinks.Options{})
	expect(t, "dead letters after reopen", s.deadLetterRows(t), want)
}

// testDeadLettersRollback: dead letters of a window that rolls back, or
// whose commit fails, are not stored.
func (s *suite) testDeadLettersRollback(t *testing.T) {
	w := s.open(t, sinks.Options{})
	defer closeW(t, w)
	ctx := context.Background()
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.DeadLetters(ctx, []sinks.DeadLetter{{Group: "g", Topic: "t", Offset: 1, SchemaID: -1, Stage: "ingest", Error: "bad"}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, "after rollback", s.deadLetterRows(t), nil)
	// An invalid dead letter fails the transaction: nothing of it lands.
	tx, err = w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.DeadLetters(ctx, []sinks.DeadLetter{{Group: "g", Topic: "t", Offset: 2, Stage: "ingest"}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.DeadLetters(ctx, []sinks.DeadLetter{{Group: "", Topic: "t", Offset: 3, Stage: "ingest"}}); err == nil {
		t.Fatal("DeadLetters with an empty group: no error")
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("Commit after a failed DeadLetters: no error")
	}
	expect(t, "after a failed window", s.deadLetterRows(t), nil)
}
