package duckdb

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	duck "github.com/duckdb/duckdb-go/v2"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/internal/txguard"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// Tx is one window's transaction. It implements sinks.Tx.
//
// DuckDB (1.4) mishandles ALTER TABLE on a table that the same transaction
// has already modified (a deleted key cannot be inserted again, an update
// fails the commit). Tx therefore changes no warehouse table before Commit:
// Write only stages rows in TEMP tables and checks schema changes, and
// Commit runs every DDL statement before the first MERGE.
//
// tx.go is this package's one long file (about 800 lines) because a window's
// steps share the staging tables and must run in one order that a reader
// checks in one place: stage (Write), evolve (DDL), merge mirror and
// changelog, checkpoints, commit. What is separable lives beside it: the
// fence (fence.go), names (names.go), per-row checks (check.go), type
// mapping (types.go), dead letters and time travel.
type Tx struct {
	w    *Writer
	conn *sql.Conn
	// guard holds the first failure (the transaction is unusable after
	// it) and whether the transaction ended.
	guard txguard.Guard

	tables map[string]*tableState
	order  []*tableState
	cps    map[cpKey]sinks.Checkpoint
	// fenced are the partitions Fence checked, as held; unlock releases
	// their fence locks when the transaction ends.
	fenced []sinks.Checkpoint
	unlock []func()
	// seq numbers staged rows in arrival order, so that of two versions
	// with the same key and HLC the later written one wins.
	seq int64
	// pending are the window's new warehouse names (see names.go).
	pending pendingNames
	// fams are the column-family tables written (families.go).
	fams []familyNote
}

var _ sinks.Tx = (*Tx)(nil)

type cpKey struct {
	group, topic string
	partition    int32
}

// column is a warehouse column and its DuckDB type.
type column struct {
	name, typ string
}

// catalogTable is a warehouse table as the catalog describes it.
type catalogTable struct {
	cols  []column
	types map[string]string
	key   []string
}

// tableState is what one window knows of one table.
type tableState struct {
	name    string
	mirror  *catalogTable // nil when the table does not exist yet
	changes *catalogTable // nil when the changelog does not exist yet
	// key names the primary-key columns, in key order.
	key []string
	// cols is the union of the columns of every version written in this
	// window, in first-seen order.
	cols     []column
	colTypes map[string]string
	segments []*segment
}

// segment is the staging table of one table version.
type segment struct {
	version *model.Table
	name    string // unquoted TEMP table name
	convs   []*converter
	isKey   []bool
	app     *duck.Appender
	row     []driver.Value
	rows    int
	// nonFinite counts, per column, NaN/Infinity decimals stored as NULL
	// during the current Write.
	nonFinite []int
}

// Write stages changes of one table version.
func (tx *Tx) Write(ctx context.Context, table *model.Table, changes []sinks.Change) error {
	if err := tx.guard.Check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return tx.guard.Fail(fmt.Errorf("write: %w", err))
	}
	if table == nil {
		return tx.guard.Fail(errors.New("write: nil table"))
	}
	// From here on the table has its warehouse names (sinks.NameRule).
	source := table
	table, ts, err := tx.warehouseTable(ctx, table)
	if err != nil {
		return tx.guard.Fail(err)
	}
	if err := tx.noteFamily(ctx, source); err != nil {
		return tx.guard.Fail(err)
	}
	seg, err := tx.segment(ctx, ts, table)
	if err != nil {
		return tx.guard.Fail(err)
	}
	if err := tx.stage(seg, changes); err != nil {
		return tx.guard.Fail(fmt.Errorf("write table %q: %w", table.Name, err))
	}
	return nil
}

