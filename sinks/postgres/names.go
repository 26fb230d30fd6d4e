package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// PostgreSQL cuts identifiers at 63 bytes and compares quoted ones exactly.
var (
	tableRule  = sinks.TableRule(maxIdent, false)
	columnRule = sinks.ColumnRule(maxIdent, false)
)

// names caches the committed name record (sinks.TablesTable,
// sinks.ColumnsTable). Entries are never changed or removed, by any
// member, so a cached entry stays true; what is missing is read from the
// warehouse.
type names struct {
	mu     sync.Mutex
	tables map[string]sinks.TableNames
	cols   map[string]map[string]string
}

func (n *names) table(source string) (sinks.TableNames, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	tn, ok := n.tables[source]
	return tn, ok
}

// renamed returns a copy of the cached renamed columns of a source table.
func (n *names) renamed(source string) map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]string{}
	for s, wh := range n.cols[source] {
		out[s] = wh
	}
	return out
}

func (n *names) add(tables []sinks.TableNames, cols []pendingColumn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.tables == nil {
		n.tables, n.cols = map[string]sinks.TableNames{}, map[string]map[string]string{}
	}
	for _, tn := range tables {
		n.tables[tn.Source] = tn
	}
	for _, pc := range cols {
		m := n.cols[pc.table]
		if m == nil {
			m = map[string]string{}
			n.cols[pc.table] = m
		}
		m[pc.source] = pc.wh
	}
}

// ensureNameRecord creates the name record if it is missing, recording
// every mirror table an older highwater created under its own name. It runs
// in ensureCatalog's transaction, under the schema lock.
func (w *Writer) ensureNameRecord(ctx context.Context, tx pgx.Tx) error {
	tables, cols := w.qualified(sinks.TablesTable), w.qualified(sinks.ColumnsTable)
	var hasTables, hasCols bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL`, tables, cols).Scan(&hasTables, &hasCols); err != nil {
		return fmt.Errorf("reading the catalog: %w", err)
	}
	if !hasTables {
		if _, err := tx.Exec(ctx, `CREATE TABLE `+tables+` (
			source_table TEXT NOT NULL PRIMARY KEY,
			mirror_table TEXT NOT NULL UNIQUE,
			changes_table TEXT NOT NULL UNIQUE,
			recorded_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("creating %s: %w", tables, err)
		}
		// Mirrors are the tables with _hw_updated but no _hw_op (which only
		// changelogs have); until now each was named as its source.
		if _, err := tx.Exec(ctx, `INSERT INTO `+tables+` (source_table, mirror_table, changes_table)
			SELECT c.relname, c.relname, c.relname || $2 FROM pg_class c
			WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) AND c.relkind IN ('r', 'p')
				AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $3 AND NOT a.attisdropped)
				AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $4 AND NOT a.attisdropped)`,
			w.schema, sinks.ChangesSuffix, sinks.UpdatedColumn, sinks.OpColumn); err != nil {
			return fmt.Errorf("recording existing mirror tables in %s: %w", tables, err)
		}
	}
	if !hasCols {
		if _, err := tx.Exec(ctx, `CREATE TABLE `+cols+` (
			source_table TEXT NOT NULL,
			source_column TEXT NOT NULL,
			warehouse_column TEXT NOT NULL,
			recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
			PRIMARY KEY (source_table, source_column),
			UNIQUE (source_table, warehouse_column))`); err != nil {
			return fmt.Errorf("creating %s: %w", cols, err)
		}
	}
	return nil
}

// pendingNames are the mappings a window adds: recorded in its
// transaction, cached in the Writer once it commits.
type pendingNames struct {
	tables []sinks.TableNames
	cols   []pendingColumn
	// locked: the window holds the schema's DDL lock.
	locked bool
	// mapped caches the warehouse form of each table version written.
	mapped map[*model.Table]*model.Table
}

type pendingColumn struct{ table, source, wh string }

// lock takes the schema's DDL lock (held to the end of the window), which
// serialises naming and DDL among members.
func (x *Tx) lock(ctx context.Context) error {
	if x.pending.locked {
		return nil
	}
	if _, err := x.tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "highwater ddl "+x.w.schema); err != nil {
		return fmt.Errorf("taking the schema lock: %w", err)
	}
	x.pending.locked = true
	return nil
}

