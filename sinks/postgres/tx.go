package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/internal/txguard"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// Tx is one window's PostgreSQL transaction.
type Tx struct {
	w    *Writer
	conn *pgx.Conn
	tx   pgx.Tx
	// guard holds the first failure (after it the transaction can only
	// roll back) and whether the transaction ended.
	guard  txguard.Guard
	tables map[string]*txTable
	stages int
	seq    int64
	// pending are the window's new warehouse names (names.go).
	pending pendingNames
	// held are the checkpoints Fence was given, locked and checked again
	// at Commit; deferred are the checkpoints of a fenced window, written
	// after that check. checkpointed are the partitions Checkpoint was
	// given, so that a Fence after its Checkpoint is refused.
	held         map[partKey]sinks.Checkpoint
	deferred     []sinks.Checkpoint
	checkpointed map[partKey]bool
	// fams are the column-family tables written (families.go).
	fams []familyNote
}

var _ sinks.Tx = (*Tx)(nil)

// txTable is what one transaction knows of one mirror table.
type txTable struct {
	name    string
	loaded  bool
	target  layout
	changes layout
	key     []string
	// stage is the temporary staging table (pg_temp), "" until created;
	// stageCols are its data columns (the target's, _hw_updated excluded).
	stage     string
	stageCols layout
	rows      int64
	// version is the last table version written, with its columns.
	version *model.Table
	want    []wantColumn
	isKey   []bool
	copyCol []string
	// keys tells whether a key is staged more than once; deletes counts
	// the staged deletes.
	keys    stagedKeys
	deletes int64
}

// Begin starts the transaction of one window. If the server went away since
// the last window, Begin reconnects, retrying with backoff for up to the
// reconnect timeout.
func (w *Writer) Begin(ctx context.Context) (sinks.Tx, error) {
	for attempt := 0; ; attempt++ {
		conn, err := w.acquire(ctx)
		if err != nil {
			return nil, err
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			broken := conn.IsClosed()
			w.release(conn)
			// An idle connection may have died with the server; BEGIN had
			// no effect, so a fresh connection may try again.
			if broken && attempt < 3 && ctx.Err() == nil {
				w.log.Info("postgres connection lost, reconnecting", zap.Error(err))
				continue
			}
			return nil, fmt.Errorf("postgres: BEGIN: %w", err)
		}
		return &Tx{w: w, conn: conn, tx: tx, tables: map[string]*txTable{},
			held: map[partKey]sinks.Checkpoint{}, checkpointed: map[partKey]bool{}}, nil
	}
}

// Write stages changes of one table version: it evolves the mirror table to
// the version's columns and COPYs the changes into a temporary staging
// table. The mirror table itself is updated at Commit, once every change of
// the window is known.
func (x *Tx) Write(ctx context.Context, table *model.Table, changes []sinks.Change) (err error) {
	defer markLockTimeout(&err)
	if err := x.guard.Check(); err != nil {
		return err
	}
	if table == nil {
		return x.guard.Fail(errors.New("postgres: Write with a nil table"))
	}
	if err := x.write(ctx, table, changes); err != nil {
		return x.guard.Fail(fmt.Errorf("postgres: writing table %q: %w", table.Name, err))
	}
	return nil
}

