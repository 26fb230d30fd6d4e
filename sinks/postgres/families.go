package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// Column families (sinks.FamiliesTable, docs/DECODING.md): each family of a
// source table is mirrored exactly like a table of its own, and the source
// table is a view over its families (sinks.FamilyViewSQL), replaced when a
// family or a column is new.

// familyNote is a family table written in this window (source names).
type familyNote struct {
	source, family, table string
}

// noteFamily remembers a family table written in this window and names
// (records) its source table's views.
func (x *Tx) noteFamily(ctx context.Context, table *model.Table) error {
	if table.Family == "" {
		return nil
	}
	for _, n := range x.fams {
		if n.table == table.Name {
			return nil
		}
	}
	if err := checkSourceName("table", table.Source); err != nil {
		return err
	}
	if _, err := x.tableNames(ctx, table.Source); err != nil {
		return err
	}
	x.fams = append(x.fams, familyNote{source: table.Source, family: table.Family, table: table.Name})
	return nil
}

// familyViews records the window's family tables and brings the views of
// their source tables up to date, under the schema's DDL lock. It runs at
// Commit, before the merges.
func (x *Tx) familyViews(ctx context.Context) error {
	if len(x.fams) == 0 {
		return nil
	}
	restore, err := x.withoutLockTimeout(ctx)
	if err != nil {
		return err
	}
	if _, err := x.tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "highwater ddl "+x.w.schema); err != nil {
		return fmt.Errorf("taking the schema lock: %w", err)
	}
	ft := x.w.qualified(sinks.FamiliesTable)
	if _, err := x.tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+ft+` (
	source_table text NOT NULL,
	family text NOT NULL,
	family_table text NOT NULL,
	recorded_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (source_table, family))`); err != nil {
		return fmt.Errorf("column families: %w", err)
	}
	var sources []string
	for _, n := range x.fams {
		if _, err := x.tx.Exec(ctx, `INSERT INTO `+ft+` (source_table, family, family_table) VALUES ($1, $2, $3)
	ON CONFLICT DO NOTHING`, n.source, n.family, n.table); err != nil {
			return fmt.Errorf("column families of %q: %w", n.source, err)
		}
		if !slices.Contains(sources, n.source) {
			sources = append(sources, n.source)
		}
	}
	slices.Sort(sources)
	for _, s := range sources {
		if err := x.familyView(ctx, s); err != nil {
			return err
		}
	}
	return restore()
}

// familyView replaces the views of source unless they are up to date.
func (x *Tx) familyView(ctx context.Context, source string) error {
	rows, err := x.tx.Query(ctx, `SELECT family, family_table FROM `+x.w.qualified(sinks.FamiliesTable)+`
	WHERE source_table = $1 ORDER BY recorded_at, family`, source)
	if err != nil {
		return fmt.Errorf("column families of %q: %w", source, err)
	}
	type rec struct{ Family, Table string }
	recs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rec])
	if err != nil {
		return fmt.Errorf("column families of %q: %w", source, err)
	}
	var ms []sinks.FamilyMember
	for _, r := range recs {
		tn, err := x.tableNames(ctx, r.Table)
		if err != nil {
			return err
		}
		ls, err := x.w.loadLayouts(ctx, x.tx, tn.Mirror, tn.Changes)
		if err != nil {
			return fmt.Errorf("column families of %q: %w", source, err)
		}
		key, err := x.primaryKey(ctx, tn.Mirror)
		if err != nil {
			return err
		}
		if !ls[0].exists || len(key) == 0 {
			continue // not a mirror (yet)
		}
		m := sinks.FamilyMember{Family: r.Family, Mirror: x.w.qualified(tn.Mirror), Key: key}
		for _, c := range ls[0].order {
			if c != sinks.UpdatedColumn {
				m.Columns = append(m.Columns, sinks.ViewColumn{Name: c, Type: ls[0].cols[c]})
			}
		}
		if x.w.opts.Changelog && ls[1].exists {
			m.Changes, m.InChanges = x.w.qualified(tn.Changes), map[string]bool{}
			for _, c := range ls[1].order {
				m.InChanges[c] = true
			}
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil
	}
	src, err := x.tableNames(ctx, source)
	if err != nil {
		return err
	}
	have, err := x.w.loadLayouts(ctx, x.tx, src.Mirror, src.Changes)
	if err != nil {
		return fmt.Errorf("column families of %q: %w", source, err)
	}
	view, changes, cols, changeCols, err := sinks.FamilyViewSQL(ms, have[0].order, have[1].order, sqlident.Quote)
	if err != nil {
		return fmt.Errorf("column families of %q: %w", source, err)
	}
	if slices.Equal(have[0].order, cols) && (changes == "" || slices.Equal(have[1].order, changeCols)) {
		return nil
	}
	if _, err := x.tx.Exec(ctx, `CREATE OR REPLACE VIEW `+x.w.qualified(src.Mirror)+` AS `+view); err != nil {
		return fmt.Errorf("column families of %q: create view: %w", source, err)
	}
	if changes != "" {
		if _, err := x.tx.Exec(ctx, `CREATE OR REPLACE VIEW `+x.w.qualified(src.Changes)+` AS `+changes); err != nil {
			return fmt.Errorf("column families of %q: create changelog view: %w", source, err)
		}
	}
	return nil
}

// primaryKey returns the primary-key columns of the relation named (in
// w's schema), in key order; none when it has no primary key.
func (x *Tx) primaryKey(ctx context.Context, name string) ([]string, error) {
	rows, err := x.tx.Query(ctx, `SELECT a.attname FROM pg_index i
	CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
	JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
	WHERE i.indrelid = to_regclass($1) AND i.indisprimary
	ORDER BY k.n`, x.w.qualified(name))
	if err != nil {
		return nil, fmt.Errorf("reading the primary key of %s: %w", x.w.qualified(name), err)
	}
	key, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading the primary key of %s: %w", x.w.qualified(name), err)
	}
	return key, nil
}
