package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/sinks"
)

// Time travel: with a changelog, every mirror table t has a table macro
// <t>_asof(hlc) (sinks.AsOfName) that returns the source table as of hlc:
// per key the newest changelog version at or below hlc, unless that
// version is a delete, with the mirror's columns in the mirror's order.
//
// The macro lists the mirror's columns, so it is re-created (CREATE OR
// REPLACE) in the transaction of every window that creates or extends the
// mirror or its changelog; Open creates the missing ones of tables that
// exist already (a warehouse written by an older highwater).

// asOfFunctionsTaken lists the functions of the warehouse whose name could
// be a time-travel function's: a source table whose <name>_asof a user's
// macro holds is mapped, so that highwater never replaces it. (highwater's
// own are taken through the name record already.)
const asOfFunctionsTaken = `SELECT function_name FROM duckdb_functions()
WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal
	AND function_name LIKE '%\` + sinks.AsOfSuffix + `' ESCAPE '\'`

// execQuerier is a *sql.Conn (in a transaction) or a *sql.Tx.
type execQuerier interface {
	querier
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// asOfAfterEvolve re-creates the time-travel macro of ts when the window's
// DDL (evolve) created or extended the mirror or its changelog.
func (tx *Tx) asOfAfterEvolve(ctx context.Context, ts *tableState) error {
	if !tx.w.opts.Changelog {
		return nil
	}
	changed := ts.mirror == nil || ts.changes == nil
	for _, c := range ts.targetColumns() {
		if changed {
			break
		}
		_, inMirror := ts.mirror.types[c.name]
		_, inChanges := ts.changes.types[c.name]
		changed = !inMirror || !inChanges
	}
	if !changed {
		return nil
	}
	return tx.w.createAsOf(ctx, tx.conn, ts.name)
}

// initAsOf creates, at Open, the time-travel macro of every recorded table
// that has a mirror and a changelog but no macro.
func (w *Writer) initAsOf(ctx context.Context) error {
	if !w.opts.Changelog {
		return nil
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("time-travel macros: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	rel := func(col string) string {
		return `EXISTS (SELECT 1 FROM duckdb_tables() d WHERE d.database_name = current_database()
		AND d.schema_name = 'main' AND d.table_name = t.` + col + `)`
	}
	rows, err := tx.QueryContext(ctx, `SELECT t.mirror_table FROM `+w.qualify(sinks.TablesTable)+` t
WHERE `+rel("mirror_table")+` AND `+rel("changes_table")+`
	AND NOT EXISTS (SELECT 1 FROM duckdb_functions() f WHERE f.database_name = current_database()
		AND f.schema_name = 'main' AND f.function_name = t.mirror_table || '`+sinks.AsOfSuffix+`')
ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("time-travel macros: read catalog: %w", err)
	}
	var missing []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return fmt.Errorf("time-travel macros: read catalog: %w", err)
		}
		missing = append(missing, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("time-travel macros: read catalog: %w", err)
	}
	if len(missing) == 0 {
		return nil
	}
	for _, m := range missing {
		if err := w.createAsOf(ctx, tx, m); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("time-travel macros: %w", err)
	}
	return nil
}

// createAsOf (re-)creates the time-travel macro of the mirror table named
// mirror from the mirror's columns and primary key as q sees them.
func (w *Writer) createAsOf(ctx context.Context, q execQuerier, mirror string) error {
	name := sinks.AsOfName(mirror)
	var cols, key []string
	rows, err := q.QueryContext(ctx, `SELECT column_name FROM duckdb_columns()
WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ? ORDER BY column_index`, mirror)
	if err != nil {
		return fmt.Errorf("time-travel macro %q: read columns: %w", name, err)
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return fmt.Errorf("time-travel macro %q: read columns: %w", name, err)
		}
		cols = append(cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("time-travel macro %q: read columns: %w", name, err)
	}
	rows, err = q.QueryContext(ctx, `SELECT unnest(constraint_column_names) FROM duckdb_constraints()
WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ? AND constraint_type = 'PRIMARY KEY'`, mirror)
	if err != nil {
		return fmt.Errorf("time-travel macro %q: read primary key: %w", name, err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return fmt.Errorf("time-travel macro %q: read primary key: %w", name, err)
		}
		key = append(key, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("time-travel macro %q: read primary key: %w", name, err)
	}
	if len(cols) == 0 || len(key) == 0 {
		return fmt.Errorf("time-travel macro %q: table %q has no columns or no primary key", name, mirror)
	}
	if _, err := q.ExecContext(ctx, asOfMacro(w.qualify(name), sqlident.Quote(mirror+sinks.ChangesSuffix), cols, key)); err != nil {
		return fmt.Errorf("create time-travel macro %q: %w", name, err)
	}
	w.logger.Debug("time-travel macro created", zap.String("macro", name), zap.Int("columns", len(cols)))
	return nil
}

// asOfMacro is the CREATE statement of a time-travel macro named (fully
// qualified) macro over the changelog changes, returning cols.
//
// changes is not qualified with the database: DuckDB names a database
// after its file (or the alias of an ATTACH), so a copy of the warehouse,
// which the docs suggest querying while highwater runs, has another name,
// and a qualified name would fail there. The macro reads the changelog of
// the current database.
//
// The parameter is named hlc; a column named hlc is always referenced
// qualified (v."hlc"), and DuckDB resolves a qualified name to the column,
// the bare hlc to the parameter. CAST accepts what a user types: a numeric
// literal (WALLNANOS.LOGICAL, as CockroachDB prints an HLC), an integer
// (nanoseconds) or a string.
func asOfMacro(macro, changes string, cols, key []string) string {
	u := sqlident.Quote(sinks.UpdatedColumn)
	return `CREATE OR REPLACE MACRO ` + macro + `(hlc) AS TABLE
SELECT ` + quoteAll(cols, "v.") + ` FROM (
	SELECT * FROM ` + changes + ` AS c
	WHERE c.` + u + ` <= CAST(hlc AS DECIMAL(38,10))
	QUALIFY row_number() OVER (PARTITION BY ` + quoteAll(key, "c.") + ` ORDER BY c.` + u + ` DESC) = 1
) AS v
WHERE v.` + sqlident.Quote(sinks.OpColumn) + ` <> '` + strings.ToLower(sinks.OpDelete.String()) + `'`
}
