package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

// TestUserTableIsNotTakenOver: a table of the user's own (no _hw_updated)
// with a source table's name, in any case, is left alone; the source table
// gets a mapped mirror, and the record says which.
func TestUserTableIsNotTakenOver(t *testing.T) {
	ctx := context.Background()
	w, err := OpenPath(ctx, ":memory:", sinks.Options{Changelog: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.DB().ExecContext(ctx, `CREATE TABLE "Foreign_Table" (id BIGINT, v VARCHAR); INSERT INTO "Foreign_Table" VALUES (1, 'mine')`); err != nil {
		t.Fatal(err)
	}
	tb := sinktest.Table("foreign_table", []int{0}, sinktest.Col("id", model.KindInt), sinktest.Col("v", model.KindString))
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, tb, []sinks.Change{{Op: sinks.OpInsert, Updated: hlc.Timestamp{WallTime: 1}, Values: []any{int64(7), "feed"}}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	q := sinktest.QueryDB(func(*testing.T) *sql.DB { return w.DB() })
	if got := fmt.Sprint(q(t, `SELECT CAST(id AS VARCHAR), v FROM "Foreign_Table"`)); got != "[[1 mine]]" {
		t.Fatalf("the user's table changed: %s", got)
	}
	rec := q(t, `SELECT mirror_table, changes_table FROM highwater_tables WHERE source_table = 'foreign_table'`)
	if len(rec) != 1 || rec[0][0] != tableRule.Hashed("foreign_table", 0) || rec[0][1] != rec[0][0]+sinks.ChangesSuffix {
		t.Fatalf("record %v: want the mapped name %q", rec, tableRule.Hashed("foreign_table", 0))
	}
	if got := fmt.Sprint(q(t, `SELECT CAST(id AS VARCHAR), v FROM `+sqlident.Quote(rec[0][0]))); got != "[[7 feed]]" {
		t.Fatalf("mirror: %s", got)
	}
}

// TestNamesWithNULAreMappedInvalidUTF8Refused: a table name with NUL (which
// CockroachDB's _u0000_ escape can carry) is mapped and recorded; one that
// is not UTF-8, which the record cannot hold, fails its Write with an error
// naming it, before anything is written.
func TestNamesWithNULAreMappedInvalidUTF8Refused(t *testing.T) {
	ctx := context.Background()
	w, err := OpenPath(ctx, ":memory:", sinks.Options{Changelog: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	q := sinktest.QueryDB(func(*testing.T) *sql.DB { return w.DB() })
	for _, c := range []struct{ name, err string }{{"a\x00b", ""}, {"a\xffb", "not valid UTF-8"}} {
		tb := sinktest.Table(c.name, []int{0}, sinktest.Col("id", model.KindInt))
		tx, err := w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = tx.Write(ctx, tb, []sinks.Change{{Op: sinks.OpInsert, Updated: hlc.Timestamp{WallTime: 1}, Values: []any{int64(1)}}})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("%q: Write error %v, want %q", c.name, err, c.err)
			}
			_ = tx.Rollback(ctx)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		var mirror string
		if err := w.DB().QueryRowContext(ctx, `SELECT mirror_table FROM highwater_tables WHERE source_table = ?`, c.name).Scan(&mirror); err != nil || mirror != tableRule.Hashed(c.name, 0) {
			t.Fatalf("record of %q: %q, %v", c.name, mirror, err)
		}
		if got := fmt.Sprint(q(t, `SELECT CAST(id AS VARCHAR) FROM `+sqlident.Quote(mirror))); got != "[[1]]" {
			t.Fatalf("mirror of %q: %s", c.name, got)
		}
	}
}
