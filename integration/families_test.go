package integration

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/simulator"
	"github.com/highwater-dev/highwater/sinks"
)

// familyDefs is a table of three column families: "main" holds the key
// and status, "prices" two numbers, "notes" a text that is usually NULL
// (so that its KV comes and goes), and a plain table beside it.
func familyDefs() []simulator.TableDef {
	return []simulator.TableDef{
		{Name: "orders", Columns: []simulator.ColumnDef{
			{Name: "id", Type: "INT8"}, {Name: "status", Type: "STRING"}, {Name: "price", Type: "DECIMAL(10,2)"},
			{Name: "qty", Type: "INT8"}, {Name: "note", Type: "STRING"},
		}, PrimaryKey: []string{"id"}, Families: []simulator.FamilyDef{
			{Name: "main", Columns: []string{"id", "status"}},
			{Name: "prices", Columns: []string{"price", "qty"}},
			{Name: "notes", Columns: []string{"note"}},
		}},
		{Name: "plain", Columns: []simulator.ColumnDef{{Name: "id", Type: "INT8"}, {Name: "v", Type: "STRING"}}, PrimaryKey: []string{"id"}},
	}
}

var orderFamilies = []string{"orders.main", "orders.prices", "orders.notes"}

// TestSplitColumnFamiliesEndToEnd plays a changefeed WITH
// split_column_families (and diff, duplicates, reordering and a restart
// that re-emits with gaps) where most transactions update one family only,
// some set a family to NULL (a tombstone for that family while the row
// lives), delete rows (a tombstone per family, or per family holding a
// value) and insert them again. highwater run with
// --split-column-families must mirror each family exactly and present
// orders as one relation equal to the source as of the final resolved
// timestamp, with _hw_updated the newest HLC of its families holding a
// value; the changelog view must hold every family version once.
func TestSplitColumnFamiliesEndToEnd(t *testing.T) {
	for _, wh := range []warehouse{duckWarehouse(), pgWarehouse()} {
		t.Run(wh.name, func(t *testing.T) {
			ctx := context.Background()
			opts := hostileOptions(31)
			opts.SplitColumnFamilies = true
			f := newFeed(t, opts, familyDefs()...)
			if got := strings.Join(f.sim.Topics(), ","); got != "orders.main,orders.prices,orders.notes,plain" {
				t.Fatalf("topics %s", got)
			}
			for i := int64(0); i < 6; i++ {
				if err := f.sim.Load("orders", map[string]any{"id": i, "status": "new", "price": "1.50", "qty": i}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.sim.InitialScan(ctx); err != nil {
				t.Fatal(err)
			}
			sinkURL := wh.url(t)
			m := startMember(t, f, wh, memberConfig{group: "g", sinkURL: sinkURL, changelog: true,
				decoderOpts: []schemas.DecoderOption{schemas.WithSplitColumnFamilies()}})
			final := playFamilies(t, f)
			m.proc.SetStopAt(final)
			m.wait(t, 2*time.Minute)

			db, oracle, mirrorPrefix := familyOracle(t, f, wh, sinkURL, final)
			cols := []string{"id", "status", "price", "qty", "note", sinks.UpdatedColumn}
			mirror := mirrorPrefix + sqlident.Quote("orders")
			list := func(prefix string) string {
				q := make([]string, len(cols))
				for i, c := range cols {
					q[i] = "CAST(" + prefix + sqlident.Quote(c) + " AS VARCHAR)"
				}
				return strings.Join(q, ", ")
			}
			count := func(q string) int {
				t.Helper()
				var n int
				if err := db.QueryRow(q).Scan(&n); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				return n
			}
			nm, no := count("SELECT count(*) FROM "+mirror), count("SELECT count(*) FROM "+oracle)
			if no == 0 || no == 14 {
				t.Errorf("orders: the source has %d of its 14 keys: the test wants rows deleted and rows alive", no)
			}
			if nm != no {
				t.Errorf("orders: the view has %d rows, the source %d", nm, no)
			}
			for _, d := range [][2]string{{mirror, oracle}, {oracle, mirror}} {
				if n := count(fmt.Sprintf("SELECT count(*) FROM (SELECT %s FROM %s EXCEPT SELECT %s FROM %s) d", list(""), d[0], list(""), d[1])); n != 0 {
					t.Errorf("orders: %d rows of %s are not in %s", n, d[0], d[1])
				}
			}
			want := 0
			for _, fam := range orderFamilies {
				for _, v := range f.sim.Oracle().Versions(fam) {
					if !final.Less(v.Updated) {
						want++
					}
				}
			}
			changes := mirrorPrefix + sqlident.Quote("orders"+sinks.ChangesSuffix)
			got := count("SELECT count(*) FROM (SELECT DISTINCT id, " + sqlident.Quote(sinks.UpdatedColumn) + ", " + sqlident.Quote(sinks.FamilyColumn) + " FROM " + changes + ") c")
			if all := count("SELECT count(*) FROM " + changes); got != want || all != want {
				t.Errorf("orders changelog view: %d rows (%d distinct), the families emitted %d versions", all, got, want)
			}
			t.Logf("orders: %d rows, %d family versions", nm, want)
			// The views are not tables: a writer opening the warehouse again
			// (a restart) must not take them for mirrors.
			wh.open(t, sinkURL, sinks.Options{Changelog: true}).Close()
		})
	}
}

// playFamilies plays transactions that touch one family of orders at a
// time, NULL a family, delete and re-insert rows, with resolved timestamps
// and one changefeed restart; it returns the final resolved timestamp.
func playFamilies(t *testing.T, f *feed) hlc.Timestamp {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewSource(7))
	state := map[int64]map[string]any{}
	for i := int64(0); i < 6; i++ {
		state[i] = map[string]any{"id": i, "status": "new", "price": "1.50", "qty": i}
	}
	var resolved []hlc.Timestamp
	for i := 0; i < 120; i++ {
		_, err := f.sim.Txn(ctx, func(tx *simulator.Txn) error {
			for w := 0; w < 2; w++ {
				id := int64(rng.Intn(14))
				row, live := state[id]
				if !live {
					row = map[string]any{"id": id, "status": "new"}
				} else {
					row = mapsClone(row)
				}
				switch r := rng.Intn(10); {
				case live && r < 3:
					delete(state, id)
					if err := tx.Delete("orders", id); err != nil {
						return err
					}
					continue
				case r < 5:
					row["qty"] = int64(rng.Intn(100)) // one family
				case r < 7:
					row["status"] = []string{"new", "paid", "shipped"}[rng.Intn(3)]
				case r < 8:
					if row["note"] == nil {
						row["note"] = fmt.Sprintf("note %d", i)
					} else {
						delete(row, "note") // the family's KV goes: a tombstone
					}
				case r < 9:
					delete(row, "price")
					delete(row, "qty") // NULL the whole family
				default:
					row["price"], row["qty"], row["note"] = fmt.Sprintf("%d.25", rng.Intn(50)), int64(rng.Intn(9)), "all"
				}
				state[id] = row
				if err := tx.Upsert("orders", row); err != nil {
					return err
				}
			}
			if rng.Intn(3) == 0 {
				return tx.Upsert("plain", map[string]any{"id": rng.Intn(5), "v": fmt.Sprint(i)})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			ts, err := f.sim.Resolve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			resolved = append(resolved, ts)
		}
		if i == 70 {
			if err := f.sim.Restart(ctx, resolved[len(resolved)-3], 0.3); err != nil {
				t.Fatal(err)
			}
		}
	}
	final, err := f.sim.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return final
}

func mapsClone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// familyOracle writes the source table orders as of final into an oracle
// beside the warehouse (through the warehouse's own writer, as withOracle
// does), with _hw_updated as the contract says: the newest HLC of the
// row's families that hold a value. It returns a connection that sees
// both, the oracle table's qualified name and the mirror's prefix.
func familyOracle(t *testing.T, f *feed, wh warehouse, sinkURL string, final hlc.Timestamp) (*sql.DB, string, string) {
	t.Helper()
	ctx := context.Background()
	tbl := familyModel(t, f)
	newest := map[string]hlc.Timestamp{}
	for _, fam := range orderFamilies {
		for _, r := range f.sim.Oracle().Rows(fam, final) {
			k := fmt.Sprint(r.Key...)
			if newest[k].Less(r.Updated) {
				newest[k] = r.Updated
			}
		}
	}
	var changes []sinks.Change
	for _, r := range f.sim.Oracle().Rows("orders", final) {
		vals := make([]any, len(tbl.Columns))
		for i, c := range tbl.Columns {
			vals[i] = r.Values[c.Name]
		}
		changes = append(changes, sinks.Change{Op: sinks.OpUpsert, Updated: newest[fmt.Sprint(r.Key...)], Values: vals})
	}
	write := func(url string) {
		w := wh.open(t, url, sinks.Options{})
		defer w.Close()
		tx, err := w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, tbl, changes); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var db *sql.DB
	var err error
	switch wh.name {
	case "duckdb":
		oracleURL := "duckdb://" + filepath.Join(t.TempDir(), "oracle.duckdb")
		write(oracleURL)
		if db, err = sql.Open("duckdb", strings.TrimPrefix(sinkURL, "duckdb://")); err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { db.Close() })
		if _, err := db.Exec(fmt.Sprintf("ATTACH '%s' AS oracle (READ_ONLY)", strings.TrimPrefix(oracleURL, "duckdb://"))); err != nil {
			t.Fatal(err)
		}
		return db, "oracle.orders", ""
	default:
		sep := "?"
		if strings.Contains(sinkURL, "?") {
			sep = "&"
		}
		write(sinkURL + sep + "schema=oracle")
		if db, err = sql.Open("pgx", sinkURL); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db, "oracle.orders", "public."
	}
}

// familyModel is the column model of orders: the key, then every family's
// columns, from the families' registered schemas.
func familyModel(t *testing.T, f *feed) *model.Table {
	t.Helper()
	ctx := context.Background()
	cl, err := sr.NewClient(sr.URLs(f.stack.RegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := schemas.NewRegistry(f.stack.RegistryURL())
	if err != nil {
		t.Fatal(err)
	}
	dec := schemas.NewDecoder(reg)
	// The key is registered once, under the first family's subject.
	key, err := cl.SchemaByVersion(ctx, "orders.main-key", -1)
	if err != nil {
		t.Fatal(err)
	}
	out := &model.Table{Name: "orders"}
	for _, fam := range orderFamilies {
		val, err := cl.SchemaByVersion(ctx, fam+"-value", -1)
		if err != nil {
			t.Fatal(err)
		}
		ft, err := dec.Table(ctx, key.ID, val.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range ft.Columns {
			if !slices.ContainsFunc(out.Columns, func(o model.Column) bool { return o.Name == c.Name }) {
				out.Columns = append(out.Columns, c)
			}
		}
	}
	for i, c := range out.Columns {
		if c.PrimaryKey {
			out.Key = append(out.Key, i)
		}
	}
	return out
}
