package integration

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/simulator"
	"github.com/highwater-dev/highwater/sinks"
)

// TestNamesAWarehouseCannotHoldEndToEnd plays a changefeed whose tables and
// columns are named as no warehouse can hold them as they are: Orders and
// orders, a 60-byte name (68 with _changes), highwater_dlq, x beside
// x_changes, and in each table columns v and V and a 70-byte one. highwater
// maps them (sinks.NameRule); every table must equal the source as of the
// final resolved timestamp, found through highwater_tables and
// highwater_columns, with every version once in its changelog.
func TestNamesAWarehouseCannotHoldEndToEnd(t *testing.T) {
	long := strings.Repeat("l", 60)
	longCol := strings.Repeat("c", 70)
	sources := []string{"Orders", "orders", long, sinks.DeadLetterTable, "x", "x_changes"}
	var defs []simulator.TableDef
	for _, n := range sources {
		defs = append(defs, simulator.TableDef{Name: n, Columns: []simulator.ColumnDef{
			{Name: "id", Type: "INT8", NotNull: true}, {Name: "v", Type: "STRING"}, {Name: "V", Type: "INT8"}, {Name: longCol, Type: "INT8"},
		}, PrimaryKey: []string{"id"}})
	}
	for _, wh := range []warehouse{duckWarehouse(), pgWarehouse()} {
		t.Run(wh.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFeed(t, hostileOptions(17), defs...)
			sinkURL := wh.url(t)
			m := startMember(t, f, wh, memberConfig{group: "g", sinkURL: sinkURL, changelog: true})
			if _, err := f.sim.InitialScan(ctx); err != nil {
				t.Fatal(err)
			}
			if err := f.sim.Run(ctx, simulator.Workload{Txns: 60, KeysPerTable: 15, RowsPerTxn: 4, DeleteProb: 0.15, ResolveEvery: 10}); err != nil {
				t.Fatal(err)
			}
			final, err := f.sim.Resolve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			m.proc.SetStopAt(final)
			m.wait(t, 2*time.Minute)

			o := withOracle(t, f, wh, sinkURL, final)
			mirrors := map[string]bool{}
			for _, src := range sources {
				mt := o.check(t, f, final, src, []string{"id", "v", "V", longCol})
				if mirrors[mt] {
					t.Fatalf("%q shares mirror %q", src, mt)
				}
				mirrors[mt] = true
			}
		})
	}
}