func (tx *Tx) stage(seg *segment, changes []sinks.Change) error {
	n := len(seg.convs)
	clear(seg.nonFinite)
	for ci := range changes {
		ch := &changes[ci]
		if len(ch.Values) != n {
			return fmt.Errorf("change %d (%s at %s): %d values for %d columns", ci, ch.Op, ch.Updated, len(ch.Values), n)
		}
		if ch.Op > sinks.OpDelete {
			return fmt.Errorf("change %d: unknown op %d", ci, ch.Op)
		}
		if ch.Updated.WallTime < 0 || ch.Updated.Logical < 0 {
			return fmt.Errorf("change %d: negative HLC %s", ci, ch.Updated)
		}
		del := ch.Op == sinks.OpDelete
		for i, c := range seg.convs {
			v := ch.Values[i]
			if del && !seg.isKey[i] {
				// A delete carries only its key.
				seg.row[i] = nil
				continue
			}
			if v == nil && seg.isKey[i] {
				return fmt.Errorf("change %d (%s at %s): primary-key column %q is NULL", ci, ch.Op, ch.Updated, seg.version.Columns[i].Name)
			}
			cv, nf, err := c.convert(v)
			if err != nil {
				return fmt.Errorf("change %d (%s at %s): column %q: %w", ci, ch.Op, ch.Updated, seg.version.Columns[i].Name, err)
			}
			seg.nonFinite[i] += nf
			seg.row[i] = cv
		}
		// Staged as two integers (stagedColumns): the Appender's DECIMAL
		// and VARCHAR paths cost a big.Int division and a cgo call a row.
		seg.row[n] = ch.Updated.WallTime
		seg.row[n+1] = int64(ch.Updated.Logical)<<2 | int64(ch.Op)
		tx.seq++
		seg.row[n+2] = tx.seq
		if err := seg.app.AppendRow(seg.row...); err != nil {
			return fmt.Errorf("change %d (%s at %s): stage: %w", ci, ch.Op, ch.Updated, err)
		}
		seg.rows++
	}
	for i, nf := range seg.nonFinite {
		if nf > 0 {
			tx.w.nonFinite.Add(int64(nf))
			tx.w.logger.Warn("DECIMAL NaN or Infinity stored as NULL: DuckDB DECIMAL cannot hold it",
				zap.String("table", seg.version.Name), zap.String("column", seg.version.Columns[i].Name), zap.Int("values", nf))
		}
	}
	return nil
}

// table returns the window's state of the named table, reading the
// catalog on first use.
func (tx *Tx) table(ctx context.Context, name string) (*tableState, error) {
	if ts, ok := tx.tables[name]; ok {
		return ts, nil
	}
	if name == "" {
		return nil, errors.New("write: table without a name")
	}
	ts := &tableState{name: name, colTypes: map[string]string{}}
	var err error
	if ts.mirror, err = tx.catalog(ctx, name); err != nil {
		return nil, err
	}
	if ts.mirror != nil {
		if _, ok := ts.mirror.types[sinks.UpdatedColumn]; !ok || len(ts.mirror.key) == 0 {
			return nil, fmt.Errorf("table %q exists in the warehouse but is not a highwater mirror (no %s column or primary key)", name, sinks.UpdatedColumn)
		}
		ts.key = ts.mirror.key
	}
	if tx.w.opts.Changelog {
		if ts.changes, err = tx.catalog(ctx, name+sinks.ChangesSuffix); err != nil {
			return nil, err
		}
	}
	tx.tables[name] = ts
	tx.order = append(tx.order, ts)
	return ts, nil
}

// catalog describes a warehouse table, or returns nil if there is none.
func (tx *Tx) catalog(ctx context.Context, name string) (*catalogTable, error) {
	rows, err := tx.conn.QueryContext(ctx, `SELECT column_name, data_type FROM duckdb_columns()
WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ? ORDER BY column_index`, name)
	if err != nil {
		return nil, fmt.Errorf("read catalog of table %q: %w", name, err)
	}
	defer rows.Close()
	ct := &catalogTable{types: map[string]string{}}
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, fmt.Errorf("read catalog of table %q: %w", name, err)
		}
		ct.cols = append(ct.cols, c)
		ct.types[c.name] = c.typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read catalog of table %q: %w", name, err)
	}
	if len(ct.cols) == 0 {
		return nil, nil
	}
	var key any
	err = tx.conn.QueryRowContext(ctx, `SELECT constraint_column_names FROM duckdb_constraints()
WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ? AND constraint_type = 'PRIMARY KEY'`, name).Scan(&key)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("read primary key of table %q: %w", name, err)
	default:
		list, _ := key.([]any)
		for _, k := range list {
			s, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("read primary key of table %q: unexpected %T", name, k)
			}
			ct.key = append(ct.key, s)
		}
	}
	return ct, nil
}

// reserved are column names highwater adds itself.
var reserved = map[string]bool{sinks.UpdatedColumn: true, sinks.OpColumn: true, seqColumn: true}

