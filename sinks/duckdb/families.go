package duckdb

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// Column families (sinks.FamiliesTable, docs/DECODING.md): each family of a
// source table is mirrored exactly like a table of its own, and the source
// table is a view over its families, recreated when a family table is
// created or gains columns.

// familyNote is a family table written in this window.
type familyNote struct {
	source, family, table string // source names
}

// noteFamily remembers a family table written in this window and reserves
// the warehouse names of its source table (the views), so that the window
// records them with its other names.
func (tx *Tx) noteFamily(ctx context.Context, table *model.Table) error {
	if table.Family == "" {
		return nil
	}
	for _, n := range tx.fams {
		if n.table == table.Name {
			return nil
		}
	}
	if _, err := tx.tableNames(ctx, table.Source); err != nil {
		return err
	}
	tx.fams = append(tx.fams, familyNote{source: table.Source, family: table.Family, table: table.Name})
	return nil
}

// familyViews records the window's family tables and (re)creates the view
// of each source table whose family tables are new or gained columns. It
// runs after the window's DDL and before its MERGEs.
func (tx *Tx) familyViews(ctx context.Context) error {
	if len(tx.fams) == 0 {
		return nil
	}
	ft := tx.w.qualify(sinks.FamiliesTable)
	if _, err := tx.conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+ft+` (
	source_table VARCHAR NOT NULL,
	family VARCHAR NOT NULL,
	family_table VARCHAR NOT NULL,
	recorded_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (source_table, family))`); err != nil {
		return fmt.Errorf("column families: %w", err)
	}
	redo := map[string]bool{}
	now := time.Now().UTC()
	for _, n := range tx.fams {
		res, err := tx.conn.ExecContext(ctx, `INSERT INTO `+ft+` VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, n.source, n.family, n.table, now)
		if err != nil {
			return fmt.Errorf("column families of %q: %w", n.source, err)
		}
		added, _ := res.RowsAffected()
		tn, err := tx.tableNames(ctx, n.table)
		if err != nil {
			return err
		}
		ts := tx.tables[tn.Mirror]
		if added > 0 || ts == nil || ts.mirror == nil || (tx.w.opts.Changelog && ts.changes == nil) {
			redo[n.source] = true
			continue
		}
		for _, c := range ts.cols {
			if _, ok := ts.mirror.types[c.name]; !ok {
				redo[n.source] = true
			}
		}
	}
	sources := make([]string, 0, len(redo))
	for s := range redo {
		sources = append(sources, s)
	}
	slices.Sort(sources)
	for _, s := range sources {
		if err := tx.familyView(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// familyMember is one family table as the warehouse holds it.
type familyMember struct {
	family  string
	names   sinks.TableNames
	mirror  *catalogTable
	changes *catalogTable // nil without a changelog table
}

// familyView (re)creates the views of source: the mirror view joins the
// families' mirror tables on the primary key, and the changelog view lists
// every family version.
func (tx *Tx) familyView(ctx context.Context, source string) error {
	rows, err := tx.conn.QueryContext(ctx, `SELECT family, family_table FROM `+tx.w.qualify(sinks.FamiliesTable)+`
WHERE source_table = ? ORDER BY recorded_at, family`, source)
	if err != nil {
		return fmt.Errorf("column families of %q: %w", source, err)
	}
	type rec struct{ family, table string }
	var recs []rec
	for rows.Next() {
		var r rec
		if err := rows.Scan(&r.family, &r.table); err != nil {
			rows.Close()
			return fmt.Errorf("column families of %q: %w", source, err)
		}
		recs = append(recs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("column families of %q: %w", source, err)
	}
	var ms []familyMember
	for _, r := range recs {
		tn, err := tx.tableNames(ctx, r.table)
		if err != nil {
			return err
		}
		ct, err := tx.catalog(ctx, tn.Mirror)
		if err != nil {
			return err
		}
		if ct == nil || len(ct.key) == 0 {
			continue // recorded by a window that did not commit its table
		}
		m := familyMember{family: r.family, names: tn, mirror: ct}
		if tx.w.opts.Changelog {
			if m.changes, err = tx.catalog(ctx, tn.Changes); err != nil {
				return err
			}
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil
	}
	src, err := tx.tableNames(ctx, source)
	if err != nil {
		return err
	}
	view, changes, err := familyViewSQL(tx.w.qualify, ms, tx.w.opts.Changelog)
	if err != nil {
		return fmt.Errorf("column families of %q: %w", source, err)
	}
	if _, err := tx.conn.ExecContext(ctx, `CREATE OR REPLACE VIEW `+tx.w.qualify(src.Mirror)+` AS `+view); err != nil {
		return fmt.Errorf("column families of %q: create view: %w", source, err)
	}
	if changes != "" {
		if _, err := tx.conn.ExecContext(ctx, `CREATE OR REPLACE VIEW `+tx.w.qualify(src.Changes)+` AS `+changes); err != nil {
			return fmt.Errorf("column families of %q: create changelog view: %w", source, err)
		}
	}
	return nil
}

// familyViewSQL builds the two views' queries. The mirror view has the key
// columns, then each family's columns (families in the order first seen,
// a column shared by several families, as a virtual column is, taken
// from the first), and _hw_updated, the newest of the families' HLCs; a
// row exists while any family holds one. The changelog view has one row
// per family version: the key, every family's columns (NULL but for the
// version's family), _hw_updated, _hw_op and _hw_family.
func familyViewSQL(qualify func(string) string, ms []familyMember, changelog bool) (view, changes string, err error) {
	key := ms[0].mirror.key
	for _, m := range ms[1:] {
		if !slices.Equal(m.mirror.key, key) {
			return "", "", fmt.Errorf("families %q and %q have different primary keys (%s), (%s)",
				ms[0].family, m.family, strings.Join(key, ", "), strings.Join(m.mirror.key, ", "))
		}
	}
	isKey := map[string]bool{}
	for _, k := range key {
		isKey[k] = true
	}
	type col struct {
		name, typ string
		from      int
	}
	var cols []col
	seen := map[string]bool{}
	for i, m := range ms {
		for _, c := range m.mirror.cols {
			if isKey[c.name] || c.name == sinks.UpdatedColumn || seen[c.name] {
				continue
			}
			seen[c.name] = true
			cols = append(cols, col{c.name, c.typ, i})
		}
	}
	q := sqlident.Quote
	alias := func(i int) string { return fmt.Sprintf("f%d", i) }
	var sel, keys, joins, upd []string
	for _, k := range key {
		sel = append(sel, "k."+q(k))
	}
	for _, c := range cols {
		sel = append(sel, alias(c.from)+"."+q(c.name))
	}
	for i, m := range ms {
		keys = append(keys, `SELECT `+quoteAll(key, "")+` FROM `+qualify(m.names.Mirror))
		on := make([]string, len(key))
		for j, k := range key {
			on[j] = alias(i) + "." + q(k) + " = k." + q(k)
		}
		joins = append(joins, `LEFT JOIN `+qualify(m.names.Mirror)+` AS `+alias(i)+` ON `+strings.Join(on, " AND "))
		upd = append(upd, alias(i)+"."+q(sinks.UpdatedColumn))
	}
	hw := upd[0]
	if len(upd) > 1 {
		hw = `greatest(` + strings.Join(upd, ", ") + `)`
	}
	sel = append(sel, hw+` AS `+q(sinks.UpdatedColumn))
	view = `SELECT ` + strings.Join(sel, ", ") + `
FROM (` + strings.Join(keys, " UNION ") + `) AS k
` + strings.Join(joins, "\n")
	if !changelog {
		return view, "", nil
	}
	var parts []string
	for _, m := range ms {
		if m.changes == nil {
			continue // the family's versions before --changelog are not kept
		}
		sel := make([]string, 0, len(key)+len(cols)+3)
		for _, k := range key {
			sel = append(sel, q(k))
		}
		for _, c := range cols {
			if _, ok := m.changes.types[c.name]; ok {
				sel = append(sel, `CAST(`+q(c.name)+` AS `+c.typ+`) AS `+q(c.name))
			} else {
				sel = append(sel, `CAST(NULL AS `+c.typ+`) AS `+q(c.name))
			}
		}
		sel = append(sel, q(sinks.UpdatedColumn), q(sinks.OpColumn), `'`+strings.ReplaceAll(m.family, `'`, `''`)+`' AS `+q(sinks.FamilyColumn))
		parts = append(parts, `SELECT `+strings.Join(sel, ", ")+` FROM `+qualify(m.names.Changes))
	}
	if len(parts) == 0 {
		return view, "", nil
	}
	return view, strings.Join(parts, "\nUNION ALL\n"), nil
}
