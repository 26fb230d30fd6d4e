package memlimit

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2" // links DuckDB, and with it its jemalloc
)

// churn runs a DuckDB query that allocates and frees a few hundred MB
// (a sort of 2M strings of ~110 bytes) on db.
func churn(t *testing.T, db *sql.DB) {
	t.Helper()
	var n int64
	if err := db.QueryRowContext(context.Background(),
		`SELECT count(DISTINCT s) FROM (SELECT repeat('x', 100) || i::VARCHAR AS s FROM range(2000000) t(i) ORDER BY s DESC)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2000000 {
		t.Fatalf("query counted %d, want 2000000", n)
	}
}

// TestSetDuckDBDecay checks that pages DuckDB frees stay with its jemalloc
// under DuckDB's own settings, and go back to the kernel at once after
// SetDuckDBDecay(0): the memory an initial scan kept between MERGEs.
func TestSetDuckDBDecay(t *testing.T) {
	db, err := sql.Open("duckdb", "?threads=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := DuckDBAllocatorStats(); errors.Is(err, ErrNoDuckDBAllocator) {
		t.Skip("DuckDB uses the system allocator on this platform")
	} else if err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	kept := func() int64 {
		t.Helper()
		s, err := DuckDBAllocatorStats()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("allocated %.1f MiB, resident %.1f MiB, dirty %.1f MiB, muzzy %.1f MiB",
			float64(s.Allocated)/mib, float64(s.Resident)/mib, float64(s.Dirty)/mib, float64(s.Muzzy)/mib)
		return s.Dirty + s.Muzzy
	}

	// DuckDB's own decay (one second, no background threads): the query's
	// freed pages stay resident.
	churn(t, db)
	if k := kept(); k < 32*mib {
		t.Fatalf("with DuckDB's decay, %d bytes of freed pages are kept after the query; expected tens of MiB (has DuckDB's default changed?)", k)
	}

	if err := SetDuckDBDecay(DuckDBDecay); err != nil {
		t.Fatal(err)
	}
	if k := kept(); k > 4*mib {
		t.Fatalf("after SetDuckDBDecay(0), %d bytes of freed pages are still kept", k)
	}
	churn(t, db)
	if k := kept(); k > 4*mib {
		t.Fatalf("after a query with decay 0, %d bytes of freed pages are kept", k)
	}
}
