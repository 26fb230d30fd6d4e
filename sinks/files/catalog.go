package files

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"slices"

	"github.com/highwater-dev/highwater/hlc"
)

// TableInfo is a table's entry in the catalog the writer keeps under
// _highwater/tables: the newest version's columns, as the files hold them.
type TableInfo struct {
	Name string `json:"name"`
	// Dir is the table's directory under the root: the table name escaped
	// as a Kafka topic name, or mapped when that is too long or is
	// _highwater or _dlq (see dirRule). It is the record of the mapping.
	Dir        string       `json:"dir"`
	PrimaryKey []string     `json:"primary_key"`
	Columns    []ColumnInfo `json:"columns"`
	Format     Format       `json:"format"`
	// Updated is the resolved HLC of the window that wrote this version.
	Updated string `json:"updated"`
}

// ColumnInfo is one column of a TableInfo.
type ColumnInfo struct {
	Name string `json:"name"`
	// Type is the source (CockroachDB) type, e.g. DECIMAL(12,2), STRING[],
	// as the changefeed schema's __crdb__ hint names it when it does.
	Type string `json:"type"`
	// Parquet is the files' type, e.g. DECIMAL(12,2), TIMESTAMP(MICROS,UTC),
	// LIST<STRING>.
	Parquet    string `json:"parquet"`
	PrimaryKey bool   `json:"primary_key,omitempty"`
}

// Tables returns the catalog entries of the tables written so far, sorted
// by name.
func (w *Writer) Tables(ctx context.Context) ([]TableInfo, error) {
	keys, err := w.st.list(ctx, internalDir+"/tables/")
	if err != nil {
		return nil, fmt.Errorf("read table catalog: %w", err)
	}
	var out []TableInfo
	for _, k := range keys {
		if path.Ext(k) != ".json" {
			continue
		}
		var ti TableInfo
		if err := w.readJSON(ctx, k, &ti); err != nil {
			return nil, fmt.Errorf("read table catalog: %w", err)
		}
		out = append(out, ti)
	}
	slices.SortFunc(out, func(a, b TableInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Manifests returns the complete windows' manifests of group, oldest
// first. It reads every manifest: for tests and tools, not the hot path.
func (w *Writer) Manifests(ctx context.Context, group string) ([]Manifest, error) {
	keys, err := w.st.list(ctx, internalDir+"/manifests/"+escape(group)+"/")
	if err != nil {
		return nil, fmt.Errorf("read manifests of group %q: %w", group, err)
	}
	var out []Manifest
	for _, k := range keys {
		var m Manifest
		if err := w.readJSON(ctx, k, &m); err != nil {
			return nil, fmt.Errorf("read manifests of group %q: %w", group, err)
		}
		out = append(out, m)
	}
	slices.SortStableFunc(out, func(a, b Manifest) int {
		ha, _ := hlc.Parse(a.Resolved)
		hb, _ := hlc.Parse(b.Resolved)
		return ha.Compare(hb)
	})
	return out, nil
}

// tableInfo builds the catalog entry of a table version.
func tableInfo(v *version, dir string, format Format, updated hlc.Timestamp) TableInfo {
	ti := TableInfo{Name: v.table.Name, Dir: dir, Format: format, Updated: updated.String()}
	for _, k := range v.table.Key {
		ti.PrimaryKey = append(ti.PrimaryKey, v.table.Columns[k].Name)
	}
	for i, c := range v.cols {
		typ := v.table.Columns[i].SQLType
		if typ == "" {
			typ = v.table.Columns[i].Type.String()
		}
		ti.Columns = append(ti.Columns, ColumnInfo{Name: c.name, Type: typ, Parquet: c.parquetType(), PrimaryKey: c.key})
	}
	return ti
}

// writeCatalog records the table's newest version under _highwater/tables
// when it differs from what this writer last recorded.
func (tx *Tx) writeCatalog(ctx context.Context, tw *tableWindow, resolved hlc.Timestamp) error {
	v := tw.versions[len(tw.versions)-1]
	ti := tableInfo(v, tw.dir, tx.w.cfg.Format, resolved)
	if tx.w.catalog[tw.name] == v.id {
		return nil
	}
	if err := tx.w.writeJSON(ctx, catalogKey(tw.dir), ti); err != nil {
		return fmt.Errorf("table catalog: %w", err)
	}
	tx.w.catalog[tw.name] = v.id
	return nil
}
