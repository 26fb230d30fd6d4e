package memlimit

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

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

// TestReturnDuckDBFreedNestsAndRestores: while any caller holds it, DuckDB's
// jemalloc returns freed pages at once; the last restore puts back the
// decays that were in force, and a restore called twice counts once.
func TestReturnDuckDBFreedNestsAndRestores(t *testing.T) {
	if _, err := DuckDBAllocatorStats(); errors.Is(err, ErrNoDuckDBAllocator) {
		t.Skip("DuckDB uses the system allocator on this platform")
	}
	db, err := sql.Open("duckdb", "?threads=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A known starting point, whatever other tests of the process set.
	if err := setDuckDBDecays(1000, 0); err != nil {
		t.Fatal(err)
	}
	decays := func() (time.Duration, time.Duration) {
		t.Helper()
		d, m, err := DuckDBDecays()
		if err != nil {
			t.Fatal(err)
		}
		return d, m
	}
	r1, err := ReturnDuckDBFreed()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ReturnDuckDBFreed()
	if err != nil {
		t.Fatal(err)
	}
	if d, m := decays(); d != 0 || m != 0 {
		t.Fatalf("while returning freed pages: decays %s / %s, want 0 / 0", d, m)
	}
	churn(t, db)
	s, err := DuckDBAllocatorStats()
	if err != nil {
		t.Fatal(err)
	}
	if kept := s.Dirty + s.Muzzy; kept > 4<<20 {
		t.Fatalf("%d bytes of freed pages kept while returning them at once", kept)
	}
	r1()
	r1()
	if d, m := decays(); d != 0 || m != 0 {
		t.Fatalf("after one of two restores (called twice): decays %s / %s, want still 0 / 0", d, m)
	}
	r2()
	if d, m := decays(); d != time.Second || m != 0 {
		t.Fatalf("after the last restore: decays %s / %s, want 1s / 0s back", d, m)
	}
}
