package simulator

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// Oracle is the simulator's record of the source tables: every version of
// every row, whether loaded or emitted. It answers what a correct consumer
// must produce. It is safe for concurrent reads while the Sim runs.
type Oracle struct{ s *Sim }

// Row is one row of a table as of some HLC.
type Row struct {
	// Key holds the primary-key values in primary-index order.
	Key []any
	// Values holds every column of the row's schema version by SQL name
	// (nil for NULL).
	Values map[string]any
	// Updated is the HLC of the version in effect (what `updated` said).
	Updated hlc.Timestamp
}

// Version is one emitted row version.
type Version struct {
	Key     []any
	Updated hlc.Timestamp
	// Op is insert, update or delete when the feed has diff (insert means
	// the message's before is null) or envelope = enriched (its op "c",
	// "u", "d"), else upsert or delete.
	Op string
	// Values is the after image by column name; nil for a delete.
	Values map[string]any
}

// Tables returns the table names in declaration order.
func (o *Oracle) Tables() []string {
	out := make([]string, len(o.s.declared))
	for i, t := range o.s.declared {
		out[i] = t.name
	}
	return out
}

// Columns returns the column names of table's current schema version, in
// table order.
func (o *Oracle) Columns(table string) []string {
	t, err := o.s.table(table)
	ok := err == nil
	if !ok {
		return nil
	}
	o.s.state.RLock()
	defer o.s.state.RUnlock()
	cols := t.cur().cols
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}

// Rows returns the table AS OF SYSTEM TIME at, sorted by primary key. table
// may also name a column family's feed table "<table>.<family>"
// (families.go): its rows are the family's KVs, with the family's columns.
func (o *Oracle) Rows(table string, at hlc.Timestamp) []Row {
	t, err := o.s.oracleTable(table)
	ok := err == nil
	if !ok {
		return nil
	}
	o.s.state.RLock()
	defer o.s.state.RUnlock()
	var out []Row
	for _, rs := range t.order {
		i, found := slices.BinarySearchFunc(rs.hist, at, func(v rowVersion, at hlc.Timestamp) int {
			return v.ts.Compare(at)
		})
		if !found {
			i--
		}
		if i < 0 || rs.hist[i].vals == nil {
			continue
		}
		v := rs.hist[i]
		out = append(out, Row{Key: slices.Clone(rs.key), Values: valueMap(t.versions[v.schema], v.vals), Updated: v.ts})
	}
	slices.SortFunc(out, func(a, b Row) int { return compareKeys(a.Key, b.Key) })
	return out
}

// Versions returns every version ever emitted for table (or a column
// family's feed table, see Rows), once each, in HLC
// order (ties, i.e. one transaction, by primary key).
func (o *Oracle) Versions(table string) []Version {
	t, err := o.s.oracleTable(table)
	ok := err == nil
	if !ok {
		return nil
	}
	o.s.state.RLock()
	defer o.s.state.RUnlock()
	var out []Version
	for _, rs := range t.order {
		for i, v := range rs.hist {
			if v.flags&flagEmitted == 0 {
				continue
			}
			ver := Version{Key: slices.Clone(rs.key), Updated: v.ts}
			switch {
			case v.vals == nil:
				ver.Op = "delete"
			case !o.s.opts.Diff && !o.s.env.enriched: // enriched's op tells them apart
				ver.Op = "upsert"
			case i == 0 || v.flags&flagScan != 0 || rs.hist[i-1].vals == nil:
				ver.Op = "insert"
			default:
				ver.Op = "update"
			}
			if v.vals != nil {
				ver.Values = valueMap(t.versions[v.schema], v.vals)
			}
			out = append(out, ver)
		}
	}
	slices.SortFunc(out, func(a, b Version) int {
		if c := a.Updated.Compare(b.Updated); c != 0 {
			return c
		}
		return compareKeys(a.Key, b.Key)
	})
	return out
}

func valueMap(sch *tableSchema, vals []any) map[string]any {
	m := make(map[string]any, len(sch.cols))
	for i, c := range sch.cols {
		m[c.name] = vals[i]
	}
	return m
}

// compareKeys orders primary keys column by column as SQL would for the
// simulator's canonical values.
func compareKeys(a, b []any) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := compareValues(a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

func compareValues(a, b any) int {
	switch x := a.(type) {
	case int64:
		if y, ok := b.(int64); ok {
			return cmp.Compare(x, y)
		}
	case float64:
		if y, ok := b.(float64); ok {
			return cmp.Compare(x, y)
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			return cmp.Compare(b2i(x), b2i(y))
		}
	case []byte:
		if y, ok := b.([]byte); ok {
			return bytes.Compare(x, y)
		}
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y)
		}
	case time.Duration:
		if y, ok := b.(time.Duration); ok {
			return cmp.Compare(x, y)
		}
	case model.Decimal:
		if y, ok := b.(model.Decimal); ok && x.Special == "" && y.Special == "" && x.Scale == y.Scale {
			return x.Unscaled.Cmp(y.Unscaled)
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