func (x *Tx) write(ctx context.Context, table *model.Table, changes []sinks.Change) error {
	// From here on the table has its warehouse names (sinks.NameRule).
	source := table
	table, err := x.warehouseTable(ctx, table)
	if err != nil {
		return err
	}
	if err := x.noteFamily(ctx, source); err != nil {
		return err
	}
	tt := x.tables[table.Name]
	if tt == nil {
		tt = &txTable{name: table.Name}
		x.tables[table.Name] = tt
	}
	if tt.version != table {
		want, key, err := x.w.describe(table)
		if err != nil {
			return err
		}
		if tt.key != nil && !slices.Equal(tt.key, key) {
			return fmt.Errorf("primary key changed within one window from (%s) to (%s)",
				strings.Join(tt.key, ", "), strings.Join(key, ", "))
		}
		tt.key = key
		if err := x.evolve(ctx, tt, want, key); err != nil {
			return err
		}
		if err := x.syncStage(ctx, tt); err != nil {
			return err
		}
		tt.version, tt.want = table, want
		tt.isKey = make([]bool, len(table.Columns))
		for _, k := range table.Key {
			tt.isKey[k] = true
		}
		tt.copyCol = make([]string, 0, len(want)+2)
		for _, c := range want {
			tt.copyCol = append(tt.copyCol, c.name)
		}
		tt.copyCol = append(tt.copyCol, sinks.UpdatedColumn, sinks.OpColumn, seqColumn)
	}
	if len(changes) == 0 {
		return nil
	}
	start := time.Now()
	src := &changeSource{tt: tt, changes: changes, i: -1, buf: make([]any, len(tt.copyCol)), seq: &x.seq}
	n, err := x.tx.CopyFrom(ctx, pgx.Identifier{"pg_temp", tt.stage}, tt.copyCol, src)
	if src.err != nil {
		return src.err
	}
	if err != nil {
		return fmt.Errorf("COPY into staging: %w", err)
	}
	tt.rows += n
	x.w.log.Debug("postgres changes staged", zap.String("table", table.Name), zap.Int64("rows", n),
		zap.Duration("copy", time.Since(start)))
	if src.nonFinite > 0 {
		x.w.nonFinite.Add(src.nonFinite)
		x.w.log.Warn("postgres NUMERIC(p,s) cannot hold ±Infinity; stored NULL",
			zap.String("table", table.Name), zap.Int64("values", src.nonFinite))
	}
	return nil
}

// syncStage creates the staging table of tt, or adds the target's new
// columns to it.
func (x *Tx) syncStage(ctx context.Context, tt *txTable) error {
	if !tt.target.exists {
		return nil // evolve has not run yet
	}
	var missing []wantColumn
	for _, name := range tt.target.order {
		if name == sinks.UpdatedColumn {
			continue
		}
		if _, ok := tt.stageCols.cols[name]; !ok {
			missing = append(missing, wantColumn{name: name, typ: tt.target.cols[name]})
		}
	}
	if tt.stage == "" {
		x.stages++
		tt.stage = "hw_stage_" + strconv.Itoa(x.stages)
		// No constraints: the staging table takes every version as sent;
		// the merge picks the newest per key.
		sql := "CREATE TEMP TABLE " + sqlident.Quote(tt.stage) + " (" + columnDefs(missing, nil) +
			sqlident.Quote(sinks.UpdatedColumn) + " numeric(38,10) NOT NULL, " + sqlident.Quote(sinks.OpColumn) + " text NOT NULL, " +
			sqlident.Quote(seqColumn) + " bigint NOT NULL) ON COMMIT DROP"
		if _, err := x.tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("creating the staging table: %w", err)
		}
	} else if len(missing) > 0 {
		if _, err := x.tx.Exec(ctx, addColumns("pg_temp."+sqlident.Quote(tt.stage), missing)); err != nil {
			return fmt.Errorf("adding columns to the staging table: %w", err)
		}
	}
	for _, c := range missing {
		tt.stageCols.add(c.name, c.typ)
	}
	return nil
}

// changeSource feeds one Write call's changes to COPY, converting values on
// the fly.
type changeSource struct {
	tt      *txTable
	changes []sinks.Change
	i       int
	buf     []any
	seq     *int64
	// nonFinite counts ±Infinity decimals stored as NULL.
	nonFinite int64
	err       error
}

func (s *changeSource) Next() bool {
	s.i++
	return s.err == nil && s.i < len(s.changes)
}

