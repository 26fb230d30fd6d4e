package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// DuckDB compares identifiers case-insensitively (Orders and orders are one
// table) and has no practical length limit.
var (
	tableRule  = sinks.TableRule(0, true)
	columnRule = sinks.ColumnRule(0, true)
)

// names is what the warehouse's sinks.TablesTable and sinks.ColumnsTable
// hold, as committed. Only the window's Tx (one at a time) reads or extends
// it.
type names struct {
	tables map[string]sinks.TableNames
	// held maps a folded mirror or changelog name to its source table.
	held map[string]string
	// cols maps a source table's renamed columns to their warehouse names.
	cols map[string]map[string]string
}

func (n *names) addTable(tn sinks.TableNames) {
	n.tables[tn.Source] = tn
	n.held[tableRule.Fold(tn.Mirror)] = tn.Source
	n.held[tableRule.Fold(tn.Changes)] = tn.Source
	n.held[tableRule.Fold(sinks.AsOfName(tn.Mirror))] = tn.Source
}

func (n *names) addColumn(table, source, wh string) {
	m := n.cols[table]
	if m == nil {
		m = map[string]string{}
		n.cols[table] = m
	}
	m[source] = wh
}

// initNames creates the name record if it is missing, recording every
// mirror table an older highwater created under its own name, and loads
// it. It runs at Open, outside any window.
func (w *Writer) initNames(ctx context.Context) error {
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("name record: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_tables()
WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ?`, sinks.TablesTable).Scan(&have); err != nil {
		return fmt.Errorf("name record: %w", err)
	}
	ddl := []string{
		`CREATE TABLE IF NOT EXISTS ` + w.qualify(sinks.TablesTable) + ` (
	source_table VARCHAR NOT NULL PRIMARY KEY,
	mirror_table VARCHAR NOT NULL,
	changes_table VARCHAR NOT NULL,
	recorded_at TIMESTAMPTZ NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + w.qualify(sinks.ColumnsTable) + ` (
	source_table VARCHAR NOT NULL,
	source_column VARCHAR NOT NULL,
	warehouse_column VARCHAR NOT NULL,
	recorded_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (source_table, source_column))`,
	}
	if have == 0 {
		// Mirrors are the tables with _hw_updated but no _hw_op (which
		// only changelogs have); until now each was named as its source.
		ddl = append(ddl, `INSERT INTO `+w.qualify(sinks.TablesTable)+`
SELECT t.table_name, t.table_name, t.table_name || '`+sinks.ChangesSuffix+`', now()
FROM duckdb_tables() t
WHERE t.database_name = current_database() AND t.schema_name = 'main' AND NOT t.temporary
	AND EXISTS (SELECT 1 FROM duckdb_columns() c WHERE c.database_name = t.database_name AND c.schema_name = 'main'
		AND c.table_name = t.table_name AND c.column_name = '`+sinks.UpdatedColumn+`')
	AND NOT EXISTS (SELECT 1 FROM duckdb_columns() c WHERE c.database_name = t.database_name AND c.schema_name = 'main'
		AND c.table_name = t.table_name AND c.column_name = '`+sinks.OpColumn+`')`)
	}
	for _, q := range ddl {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("name record: %w", err)
		}
	}
	if w.names, err = w.loadNames(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("name record: %w", err)
	}
	return nil
}

// querier is a *sql.Tx or a *sql.Conn.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// loadNames reads the name record.
func (w *Writer) loadNames(ctx context.Context, q querier) (*names, error) {
	n := &names{tables: map[string]sinks.TableNames{}, held: map[string]string{}, cols: map[string]map[string]string{}}
	rows, err := q.QueryContext(ctx, `SELECT source_table, mirror_table, changes_table FROM `+w.qualify(sinks.TablesTable))
	if err != nil {
		return nil, fmt.Errorf("read name record: %w", err)
	}
	for rows.Next() {
		var tn sinks.TableNames
		if err := rows.Scan(&tn.Source, &tn.Mirror, &tn.Changes); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read name record: %w", err)
		}
		tn.AsOf = sinks.AsOfName(tn.Mirror)
		n.addTable(tn)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read name record: %w", err)
	}
	rows, err = q.QueryContext(ctx, `SELECT source_table, source_column, warehouse_column FROM `+w.qualify(sinks.ColumnsTable))
	if err != nil {
		return nil, fmt.Errorf("read name record: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t, s, wh string
		if err := rows.Scan(&t, &s, &wh); err != nil {
			return nil, fmt.Errorf("read name record: %w", err)
		}
		n.addColumn(t, s, wh)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read name record: %w", err)
	}
	return n, nil
}

