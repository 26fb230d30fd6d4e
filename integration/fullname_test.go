package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/simulator"
)

// TestFullTableNameEndToEnd plays one changefeed WITH full_table_name,
// avro_schema_prefix and a topic_prefix over two tables named orders in the
// databases east and west (and an items table in east). Their row records
// are both named orders; highwater must keep them apart as
// east.public.orders and west.public.orders, two mirror tables, each equal
// to its source as of the final resolved timestamp, with every version once
// in its changelog.
func TestFullTableNameEndToEnd(t *testing.T) {
	cols := []simulator.ColumnDef{{Name: "id", Type: "INT8", NotNull: true}, {Name: "v", Type: "STRING"}, {Name: "n", Type: "INT8"}}
	defs := []simulator.TableDef{
		{Database: "east", Name: "orders", Columns: cols, PrimaryKey: []string{"id"}},
		{Database: "west", Name: "orders", Columns: cols, PrimaryKey: []string{"id"}},
		{Database: "east", Name: "items", Columns: cols, PrimaryKey: []string{"id"}},
	}
	opts := hostileOptions(23)
	opts.FullTableName, opts.SchemaPrefix, opts.TopicPrefix = true, "crdb", "cdc_"
	playAndCompare(t, opts, defs, []string{"east.public.orders", "west.public.orders", "east.public.items"},
		[]string{"id", "v", "n"}, "cdc_east.public.orders,cdc_west.public.orders,cdc_east.public.items")
}

// TestVirtualColumnsNullEndToEnd plays a changefeed WITH virtual_columns =
// 'null' over a table with a virtual computed column declared NOT NULL:
// every message carries it as NULL, so its mirror column must accept NULL
// and hold NULL in every row, like the source as highwater sees it.
func TestVirtualColumnsNullEndToEnd(t *testing.T) {
	defs := []simulator.TableDef{{Name: "readings", Columns: []simulator.ColumnDef{
		{Name: "id", Type: "INT8", NotNull: true}, {Name: "v", Type: "STRING"}, {Name: "n", Type: "INT8"},
		{Name: "n2", Type: "INT8", NotNull: true, Virtual: "n * 2"},
	}, PrimaryKey: []string{"id"}}}
	playAndCompare(t, hostileOptions(29), defs, []string{"readings"}, []string{"id", "v", "n", "n2"}, "readings")
}

// playAndCompare plays a random workload over defs into DuckDB and
// PostgreSQL and checks that each source table has a mirror of its own
// (found through highwater_tables) equal to the source as of the final
// resolved timestamp in the columns cols and _hw_updated, with every version
// once in its changelog. topics is the feed's topics, comma separated.
func playAndCompare(t *testing.T, opts simulator.Options, defs []simulator.TableDef, sources, cols []string, topics string) {
	t.Helper()
	for _, wh := range []warehouse{duckWarehouse(), pgWarehouse()} {
		t.Run(wh.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFeed(t, opts, defs...)
			if got := strings.Join(f.sim.Topics(), ","); got != topics {
				t.Fatalf("topics %s", got)
			}
			sinkURL := wh.url(t)
			m := startMember(t, f, wh, memberConfig{group: "g", sinkURL: sinkURL, changelog: true})
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
			mirrors := map[string]string{}
			for _, src := range sources {
				mt := o.check(t, f, final, src, cols)
				if other, ok := mirrors[mt]; ok {
					t.Fatalf("%s shares mirror %q with %s", src, mt, other)
				}
				mirrors[mt] = src
			}
			t.Logf("mirrors: %v", mirrors)
		})
	}
}
