package main

import (
	"strings"
	"testing"

	"github.com/highwater-dev/highwater/sinks/files"
)

// TestSnowflakeAsOfArgumentIsNoColumn: Snowflake resolves the UDTF's
// unquoted argument hlc as HLC, so a table with a column named HLC (and
// HLC_1) gets an argument named otherwise, and the body compares with it.
func TestSnowflakeAsOfArgumentIsNoColumn(t *testing.T) {
	ti := files.TableInfo{Name: "t", PrimaryKey: []string{"id"}, Columns: []files.ColumnInfo{
		{Name: "id", Parquet: "INT64", PrimaryKey: true}, {Name: "HLC", Parquet: "STRING"}, {Name: "HLC_1", Parquet: "INT64"}, {Name: "hlc_2", Parquet: "INT64"},
	}}
	var b strings.Builder
	if err := writeSnowflakeAsOf(&b, ti); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{`CREATE OR REPLACE FUNCTION "t_asof"(hlc_2 NUMBER(38,10))`, `WHERE c."_hw_updated" <= hlc_2`,
		`PARTITION BY c."id"`, `SELECT v."id", v."HLC", v."HLC_1", v."hlc_2", v."_hw_updated"`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in\n%s", want, out)
		}
	}
}