// warehouseTable returns table with its warehouse names: the mirror's and
// each column's (sinks.NameRule), mapping and recording what is new.
func (x *Tx) warehouseTable(ctx context.Context, table *model.Table) (*model.Table, error) {
	if wt, ok := x.pending.mapped[table]; ok {
		return wt, nil
	}
	// The record holds source names as text, which cannot hold NUL or
	// invalid UTF-8: such a name is an error, not a mapping.
	if err := checkSourceName("table", table.Name); err != nil {
		return nil, err
	}
	for _, c := range table.Columns {
		if err := checkSourceName("column", c.Name); err != nil {
			return nil, fmt.Errorf("table %q: %w", table.Name, err)
		}
	}
	tn, err := x.tableNames(ctx, table.Name)
	if err != nil {
		return nil, err
	}
	cols, err := x.columnNames(ctx, tn, table)
	if err != nil {
		return nil, err
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
	if x.pending.mapped == nil {
		x.pending.mapped = map[*model.Table]*model.Table{}
	}
	x.pending.mapped[table] = wt
	return wt, nil
}

// checkSourceName rejects source names PostgreSQL text cannot hold.
func checkSourceName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s name is empty", what)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%s name %q contains a NUL character, which PostgreSQL text cannot hold", what, s)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s name %q is not valid UTF-8", what, s)
	}
	return nil
}

// readTable reads a source table's record.
func (x *Tx) readTable(ctx context.Context, source string) (sinks.TableNames, bool, error) {
	tn := sinks.TableNames{Source: source}
	err := x.tx.QueryRow(ctx, `SELECT mirror_table, changes_table FROM `+x.w.qualified(sinks.TablesTable)+
		` WHERE source_table = $1`, source).Scan(&tn.Mirror, &tn.Changes)
	if errors.Is(err, pgx.ErrNoRows) {
		return tn, false, nil
	}
	if err != nil {
		return tn, false, fmt.Errorf("reading %s: %w", x.w.qualified(sinks.TablesTable), err)
	}
	tn.AsOf = sinks.AsOfName(tn.Mirror)
	x.w.names.add([]sinks.TableNames{tn}, nil)
	return tn, true, nil
}

