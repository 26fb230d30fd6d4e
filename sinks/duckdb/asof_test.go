package duckdb

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

// TestAsOfCreatedAtOpen: a warehouse whose mirror and changelog have no
// time-travel macro (written by an older highwater) gets one when a writer
// with a changelog opens it, before any window; one without a changelog
// creates none. A copy of the file, whose database has another name,
// answers as well.
func TestAsOfCreatedAtOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wh.duckdb")
	open := func(opts sinks.Options) *Writer {
		t.Helper()
		w, err := OpenPath(ctx, path, opts, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	macros := func(w *Writer) int {
		t.Helper()
		var n int
		if err := w.DB().QueryRowContext(ctx, `SELECT count(*) FROM duckdb_functions() WHERE function_name = 't_asof'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	w := open(sinks.Options{Changelog: true})
	tb := sinktest.Table("t", []int{0}, sinktest.Col("id", model.KindInt), sinktest.Col("v", model.KindString))
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, tb, []sinks.Change{{Op: sinks.OpInsert, Updated: hlc.Timestamp{WallTime: 5}, Values: []any{int64(1), "a"}}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.DB().ExecContext(ctx, `DROP MACRO TABLE t_asof`); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w = open(sinks.Options{})
	if n := macros(w); n != 0 {
		t.Fatalf("a writer without a changelog created %d time-travel macros", n)
	}
	w.Close()
	w = open(sinks.Options{Changelog: true})
	defer w.Close()
	var id int64
	var v string
	if err := w.DB().QueryRowContext(ctx, `SELECT id, v FROM t_asof(5)`).Scan(&id, &v); err != nil || id != 1 || v != "a" {
		t.Fatalf("t_asof(5) after Open: %d %q %v", id, v, err)
	}
	var none int
	if err := w.DB().QueryRowContext(ctx, `SELECT count(*) FROM t_asof(4)`).Scan(&none); err != nil || none != 0 {
		t.Fatalf("t_asof(4) after Open: %d rows, %v", none, err)
	}
	w.Close()

	// A copy of the file (another database name) answers too.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.duckdb")
	if err := os.WriteFile(cp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", cp)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, `SELECT id, v FROM t_asof(5)`).Scan(&id, &v); err != nil || id != 1 || v != "a" {
		t.Fatalf("t_asof(5) in a copy of the warehouse: %d %q %v", id, v, err)
	}
}
