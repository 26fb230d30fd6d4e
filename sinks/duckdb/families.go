package duckdb

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// Column families (sinks.FamiliesTable, docs/DECODING.md): each family of a
// source table is mirrored exactly like a table of its own, and the source
// table is a view over its families (sinks.FamilyViewSQL), recreated when
// a family or a column is new.

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

// familyViews records the window's family tables and (re)creates the views
// of their source tables whose columns or families changed. It runs after
// the window's DDL and before its MERGEs.
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
	now := time.Now().UTC()
	var sources []string
	for _, n := range tx.fams {
		if _, err := tx.conn.ExecContext(ctx, `INSERT INTO `+ft+` VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, n.source, n.family, n.table, now); err != nil {
			return fmt.Errorf("column families of %q: %w", n.source, err)
		}
		if !slices.Contains(sources, n.source) {
			sources = append(sources, n.source)
		}
	}
	slices.Sort(sources)
	for _, s := range sources {
		if err := tx.familyView(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// familyView (re)creates the views of source over its families
// (sinks.FamilyViewSQL) unless they are up to date.
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
	var ms []sinks.FamilyMember
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
			continue // not a mirror (yet)
		}
		m := sinks.FamilyMember{Family: r.family, Mirror: tx.w.qualify(tn.Mirror), Key: ct.key}
		for _, c := range ct.cols {
			if c.name != sinks.UpdatedColumn {
				m.Columns = append(m.Columns, sinks.ViewColumn{Name: c.name, Type: c.typ})
			}
		}
		if tx.w.opts.Changelog {
			ch, err := tx.catalog(ctx, tn.Changes)
			if err != nil {
				return err
			}
			if ch != nil {
				m.Changes, m.InChanges = tx.w.qualify(tn.Changes), map[string]bool{}
				for _, c := range ch.cols {
					m.InChanges[c.name] = true
				}
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
	have, err := tx.catalog(ctx, src.Mirror)
	if err != nil {
		return err
	}
	haveChanges, err := tx.catalog(ctx, src.Changes)
	if err != nil {
		return err
	}
	view, changes, cols, changeCols, err := sinks.FamilyViewSQL(ms, have.names(), haveChanges.names(), sqlident.Quote)
	if err != nil {
		return fmt.Errorf("column families of %q: %w", source, err)
	}
	if slices.Equal(have.names(), cols) && (changes == "" || slices.Equal(haveChanges.names(), changeCols)) {
		return nil
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

// names returns the columns of ct in order (none for nil).
func (ct *catalogTable) names() []string {
	if ct == nil {
		return nil
	}
	out := make([]string, len(ct.cols))
	for i, c := range ct.cols {
		out[i] = c.name
	}
	return out
}
