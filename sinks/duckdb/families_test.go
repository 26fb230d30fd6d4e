package duckdb

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

// family builds a column family's table version as the decoder gives it
// WITH split_column_families.
func family(source, fam string, key []int, cols ...model.Column) *model.Table {
	t := sinktest.Table(source+"."+fam, key, cols...)
	t.Source, t.Family = source, fam
	return t
}

// The families of a source table are mirrored as tables and the source is
// a view over them: a row exists while a family holds it, a family
// without the row shows NULLs, _hw_updated is the newest of its families;
// a family seen later and a column added later join the view at its end
// (after _hw_updated, as ALTER TABLE ADD COLUMN places a mirror's column),
// and the changelog view holds every family version once.
func TestFamiliesMakeOneView(t *testing.T) {
	ctx := context.Background()
	w, err := OpenPath(ctx, t.TempDir()+"/fam.duckdb", sinks.Options{Changelog: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	a, b, c, d := sinktest.Col("a", model.KindInt), sinktest.Col("b", model.KindString), sinktest.Col("c", model.KindString), sinktest.Col("d", model.KindInt)
	most := family("foo", "most", []int{0}, a, b)
	onlyC := family("foo", "only_c", []int{1}, c, a) // the key appended: the family does not hold it
	onlyC2 := family("foo", "only_c", []int{1}, c, a, d)
	window := func(writes ...func(sinks.Tx) error) {
		t.Helper()
		tx, err := w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, wr := range writes {
			if err := wr(tx); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	write := func(tb *model.Table, chs ...sinks.Change) func(sinks.Tx) error {
		return func(tx sinks.Tx) error { return tx.Write(ctx, tb, chs) }
	}
	up := func(wall int64, vals ...any) sinks.Change {
		return sinks.Change{Op: sinks.OpUpsert, Updated: sinktest.H(wall, 0), Values: vals}
	}
	del := func(wall int64, vals ...any) sinks.Change {
		return sinks.Change{Op: sinks.OpDelete, Updated: sinktest.H(wall, 0), Values: vals}
	}
	view := func(want ...string) {
		t.Helper()
		rows, err := w.DB().QueryContext(ctx, `SELECT * FROM foo ORDER BY a`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		got := []string{strings.Join(cols, ",")}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			got = append(got, strings.TrimSpace(fmt.Sprintln(vals...)))
		}
		if !slices.Equal(got, want) {
			t.Errorf("view foo\n got %q\nwant %q", got, want)
		}
	}
	window(write(most, up(1, int64(1), "x"), up(1, int64(2), "y")))
	view("a,b,_hw_updated", "1 x 1", "2 y 1")
	window(write(onlyC, up(2, "z", int64(1))))
	// A family seen later joins at the end, as an added column would.
	view("a,b,_hw_updated,c", "1 x 2 z", "2 y 1 <nil>")
	// c of row 1 set to NULL: the family's tombstone; row 2 gets d.
	window(write(onlyC, del(3, nil, int64(1))), write(onlyC2, up(3, "w", int64(2), int64(5))))
	view("a,b,_hw_updated,c,d", "1 x 1 <nil> <nil>", "2 y 3 w 5")
	// Row 1 deleted: a tombstone per family.
	window(write(most, del(4, int64(1), nil)), write(onlyC2, del(4, nil, int64(1), nil)))
	view("a,b,_hw_updated,c,d", "2 y 3 w 5")
	var n, fams int
	if err := w.DB().QueryRowContext(ctx, `SELECT count(*), count(DISTINCT _hw_family) FROM foo_changes`).Scan(&n, &fams); err != nil {
		t.Fatal(err)
	}
	if n != 7 || fams != 2 {
		t.Errorf("foo_changes: %d versions of %d families, want 7 of 2", n, fams)
	}
	var src, fam, ft string
	if err := w.DB().QueryRowContext(ctx, `SELECT source_table, family, family_table FROM `+sinks.FamiliesTable+` ORDER BY recorded_at DESC LIMIT 1`).Scan(&src, &fam, &ft); err != nil {
		t.Fatal(err)
	}
	if src != "foo" || fam != "only_c" || ft != "foo.only_c" {
		t.Errorf("%s: %s %s %s, want foo only_c foo.only_c", sinks.FamiliesTable, src, fam, ft)
	}
}
