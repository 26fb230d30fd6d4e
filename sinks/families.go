package sinks

import (
	"fmt"
	"slices"
	"strings"
)

// Column families (changefeed option split_column_families, with
// schemas.WithSplitColumnFamilies): a model.Table with Family set is one
// column family of the source table Source. Writers that support it mirror
// each family as a table of its own (named, like any table, after
// "<table>.<family>") and present the source table as views over its
// families (docs/DECODING.md, "Column families").
const (
	// FamiliesTable records the column families seen of each source table:
	// source_table, family, family_table (the family's source name,
	// "<table>.<family>") and recorded_at; primary key (source_table,
	// family).
	FamiliesTable = "highwater_families"
	// FamilyColumn names, in a source table's changelog view, the family
	// whose version a row is.
	FamilyColumn = "_hw_family"
)

// FamilyMember is one column family's tables, for FamilyViewSQL.
type FamilyMember struct {
	// Family is the family's name.
	Family string
	// Mirror and Changes are the family's mirror and changelog tables,
	// qualified and quoted for the warehouse's SQL; Changes is "" when the
	// family has no changelog table.
	Mirror, Changes string
	// Key names the primary-key columns in key order.
	Key []string
	// Columns are the mirror's columns in table order, UpdatedColumn
	// excluded, with their warehouse types.
	Columns []ViewColumn
	// InChanges tells which columns the changelog table has.
	InChanges map[string]bool
}

// ViewColumn is a column and its warehouse type.
type ViewColumn struct{ Name, Type string }

// FamilyViewSQL builds the queries of a source table's views over its
// column families ms (in the order first seen). The mirror view has the
// key columns, every family's other columns (a column several families
// carry, as a virtual column is, is taken from the first) and
// UpdatedColumn, the newest HLC among the families holding the row; a row
// exists while any family holds it. The changelog view ("" when no family
// has a changelog table) has one row per family version: the key, the
// families' columns (NULL but for the version's family), UpdatedColumn,
// OpColumn and FamilyColumn. prev and prevChanges are the views' current
// columns, if they exist: those keep their places and new columns follow,
// as ALTER TABLE ADD COLUMN places them in the mirror tables, so that a
// view can be replaced in place (PostgreSQL's CREATE OR REPLACE VIEW only
// appends columns). quote quotes an identifier. It also returns the views'
// columns, in order.
func FamilyViewSQL(ms []FamilyMember, prev, prevChanges []string, quote func(string) string) (view, changes string, cols, changeCols []string, err error) {
	if len(ms) == 0 {
		return "", "", nil, nil, fmt.Errorf("no column families")
	}
	key := ms[0].Key
	for _, m := range ms[1:] {
		if !slices.Equal(m.Key, key) {
			return "", "", nil, nil, fmt.Errorf("families %q and %q have different primary keys (%s), (%s)",
				ms[0].Family, m.Family, strings.Join(key, ", "), strings.Join(m.Key, ", "))
		}
	}
	isKey := map[string]bool{}
	for _, k := range key {
		isKey[k] = true
	}
	type col struct {
		ViewColumn
		from int
	}
	byName := map[string]col{}
	var data []string
	for i, m := range ms {
		for _, c := range m.Columns {
			if isKey[c.Name] || c.Name == UpdatedColumn {
				continue
			}
			if _, ok := byName[c.Name]; !ok {
				byName[c.Name] = col{c, i}
				data = append(data, c.Name)
			}
		}
	}
	alias := func(i int) string { return fmt.Sprintf("f%d", i) }
	keyList := make([]string, len(key))
	for i, k := range key {
		keyList[i] = quote(k)
	}
	var keys, joins, upd []string
	for i, m := range ms {
		keys = append(keys, `SELECT `+strings.Join(keyList, ", ")+` FROM `+m.Mirror)
		on := make([]string, len(key))
		for j, k := range key {
			on[j] = alias(i) + "." + quote(k) + " = k." + quote(k)
		}
		joins = append(joins, `LEFT JOIN `+m.Mirror+` AS `+alias(i)+` ON `+strings.Join(on, " AND "))
		upd = append(upd, alias(i)+"."+quote(UpdatedColumn))
	}
	hw := upd[0]
	if len(upd) > 1 {
		// GREATEST ignores NULLs (families without the row) in DuckDB and
		// PostgreSQL alike.
		hw = `greatest(` + strings.Join(upd, ", ") + `)`
	}
	expr := map[string]string{UpdatedColumn: hw}
	for _, k := range key {
		expr[k] = "k." + quote(k)
	}
	for _, n := range data {
		expr[n] = alias(byName[n].from) + "." + quote(n)
	}
	base := append(append(slices.Clone(key), data...), UpdatedColumn)
	cols = keepOrder(prev, base)
	sel := make([]string, len(cols))
	for i, n := range cols {
		sel[i] = expr[n] + ` AS ` + quote(n)
	}
	view = `SELECT ` + strings.Join(sel, ", ") + `
FROM (` + strings.Join(keys, " UNION ") + `) AS k
` + strings.Join(joins, "\n")
	changeCols = keepOrder(prevChanges, append(slices.Clone(base), OpColumn, FamilyColumn))
	var parts []string
	for _, m := range ms {
		if m.Changes == "" {
			continue // the family's versions before --changelog are not kept
		}
		sel := make([]string, len(changeCols))
		for i, n := range changeCols {
			switch c, ok := byName[n]; {
			case isKey[n] || n == UpdatedColumn || n == OpColumn:
				sel[i] = quote(n)
			case n == FamilyColumn:
				sel[i] = `CAST('` + strings.ReplaceAll(m.Family, `'`, `''`) + `' AS VARCHAR) AS ` + quote(n)
			case ok && m.InChanges[n]:
				sel[i] = `CAST(` + quote(n) + ` AS ` + c.Type + `) AS ` + quote(n)
			default:
				sel[i] = `CAST(NULL AS ` + c.Type + `) AS ` + quote(n)
			}
		}
		parts = append(parts, `SELECT `+strings.Join(sel, ", ")+` FROM `+m.Changes)
	}
	if len(parts) > 0 {
		changes = strings.Join(parts, "\nUNION ALL\n")
	}
	return view, changes, cols, changeCols, nil
}

// keepOrder returns want with the names of prev first, in prev's order,
// and the others after them in want's order.
func keepOrder(prev, want []string) []string {
	in := map[string]bool{}
	for _, n := range want {
		in[n] = true
	}
	out := make([]string, 0, len(want))
	placed := map[string]bool{}
	for _, n := range prev {
		if in[n] && !placed[n] {
			out, placed[n] = append(out, n), true
		}
	}
	for _, n := range want {
		if !placed[n] {
			out, placed[n] = append(out, n), true
		}
	}
	return out
}
