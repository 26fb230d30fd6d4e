package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

// TestWindowLeavesNoStagingTables checks that committed, rolled back and
// failed windows all drop their TEMP staging tables, and that a Commit
// failing half way (here: its context canceled) leaves the warehouse as it
// was.
func TestWindowLeavesNoStagingTables(t *testing.T) {
	ctx := context.Background()
	w, err := OpenPath(ctx, t.TempDir()+"/stage.duckdb", sinks.Options{Changelog: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// One connection: the test's queries see the connection the windows
	// used, TEMP tables included.
	w.DB().SetMaxOpenConns(1)
	tb := sinktest.Table("t", []int{0}, sinktest.Col("id", model.KindInt), sinktest.Col("v", model.KindString))
	tb2 := sinktest.Table("t", []int{0}, sinktest.Col("id", model.KindInt), sinktest.Col("v", model.KindString), sinktest.Col("w", model.KindInt))
	h := hlc.Timestamp{WallTime: 1}
	temps := func() int {
		t.Helper()
		var n int
		if err := w.DB().QueryRowContext(ctx, `SELECT count(*) FROM duckdb_tables() WHERE temporary`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	rows := func() int {
		t.Helper()
		var n int
		if err := w.DB().QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	stage := func() sinks.Tx {
		t.Helper()
		tx, err := w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, tb, []sinks.Change{{Op: sinks.OpInsert, Updated: h, Values: []any{int64(1), "a"}}}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, tb2, []sinks.Change{{Op: sinks.OpInsert, Updated: h, Values: []any{int64(2), "b", int64(3)}}}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Checkpoint(ctx, []sinks.Checkpoint{{Group: "g", Topic: "t", Resolved: h, NextOffset: 2}}); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	// A window that creates the table, then one whose commit fails.
	tx := stage()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := temps(); n != 0 {
		t.Fatalf("%d TEMP tables after Commit", n)
	}
	h = hlc.Timestamp{WallTime: 2}
	tx = stage()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := tx.Commit(canceled); err == nil {
		t.Fatal("Commit with a canceled context succeeded")
	}
	if n := temps(); n != 0 {
		t.Fatalf("%d TEMP tables after a failed Commit", n)
	}
	tx = stage()
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := temps(); n != 0 {
		t.Fatalf("%d TEMP tables after Rollback", n)
	}
	if n := rows(); n != 2 {
		t.Fatalf("%d rows, want the 2 of the first window", n)
	}
	cps, err := w.Checkpoints(ctx, "g")
	if err != nil || len(cps) != 1 || cps[0].Resolved != (hlc.Timestamp{WallTime: 1}) {
		t.Fatalf("checkpoints %+v %v, want the first window's", cps, err)
	}
}

// TestAlternatingVersionsShareSegments interleaves two versions of a table
// in one window, as partitions at different schema versions do, and checks
// that each version is staged once and the newest row per key wins.
func TestAlternatingVersionsShareSegments(t *testing.T) {
	ctx := context.Background()
	w, err := OpenPath(ctx, ":memory:", sinks.Options{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	v1 := sinktest.Table("t", []int{0}, sinktest.Col("id", model.KindInt), sinktest.Col("v", model.KindString))
	v2 := sinktest.Table("t", []int{0}, sinktest.Col("id", model.KindInt), sinktest.Col("v", model.KindString), sinktest.Col("w", model.KindInt))
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i <= 50; i++ {
		h := hlc.Timestamp{WallTime: i}
		var err error
		if i%2 == 1 {
			err = tx.Write(ctx, v1, []sinks.Change{{Op: sinks.OpUpsert, Updated: h, Values: []any{i % 3, "v1"}}})
		} else {
			err = tx.Write(ctx, v2, []sinks.Change{{Op: sinks.OpUpsert, Updated: h, Values: []any{i % 3, "v2", i}}})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(tx.(*Tx).tables["t"].segments); n != 2 {
		t.Fatalf("%d staging segments, want 2", n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := sinktest.QueryDB(func(*testing.T) *sql.DB { return w.DB() })(t,
		`SELECT CAST(id AS VARCHAR), v, CAST(w AS VARCHAR), CAST(_hw_updated AS VARCHAR) FROM t ORDER BY id`)
	// Key i%3: last writes are 48 (v2, id 0), 49 (v1, id 1), 50 (v2, id 2).
	want := "[[0 v2 48 48.0000000000] [1 v1 NULL 49.0000000000] [2 v2 50 50.0000000000]]"
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %s", got, want)
	}
}

// TestSchemaErrors checks that table versions highwater cannot mirror fail
// the window with an error naming the table, and change nothing.
func TestSchemaErrors(t *testing.T) {
	ctx := context.Background()
	w, err := OpenPath(ctx, ":memory:", sinks.Options{Changelog: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	id, v := sinktest.Col("id", model.KindInt), sinktest.Col("v", model.KindString)
	base := sinktest.Table("keyed", []int{0}, id, v)
	commit := func(tb *model.Table, vals ...any) error {
		tx, err := w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, tb, []sinks.Change{{Op: sinks.OpUpsert, Updated: hlc.Timestamp{WallTime: 1}, Values: vals}}); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		return tx.Commit(ctx)
	}
	if err := commit(base, int64(1), "a"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		table *model.Table
		vals  []any
		want  string
	}{
		{"no primary key", sinktest.Table("nokey", nil, id, v), []any{int64(1), "x"}, `table "nokey": no primary key`},
		{"primary key changed", sinktest.Table("keyed", []int{1}, id, v), []any{int64(1), "x"}, `table "keyed": primary key changed from (id) to (v)`},
		{"duplicate column", sinktest.Table("dup", []int{0}, id, id), []any{int64(1), int64(1)}, `table "dup": column "id" appears twice`},
		{"invalid type", sinktest.Table("bad", []int{0}, id, sinktest.Col("x", model.KindInvalid)), []any{int64(1), nil}, `table "bad" column "x": unsupported column type INVALID`},
		{"array without element", sinktest.Table("arr", []int{0}, id, sinktest.Col("x", model.KindArray)), []any{int64(1), nil}, `table "arr" column "x": array type without element type`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := commit(c.table, c.vals...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	got := sinktest.QueryDB(func(*testing.T) *sql.DB { return w.DB() })(t, `SELECT CAST(id AS VARCHAR), v FROM keyed`)
	if fmt.Sprint(got) != "[[1 a]]" {
		t.Fatalf("keyed changed: %v", got)
	}
}
