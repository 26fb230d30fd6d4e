package sinks

import (
	"slices"
	"strings"
	"testing"

	"github.com/highwater-dev/highwater/internal/sqlident"
)

// The family view keeps the columns it has in their places (so that it can
// be replaced in place), adds new ones last, takes a column that several
// families carry (a virtual column) once, and refuses families whose keys
// differ.
func TestFamilyViewSQLColumnOrder(t *testing.T) {
	most := FamilyMember{Family: "most", Mirror: `"foo.most"`, Changes: `"foo.most_changes"`, Key: []string{"a"},
		Columns: []ViewColumn{{"a", "BIGINT"}, {"b", "VARCHAR"}, {"v", "BIGINT"}}, InChanges: map[string]bool{"a": true, "b": true, "v": true}}
	onlyC := FamilyMember{Family: "only_c", Mirror: `"foo.only_c"`, Key: []string{"a"},
		Columns: []ViewColumn{{"c", "VARCHAR"}, {"v", "BIGINT"}, {"a", "BIGINT"}, {"d", "BIGINT"}}}
	view, changes, cols, changeCols, err := FamilyViewSQL([]FamilyMember{most, onlyC}, []string{"a", "c", "b", UpdatedColumn}, nil, sqlident.Quote)
	if err != nil {
		t.Fatal(err)
	}
	// New columns follow the existing ones, _hw_updated included, as
	// ALTER TABLE ADD COLUMN places them.
	if want := []string{"a", "c", "b", UpdatedColumn, "v", "d"}; !slices.Equal(cols, want) {
		t.Errorf("columns %v, want %v", cols, want)
	}
	if want := []string{"a", "b", "v", "c", "d", UpdatedColumn, OpColumn, FamilyColumn}; !slices.Equal(changeCols, want) {
		t.Errorf("changelog columns %v, want %v", changeCols, want)
	}
	for _, want := range []string{`f1."c" AS "c"`, `f0."v" AS "v"`, `greatest(f0."_hw_updated", f1."_hw_updated") AS "_hw_updated"`, `LEFT JOIN "foo.only_c" AS f1 ON f1."a" = k."a"`,
		`SELECT "a" FROM "foo.most" UNION SELECT "a" FROM "foo.only_c"`} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %s:\n%s", want, view)
		}
	}
	// Only most has a changelog table: only its versions are listed.
	if strings.Contains(changes, "only_c") || !strings.Contains(changes, `CAST(NULL AS BIGINT) AS "d"`) || !strings.Contains(changes, `AS "_hw_family"`) {
		t.Errorf("changelog view:\n%s", changes)
	}
	onlyC.Key = []string{"c"}
	if _, _, _, _, err := FamilyViewSQL([]FamilyMember{most, onlyC}, nil, nil, sqlident.Quote); err == nil || !strings.Contains(err.Error(), "different primary keys") {
		t.Errorf("different keys: error %v", err)
	}
}
