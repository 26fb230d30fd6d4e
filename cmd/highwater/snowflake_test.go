package main

import (
	"bytes"
	"context"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/files"
)

var updateSnowflake = flag.Bool("update-snowflake", false, "rewrite testdata/snowflake.golden")

// TestSnowflakeSQLGolden writes two tables into a files sink and checks the
// generated Snowflake SQL against testdata/snowflake.golden: typed columns
// from the sink's catalog, quoted identifiers, and a MERGE that keeps the
// newest _hw_updated per primary key.
func TestSnowflakeSQLGolden(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := files.Open(ctx, "file://"+dir, sinks.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	str := model.Type{Kind: model.KindString}
	orders := &model.Table{Name: "orders", Key: []int{1, 0}, Columns: []model.Column{
		{Name: "id", Type: model.Type{Kind: model.KindInt}, PrimaryKey: true},
		{Name: "region", Type: str, PrimaryKey: true},
		{Name: "amount", Type: model.Type{Kind: model.KindDecimal, Precision: 12, Scale: 2}},
		{Name: "placed_at", Type: model.Type{Kind: model.KindTimestampTZ}},
		{Name: "tags", Type: model.Type{Kind: model.KindArray, Elem: &str}},
		{Name: "doc", Type: model.Type{Kind: model.KindJSON}},
	}}
	odd := &model.Table{Name: `order items ☃`, Key: []int{0}, Columns: []model.Column{
		{Name: "from", Type: model.Type{Kind: model.KindInt}, PrimaryKey: true},
		{Name: `Mixed"Quote`, Type: model.Type{Kind: model.KindBool}},
		{Name: "at", Type: model.Type{Kind: model.KindTimestamp}},
		{Name: "d", Type: model.Type{Kind: model.KindDate}},
	}}
	at := hlc.Timestamp{WallTime: 1659643584586630201}
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, orders, []sinks.Change{{Op: sinks.OpInsert, Updated: at, Values: []any{int64(1), "eu",
		model.Decimal{Unscaled: big.NewInt(1250), Scale: 2}, time.Unix(1, 0).UTC(), []any{"a"}, `{}`}}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, odd, []sinks.Change{{Op: sinks.OpInsert, Updated: at, Values: []any{int64(1), true, nil, nil}}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()

	out, err := runArgs(t, "snowflake-sql", "--sink", "file://"+dir, "--stage-url", "s3://lake/cdc", "--storage-integration", "lake_int", "--warehouse", "transform_wh")
	if err != nil {
		t.Fatalf("snowflake-sql: %v\n%s", err, out)
	}
	golden := filepath.Join("testdata", "snowflake.golden")
	if *updateSnowflake {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(out), want) {
		t.Fatalf("snowflake-sql output differs from %s (go test -run TestSnowflakeSQLGolden -update-snowflake to accept):\n%s", golden, out)
	}

	// Only the named tables, and clear errors.
	out, err = runArgs(t, "snowflake-sql", "--sink", "file://"+dir, "--stage-url", "s3://lake/cdc", "--tables", "orders")
	if err != nil || strings.Contains(out, "order items") || !strings.Contains(out, `MERGE INTO "orders"`) {
		t.Fatalf("--tables orders: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"snowflake-sql"}, "--sink is required"},
		{[]string{"snowflake-sql", "--sink", "file://" + dir}, "needs --stage-url"},
		{[]string{"snowflake-sql", "--sink", "file://" + dir, "--stage-url", "s3://x", "--tables", "nope"}, `table "nope" has no files`},
		{[]string{"snowflake-sql", "--sink", "file://" + t.TempDir(), "--stage-url", "s3://x"}, "no tables"},
	} {
		if out, err := runArgs(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q\n%s", tc.args, err, tc.want, out)
		}
	}
}
