package postgres

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// checkIdent rejects names PostgreSQL cannot hold as given: empty, with NUL,
// not UTF-8, or longer than 63 bytes (which the server would silently
// truncate, possibly onto another table's name).
func checkIdent(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s name is empty", what)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%s name %q contains a NUL character, which PostgreSQL identifiers cannot hold", what, s)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s name %q is not valid UTF-8", what, s)
	case len(s) > maxIdent:
		return fmt.Errorf("%s name %q is %d bytes long; PostgreSQL identifiers hold at most %d", what, s, len(s), maxIdent)
	}
	return nil
}

// pgType returns the PostgreSQL type of a column type, spelled as
// format_type() prints it so that it can be compared with the warehouse's
// columns.
func pgType(t model.Type) (string, error) {
	switch t.Kind {
	case model.KindInt:
		return "bigint", nil
	case model.KindFloat:
		return "double precision", nil
	case model.KindBool:
		return "boolean", nil
	case model.KindString:
		return "text", nil
	case model.KindBytes:
		return "bytea", nil
	case model.KindDecimal:
		// PostgreSQL's NUMERIC(p,s) takes 1 <= p <= 1000; CockroachDB's
		// unconstrained DECIMAL arrives as precision 0.
		if t.Precision >= 1 && t.Precision <= 1000 && t.Scale >= 0 && t.Scale <= t.Precision {
			return fmt.Sprintf("numeric(%d,%d)", t.Precision, t.Scale), nil
		}
		return "numeric", nil
	case model.KindDate:
		return "date", nil
	case model.KindTime:
		return "time without time zone", nil
	case model.KindTimestamp:
		return "timestamp without time zone", nil
	case model.KindTimestampTZ:
		return "timestamp with time zone", nil
	case model.KindUUID:
		return "uuid", nil
	case model.KindJSON:
		return "jsonb", nil
	case model.KindInterval:
		return "interval", nil
	case model.KindArray:
		if t.Elem == nil {
			return "", fmt.Errorf("array type without element type")
		}
		if t.Elem.Kind == model.KindArray {
			return "", fmt.Errorf("nested array type %s is not supported", t)
		}
		e, err := pgType(*t.Elem)
		if err != nil {
			return "", err
		}
		return e + "[]", nil
	}
	return "", fmt.Errorf("unsupported column type %s", t)
}

// layout is the columns of a warehouse table: name -> format_type().
type layout struct {
	exists bool
	cols   map[string]string
	order  []string // by attnum
}

func (l *layout) add(name, typ string) {
	if l.cols == nil {
		l.cols = map[string]string{}
	}
	l.cols[name] = typ
	l.order = append(l.order, name)
}

// loadLayouts reads the columns of the relations named (unqualified) in
// names, in w's schema.
func (w *Writer) loadLayouts(ctx context.Context, tx pgx.Tx, names ...string) ([]layout, error) {
	regs := make([]string, len(names))
	for i, n := range names {
		regs[i] = w.qualified(n)
	}
	rows, err := tx.Query(ctx, `SELECT r.i, a.attname, format_type(a.atttypid, a.atttypmod)
		FROM unnest($1::text[]) WITH ORDINALITY AS r(name, i)
		JOIN pg_attribute a ON a.attrelid = to_regclass(r.name)
		WHERE a.attnum > 0 AND NOT a.attisdropped
		ORDER BY r.i, a.attnum`, regs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]layout, len(names))
	for rows.Next() {
		var i int64
		var name, typ string
		if err := rows.Scan(&i, &name, &typ); err != nil {
			return nil, err
		}
		out[i-1].exists = true
		out[i-1].add(name, typ)
	}
	return out, rows.Err()
}

// wantColumn is one column of a table version with its PostgreSQL type.
type wantColumn struct {
	name string
	typ  string
	col  model.Column
}

// describe validates a table version and maps its columns.
func (w *Writer) describe(t *model.Table) ([]wantColumn, []string, error) {
	if err := checkIdent("table", t.Name); err != nil {
		return nil, nil, err
	}
	if w.opts.Changelog {
		if err := checkIdent("changelog table", t.Name+sinks.ChangesSuffix); err != nil {
			return nil, nil, err
		}
	}
	if len(t.Key) == 0 {
		return nil, nil, fmt.Errorf("table %q has no primary-key columns", t.Name)
	}
	cols := make([]wantColumn, len(t.Columns))
	seen := make(map[string]bool, len(t.Columns))
	for i, c := range t.Columns {
		if err := checkIdent("column", c.Name); err != nil {
			return nil, nil, fmt.Errorf("table %q: %w", t.Name, err)
		}
		if c.Name == sinks.UpdatedColumn || c.Name == sinks.OpColumn || c.Name == seqColumn {
			return nil, nil, fmt.Errorf("table %q: column name %q is reserved by highwater", t.Name, c.Name)
		}
		if seen[c.Name] {
			return nil, nil, fmt.Errorf("table %q: column %q appears twice", t.Name, c.Name)
		}
		seen[c.Name] = true
		typ, err := pgType(c.Type)
		if err != nil {
			return nil, nil, fmt.Errorf("table %q column %q: %w", t.Name, c.Name, err)
		}
		cols[i] = wantColumn{name: c.Name, typ: typ, col: c}
	}
	key := make([]string, len(t.Key))
	keySeen := make(map[int]bool, len(t.Key))
	for i, k := range t.Key {
		if k < 0 || k >= len(t.Columns) {
			return nil, nil, fmt.Errorf("table %q: primary-key index %d out of range (%d columns)", t.Name, k, len(t.Columns))
		}
		if keySeen[k] {
			return nil, nil, fmt.Errorf("table %q: primary-key column %q given twice", t.Name, t.Columns[k].Name)
		}
		keySeen[k] = true
		key[i] = t.Columns[k].Name
	}
	return cols, key, nil
}

