package pgtest

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestServerSurvivesRestart proves the harness the writer tests rely on: a
// fresh database per test, and a restart that keeps committed data and makes
// old connections fail.
func TestServerSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	s := Start(t)
	url := s.CreateDB(t)
	if url2 := s.CreateDB(t); url2 == url {
		t.Fatalf("CreateDB returned the same database twice: %s", url)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&v); err != nil || v != "off" {
		t.Fatalf("fsync = %q, %v; want off", v, err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a connection from before the restart still works")
	}
	conn2, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(ctx)
	var got int
	if err := conn2.QueryRow(ctx, "SELECT v FROM t").Scan(&got); err != nil || got != 42 {
		t.Fatalf("after restart: v = %d, %v; want 42", got, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, url); err == nil {
		t.Fatal("connected to a stopped server")
	}
}

// TestMissingBinariesFail proves that a machine without PostgreSQL gets a
// clear error (and so a failing, not skipped, test).
func TestMissingBinariesFail(t *testing.T) {
	empty := t.TempDir()
	t.Setenv(EnvBinDir, empty)
	if _, _, err := StartMain(); err == nil || !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), EnvBinDir) {
		t.Fatalf("StartMain with $%s=%s: err = %v; want an error naming the variable and directory", EnvBinDir, empty, err)
	}
}
