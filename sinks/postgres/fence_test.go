package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// TestSessionTimeoutsDefaultAndOverride checks that the writer's sessions
// carry the documented lock, statement and idle-in-transaction timeouts,
// and that the sink URL overrides them.
func TestSessionTimeoutsDefaultAndOverride(t *testing.T) {
	ctx := context.Background()
	url := server.CreateDB(t)
	for _, tc := range []struct {
		url  string
		want [3]string
	}{
		{url, [3]string{"5s", "5min", "1min"}},
		{withParam(url, "lock_timeout=250ms&statement_timeout=0&idle_in_transaction_session_timeout=2s"), [3]string{"250ms", "0", "2s"}},
	} {
		w := openWriter(t, tc.url, sinks.Options{})
		tx, err := w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got [3]string
		err = tx.(*Tx).tx.QueryRow(ctx, `SELECT current_setting('lock_timeout'), current_setting('statement_timeout'),
			current_setting('idle_in_transaction_session_timeout')`).Scan(&got[0], &got[1], &got[2])
		_ = tx.Rollback(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("session timeouts (lock, statement, idle in transaction) = %v, want %v", got, tc.want)
		}
	}
}

// TestFenceFrozenMember freezes a member in the middle of a window that
// changed a table's schema (its ALTER TABLE holds the table's lock) and
// checks that the new owner's windows fail on lock_timeout, not on a
// fence, until the server ends the frozen member's idle transaction; that
// the new owner then commits; and that the frozen member, when it resumes,
// commits nothing and is fenced on its next window.
func TestFenceFrozenMember(t *testing.T) {
	ctx := context.Background()
	url := withParam(server.CreateDB(t), "lock_timeout=100ms&idle_in_transaction_session_timeout=1500ms")
	a := openWriter(t, url, sinks.Options{})
	b := openWriter(t, url, sinks.Options{})
	tb := kv("t")
	h := func(n int64) hlc.Timestamp { return hlc.Timestamp{WallTime: 1_700_000_000_000_000_000 + n} }
	x := []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 0, Resolved: h(10), NextOffset: 10}}
	apply(t, a, x, write{tb, []sinks.Change{change(sinks.OpInsert, h(5), int64(1), "a")}})

	txA, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := txA.Fence(ctx, x); err != nil {
		t.Fatal(err)
	}
	wider := table("t", col("id", kind(model.KindInt)), col("v", kind(model.KindString)), col("extra", kind(model.KindInt)))
	if err := txA.Write(ctx, wider, []sinks.Change{change(sinks.OpUpdate, h(12), int64(1), "stale", int64(7))}); err != nil {
		t.Fatal(err)
	}
	// A freezes here, its transaction open and idle, holding the lock
	// of its ALTER TABLE t.

	y := []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 0, Resolved: h(20), NextOffset: 20}}
	attempts, lockTimeouts := 0, 0
	deadline := time.Now().Add(time.Minute)
	for {
		attempts++
		txB, err := b.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = txB.Write(ctx, tb, []sinks.Change{change(sinks.OpDelete, h(14), int64(1), nil)})
		if err == nil {
			err = txB.Fence(ctx, x)
		}
		if err == nil {
			err = txB.Checkpoint(ctx, y)
		}
		if err == nil {
			err = txB.Commit(ctx)
		}
		_ = txB.Rollback(ctx)
		if err == nil {
			break
		}
		if errors.Is(err, sinks.ErrFenced) {
			t.Fatalf("new owner's window fenced: %v", err)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "55P03" {
			t.Fatalf("new owner's window failed with %v, want a lock timeout (55P03)", err)
		}
		// Marked, so that the processor retries without counting it.
		if !errors.Is(err, sinks.ErrLockTimeout) {
			t.Fatalf("a lock timeout is not marked sinks.ErrLockTimeout: %v", err)
		}
		lockTimeouts++
		if time.Now().After(deadline) {
			t.Fatalf("the frozen member's locks were never released (%d attempts)", attempts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lockTimeouts == 0 {
		t.Fatal("the new owner never waited for the frozen member's locks")
	}

	// A resumes: the server ended its transaction, nothing of it applies.
	err = txA.Checkpoint(ctx, []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 0, Resolved: h(16), NextOffset: 16}})
	if err == nil {
		err = txA.Commit(ctx)
	}
	_ = txA.Rollback(ctx)
	if err == nil {
		t.Fatal("the frozen member's window committed after its session was ended")
	}
	// Its retry, built on the checkpoint it held, is fenced.
	txA, err = a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = txA.Fence(ctx, x)
	_ = txA.Rollback(ctx)
	var fe *sinks.FencedError
	if !errors.As(err, &fe) || len(fe.Stored) != 1 || fe.Stored[0] != y[0] {
		t.Fatalf("frozen member's retry: got %v, want fenced at %+v", err, y[0])
	}
	if got := query(t, url, `SELECT count(*) FROM t`); got[0][0] != "0" {
		t.Fatalf("rows: %v, want the key deleted by the new owner", got)
	}
	if got := query(t, url, `SELECT count(*) FROM information_schema.columns WHERE table_name = 't' AND column_name = 'extra'`); got[0][0] != "0" {
		t.Fatal("the frozen member's ALTER TABLE survived")
	}
}

// TestSchemaChangeWaitsBeyondLockTimeout: a window that changes a table's
// schema while another window's schema change holds the DDL lock waits for
// it past lock_timeout, instead of failing and queueing again behind it.
func TestSchemaChangeWaitsBeyondLockTimeout(t *testing.T) {
	ctx := context.Background()
	url := withParam(server.CreateDB(t), "lock_timeout=50ms")
	a := openWriter(t, url, sinks.Options{})
	b := openWriter(t, url, sinks.Options{})
	h := func(n int64) hlc.Timestamp { return hlc.Timestamp{WallTime: 1_700_000_000_000_000_000 + n} }
	apply(t, a, nil, write{kv("t"), []sinks.Change{change(sinks.OpInsert, h(1), int64(1), "a")}})
	with := func(c string) *model.Table {
		return table("t", col("id", kind(model.KindInt)), col("v", kind(model.KindString)), col(c, kind(model.KindInt)))
	}
	txA, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := txA.Write(ctx, with("c1"), []sinks.Change{change(sinks.OpUpdate, h(2), int64(1), "a", int64(1))}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		txB, err := b.Begin(ctx)
		if err != nil {
			done <- err
			return
		}
		err = txB.Write(ctx, with("c2"), []sinks.Change{change(sinks.OpInsert, h(3), int64(2), "b", int64(2))})
		if err == nil {
			err = txB.Commit(ctx)
		}
		_ = txB.Rollback(ctx)
		done <- err
	}()
	// A member starting meanwhile waits for the DDL lock too.
	opened := make(chan error, 1)
	go func() {
		w, err := Open(ctx, url, sinks.Options{}, nil)
		if err == nil {
			w.Close()
		}
		opened <- err
	}()
	// Hold the DDL lock for many lock_timeouts before committing.
	time.Sleep(20 * 50 * time.Millisecond)
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("schema change behind another one: %v", err)
	}
	if err := <-opened; err != nil {
		t.Fatalf("Open while another member changes the schema: %v", err)
	}
	got := query(t, url, `SELECT count(*) FROM information_schema.columns WHERE table_name = 't' AND column_name IN ('c1', 'c2')`)
	if got[0][0] != "2" {
		t.Fatalf("columns c1, c2: %v", got)
	}
}