// diff returns the columns of want missing from l, or an error naming the
// first column whose warehouse type differs.
func diff(table string, l layout, want []wantColumn) ([]wantColumn, error) {
	var missing []wantColumn
	for _, c := range want {
		have, ok := l.cols[c.name]
		if !ok {
			missing = append(missing, c)
			continue
		}
		if have != c.typ {
			return nil, fmt.Errorf("table %q column %q: the warehouse column is %s but the feed now sends %s (%s): "+
				"incompatible type change, migrate the column by hand", table, c.name, have, c.col.Type, c.typ)
		}
	}
	return missing, nil
}

func columnDefs(cols []wantColumn, key []string) string {
	isKey := map[string]bool{}
	for _, k := range key {
		isKey[k] = true
	}
	var b strings.Builder
	for _, c := range cols {
		b.WriteString(sqlident.Quote(c.name))
		b.WriteByte(' ')
		b.WriteString(c.typ)
		if isKey[c.name] {
			b.WriteString(" NOT NULL")
		}
		b.WriteString(", ")
	}
	return b.String()
}

func identList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = sqlident.Quote(n)
	}
	return strings.Join(q, ", ")
}

func addColumns(rel string, cols []wantColumn) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = "ADD COLUMN " + sqlident.Quote(c.name) + " " + c.typ
	}
	return "ALTER TABLE " + rel + " " + strings.Join(parts, ", ")
}

// evolve makes the mirror table (and changelog) of tt hold every column of
// want, creating them if missing, under the schema's DDL lock. It updates
// tt's layouts and, if the staging table exists, adds the new columns to it.
func (x *Tx) evolve(ctx context.Context, tt *txTable, want []wantColumn, key []string) error {
	w := x.w
	names := []string{tt.name}
	if w.opts.Changelog {
		names = append(names, tt.name+sinks.ChangesSuffix)
	}
	if !tt.loaded {
		ls, err := w.loadLayouts(ctx, x.tx, names...)
		if err != nil {
			return fmt.Errorf("reading the layout of %s: %w", w.qualified(tt.name), err)
		}
		tt.target = ls[0]
		if w.opts.Changelog {
			tt.changes = ls[1]
		}
		tt.loaded = true
	}
	needsDDL := func() (bool, error) {
		m1, err := diff(tt.name, tt.target, want)
		if err != nil {
			return false, err
		}
		if !w.opts.Changelog {
			return !tt.target.exists || len(m1) > 0, nil
		}
		m2, err := diff(tt.name+sinks.ChangesSuffix, tt.changes, want)
		if err != nil {
			return false, err
		}
		return !tt.target.exists || len(m1) > 0 || !tt.changes.exists || len(m2) > 0, nil
	}
	need, err := needsDDL()
	if err != nil || !need {
		return err
	}
	// Another writer may be changing the same table: take the lock, then
	// look again. Schema changes wait for other members' windows on the
	// table (and their DDL) for as long as statement_timeout allows, not
	// lock_timeout: retrying would only queue again behind them.
	restore, err := x.withoutLockTimeout(ctx)
	if err != nil {
		return err
	}
	if _, err := x.tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "highwater ddl "+w.schema); err != nil {
		return fmt.Errorf("taking the schema lock: %w", err)
	}
	ls, err := w.loadLayouts(ctx, x.tx, names...)
	if err != nil {
		return fmt.Errorf("reading the layout of %s: %w", w.qualified(tt.name), err)
	}
	tt.target = ls[0]
	if w.opts.Changelog {
		tt.changes = ls[1]
	}
	if _, err := needsDDL(); err != nil {
		return err
	}
	upd := sqlident.Quote(sinks.UpdatedColumn)
	var stmts []string
	if !tt.target.exists {
		stmts = append(stmts, "CREATE TABLE "+w.qualified(tt.name)+" ("+columnDefs(want, key)+
			upd+" numeric(38,10) NOT NULL, PRIMARY KEY ("+identList(key)+"))")
	} else if m, _ := diff(tt.name, tt.target, want); len(m) > 0 {
		stmts = append(stmts, addColumns(w.qualified(tt.name), m))
	}
	if w.opts.Changelog {
		if !tt.changes.exists {
			stmts = append(stmts, "CREATE TABLE "+w.qualified(tt.name+sinks.ChangesSuffix)+" ("+columnDefs(want, key)+
				upd+" numeric(38,10) NOT NULL, "+sqlident.Quote(sinks.OpColumn)+" text NOT NULL, PRIMARY KEY ("+
				identList(key)+", "+upd+"))")
		} else if m, _ := diff(tt.name+sinks.ChangesSuffix, tt.changes, want); len(m) > 0 {
			stmts = append(stmts, addColumns(w.qualified(tt.name+sinks.ChangesSuffix), m))
		}
	}
	for _, s := range stmts {
		if _, err := x.tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("evolving the warehouse: %s: %w", s, err)
		}
	}
	if err := restore(); err != nil {
		return err
	}
	ls, err = w.loadLayouts(ctx, x.tx, names...)
	if err != nil {
		return fmt.Errorf("reading the layout of %s: %w", w.qualified(tt.name), err)
	}
	tt.target = ls[0]
	if w.opts.Changelog {
		tt.changes = ls[1]
	}
	if err := x.asOfAfterEvolve(ctx, tt, key); err != nil {
		return err
	}
	x.w.log.Info("postgres table evolved", zap.String("table", tt.name), zap.Strings("statements", stmts))
	return x.syncStage(ctx, tt)
}