// recordedNames returns the mirror of a source table as a warehouse's
// record (under prefix) gives it, and a function from source column to
// warehouse column.
func recordedNames(t *testing.T, db *sql.DB, prefix, source string) (string, func(string) string) {
	t.Helper()
	const ph = "$1" // DuckDB and PostgreSQL
	var mirror string
	q := "SELECT mirror_table FROM " + prefix + sinks.TablesTable + " WHERE source_table = " + ph
	if err := db.QueryRow(q, source).Scan(&mirror); err != nil {
		t.Fatalf("%s %q: %v", q, source, err)
	}
	rows, err := db.Query("SELECT source_column, warehouse_column FROM "+prefix+sinks.ColumnsTable+" WHERE source_table = "+ph, source)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	renamed := map[string]string{}
	for rows.Next() {
		var s, w string
		if err := rows.Scan(&s, &w); err != nil {
			t.Fatal(err)
		}
		renamed[s] = w
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return mirror, func(c string) string {
		if w, ok := renamed[c]; ok {
			return w
		}
		return c
	}
}

// oracleView is a connection that sees both the mirror tables and the
// oracle's copy of the source tables, with the qualifiers of each and the
// warehouse's text type.
type oracleView struct {
	db                         *sql.DB
	mirrorPrefix, oraclePrefix string
	text                       string
}

// withOracle writes the oracle's rows as of final through the warehouse's
// own writer beside the mirror (DuckDB: another file, attached as oracle;
// PostgreSQL: schema oracle) and returns a view of both, closed when the
// test ends.
func withOracle(t *testing.T, f *feed, wh warehouse, sinkURL string, final hlc.Timestamp) *oracleView {
	t.Helper()
	var db *sql.DB
	var err error
	view := func(mirrorPrefix, text string) *oracleView {
		t.Cleanup(func() { db.Close() })
		return &oracleView{db: db, mirrorPrefix: mirrorPrefix, oraclePrefix: "oracle.", text: text}
	}
	switch wh.name {
	case "duckdb":
		oracleURL := "duckdb://" + filepath.Join(t.TempDir(), "oracle.duckdb")
		w := wh.open(t, oracleURL, sinks.Options{})
		writeOracle(t, f, w, final)
		w.Close()
		if db, err = sql.Open("duckdb", strings.TrimPrefix(sinkURL, "duckdb://")); err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		if _, err := db.Exec(fmt.Sprintf("ATTACH '%s' AS oracle (READ_ONLY)", strings.TrimPrefix(oracleURL, "duckdb://"))); err != nil {
			t.Fatal(err)
		}
		return view("", "VARCHAR")
	case "postgres":
		sep := "?"
		if strings.Contains(sinkURL, "?") {
			sep = "&"
		}
		w := wh.open(t, sinkURL+sep+"schema=oracle", sinks.Options{})
		writeOracle(t, f, w, final)
		w.Close()
		if db, err = sql.Open("pgx", sinkURL); err != nil {
			t.Fatal(err)
		}
		return view("public.", "TEXT")
	}
	t.Fatalf("no oracle for warehouse %s", wh.name)
	return nil
}

func (o *oracleView) count(t *testing.T, q string) int {
	t.Helper()
	var n int
	if err := o.db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// check compares source table src's mirror with the oracle's copy on cols
// and _hw_updated (both ways, row counts too, each side found through its
// warehouse's name record), and its changelog with every version the
// source emitted through final. It returns the mirror table's name.
func (o *oracleView) check(t *testing.T, f *feed, final hlc.Timestamp, src string, cols []string) string {
	t.Helper()
	mt, mcols := recordedNames(t, o.db, o.mirrorPrefix, src)
	ot, ocols := recordedNames(t, o.db, o.oraclePrefix, src)
	var ml, ol []string
	for _, c := range append(slices.Clone(cols), sinks.UpdatedColumn) {
		ml = append(ml, fmt.Sprintf("CAST(%s AS %s)", sqlident.Quote(mcols(c)), o.text))
		ol = append(ol, fmt.Sprintf("CAST(%s AS %s)", sqlident.Quote(ocols(c)), o.text))
	}
	mirror, oracle := o.mirrorPrefix+sqlident.Quote(mt), o.oraclePrefix+sqlident.Quote(ot)
	nm, no := o.count(t, "SELECT count(*) FROM "+mirror), o.count(t, "SELECT count(*) FROM "+oracle)
	if nm != no || nm == 0 {
		t.Errorf("%s (in %s): %d rows, the source has %d", src, mt, nm, no)
	}
	for _, d := range [][2]string{{strings.Join(ml, ", ") + " FROM " + mirror, strings.Join(ol, ", ") + " FROM " + oracle},
		{strings.Join(ol, ", ") + " FROM " + oracle, strings.Join(ml, ", ") + " FROM " + mirror}} {
		if n := o.count(t, fmt.Sprintf("SELECT count(*) FROM (SELECT %s EXCEPT SELECT %s) d", d[0], d[1])); n != 0 {
			t.Errorf("%s (in %s): %d rows differ from the source", src, mt, n)
		}
	}
	want := 0
	for _, n := range versionCounts(f, src, final) {
		want += n
	}
	if got := o.count(t, "SELECT count(*) FROM "+o.mirrorPrefix+sqlident.Quote(mt+sinks.ChangesSuffix)); got != want || want == 0 {
		t.Errorf("%s: changelog %s holds %d versions, the source emitted %d", src, mt+sinks.ChangesSuffix, got, want)
	}
	return mt
}
