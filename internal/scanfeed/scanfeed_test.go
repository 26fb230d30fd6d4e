package scanfeed

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/internal/testfeed"
)

// TestMirrorDigestFindsEveryDifference plays a small scan, writes the
// oracle's rows into a DuckDB table shaped like highwater's mirror, and
// spoils it one way at a time: every spoiled mirror must differ from the
// oracle's digest, the faithful one must equal it.
func TestMirrorDigestFindsEveryDifference(t *testing.T) {
	ctx := context.Background()
	const rows = 2000
	stack := testfeed.Stack(t, devstack.Options{})
	opts := Options(5, 0)
	opts.Logger = zap.NewNop()
	sim := testfeed.On(t, ctx, stack, opts, Table())
	scan, err := Load(ctx, sim, rows)
	if err != nil {
		t.Fatal(err)
	}
	final, err := sim.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Expect(sim.Oracle(), final)
	if err != nil {
		t.Fatal(err)
	}
	if want.Rows != rows {
		t.Fatalf("the oracle holds %d rows after a scan of %d", want.Rows, rows)
	}

	db, err := sql.Open("duckdb", filepath.Join(t.TempDir(), "wh.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE source (id BIGINT PRIMARY KEY, payload VARCHAR, _hw_updated DECIMAL(38,10))`)
	for _, r := range sim.Oracle().Rows(TableName, final) {
		exec(`INSERT INTO source VALUES (?, ?, CAST(? AS DECIMAL(38,10)))`, r.Key[0], r.Values["payload"], r.Updated.String())
	}
	fill := func() {
		t.Helper()
		exec(`CREATE OR REPLACE TABLE items AS SELECT * FROM source`)
	}
	fill()
	got, err := Mirror(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("faithful mirror: digest %+v, oracle %+v", got, want)
	}
	for name, spoil := range map[string]string{
		"a row missing":     `DELETE FROM items WHERE id = 1234`,
		"a row too many":    `INSERT INTO items VALUES (` + "2000" + `, 'x', CAST('` + scan.String() + `' AS DECIMAL(38,10)))`,
		"a payload changed": `UPDATE items SET payload = payload || 'y' WHERE id = 17`,
		"a payload NULL":    `UPDATE items SET payload = NULL WHERE id = 18`,
		"an HLC changed":    `UPDATE items SET _hw_updated = _hw_updated + 0.0000000001 WHERE id = 1999`,
		"two rows swapped":  `UPDATE items SET payload = CASE id WHEN 5 THEN (SELECT payload FROM items WHERE id = 6) ELSE (SELECT payload FROM items WHERE id = 5) END WHERE id IN (5, 6)`,
	} {
		fill()
		exec(spoil)
		got, err := Mirror(ctx, db)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got == want {
			t.Errorf("%s: the mirror's digest equals the oracle's (%+v)", name, got)
		}
	}
}
