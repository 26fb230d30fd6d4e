package simulator

import (
	"fmt"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// Column families and the changefeed option split_column_families.
//
// A table declared with two or more TableDef.Families is simulated as
// CockroachDB stores and emits it. Each family is a KV pair per row, and the
// changefeed emits one message per family KV written (changefeedccl
// event_processing.go: one event per KV, its `updated` the transaction's
// commit timestamp, so equal across the families of one transaction):
//
//   - topic, subjects and envelope "<table>.<family>", row record
//     "<bare table>.<family>" (encoder_avro.go rawTableName, avro/avro.go
//     TableToAvroSchema); the key is the whole primary key, registered only
//     under the first family's subject (the key cache is per table version);
//     the value record holds the family's columns in table order, key
//     columns only where the family holds them (cdcevent/event.go
//     newEventDescriptor), plus every virtual column with
//     virtual_columns = 'null';
//   - an INSERT writes family 0 always (the row sentinel) and every other
//     family that has a non-NULL column; an UPDATE writes the families whose
//     columns it sets, and a family other than 0 whose columns all become
//     NULL is deleted (a tombstone message), the row living on
//     (sql/row/writer.go prepareInsertOrUpdateBatch);
//   - a DELETE deletes every family's KV (sql/row/deleter.go DeleteRow),
//     or, when the optimizer uses the fast path (sql/delete_range.go
//     DelRange), only the families that hold a KV: one tombstone per family
//     either way, family 0's always;
//   (changefeed_test.go TestChangefeedEachColumnFamily shows each case.)
//
// The simulator models a Txn.Upsert of a live row as an UPDATE of the
// columns whose value changes (an upsert that changes nothing rewrites
// family 0), of an absent row as an INSERT, and a Txn.Delete as either kind
// of DELETE (chosen at random; an absent row gets one tombstone per
// family, as point deletes do). The Oracle answers for the source table
// with all its columns; the families are what the feed carries.

// FamilyDef declares a column family (CREATE TABLE ... FAMILY name (cols)).
// The first one is family 0; columns no family lists go to family 0, as
// CockroachDB puts them there.
type FamilyDef struct {
	Name    string
	Columns []string
}

// family is one column family of a source table.
type colFamily struct {
	id   int
	name string
	src  *table
	tbl  *table // the family's feed table ("<table>.<family>")
	// proj maps the family table's columns to the source's column indexes.
	proj []int
	// stored are the source indexes of the family's columns that its KV
	// value holds: neither key nor virtual columns. A family other than 0
	// has a KV only while one of them is non-NULL.
	stored []int
}

// buildFamilies makes src a source table of families: one feed table per
// family. It returns the feed tables in family order.
func (s *Sim) buildFamilies(src *table, defs []FamilyDef) ([]*table, error) {
	if !s.opts.SplitColumnFamilies {
		return nil, fmt.Errorf("table has %d column families: CockroachDB requires the changefeed option split_column_families (Options.SplitColumnFamilies)", len(defs))
	}
	sch := src.cur()
	owner := make([]int, len(sch.cols))
	for i := range owner {
		owner[i] = -1
	}
	names := map[string]bool{}
	for f, fd := range defs {
		if fd.Name == "" || names[fd.Name] {
			return nil, fmt.Errorf("family %d: empty or repeated name %q", f, fd.Name)
		}
		names[fd.Name] = true
		for _, cn := range fd.Columns {
			i, ok := sch.byName[cn]
			if !ok {
				return nil, fmt.Errorf("family %q: column %q does not exist", fd.Name, cn)
			}
			if owner[i] >= 0 {
				return nil, fmt.Errorf("column %q is in families %q and %q", cn, defs[owner[i]].Name, fd.Name)
			}
			owner[i] = f
		}
	}
	isKey := map[int]bool{}
	for _, k := range sch.key {
		isKey[k] = true
	}
	var out []*table
	for f, fd := range defs {
		fam := &colFamily{id: f, name: fd.Name, src: src}
		fs := &tableSchema{byName: map[string]int{}}
		add := func(i int, keyOnly bool) {
			c := *sch.cols[i]
			c.keyOnly = keyOnly
			fs.byName[c.name] = len(fs.cols)
			fs.cols = append(fs.cols, &c)
			fam.proj = append(fam.proj, i)
		}
		for i, c := range sch.cols {
			mine := owner[i] == f || (owner[i] < 0 && f == 0)
			if mine || c.virtual {
				add(i, false)
				if mine && !isKey[i] && !c.virtual {
					fam.stored = append(fam.stored, i)
				}
			}
		}
		for _, k := range sch.key {
			if _, ok := fs.byName[sch.cols[k].name]; !ok {
				add(k, true)
			}
		}
		for _, k := range sch.key {
			fs.key = append(fs.key, fs.byName[sch.cols[k].name])
		}
		name, bare := src.name+"."+fd.Name, src.bare+"."+fd.Name
		sub := model.SQLNameToKafkaName(s.opts.SchemaPrefix + name)
		fam.tbl = &table{
			name: name, bare: bare, topic: model.SQLNameToKafkaName(s.opts.TopicPrefix + name),
			keySubject: sub + "-key", valSubject: sub + "-value", versions: []*tableSchema{fs},
			values: map[[2]int]*valueCodec{}, rows: map[string]*rowState{}, fam: fam,
		}
		src.families = append(src.families, fam)
		out = append(out, fam.tbl)
	}
	return out, nil
}

// shareFamilyKey gives src and its later families the key codec of family
// 0, the one registered under a key subject (CockroachDB registers the key
// once per table version, under the first family's subject).
func shareFamilyKey(src *table) {
	first := src.families[0].tbl
	src.keyCodec, src.keyHeader = first.keyCodec, first.keyHeader
	for _, f := range src.families[1:] {
		f.tbl.keyCodec, f.tbl.keyHeader = first.keyCodec, first.keyHeader
	}
}

// live reports whether family f has a KV in a row with source values vals:
// family 0 whenever the row exists, another while a stored column is set.
func (f *colFamily) live(vals []any) bool {
	if vals == nil {
		return false
	}
	if f.id == 0 {
		return true
	}
	for _, i := range f.stored {
		if vals[i] != nil {
			return true
		}
	}
	return false
}

// changed reports whether an UPDATE from prev to next sets a column of f.
func (f *colFamily) changed(prev, next []any) bool {
	for _, i := range f.stored {
		if compareValues(prev[i], next[i]) != 0 {
			return true
		}
	}
	return false
}

// values projects source values onto f's feed table.
func (f *colFamily) values(vals []any) []any {
	out := make([]any, len(f.proj))
	for j, i := range f.proj {
		out[j] = vals[i]
	}
	return out
}

// familyRef is a family version to emit.
type familyRef struct {
	t  *table
	rs *rowState
	i  int
}

// familyVersions records what the families of src's row (key, kb) write
// when it goes from prev to next (source values, nil for an absent or
// deleted row) at ts, and returns the versions to emit. Callers hold
// s.state. flags are the versions' flags (0 for Load).
func (s *Sim) familyVersions(src *table, key []any, kb []byte, prev, next []any, ts hlc.Timestamp, flags uint8) []familyRef {
	var refs []familyRef
	write := func(f *colFamily, vals []any) {
		rs := f.tbl.row(key, kb)
		if vals != nil {
			vals = f.values(vals)
		}
		rs.hist = append(rs.hist, rowVersion{ts: ts, mvcc: ts, vals: vals, flags: flags})
		refs = append(refs, familyRef{f.tbl, rs, len(rs.hist) - 1})
	}
	switch {
	case next == nil && prev == nil:
		// A point delete of an absent row: a tombstone per family key.
		for _, f := range src.families {
			write(f, nil)
		}
	case next == nil:
		// DELETE: row.Deleter deletes every family's key; the DelRange
		// fast path only the keys that exist.
		all := s.rng.Intn(2) == 0
		for _, f := range src.families {
			if all || f.live(prev) {
				write(f, nil)
			}
		}
	case prev == nil:
		// INSERT: family 0 (the sentinel) and the families with a value.
		for _, f := range src.families {
			if f.live(next) {
				write(f, next)
			}
		}
	default:
		// UPDATE of the changed columns; a family whose columns all became
		// NULL loses its KV.
		wrote := false
		for _, f := range src.families {
			if !f.changed(prev, next) {
				continue
			}
			wrote = true
			if f.live(next) {
				write(f, next)
			} else {
				write(f, nil)
			}
		}
		if !wrote {
			write(src.families[0], next)
		}
	}
	return refs
}

// previous returns the values of rs's newest version (nil if none or
// deleted).
func previous(rs *rowState) []any {
	if n := len(rs.hist); n > 0 {
		return rs.hist[n-1].vals
	}
	return nil
}

// TelemetryFamilies returns TelemetryTables with column families, for a
// feed WITH split_column_families: features keeps its identity and flags
// in family "primary" and its counters in "counters"; nodes keeps its
// description in "primary" and the heartbeat (last_seen), which every
// report updates, in "heartbeat", so that most updates touch one family.
func TelemetryFamilies() []TableDef {
	defs := TelemetryTables()
	for i := range defs {
		switch defs[i].Name {
		case "features":
			defs[i].Families = []FamilyDef{
				{Name: "primary", Columns: []string{"feature", "internal", "node", "version"}},
				{Name: "counters", Columns: []string{"timestamp", "uptime", "uses"}},
			}
		case "nodes":
			defs[i].Families = []FamilyDef{
				{Name: "primary", Columns: []string{"node", "cluster_id", "region", "version", "started", "cpus", "memory_bytes", "labels"}},
				{Name: "heartbeat", Columns: []string{"last_seen"}},
			}
		}
	}
	return defs
}

// oracleTable finds a table for the Oracle: a declared table, or the feed
// table of a column family ("<table>.<family>"), whose rows and versions
// are the family's KV (a row exists while the family has a KV).
func (s *Sim) oracleTable(name string) (*table, error) {
	t, err := s.table(name)
	if err == nil {
		return t, nil
	}
	for _, ft := range s.tables {
		if ft.fam != nil && ft.name == name {
			return ft, nil
		}
	}
	return nil, err
}
