package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

// TestAsOfCreatedAtOpen: a schema whose mirror and changelog have no
// time-travel functions (written by an older highwater) gets them when a
// writer with a changelog opens it, before any window; one without a
// changelog creates none. A view on the function survives the function's
// re-creation by a schema change.
func TestAsOfCreatedAtOpen(t *testing.T) {
	ctx := context.Background()
	url := server.CreateDB(t)
	w := openWriter(t, url, sinks.Options{Changelog: true})
	tb := sinktest.Table("t", []int{0}, sinktest.Col("id", model.KindInt), sinktest.Col("v", model.KindString))
	write := func(w *Writer, tb *model.Table, c sinks.Change) {
		t.Helper()
		tx, err := w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, tb, []sinks.Change{c}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	write(w, tb, sinks.Change{Op: sinks.OpInsert, Updated: hlc.Timestamp{WallTime: 5}, Values: []any{int64(1), "a"}})
	query(t, url, `DROP FUNCTION t_asof(numeric), t_asof(text)`)
	w.Close()
	w = openWriter(t, url, sinks.Options{})
	if got := query(t, url, `SELECT count(*) FROM pg_proc WHERE proname = 't_asof'`); got[0][0] != "0" {
		t.Fatalf("a writer without a changelog created %s time-travel functions", got[0][0])
	}
	w.Close()
	w = openWriter(t, url, sinks.Options{Changelog: true})
	if got := query(t, url, `SELECT id, v FROM t_asof(5)`); len(got) != 1 || got[0][0] != "1" || got[0][1] != "a" {
		t.Fatalf("t_asof(5) after Open: %v", got)
	}
	if got := query(t, url, `SELECT count(*) FROM t_asof('5')`); got[0][0] != "1" {
		t.Fatalf("t_asof('5') after Open: %v rows", got)
	}
	if got := query(t, url, `SELECT count(*) FROM t_asof('4'::text)`); got[0][0] != "0" {
		t.Fatalf("t_asof('4'::text) after Open: %v rows", got)
	}
	query(t, url, `CREATE VIEW t_at_5 AS SELECT * FROM t_asof(5)`)
	tb2 := sinktest.Table("t", []int{0}, sinktest.Col("id", model.KindInt), sinktest.Col("v", model.KindString), sinktest.Col("n", model.KindInt))
	write(w, tb2, sinks.Change{Op: sinks.OpUpdate, Updated: hlc.Timestamp{WallTime: 6}, Values: []any{int64(1), "b", int64(7)}})
	if got := query(t, url, `SELECT v, n FROM t_asof(6)`); len(got) != 1 || got[0][0] != "b" || got[0][1] != "7" {
		t.Fatalf("t_asof(6) after ADD COLUMN: %v", got)
	}
	if got := query(t, url, `SELECT id, v FROM t_at_5`); len(got) != 1 || got[0][1] != "a" {
		t.Fatalf("a view on t_asof after ADD COLUMN: %v", got)
	}
}

// TestAsOfWithoutCreatePrivilege: a role that may not create in the schema
// still opens a warehouse whose time-travel functions are missing (they
// are a convenience, not the data), and writes to it.
func TestAsOfWithoutCreatePrivilege(t *testing.T) {
	ctx := context.Background()
	url := server.CreateDB(t)
	db := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	role := "asof_" + db
	execSQL(t, url, fmt.Sprintf(`CREATE ROLE %s LOGIN`, role))
	t.Cleanup(func() {
		_ = server.Exec(ctx, db, fmt.Sprintf(`DROP OWNED BY %s; DROP ROLE %s`, role, role))
	})
	w := openWriter(t, url, sinks.Options{Changelog: true})
	tb := sinktest.Table("t", []int{0}, sinktest.Col("id", model.KindInt), sinktest.Col("v", model.KindString))
	if err := tryApply(ctx, w, nil, write{tb, []sinks.Change{change(sinks.OpInsert, ts(1), int64(1), "a")}}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	execSQL(t, url, `DROP FUNCTION t_asof(numeric), t_asof(text); REVOKE CREATE ON SCHEMA public FROM PUBLIC`)
	execSQL(t, url, fmt.Sprintf(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %s`, role))
	r, err := Open(ctx, server.URLAs(role, db), sinks.Options{Changelog: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open without CREATE: %v", err)
	}
	defer r.Close()
	if err := tryApply(ctx, r, nil, write{tb, []sinks.Change{change(sinks.OpUpdate, ts(2), int64(1), "b")}}); err != nil {
		t.Fatalf("a window without CREATE: %v", err)
	}
	if got := query(t, url, `SELECT v FROM t`); len(got) != 1 || got[0][0] != "b" {
		t.Fatalf("rows: %v", got)
	}
}