// segment returns the staging segment for table's version, starting one
// for a version not seen before in this window. Segments stay open until
// Commit, so a window that alternates between versions (partitions at
// different schema versions) reuses them.
func (tx *Tx) segment(ctx context.Context, ts *tableState, table *model.Table) (*segment, error) {
	for i := len(ts.segments) - 1; i >= 0; i-- {
		s := ts.segments[i]
		if s.version == table || sameVersion(s.version, table) {
			s.version = table
			return s, nil
		}
	}
	if err := tx.checkVersion(ts, table); err != nil {
		return nil, err
	}
	seg := &segment{
		version:   table,
		name:      stagePrefix + strconv.FormatInt(tx.w.stageSeq.Add(1), 10),
		convs:     make([]*converter, len(table.Columns)),
		isKey:     make([]bool, len(table.Columns)),
		row:       make([]driver.Value, len(table.Columns)+3),
		nonFinite: make([]int, len(table.Columns)),
	}
	for _, k := range table.Key {
		seg.isKey[k] = true
	}
	defs := make([]string, 0, len(table.Columns)+3)
	for i, c := range table.Columns {
		st, err := stagingType(c.Type)
		if err != nil {
			return nil, fmt.Errorf("table %q column %q: %w", table.Name, c.Name, err)
		}
		defs = append(defs, sqlident.Quote(c.Name)+" "+st)
		seg.convs[i] = newConverter(c.Type)
	}
	defs = append(defs, sqlident.Quote(sinks.UpdatedColumn)+" BIGINT", sqlident.Quote(sinks.OpColumn)+" BIGINT", sqlident.Quote(seqColumn)+" BIGINT")
	if _, err := tx.conn.ExecContext(ctx, `CREATE TEMP TABLE `+sqlident.Quote(seg.name)+` (`+strings.Join(defs, ", ")+`)`); err != nil {
		return nil, fmt.Errorf("table %q: create staging table: %w", table.Name, err)
	}
	// The Appender works on the raw driver connection; it appends inside
	// the connection's open transaction.
	err := tx.conn.Raw(func(dc any) error {
		c, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		a, err := duck.NewAppender(c, "temp", "main", seg.name)
		if err != nil {
			return err
		}
		seg.app = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("table %q: staging appender: %w", table.Name, err)
	}
	ts.segments = append(ts.segments, seg)
	return seg, nil
}

// sameVersion reports whether a and b describe the same columns and key.
func sameVersion(a, b *model.Table) bool {
	if a.Name != b.Name || len(a.Columns) != len(b.Columns) || !slices.Equal(a.Key, b.Key) {
		return false
	}
	for i := range a.Columns {
		if a.Columns[i].Name != b.Columns[i].Name || !a.Columns[i].Type.Equal(b.Columns[i].Type) {
			return false
		}
	}
	return true
}

// checkVersion validates a new version of a table against the warehouse
// and the versions already written in this window, and adds its columns to
// the window's union.
func (tx *Tx) checkVersion(ts *tableState, table *model.Table) error {
	if len(table.Columns) == 0 {
		return fmt.Errorf("table %q: no columns", table.Name)
	}
	if len(table.Key) == 0 {
		return fmt.Errorf("table %q: no primary key", table.Name)
	}
	seen := make(map[string]bool, len(table.Columns))
	types := make([]string, len(table.Columns))
	for i, c := range table.Columns {
		switch {
		case c.Name == "":
			return fmt.Errorf("table %q: column %d has no name", table.Name, i)
		case reserved[c.Name]:
			return fmt.Errorf("table %q column %q: the name is reserved for highwater's own column", table.Name, c.Name)
		case seen[c.Name]:
			return fmt.Errorf("table %q: column %q appears twice", table.Name, c.Name)
		}
		seen[c.Name] = true
		wt, err := warehouseType(c.Type)
		if err != nil {
			return fmt.Errorf("table %q column %q: %w", table.Name, c.Name, err)
		}
		types[i] = wt
		mt, inMirror := typeIn(ts.mirror, c.Name)
		ct, inChanges := typeIn(ts.changes, c.Name)
		for _, have := range []struct {
			where string
			typ   string
			ok    bool
		}{
			{"an earlier version in this window", ts.colTypes[c.Name], ts.colTypes[c.Name] != ""},
			{"the warehouse table", mt, inMirror},
			{"the changelog table", ct, inChanges},
		} {
			if have.ok && have.typ != wt {
				return fmt.Errorf("table %q column %q: incompatible type change from %s (%s) to %s (%s); "+
					"highwater does not convert columns, migrate the warehouse table by hand",
					table.Name, c.Name, have.typ, have.where, wt, c.Type)
			}
		}
	}
	key := make([]string, len(table.Key))
	keySeen := map[int]bool{}
	for i, k := range table.Key {
		if k < 0 || k >= len(table.Columns) || keySeen[k] {
			return fmt.Errorf("table %q: invalid primary-key column index %d", table.Name, k)
		}
		keySeen[k] = true
		key[i] = table.Columns[k].Name
	}
	if ts.key == nil {
		ts.key = key
	} else if !slices.Equal(ts.key, key) {
		return fmt.Errorf("table %q: primary key changed from (%s) to (%s); highwater cannot re-key a warehouse table",
			table.Name, strings.Join(ts.key, ", "), strings.Join(key, ", "))
	}
	for i, c := range table.Columns {
		if ts.colTypes[c.Name] == "" {
			ts.colTypes[c.Name] = types[i]
			ts.cols = append(ts.cols, column{c.Name, types[i]})
		}
	}
	return nil
}

func typeIn(ct *catalogTable, name string) (string, bool) {
	if ct == nil {
		return "", false
	}
	t, ok := ct.types[name]
	return t, ok
}

func (s *segment) closeAppender() error {
	if s.app == nil {
		return nil
	}
	a := s.app
	s.app = nil
	return a.Close()
}

// Checkpoint records partitions' progress; they are written at Commit.
func (tx *Tx) Checkpoint(ctx context.Context, cps []sinks.Checkpoint) error {
	if err := tx.guard.Check(); err != nil {
		return err
	}
	for _, cp := range cps {
		switch {
		case cp.Group == "" || cp.Topic == "":
			return tx.guard.Fail(fmt.Errorf("checkpoint %+v: empty group or topic", cp))
		case cp.Partition < 0 || cp.NextOffset < 0:
			return tx.guard.Fail(fmt.Errorf("checkpoint %+v: negative partition or offset", cp))
		case cp.Resolved.WallTime < 0 || cp.Resolved.Logical < 0:
			return tx.guard.Fail(fmt.Errorf("checkpoint %+v: negative resolved HLC", cp))
		}
		tx.cps[cpKey{cp.Group, cp.Topic, cp.Partition}] = cp
	}
	return nil
}

// Commit applies the staged window and commits it.
func (tx *Tx) Commit(ctx context.Context) error {
	if tx.guard.Ended() && isFenced(tx.guard.Err()) {
		return tx.guard.Err()
	}
	if tx.guard.Ended() {
		return errors.New("commit window: transaction already finished")
	}
	if tx.guard.Err() != nil {
		_ = tx.abort()
		return fmt.Errorf("commit window: transaction failed earlier: %w", tx.guard.Err())
	}
	if err := ctx.Err(); err != nil {
		_ = tx.abort()
		return fmt.Errorf("commit window: %w", err)
	}
	start := time.Now()
	if len(tx.fenced) > 0 {
		if err := tx.lockFence(ctx); err != nil {
			if !tx.guard.Ended() {
				_ = tx.abort()
			}
			return err
		}
	}
	if err := tx.apply(ctx); err != nil {
		tx.guard.Set(err)
		_ = tx.abort()
		return tx.fencedOr(ctx, fmt.Errorf("commit window: %w", err))
	}
	// DuckDB answers COMMIT of an aborted transaction by rolling back
	// without an error; the guard's failure above is what guards against that. COMMIT
	// itself ignores cancellation: the driver can report a canceled context
	// for a COMMIT that went through, and a window must never be reported
	// failed once it is durable.
	if _, err := tx.conn.ExecContext(context.WithoutCancel(ctx), `COMMIT`); err != nil {
		tx.guard.Set(err)
		_ = tx.abort()
		return tx.fencedOr(ctx, fmt.Errorf("commit window: %w", err))
	}
	tx.guard.End()
	tx.releaseLocks()
	_ = tx.conn.Close()
	tx.namesCommitted()
	if ce := tx.w.logger.Check(zap.DebugLevel, "window committed"); ce != nil {
		rows := 0
		for _, ts := range tx.order {
			for _, s := range ts.segments {
				rows += s.rows
			}
		}
		ce.Write(zap.Int("tables", len(tx.order)), zap.Int("changes", rows), zap.Int("checkpoints", len(tx.cps)), zap.Duration("took", time.Since(start)))
	}
	return nil
}

// fencedOr returns, for a window that failed to apply or commit, a
// *sinks.FencedError if a partition it fenced has meanwhile a different
// stored checkpoint (a write-write conflict with the window that moved
// it), and err otherwise.
func (tx *Tx) fencedOr(ctx context.Context, err error) error {
	if len(tx.fenced) == 0 {
		return err
	}
	if fe, _ := tx.w.fenceCheck(ctx, tx.fenced); fe != nil {
		tx.guard.Set(fe)
		return fe
	}
	return err
}

// releaseLocks releases the window's fence locks.
func (tx *Tx) releaseLocks() {
	for _, f := range tx.unlock {
		f()
	}
	tx.unlock = nil
}

// Rollback abandons the window; it is a no-op once the transaction is
// finished.
func (tx *Tx) Rollback(ctx context.Context) error {
	if tx.guard.Ended() {
		return nil
	}
	return tx.abort()
}

// abort rolls back and releases the connection. It runs even when the
// caller's context is done: a window must never stay half open.
func (tx *Tx) abort() error {
	tx.guard.End()
	for _, ts := range tx.order {
		for _, s := range ts.segments {
			_ = s.closeAppender()
		}
	}
	_, err := tx.conn.ExecContext(context.Background(), `ROLLBACK`)
	if err != nil {
		// The connection's state is unknown: make the pool drop it.
		_ = tx.conn.Raw(func(any) error { return driver.ErrBadConn })
		err = fmt.Errorf("rollback window: %w", err)
	}
	tx.releaseLocks()
	_ = tx.conn.Close()
	return err
}

// apply runs the window's statements: DDL first, then one MERGE (and one
// changelog INSERT) per table, then the checkpoints.
func (tx *Tx) apply(ctx context.Context) error {
	for _, ts := range tx.order {
		for _, s := range ts.segments {
			if err := s.closeAppender(); err != nil {
				return fmt.Errorf("table %q: stage: %w", ts.name, err)
			}
		}
	}
	for _, ts := range tx.order {
		if len(ts.segments) == 0 {
			continue
		}
		if err := tx.evolve(ctx, ts); err != nil {
			return err
		}
	}
	if err := tx.recordNames(ctx); err != nil {
		return err
	}
	if err := tx.familyViews(ctx); err != nil {
		return err
	}
	for _, ts := range tx.order {
		if len(ts.segments) == 0 {
			continue
		}
		if err := tx.merge(ctx, ts); err != nil {
			return err
		}
		if tx.w.opts.Changelog {
			if err := tx.changelog(ctx, ts); err != nil {
				return err
			}
		}
		for _, s := range ts.segments {
			if _, err := tx.conn.ExecContext(ctx, `DROP TABLE `+stageRef(s.name)); err != nil {
				return fmt.Errorf("table %q: drop staging table: %w", ts.name, err)
			}
		}
	}
	return tx.writeCheckpoints(ctx)
}

func stageRef(name string) string { return `"temp".main.` + sqlident.Quote(name) }

// targetColumns returns the warehouse table's columns after evolution:
// the existing ones, then the window's new ones.
func (ts *tableState) targetColumns() []column {
	var cols []column
	have := map[string]bool{}
	if ts.mirror != nil {
		for _, c := range ts.mirror.cols {
			if c.name == sinks.UpdatedColumn {
				continue
			}
			cols = append(cols, c)
			have[c.name] = true
		}
	}
	for _, c := range ts.cols {
		if !have[c.name] {
			cols = append(cols, c)
		}
	}
	return cols
}

func quoteAll(names []string, prefix string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = prefix + sqlident.Quote(n)
	}
	return strings.Join(q, ", ")
}