func (s *changeSource) Values() ([]any, error) {
	ch := &s.changes[s.i]
	tt := s.tt
	if len(ch.Values) != len(tt.want) {
		s.err = fmt.Errorf("change %d (updated %s) has %d values for %d columns", s.i, ch.Updated, len(ch.Values), len(tt.want))
		return nil, s.err
	}
	for j, v := range ch.Values {
		if ch.Op == sinks.OpDelete && !tt.isKey[j] {
			s.buf[j] = nil
			continue
		}
		c, err := toPG(tt.want[j].col.Type, v, &s.nonFinite)
		if err != nil {
			s.err = fmt.Errorf("change %d (updated %s) column %q: %w", s.i, ch.Updated, tt.want[j].name, err)
			return nil, s.err
		}
		if tt.isKey[j] && c == nil {
			s.err = fmt.Errorf("change %d (updated %s): primary-key column %q is NULL (or a value PostgreSQL cannot store)",
				s.i, ch.Updated, tt.want[j].name)
			return nil, s.err
		}
		s.buf[j] = c
	}
	n := len(ch.Values)
	s.buf[n] = hlcValue(ch.Updated)
	s.buf[n+1] = ch.Op.String()
	*s.seq++
	s.buf[n+2] = *s.seq
	tt.keys.add(tt.version, ch)
	if ch.Op == sinks.OpDelete {
		tt.deletes++
	}
	return s.buf, nil
}

func (s *changeSource) Err() error { return s.err }

// Checkpoint upserts partitions' progress in this transaction. In a fenced
// window the upsert waits for Commit, which first locks and checks the
// fenced checkpoint rows.
func (x *Tx) Checkpoint(ctx context.Context, cps []sinks.Checkpoint) (err error) {
	defer markLockTimeout(&err)
	if err := x.guard.Check(); err != nil {
		return err
	}
	if len(cps) == 0 {
		return nil
	}
	for _, cp := range cps {
		x.checkpointed[partKey{cp.Group, cp.Topic, cp.Partition}] = true
	}
	if len(x.held) > 0 {
		x.deferred = append(x.deferred, cps...)
		return nil
	}
	return x.writeCheckpoints(ctx, cps)
}

// writeCheckpoints upserts cps.
func (x *Tx) writeCheckpoints(ctx context.Context, cps []sinks.Checkpoint) error {
	if len(cps) == 0 {
		return nil
	}
	// One row per partition: a later entry for the same partition wins (an
	// INSERT cannot update one row twice).
	type pk struct {
		g, t string
		p    int32
	}
	idx := map[pk]int{}
	var groups, topics, resolved []string
	var parts []int32
	var offsets []int64
	for _, cp := range cps {
		k := pk{cp.Group, cp.Topic, cp.Partition}
		if i, ok := idx[k]; ok {
			resolved[i], offsets[i] = cp.Resolved.String(), cp.NextOffset
			continue
		}
		idx[k] = len(groups)
		groups, topics, parts = append(groups, cp.Group), append(topics, cp.Topic), append(parts, cp.Partition)
		resolved, offsets = append(resolved, cp.Resolved.String()), append(offsets, cp.NextOffset)
	}
	// A checkpoint never moves back: a member that lost a partition in a
	// rebalance may still commit a window the new owner already passed, and
	// a member registers the feed's partitions at zero at startup.
	_, err := x.tx.Exec(ctx, `INSERT INTO `+x.w.qualified(sinks.CheckpointsTable)+` AS c
		(consumer_group, topic, "partition", resolved, next_offset, applied_at)
		SELECT g, t, p, r::numeric, o, now()
		FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::int8[]) AS u(g, t, p, r, o)
		ON CONFLICT (consumer_group, topic, "partition") DO UPDATE
		SET resolved = EXCLUDED.resolved, next_offset = EXCLUDED.next_offset, applied_at = EXCLUDED.applied_at
		WHERE EXCLUDED.resolved >= c.resolved`,
		groups, topics, parts, resolved, offsets)
	if err != nil {
		return x.guard.Fail(fmt.Errorf("postgres: writing %d checkpoints to %s: %w", len(groups), x.w.qualified(sinks.CheckpointsTable), err))
	}
	return nil
}

