package simulator

import (
	"context"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
)

// AddColumn adds col to table as a schema change at a new HLC: a new value
// schema is registered under the same subject, and every existing row is
// re-emitted at the change HLC with the new schema (schema_change_policy=
// backfill), the new column set to backfill (or its DEFAULT when backfill is
// nil).
func (s *Sim) AddColumn(ctx context.Context, table string, col ColumnDef, backfill any) (hlc.Timestamp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return hlc.Timestamp{}, err
	}
	t, err := s.table(table)
	if err != nil {
		return hlc.Timestamp{}, err
	}
	if t.families != nil {
		return hlc.Timestamp{}, fmt.Errorf("simulator: table %q: schema changes of tables with column families are not simulated", table)
	}
	old := t.cur()
	if _, dup := old.byName[col.Name]; dup {
		return hlc.Timestamp{}, fmt.Errorf("simulator: column %q of %q already exists", col.Name, table)
	}
	c, err := s.newColumn(col)
	if err != nil {
		return hlc.Timestamp{}, fmt.Errorf("simulator: add column to %q: %w", table, err)
	}
	bv, err := c.typ.normalize(backfill)
	if err != nil {
		return hlc.Timestamp{}, fmt.Errorf("simulator: add column %q backfill: %w", col.Name, err)
	}
	ts := s.tick()
	if bv == nil && c.dfn == nil && c.notNull && len(t.liveRows()) > 0 {
		return hlc.Timestamp{}, fmt.Errorf("simulator: add column %q: NOT NULL column needs a backfill value or DEFAULT", col.Name)
	}
	next := &tableSchema{version: old.version + 1, since: ts, cols: append(slices.Clone(old.cols), c),
		byName: map[string]int{}, key: old.key}
	for i, cc := range next.cols {
		next.byName[cc.name] = i
	}
	return ts, s.schemaChange(ctx, t, next, func(vals []any) []any {
		v := bv
		if v == nil && c.dfn != nil {
			v = c.dfn(s, ts)
		}
		return append(slices.Clone(vals), v)
	})
}

// DropColumn drops a non-key column as a schema change at a new HLC, with a
// new value schema and a backfill of every row without the column.
func (s *Sim) DropColumn(ctx context.Context, table, col string) (hlc.Timestamp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return hlc.Timestamp{}, err
	}
	t, err := s.table(table)
	if err != nil {
		return hlc.Timestamp{}, err
	}
	if t.families != nil {
		return hlc.Timestamp{}, fmt.Errorf("simulator: table %q: schema changes of tables with column families are not simulated", table)
	}
	old := t.cur()
	j, ok := old.byName[col]
	if !ok {
		return hlc.Timestamp{}, fmt.Errorf("simulator: column %q of %q does not exist", col, table)
	}
	if slices.Contains(old.key, j) {
		return hlc.Timestamp{}, fmt.Errorf("simulator: cannot drop primary-key column %q of %q", col, table)
	}
	if len(old.cols) == 1 {
		return hlc.Timestamp{}, fmt.Errorf("simulator: cannot drop the last column of %q", table)
	}
	ts := s.tick()
	next := &tableSchema{version: old.version + 1, since: ts, byName: map[string]int{}}
	for i, c := range old.cols {
		if i != j {
			next.byName[c.name] = len(next.cols)
			next.cols = append(next.cols, c)
		}
	}
	for _, k := range old.key {
		if k > j {
			k--
		}
		next.key = append(next.key, k)
	}
	return ts, s.schemaChange(ctx, t, next, func(vals []any) []any {
		return append(slices.Clone(vals[:j]), vals[j+1:]...)
	})
}

func (s *Sim) schemaChange(ctx context.Context, t *table, next *tableSchema, conv func([]any) []any) error {
	s.state.Lock()
	t.versions = append(t.versions, next)
	live := t.liveRows()
	for _, rs := range live {
		last := rs.hist[len(rs.hist)-1]
		rs.hist = append(rs.hist, rowVersion{ts: next.since, mvcc: next.since, vals: conv(last.vals),
			schema: int32(next.version), flags: flagEmitted})
	}
	s.state.Unlock()
	// The new descriptor version gets its schema now, as the first event
	// after the change would register it.
	if _, err := s.valueCodec(ctx, t, next.version, next.version); err != nil {
		return fmt.Errorf("simulator: table %q: %w", t.name, err)
	}
	for _, rs := range live {
		if err := s.emit(ctx, t, rs, len(rs.hist)-1); err != nil {
			return err
		}
	}
	s.log.Info("schema change", zap.String("table", t.name), zap.Int("version", next.version), zap.Int("backfilled", len(live)))
	return nil
}