// evolve creates or extends the mirror and changelog tables.
func (tx *Tx) evolve(ctx context.Context, ts *tableState) error {
	target := ts.targetColumns()
	type tbl struct {
		name  string
		have  *catalogTable
		extra string
		key   []string
	}
	todo := []tbl{{ts.name, ts.mirror, sqlident.Quote(sinks.UpdatedColumn) + " DECIMAL(38,10) NOT NULL", ts.key}}
	if tx.w.opts.Changelog {
		todo = append(todo, tbl{ts.name + sinks.ChangesSuffix, ts.changes,
			sqlident.Quote(sinks.UpdatedColumn) + " DECIMAL(38,10) NOT NULL, " + sqlident.Quote(sinks.OpColumn) + " VARCHAR NOT NULL",
			append(slices.Clone(ts.key), sinks.UpdatedColumn)})
	}
	for _, t := range todo {
		if t.have == nil {
			defs := make([]string, 0, len(target)+2)
			for _, c := range target {
				defs = append(defs, sqlident.Quote(c.name)+" "+c.typ)
			}
			defs = append(defs, t.extra, "PRIMARY KEY ("+quoteAll(t.key, "")+")")
			q := `CREATE TABLE ` + tx.w.qualify(t.name) + ` (` + strings.Join(defs, ", ") + `)`
			if _, err := tx.conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("create table %q: %w", t.name, err)
			}
			tx.w.logger.Info("created warehouse table", zap.String("table", t.name), zap.Int("columns", len(target)))
			continue
		}
		for _, c := range target {
			if _, ok := t.have.types[c.name]; ok {
				continue
			}
			q := `ALTER TABLE ` + tx.w.qualify(t.name) + ` ADD COLUMN ` + sqlident.Quote(c.name) + ` ` + c.typ
			if _, err := tx.conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("table %q: add column %q %s: %w", t.name, c.name, c.typ, err)
			}
			tx.w.logger.Info("added warehouse column", zap.String("table", t.name), zap.String("column", c.name), zap.String("type", c.typ))
		}
	}
	return tx.asOfAfterEvolve(ctx, ts)
}