// Commit applies every staged table to its mirror (and changelog) and
// commits. If anything fails the transaction is rolled back and nothing of
// it is visible.
func (x *Tx) Commit(ctx context.Context) (err error) {
	defer markLockTimeout(&err)
	if x.guard.Ended() {
		if fe := (*sinks.FencedError)(nil); errors.As(x.guard.Err(), &fe) {
			// Fence rolled back already; say why, not just that it ended.
			return x.guard.Err()
		}
		return errors.New("postgres: transaction already ended")
	}
	if x.guard.Err() != nil {
		x.end(ctx)
		return fmt.Errorf("postgres: commit of a failed transaction (rolled back): %w", x.guard.Err())
	}
	if len(x.held) > 0 {
		// The fence first: the merges below are the window's long part,
		// and nothing of them must run, or wait for locks, if it is fenced.
		if err := x.lockFence(ctx); err != nil {
			return err
		}
		if err := x.writeCheckpoints(ctx, x.deferred); err != nil {
			x.end(ctx)
			return err
		}
	}
	if err := x.familyViews(ctx); err != nil {
		x.guard.Fail(err)
		x.end(ctx)
		return err
	}
	// A fixed table order keeps concurrent writers' row locks in one order.
	names := make([]string, 0, len(x.tables))
	for n := range x.tables {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		tt := x.tables[n]
		if tt.rows == 0 {
			continue
		}
		start := time.Now()
		if err := x.merge(ctx, tt); err != nil {
			x.guard.Fail(err)
			x.end(ctx)
			return err
		}
		x.w.log.Debug("postgres table applied", zap.String("table", tt.name), zap.Int64("staged", tt.rows),
			zap.Duration("merge", time.Since(start)))
	}
	start := time.Now()
	err = x.tx.Commit(ctx)
	x.w.log.Debug("postgres window committed", zap.Duration("commit", time.Since(start)), zap.Error(err))
	x.guard.End()
	x.w.release(x.conn)
	if err != nil {
		return fmt.Errorf("postgres: COMMIT (the window is not applied): %w", err)
	}
	x.namesCommitted()
	return nil
}

// merge applies one staging table: the newest version per key replaces or
// deletes a mirror row with an older _hw_updated, in one statement; a row
// with the same _hw_updated is that very version (CockroachDB gives one
// version per key and HLC), so a replay leaves it alone. Then the changelog
// keeps every (key, _hw_updated) once.
func (x *Tx) merge(ctx context.Context, tt *txTable) error {
	upd, op := sqlident.Quote(sinks.UpdatedColumn), sqlident.Quote(sinks.OpColumn)
	target := x.w.qualified(tt.name)
	stage := "pg_temp." + sqlident.Quote(tt.stage)
	keys := identList(tt.key)
	cols := tt.stageCols.order
	var on, set []string
	for _, k := range tt.key {
		on = append(on, "t."+sqlident.Quote(k)+" = l."+sqlident.Quote(k))
	}
	for _, c := range cols {
		if !slices.Contains(tt.key, c) {
			set = append(set, sqlident.Quote(c)+" = EXCLUDED."+sqlident.Quote(c))
		}
	}
	set = append(set, upd+" = EXCLUDED."+upd)
	colList := identList(cols) + ", " + upd
	if !tt.keys.repeated {
		if err := x.mergeUnique(ctx, tt, target, stage, keys, on, set, colList); err != nil {
			return err
		}
		return x.appendChangelog(ctx, tt, stage, keys)
	}
	sql := `WITH latest AS (
	SELECT DISTINCT ON (` + keys + `) * FROM ` + stage + ` ORDER BY ` + keys + `, ` + upd + ` DESC, ` + sqlident.Quote(seqColumn) + ` DESC
), deleted AS (
	DELETE FROM ` + target + ` AS t USING latest AS l
	WHERE l.` + op + ` = 'delete' AND ` + strings.Join(on, " AND ") + ` AND t.` + upd + ` < l.` + upd + `
)
INSERT INTO ` + target + ` AS t (` + colList + `)
SELECT ` + colList + ` FROM latest WHERE ` + op + ` <> 'delete'
ON CONFLICT (` + keys + `) DO UPDATE SET ` + strings.Join(set, ", ") + `
WHERE t.` + upd + ` < EXCLUDED.` + upd
	if _, err := x.tx.Exec(ctx, sql); err != nil {
		return fmt.Errorf("postgres: applying %d staged changes to %s: %w", tt.rows, target, err)
	}
	return x.appendChangelog(ctx, tt, stage, keys)
}

