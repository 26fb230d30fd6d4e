package postgres

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

func family(source, fam string, key []int, cols ...model.Column) *model.Table {
	t := sinktest.Table(source+"."+fam, key, cols...)
	t.Source, t.Family = source, fam
	return t
}

// The families of a source table are mirrored as tables and the source is
// a view over them (as in TestFamiliesMakeOneView of sinks/duckdb); a
// family seen later and a column added later extend the views in place
// (CREATE OR REPLACE VIEW only appends columns), and a writer opened again
// takes the views for nothing else.
func TestFamiliesMakeOneView(t *testing.T) {
	ctx := context.Background()
	url := server.CreateDB(t)
	w := openWriter(t, url, sinks.Options{Changelog: true})
	a, b, c, d := sinktest.Col("a", model.KindInt), sinktest.Col("b", model.KindString), sinktest.Col("c", model.KindString), sinktest.Col("d", model.KindInt)
	most := family("foo", "most", []int{0}, a, b)
	onlyC := family("foo", "only_c", []int{1}, c, a)
	onlyC2 := family("foo", "only_c", []int{1}, c, a, d)
	type write struct {
		tb  *model.Table
		chs []sinks.Change
	}
	window := func(ws ...write) {
		t.Helper()
		tx, err := w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, wr := range ws {
			if err := tx.Write(ctx, wr.tb, wr.chs); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	up := func(wall int64, vals ...any) sinks.Change {
		return sinks.Change{Op: sinks.OpUpsert, Updated: sinktest.H(wall, 0), Values: vals}
	}
	del := func(wall int64, vals ...any) sinks.Change {
		return sinks.Change{Op: sinks.OpDelete, Updated: sinktest.H(wall, 0), Values: vals}
	}
	view := func(wantCols string, want ...string) {
		t.Helper()
		cols := query(t, url, `SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'foo'::regclass AND attnum > 0`)
		if cols[0][0] != wantCols {
			t.Errorf("view foo columns %s, want %s", cols[0][0], wantCols)
		}
		var got []string
		for _, r := range query(t, url, `SELECT * FROM foo ORDER BY a`) {
			got = append(got, strings.Join(r, " "))
		}
		if !slices.Equal(got, want) {
			t.Errorf("view foo\n got %q\nwant %q", got, want)
		}
	}
	window(write{most, []sinks.Change{up(1, int64(1), "x"), up(1, int64(2), "y")}})
	view("a,b,_hw_updated", "1 x 1.0000000000", "2 y 1.0000000000")
	window(write{onlyC, []sinks.Change{up(2, "z", int64(1))}})
	view("a,b,_hw_updated,c", "1 x 2.0000000000 z", "2 y 1.0000000000 NULL")
	window(write{onlyC, []sinks.Change{del(3, nil, int64(1))}}, write{onlyC2, []sinks.Change{up(3, "w", int64(2), int64(5))}})
	view("a,b,_hw_updated,c,d", "1 x 1.0000000000 NULL NULL", "2 y 3.0000000000 w 5")
	window(write{most, []sinks.Change{del(4, int64(1), nil)}}, write{onlyC2, []sinks.Change{del(4, nil, int64(1), nil)}})
	view("a,b,_hw_updated,c,d", "2 y 3.0000000000 w 5")
	if got := query(t, url, `SELECT count(*), count(DISTINCT _hw_family) FROM foo_changes`); got[0][0] != "7" || got[0][1] != "2" {
		t.Errorf("foo_changes: %v versions and families, want 7 of 2", got[0])
	}
	openWriter(t, url, sinks.Options{Changelog: true})
}