// freshNames re-reads the name record once per window before the window
// names anything new: a window whose COMMIT was reported failed may have
// committed its mappings all the same.
func (tx *Tx) freshNames(ctx context.Context) error {
	if tx.pending.fresh {
		return nil
	}
	n, err := tx.w.loadNames(ctx, tx.conn)
	if err != nil {
		return err
	}
	tx.w.names, tx.pending.fresh = n, true
	return nil
}

// pendingNames are the mappings a window adds; they are recorded in its
// transaction and join Writer.names once it commits.
type pendingNames struct {
	tables []sinks.TableNames
	held   map[string]string
	cols   []pendingColumn
	// mapped caches the warehouse form of each table version written.
	mapped map[*model.Table]*model.Table
	// fresh: the name record was read in this window.
	fresh bool
}

type pendingColumn struct{ table, source, wh string }

// warehouseTable returns table as the warehouse holds it: the mirror's
// name and the columns' warehouse names, mapping (and noting for the
// record) what is new.
func (tx *Tx) warehouseTable(ctx context.Context, table *model.Table) (*model.Table, *tableState, error) {
	p := &tx.pending
	if p.mapped == nil {
		p.mapped, p.held = map[*model.Table]*model.Table{}, map[string]string{}
	}
	if wt, ok := p.mapped[table]; ok {
		ts, err := tx.table(ctx, wt.Name)
		return wt, ts, err
	}
	if table.Name == "" {
		return nil, nil, fmt.Errorf("write: table without a name")
	}
	// The record holds source names as VARCHAR, which must be UTF-8 (NUL
	// is fine): a name that is not is an error, not a mapping.
	if !utf8.ValidString(table.Name) {
		return nil, nil, fmt.Errorf("write: table name %q is not valid UTF-8", table.Name)
	}
	for _, c := range table.Columns {
		if !utf8.ValidString(c.Name) {
			return nil, nil, fmt.Errorf("write table %q: column name %q is not valid UTF-8", table.Name, c.Name)
		}
	}
	tn, err := tx.tableNames(ctx, table.Name)
	if err != nil {
		return nil, nil, err
	}
	ts, err := tx.table(ctx, tn.Mirror)
	if err != nil {
		return nil, nil, err
	}
	cols, err := tx.columnNames(ctx, ts, table)
	if err != nil {
		return nil, nil, err
	}
	wt := table
	if tn.Mirror != table.Name || !slices.EqualFunc(cols, table.Columns, func(n string, c model.Column) bool { return n == c.Name }) {
		c := *table
		c.Name = tn.Mirror
		c.Columns = slices.Clone(table.Columns)
		for i, n := range cols {
			c.Columns[i].Name = n
		}
		wt = &c
	}
	p.mapped[table] = wt
	return wt, ts, nil
}

// tableNames returns where a source table lives, choosing the names of a
// table new to the warehouse.
func (tx *Tx) tableNames(ctx context.Context, source string) (sinks.TableNames, error) {
	if tn, ok := tx.w.names.tables[source]; ok {
		return tn, nil
	}
	for _, tn := range tx.pending.tables {
		if tn.Source == source {
			return tn, nil
		}
	}
	if err := tx.freshNames(ctx); err != nil {
		return sinks.TableNames{}, err
	}
	if tn, ok := tx.w.names.tables[source]; ok {
		return tn, nil
	}
	// Every table and view of the warehouse is taken: a user's own, or one
	// whose name differs only in case; so is a user's function that a
	// time-travel function (asof.go) would replace.
	rows, err := tx.conn.QueryContext(ctx, `SELECT table_name FROM duckdb_tables()
WHERE database_name = current_database() AND schema_name = 'main' AND NOT temporary
UNION ALL SELECT view_name FROM duckdb_views()
WHERE database_name = current_database() AND schema_name = 'main' AND NOT temporary
UNION ALL `+asOfFunctionsTaken)
	if err != nil {
		return sinks.TableNames{}, fmt.Errorf("table %q: read catalog: %w", source, err)
	}
	rels := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return sinks.TableNames{}, fmt.Errorf("table %q: read catalog: %w", source, err)
		}
		rels[tableRule.Fold(n)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return sinks.TableNames{}, fmt.Errorf("table %q: read catalog: %w", source, err)
	}
	mirror, err := tableRule.Map(source, func(f string) (bool, error) {
		_, held := tx.w.names.held[f]
		_, pending := tx.pending.held[f]
		return held || pending || rels[f], nil
	})
	if err != nil {
		return sinks.TableNames{}, fmt.Errorf("table %q: %w", source, err)
	}
	tn := sinks.TableNamesFor(source, mirror)
	tx.pending.tables = append(tx.pending.tables, tn)
	tx.pending.held[tableRule.Fold(tn.Mirror)] = source
	tx.pending.held[tableRule.Fold(tn.Changes)] = source
	tx.pending.held[tableRule.Fold(tn.AsOf)] = source
	if mirror != source {
		tx.w.logger.Info("source table mapped to a warehouse name", zap.String("table", source), zap.String("mirror", mirror))
	}
	return tn, nil
}

