package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/sinks"
)

// TestMembersNameTablesInTurn: two members (writers on one database) each
// see a new table in an open window, `x` and `x_changes`. The second waits
// for the first's naming (the schema lock) and, seeing `x`'s changelog
// recorded, maps `x_changes`; neither window fails.
func TestMembersNameTablesInTurn(t *testing.T) {
	ctx := context.Background()
	url := server.CreateDB(t)
	w1 := openWriter(t, url, sinks.Options{Changelog: true})
	w2 := openWriter(t, url, sinks.Options{Changelog: true})
	tx1, err := w1.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx1.Write(ctx, kv("x"), []sinks.Change{change(sinks.OpInsert, ts(1), int64(1), "from x")}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		tx2, err := w2.Begin(ctx)
		if err == nil {
			if err = tx2.Write(ctx, kv("x_changes"), []sinks.Change{change(sinks.OpInsert, ts(1), int64(2), "from x_changes")}); err == nil {
				err = tx2.Commit(ctx)
			} else {
				_ = tx2.Rollback(ctx)
			}
		}
		done <- err
	}()
	// Wait until the second member waits for the schema lock, so that the
	// lock is what orders them.
	for {
		if n := query(t, url, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`); n[0][0] != "0" {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("second member finished while the first held the lock: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("second member: %v", err)
	}
	got := query(t, url, `SELECT source_table, mirror_table, changes_table FROM highwater_tables ORDER BY source_table`)
	mapped := tableRule.Hashed("x_changes", 0)
	expectRows(t, "record", got, [][]string{{"x", "x", "x_changes"}, {"x_changes", mapped, mapped + "_changes"}})
	expectRows(t, "x", query(t, url, `SELECT v FROM x`), [][]string{{"from x"}})
	expectRows(t, "x's changelog", query(t, url, `SELECT v FROM x_changes`), [][]string{{"from x"}})
	expectRows(t, "x_changes", query(t, url, `SELECT v FROM `+sqlident.Quote(mapped)), [][]string{{"from x_changes"}})
}
