package sinktest

import (
	"context"
	"database/sql"
	"testing"
)

// Rows runs q with args on db and returns every row with every column
// scanned as text, SQL NULL as Null; no rows is an empty, non-nil slice.
// It fails t on any error. It suits any database/sql driver whose columns
// convert to strings (DuckDB's do; cast the others to VARCHAR), and is the
// one "query rows as strings" helper of the tests that read a warehouse
// through database/sql.
func Rows(t testing.TB, db *sql.DB, q string, args ...any) [][]string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatalf("query %s: columns: %v", q, err)
	}
	out := [][]string{}
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("query %s: scan: %v", q, err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = Null
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	return out
}