// columnNames returns the warehouse name of each column of table. A column
// keeps its name unless the rule maps it or another column of the table
// (in the warehouse, in this window or in this version) holds it, folded.
func (tx *Tx) columnNames(ctx context.Context, ts *tableState, table *model.Table) ([]string, error) {
	if !tx.pending.fresh {
		// Only a column that is neither recorded nor already in the
		// warehouse under its own name needs a decision.
		have := map[string]bool{}
		for _, ct := range []*catalogTable{ts.mirror, ts.changes} {
			if ct != nil {
				for _, c := range ct.cols {
					have[c.name] = true
				}
			}
		}
		for _, c := range table.Columns {
			if _, ok := tx.w.names.cols[table.Name][c.Name]; !ok && !have[c.Name] {
				if err := tx.freshNames(ctx); err != nil {
					return nil, err
				}
				break
			}
		}
	}
	renamed := map[string]string{}
	for s, wh := range tx.w.names.cols[table.Name] {
		renamed[s] = wh
	}
	for _, pc := range tx.pending.cols {
		if pc.table == table.Name {
			renamed[pc.source] = pc.wh
		}
	}
	// owner maps a folded warehouse column to the source column it holds.
	owner := map[string]string{}
	for s, wh := range renamed {
		owner[columnRule.Fold(wh)] = s
	}
	own := func(wh string) {
		f := columnRule.Fold(wh)
		if _, ok := owner[f]; !ok {
			owner[f] = wh
		}
	}
	for _, ct := range []*catalogTable{ts.mirror, ts.changes} {
		if ct != nil {
			for _, c := range ct.cols {
				own(c.name)
			}
		}
	}
	for _, c := range ts.cols {
		own(c.name)
	}
	out := make([]string, len(table.Columns))
	for i, c := range table.Columns {
		if wh, ok := renamed[c.Name]; ok {
			out[i] = wh
		} else {
			wh, err := columnRule.Map(c.Name, func(f string) (bool, error) {
				o, ok := owner[f]
				return ok && o != c.Name, nil
			})
			if err != nil {
				return nil, fmt.Errorf("table %q column %q: %w", table.Name, c.Name, err)
			}
			out[i] = wh
			if wh != c.Name {
				tx.pending.cols = append(tx.pending.cols, pendingColumn{table.Name, c.Name, wh})
				renamed[c.Name] = wh
				tx.w.logger.Info("source column mapped to a warehouse name", zap.String("table", table.Name),
					zap.String("column", c.Name), zap.String("warehouse_column", wh))
			}
		}
		if _, ok := owner[columnRule.Fold(out[i])]; !ok {
			owner[columnRule.Fold(out[i])] = c.Name
		}
	}
	return out, nil
}

// recordNames writes the window's new mappings to the name record, in the
// window's transaction.
func (tx *Tx) recordNames(ctx context.Context) error {
	now := time.Now().UTC()
	for _, tn := range tx.pending.tables {
		if _, err := tx.conn.ExecContext(ctx, `INSERT INTO `+tx.w.qualify(sinks.TablesTable)+` VALUES (?, ?, ?, ?)`,
			tn.Source, tn.Mirror, tn.Changes, now); err != nil {
			return fmt.Errorf("record table %q as %q: %w", tn.Source, tn.Mirror, err)
		}
	}
	if len(tx.pending.cols) == 0 {
		return nil
	}
	ph := make([]string, len(tx.pending.cols))
	args := make([]any, 0, 4*len(tx.pending.cols))
	for i, pc := range tx.pending.cols {
		ph[i] = `(?, ?, ?, ?)`
		args = append(args, pc.table, pc.source, pc.wh, now)
	}
	if _, err := tx.conn.ExecContext(ctx, `INSERT INTO `+tx.w.qualify(sinks.ColumnsTable)+` VALUES `+strings.Join(ph, ", "), args...); err != nil {
		return fmt.Errorf("record renamed columns: %w", err)
	}
	return nil
}

// namesCommitted adds the window's new mappings to the writer's, once the
// window is durable.
func (tx *Tx) namesCommitted() {
	for _, tn := range tx.pending.tables {
		tx.w.names.addTable(tn)
	}
	for _, pc := range tx.pending.cols {
		tx.w.names.addColumn(pc.table, pc.source, pc.wh)
	}
}