// source is the window's staged rows of a table: one staging table, or
// several (one per version) combined by column name, a version's missing
// columns NULL; with _hw_updated and _hw_op as the warehouse has them
// (stagedColumns).
func (ts *tableState) source() string {
	parts := make([]string, len(ts.segments))
	for i, s := range ts.segments {
		parts[i] = `SELECT * REPLACE (` + stagedColumns + `) FROM ` + stageRef(s.name)
	}
	return `(` + strings.Join(parts, ` UNION ALL BY NAME `) + `)`
}

// stagedColumns turns the staged integers back into _hw_updated, the HLC
// as DECIMAL(38,10) (wall time, then the logical counter as ten decimal
// places: exact, as a DECIMAL(10,0) times 10^-10 is a DECIMAL(21,10)),
// and _hw_op, the operation's name. A staging table holds the HLC's wall
// time in _hw_updated and the logical counter shifted left by 2 with the
// sinks.Op in the low bits in _hw_op.
var stagedColumns = func() string {
	u, op := sqlident.Quote(sinks.UpdatedColumn), sqlident.Quote(sinks.OpColumn)
	names := make([]string, 0, 4)
	for o := sinks.OpUpsert; o <= sinks.OpDelete; o++ {
		names = append(names, fmt.Sprintf(`WHEN %d THEN '%s'`, o, o))
	}
	return `CAST(` + u + ` AS DECIMAL(38,10)) + CAST(` + op + ` >> 2 AS DECIMAL(10,0)) * CAST(0.0000000001 AS DECIMAL(11,10)) AS ` + u +
		`, CASE ` + op + ` & 3 ` + strings.Join(names, " ") + ` END AS ` + op
}()

