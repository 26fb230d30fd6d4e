package postgres

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/internal/pgtest"
	"github.com/highwater-dev/highwater/sinks"
)

// server is the package's one PostgreSQL server; every test gets its own
// database on it.
var server *pgtest.Server

func TestMain(m *testing.M) {
	if spec := os.Getenv(envMember); spec != "" {
		// A member process of TestConcurrentWriterProcesses.
		var member int
		var url string
		if _, err := fmt.Sscanf(spec, "%d %s", &member, &url); err != nil {
			fmt.Fprintln(os.Stderr, "bad", envMember, spec, err)
			os.Exit(2)
		}
		if err := runMember(context.Background(), url, member); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	s, stop, err := pgtest.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sinks/postgres tests need a PostgreSQL server:", err)
		os.Exit(1)
	}
	server = s
	code := m.Run()
	stop()
	os.Exit(code)
}

// openWriter opens a writer on url and closes it when t ends.
func openWriter(t testing.TB, url string, opts sinks.Options) *Writer {
	t.Helper()
	w, err := Open(context.Background(), url, opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// query runs sql on url and returns every row as text (SQL NULL as "NULL"),
// through the simple protocol so that every type reads back in
// PostgreSQL's own text form.
func query(t testing.TB, url, sql string, args ...any) [][]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	args = append([]any{pgx.QueryExecModeSimpleProtocol}, args...)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("query %s: %v", sql, err)
	}
	defer rows.Close()
	out := [][]string{}
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]string, len(raw))
		for i, v := range raw {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = string(v)
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("query %s: %v", sql, err)
	}
	return out
}

// execSQL runs sql on url as written.
func execSQL(t testing.TB, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("exec %s: %v", sql, err)
	}
}

// harness state for sinktest: the database of each subtest.
type dbs struct {
	mu   sync.Mutex
	urls map[string]string
}

func (d *dbs) set(t *testing.T, url string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.urls[t.Name()] = url
}

func (d *dbs) get(t *testing.T) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.urls[t.Name()]
	if !ok {
		t.Fatalf("no database opened for %s", t.Name())
	}
	return u
}

func withParam(url, kv string) string {
	if strings.Contains(url, "?") {
		return url + "&" + kv
	}
	return url + "?" + kv
}