// mergeUnique is merge for a staging table that holds every key at most
// once (stagedKeys): the staged rows go to the mirror as they are, without
// the sort that picks each key's newest version, and the deletes, if any,
// in a statement of their own.
func (x *Tx) mergeUnique(ctx context.Context, tt *txTable, target, stage, keys string, on, set []string, colList string) error {
	upd, op := sqlident.Quote(sinks.UpdatedColumn), sqlident.Quote(sinks.OpColumn)
	where := ""
	if tt.deletes > 0 {
		sql := `DELETE FROM ` + target + ` AS t USING ` + stage + ` AS l
WHERE l.` + op + ` = 'delete' AND ` + strings.Join(on, " AND ") + ` AND t.` + upd + ` < l.` + upd
		if _, err := x.tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("postgres: applying %d staged deletes to %s: %w", tt.deletes, target, err)
		}
		where = ` WHERE ` + op + ` <> 'delete'`
	}
	sql := `INSERT INTO ` + target + ` AS t (` + colList + `)
SELECT ` + colList + ` FROM ` + stage + where + `
ON CONFLICT (` + keys + `) DO UPDATE SET ` + strings.Join(set, ", ") + `
WHERE t.` + upd + ` < EXCLUDED.` + upd
	if _, err := x.tx.Exec(ctx, sql); err != nil {
		return fmt.Errorf("postgres: applying %d staged changes to %s: %w", tt.rows, target, err)
	}
	return nil
}

// appendChangelog keeps every staged (key, _hw_updated) once in the
// table's changelog, if the writer keeps one.
func (x *Tx) appendChangelog(ctx context.Context, tt *txTable, stage, keys string) error {
	if !x.w.opts.Changelog {
		return nil
	}
	upd, op := sqlident.Quote(sinks.UpdatedColumn), sqlident.Quote(sinks.OpColumn)
	cols := tt.stageCols.order
	var clCols []string
	for _, c := range cols {
		if _, ok := tt.changes.cols[c]; ok {
			clCols = append(clCols, c)
		}
	}
	cl := x.w.qualified(tt.name + sinks.ChangesSuffix)
	list := identList(clCols) + ", " + upd + ", " + op
	sql := `INSERT INTO ` + cl + ` (` + list + `) SELECT ` + list + ` FROM ` + stage +
		` ON CONFLICT (` + keys + `, ` + upd + `) DO NOTHING`
	if _, err := x.tx.Exec(ctx, sql); err != nil {
		return fmt.Errorf("postgres: appending %d changes to %s: %w", tt.rows, cl, err)
	}
	return nil
}

// Rollback abandons the transaction; it is a no-op after Commit or
// Rollback.
func (x *Tx) Rollback(ctx context.Context) error {
	if x.guard.Ended() {
		return nil
	}
	return x.end(ctx)
}

// end rolls back and hands the connection back.
func (x *Tx) end(ctx context.Context) error {
	x.guard.End()
	err := x.tx.Rollback(ctx)
	x.w.release(x.conn)
	if err != nil && !x.conn.IsClosed() {
		return fmt.Errorf("postgres: ROLLBACK: %w", err)
	}
	return nil
}
