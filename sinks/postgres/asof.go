package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/sinks"
)

// Time travel: with a changelog, every mirror table t has a set-returning
// SQL function <t>_asof(hlc) (sinks.AsOfName) that returns the source
// table as of hlc: per key the newest changelog version at or below hlc,
// unless that version is a delete. It returns SETOF the mirror's row type,
// so its columns are the mirror's, in the mirror's order. Two overloads
// take hlc as numeric (a literal as CockroachDB prints an HLC,
// WALLNANOS.LOGICAL, or an integer) and as text.
//
// The body lists the mirror's columns, so the numeric function is
// re-created (CREATE OR REPLACE keeps the return type, so views on it
// survive) in the transaction of every window whose DDL creates or extends
// the mirror or its changelog, under the schema lock; Open creates the
// missing ones of tables that exist already.

// asOfFunctionsTaken returns the part of tableNames' query that lists the
// names time-travel functions hold: highwater's (from the name record,
// tables) and any function of the schema ($1) that ends like one, so that
// highwater never replaces a user's function.
func asOfFunctionsTaken(tables string) string {
	return `SELECT mirror_table || '` + sinks.AsOfSuffix + `' FROM ` + tables + `
		UNION ALL SELECT proname FROM pg_proc WHERE pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
			AND proname LIKE '%\` + sinks.AsOfSuffix + `'`
}

// asOfAfterEvolve re-creates the time-travel functions of tt after the
// window's DDL changed its mirror or changelog; tt.target is the mirror's
// new layout.
func (x *Tx) asOfAfterEvolve(ctx context.Context, tt *txTable, key []string) error {
	if !x.w.opts.Changelog {
		return nil
	}
	return x.w.createAsOf(ctx, x.tx, tt.name, tt.target.order, key)
}

// ensureAsOf creates, at Open, the time-travel functions of every recorded
// table that has a mirror and a changelog but no function. It runs in
// ensureCatalog's transaction, under the schema lock.
func (w *Writer) ensureAsOf(ctx context.Context, tx pgx.Tx) error {
	if !w.opts.Changelog {
		return nil
	}
	// Tables only: the view of a source table's column families
	// (families.go) has no time-travel function.
	rows, err := tx.Query(ctx, `SELECT t.mirror_table FROM `+w.qualified(sinks.TablesTable)+` t
		WHERE (SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(format('%I.%I', $1::text, t.mirror_table))) IN ('r', 'p')
			AND to_regclass(format('%I.%I', $1::text, t.changes_table)) IS NOT NULL
			AND to_regprocedure(format('%I.%I(numeric)', $1::text, t.mirror_table || $2)) IS NULL
		ORDER BY 1`, w.schema, sinks.AsOfSuffix)
	if err != nil {
		return fmt.Errorf("reading the catalog: %w", err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("reading the catalog: %w", err)
	}
	for _, m := range missing {
		ls, err := w.loadLayouts(ctx, tx, m)
		if err != nil {
			return fmt.Errorf("reading the layout of %s: %w", w.qualified(m), err)
		}
		rows, err := tx.Query(ctx, `SELECT a.attname FROM pg_index i
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
			WHERE i.indrelid = to_regclass($1) AND i.indisprimary
			ORDER BY array_position(i.indkey::int2[], a.attnum)`, w.qualified(m))
		if err != nil {
			return fmt.Errorf("reading the primary key of %s: %w", w.qualified(m), err)
		}
		key, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("reading the primary key of %s: %w", w.qualified(m), err)
		}
		// A role without CREATE on the schema runs on (the functions are
		// a convenience, not the data): in a savepoint, so that the
		// transaction survives the refusal.
		sp, err := tx.Begin(ctx)
		if err != nil {
			return fmt.Errorf("creating time-travel functions: %w", err)
		}
		err = w.createAsOf(ctx, sp, m, ls[0].order, key)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42501" { // insufficient_privilege
			_ = sp.Rollback(ctx)
			w.log.Warn("cannot create the time-travel function of a table: no CREATE privilege on the schema",
				zap.String("table", m), zap.String("function", sinks.AsOfName(m)), zap.Error(err))
			continue
		}
		if err != nil {
			_ = sp.Rollback(ctx)
			return err
		}
		if err := sp.Commit(ctx); err != nil {
			return fmt.Errorf("creating time-travel functions: %w", err)
		}
	}
	return nil
}

// createAsOf (re-)creates the time-travel functions of the mirror table
// named mirror, whose columns are cols and primary key key.
func (w *Writer) createAsOf(ctx context.Context, tx pgx.Tx, mirror string, cols, key []string) error {
	name := sinks.AsOfName(mirror)
	if len(cols) == 0 || len(key) == 0 {
		return fmt.Errorf("time-travel function %s: table %s has no columns or no primary key", w.qualified(name), w.qualified(mirror))
	}
	for _, s := range asOfFunctions(w.qualified(name), w.qualified(mirror), w.qualified(mirror+sinks.ChangesSuffix), cols, key) {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("creating time-travel function %s: %w", w.qualified(name), err)
		}
	}
	w.log.Debug("time-travel function created", zap.String("function", name), zap.Int("columns", len(cols)))
	return nil
}

// asOfFunctions are the CREATE statements of the time-travel functions fn
// over changes, returning SETOF mirror (whose columns are cols). The body
// refers to the argument as $1: a column named hlc would take precedence
// over an argument named so.
func asOfFunctions(fn, mirror, changes string, cols, key []string) []string {
	u := sqlident.Quote(sinks.UpdatedColumn)
	keys := identList(key)
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "v." + sqlident.Quote(c)
	}
	body := `SELECT ` + strings.Join(sel, ", ") + ` FROM (
	SELECT DISTINCT ON (` + keys + `) * FROM ` + changes + `
	WHERE ` + u + ` <= $1
	ORDER BY ` + keys + `, ` + u + ` DESC
) AS v
WHERE v.` + sqlident.Quote(sinks.OpColumn) + ` <> '` + sinks.OpDelete.String() + `'`
	return []string{
		`CREATE OR REPLACE FUNCTION ` + fn + `(hlc numeric) RETURNS SETOF ` + mirror + `
LANGUAGE sql STABLE AS ` + dollarQuote(body),
		`CREATE OR REPLACE FUNCTION ` + fn + `(hlc text) RETURNS SETOF ` + mirror + `
LANGUAGE sql STABLE AS ` + dollarQuote(`SELECT * FROM `+fn+`($1::numeric)`),
	}
}

// dollarQuote quotes s as a dollar-quoted string whose tag s does not
// contain (identifiers in s may hold any text).
func dollarQuote(s string) string {
	tag := "$hw$"
	for i := 1; strings.Index(s+tag, tag) != len(s); i++ {
		tag = "$hw" + strconv.Itoa(i) + "$"
	}
	return tag + s + tag
}