// merge applies the newest staged version of every key to the mirror,
// unless the mirror holds a newer one. Columns the window's versions lack
// (dropped columns) become NULL in the rows it writes.
func (tx *Tx) merge(ctx context.Context, ts *tableState) error {
	upd, ins, vals := []string{}, []string{}, []string{}
	isKey := map[string]bool{}
	for _, k := range ts.key {
		isKey[k] = true
	}
	for _, c := range ts.targetColumns() {
		_, staged := ts.colTypes[c.name]
		if staged {
			ins = append(ins, sqlident.Quote(c.name))
			vals = append(vals, "src."+sqlident.Quote(c.name))
		}
		if isKey[c.name] {
			continue
		}
		if staged {
			upd = append(upd, sqlident.Quote(c.name)+" = src."+sqlident.Quote(c.name))
		} else {
			upd = append(upd, sqlident.Quote(c.name)+" = NULL")
		}
	}
	u := sqlident.Quote(sinks.UpdatedColumn)
	upd = append(upd, u+" = src."+u)
	ins = append(ins, u)
	vals = append(vals, "src."+u)
	on := make([]string, len(ts.key))
	for i, k := range ts.key {
		on[i] = "tgt." + sqlident.Quote(k) + " = src." + sqlident.Quote(k)
	}
	op := sqlident.Quote(sinks.OpColumn)
	q := `MERGE INTO ` + tx.w.qualify(ts.name) + ` AS tgt
USING (SELECT * FROM ` + ts.source() + ` AS s
	QUALIFY row_number() OVER (PARTITION BY ` + quoteAll(ts.key, "s.") + ` ORDER BY s.` + u + ` DESC, s.` + sqlident.Quote(seqColumn) + ` DESC) = 1) AS src
ON ` + strings.Join(on, " AND ") + `
WHEN MATCHED AND tgt.` + u + ` <= src.` + u + ` AND src.` + op + ` = 'delete' THEN DELETE
WHEN MATCHED AND tgt.` + u + ` <= src.` + u + ` THEN UPDATE SET ` + strings.Join(upd, ", ") + `
WHEN NOT MATCHED AND src.` + op + ` <> 'delete' THEN INSERT (` + strings.Join(ins, ", ") + `) VALUES (` + strings.Join(vals, ", ") + `)`
	if _, err := tx.conn.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("table %q: merge: %w", ts.name, err)
	}
	return nil
}