// tableNames returns where a source table lives; a table new to the
// warehouse is named under the schema lock, against every relation and
// type of the schema and every recorded name, and recorded.
func (x *Tx) tableNames(ctx context.Context, source string) (sinks.TableNames, error) {
	for _, tn := range x.pending.tables {
		if tn.Source == source {
			return tn, nil
		}
	}
	if tn, ok := x.w.names.table(source); ok {
		return tn, nil
	}
	if tn, ok, err := x.readTable(ctx, source); err != nil || ok {
		return tn, err
	}
	if err := x.lock(ctx); err != nil {
		return sinks.TableNames{}, err
	}
	if tn, ok, err := x.readTable(ctx, source); err != nil || ok {
		return tn, err
	}
	// Taken: every recorded name (and time-travel function, asof.go), and
	// every relation (tables, views, indexes such as another table's
	// <name>_pkey, sequences), non-array type and <name>_asof function of
	// the schema.
	rows, err := x.tx.Query(ctx, `SELECT mirror_table FROM `+x.w.qualified(sinks.TablesTable)+`
		UNION ALL SELECT changes_table FROM `+x.w.qualified(sinks.TablesTable)+`
		UNION ALL `+asOfFunctionsTaken(x.w.qualified(sinks.TablesTable))+`
		UNION ALL SELECT relname FROM pg_class WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
		UNION ALL SELECT typname FROM pg_type WHERE typnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
			AND typrelid = 0 AND typcategory <> 'A'`, x.w.schema)
	if err != nil {
		return sinks.TableNames{}, fmt.Errorf("reading the catalog: %w", err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return sinks.TableNames{}, fmt.Errorf("reading the catalog: %w", err)
	}
	taken := make(map[string]bool, len(held))
	for _, n := range held {
		taken[n] = true
	}
	mirror, err := tableRule.Map(source, func(n string) (bool, error) { return taken[n], nil })
	if err != nil {
		return sinks.TableNames{}, fmt.Errorf("naming table %q: %w", source, err)
	}
	tn := sinks.TableNamesFor(source, mirror)
	if _, err := x.tx.Exec(ctx, `INSERT INTO `+x.w.qualified(sinks.TablesTable)+` (source_table, mirror_table, changes_table)
		VALUES ($1, $2, $3)`, tn.Source, tn.Mirror, tn.Changes); err != nil {
		return sinks.TableNames{}, fmt.Errorf("recording table %q as %q in %s: %w", source, mirror, x.w.qualified(sinks.TablesTable), err)
	}
	x.pending.tables = append(x.pending.tables, tn)
	if mirror != source {
		x.w.log.Info("source table mapped to a warehouse name", zap.String("table", source), zap.String("mirror", mirror))
	}
	return tn, nil
}

// columnNames returns the warehouse name of each column of table. A name
// the rule keeps is kept (PostgreSQL does not fold quoted names, and no
// mapped name looks like a kept one); the others are looked up in the
// record, or mapped under the schema lock against the columns the mirror
// and changelog have, and recorded.
func (x *Tx) columnNames(ctx context.Context, tn sinks.TableNames, table *model.Table) ([]string, error) {
	out := make([]string, len(table.Columns))
	var renamed map[string]string
	for i, c := range table.Columns {
		if columnRule.Keeps(c.Name) {
			out[i] = c.Name
			continue
		}
		if renamed == nil {
			renamed = x.w.names.renamed(table.Name)
			for _, pc := range x.pending.cols {
				if pc.table == table.Name {
					renamed[pc.source] = pc.wh
				}
			}
		}
		if wh, ok := renamed[c.Name]; ok {
			out[i] = wh
			continue
		}
		return x.mapColumns(ctx, tn, table)
	}
	return out, nil
}

// mapColumns names the columns of table under the schema lock.
func (x *Tx) mapColumns(ctx context.Context, tn sinks.TableNames, table *model.Table) ([]string, error) {
	if err := x.lock(ctx); err != nil {
		return nil, err
	}
	rows, err := x.tx.Query(ctx, `SELECT source_column, warehouse_column FROM `+x.w.qualified(sinks.ColumnsTable)+
		` WHERE source_table = $1`, table.Name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", x.w.qualified(sinks.ColumnsTable), err)
	}
	var recorded []pendingColumn
	for rows.Next() {
		pc := pendingColumn{table: table.Name}
		if err := rows.Scan(&pc.source, &pc.wh); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading %s: %w", x.w.qualified(sinks.ColumnsTable), err)
		}
		recorded = append(recorded, pc)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", x.w.qualified(sinks.ColumnsTable), err)
	}
	renamed := x.w.names.renamed(table.Name)
	mine := map[string]bool{}
	for _, pc := range x.pending.cols {
		if pc.table == table.Name {
			renamed[pc.source] = pc.wh
			mine[pc.source] = true
		}
	}
	// Rows of other members are committed and may be cached; this
	// window's own are cached only once it commits.
	var theirs []pendingColumn
	for _, pc := range recorded {
		renamed[pc.source] = pc.wh
		if !mine[pc.source] {
			theirs = append(theirs, pc)
		}
	}
	x.w.names.add(nil, theirs)
	// owner maps a warehouse column to the source column it holds.
	owner := map[string]string{}
	for s, wh := range renamed {
		owner[wh] = s
	}
	ls, err := x.w.loadLayouts(ctx, x.tx, tn.Mirror, tn.Changes)
	if err != nil {
		return nil, fmt.Errorf("reading the layout of %s: %w", x.w.qualified(tn.Mirror), err)
	}
	for _, l := range ls {
		for _, n := range l.order {
			if _, ok := owner[n]; !ok {
				owner[n] = n
			}
		}
	}
	out := make([]string, len(table.Columns))
	for i, c := range table.Columns {
		if wh, ok := renamed[c.Name]; ok {
			out[i] = wh
		} else {
			wh, err := columnRule.Map(c.Name, func(n string) (bool, error) {
				o, ok := owner[n]
				return ok && o != c.Name, nil
			})
			if err != nil {
				return nil, fmt.Errorf("column %q: %w", c.Name, err)
			}
			out[i] = wh
			if wh != c.Name {
				if _, err := x.tx.Exec(ctx, `INSERT INTO `+x.w.qualified(sinks.ColumnsTable)+
					` (source_table, source_column, warehouse_column) VALUES ($1, $2, $3)`, table.Name, c.Name, wh); err != nil {
					return nil, fmt.Errorf("recording column %q as %q in %s: %w", c.Name, wh, x.w.qualified(sinks.ColumnsTable), err)
				}
				x.pending.cols = append(x.pending.cols, pendingColumn{table.Name, c.Name, wh})
				renamed[c.Name] = wh
				x.w.log.Info("source column mapped to a warehouse name", zap.String("table", table.Name),
					zap.String("column", c.Name), zap.String("warehouse_column", wh))
			}
		}
		if _, ok := owner[out[i]]; !ok {
			owner[out[i]] = c.Name
		}
	}
	return out, nil
}

// namesCommitted caches the window's new mappings once it has committed.
func (x *Tx) namesCommitted() {
	x.w.names.add(x.pending.tables, x.pending.cols)
}