// changelog adds every staged version not yet in the changelog.
func (tx *Tx) changelog(ctx context.Context, ts *tableState) error {
	names := make([]string, 0, len(ts.cols)+2)
	for _, c := range ts.cols {
		names = append(names, c.name)
	}
	names = append(names, sinks.UpdatedColumn, sinks.OpColumn)
	cols := quoteAll(names, "")
	q := `INSERT INTO ` + tx.w.qualify(ts.name+sinks.ChangesSuffix) + ` (` + cols + `)
SELECT ` + cols + ` FROM (SELECT * FROM ` + ts.source() + ` AS s
	QUALIFY row_number() OVER (PARTITION BY ` + quoteAll(append(slices.Clone(ts.key), sinks.UpdatedColumn), "s.") + ` ORDER BY s.` + sqlident.Quote(seqColumn) + ` DESC) = 1)
ON CONFLICT DO NOTHING`
	if _, err := tx.conn.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("table %q: changelog: %w", ts.name, err)
	}
	return nil
}

// writeCheckpoints upserts the window's checkpoints, a few hundred rows per
// statement.
func (tx *Tx) writeCheckpoints(ctx context.Context) error {
	if len(tx.cps) == 0 {
		return nil
	}
	cps := make([]sinks.Checkpoint, 0, len(tx.cps))
	for _, cp := range tx.cps {
		cps = append(cps, cp)
	}
	slices.SortFunc(cps, func(a, b sinks.Checkpoint) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	now := time.Now().UTC()
	const batch = 200
	for len(cps) > 0 {
		n := min(batch, len(cps))
		ph := make([]string, n)
		args := make([]any, 0, n*6)
		for i, cp := range cps[:n] {
			ph[i] = `(?, ?, ?, CAST(? AS DECIMAL(38,10)), ?, ?)`
			args = append(args, cp.Group, cp.Topic, cp.Partition, cp.Resolved.String(), cp.NextOffset, now)
		}
		// A checkpoint never moves back: a window a former owner of the
		// partition commits late, or the zero checkpoint a member
		// registers at startup, leaves a further one in place.
		q := `INSERT INTO ` + tx.w.qualify(sinks.CheckpointsTable) + ` AS c (consumer_group, topic, "partition", resolved, next_offset, applied_at)
VALUES ` + strings.Join(ph, ", ") + `
ON CONFLICT (consumer_group, topic, "partition") DO UPDATE SET
	resolved = excluded.resolved, next_offset = excluded.next_offset, applied_at = excluded.applied_at
WHERE excluded.resolved >= c.resolved`
		if _, err := tx.conn.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("write checkpoints: %w", err)
		}
		cps = cps[n:]
	}
	return nil
}
