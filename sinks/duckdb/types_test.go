package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

func dec(unscaled string, scale int) model.Decimal {
	v, ok := new(big.Int).SetString(unscaled, 10)
	if !ok {
		panic(unscaled)
	}
	return model.Decimal{Unscaled: v, Scale: scale}
}

func typ(k model.Kind) model.Type { return model.Type{Kind: k} }

func decType(p, s int) model.Type {
	return model.Type{Kind: model.KindDecimal, Precision: p, Scale: s}
}

func arrayOf(e model.Type) model.Type { return model.Type{Kind: model.KindArray, Elem: &e} }

// typeCases is one column per case: the value written, the DuckDB type of
// the warehouse column, and an SQL expression over the column (%s) with the
// text it must read back as.
var typeCases = []struct {
	name     string
	typ      model.Type
	in       any
	wantType string
	expr     string
	want     string
}{
	{"int", typ(model.KindInt), int64(math.MinInt64), "BIGINT", "CAST(%s AS VARCHAR)", "-9223372036854775808"},
	{"float", typ(model.KindFloat), 1.5e-300, "DOUBLE", "CAST(%s = 1.5e-300 AS VARCHAR)", "true"},
	{"float_nan", typ(model.KindFloat), math.NaN(), "DOUBLE", "CAST(isnan(%s) AS VARCHAR)", "true"},
	{"float_inf", typ(model.KindFloat), math.Inf(-1), "DOUBLE", "CAST(%s AS VARCHAR)", "-inf"},
	{"bool", typ(model.KindBool), true, "BOOLEAN", "CAST(%s AS VARCHAR)", "true"},
	{"string", typ(model.KindString), "héllo ☃ 'q' \"d\" \x00nul", "VARCHAR", "%s", "héllo ☃ 'q' \"d\" \x00nul"},
	{"bytes", typ(model.KindBytes), []byte{0, 1, 0xff, 'a'}, "BLOB", "hex(%s)", "0001FF61"},
	{"decimal", decType(10, 2), dec("-12345", 2), "DECIMAL(10,2)", "CAST(%s AS VARCHAR)", "-123.45"},
	{"decimal_rescaled", decType(4, 2), dec("12", 1), "DECIMAL(4,2)", "CAST(%s AS VARCHAR)", "1.20"},
	{"decimal_38", decType(38, 10), dec("-1234567890123456789012345678901234567", 10), "DECIMAL(38,10)", "CAST(%s AS VARCHAR)", "-123456789012345678901234567.8901234567"},
	{"decimal_wide", decType(60, 5), dec("123456789012345678901234567890123456789012345678901234567890", 5), "VARCHAR", "%s", "1234567890123456789012345678901234567890123456789012345.67890"},
	{"decimal_wide_nan", decType(60, 5), model.Decimal{Special: "NaN"}, "VARCHAR", "%s", "NaN"},
	{"date", typ(model.KindDate), time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), "DATE", "CAST(%s AS VARCHAR)", "2024-02-29"},
	{"date_old", typ(model.KindDate), time.Date(1969, 7, 20, 0, 0, 0, 0, time.UTC), "DATE", "CAST(%s AS VARCHAR)", "1969-07-20"},
	{"time", typ(model.KindTime), 13*time.Hour + 4*time.Minute + 5*time.Second + 123456*time.Microsecond, "TIME", "CAST(%s AS VARCHAR)", "13:04:05.123456"},
	{"timestamp", typ(model.KindTimestamp), time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC), "TIMESTAMP", "CAST(%s AS VARCHAR)", "2024-01-02 03:04:05.123456"},
	{"timestamp_old", typ(model.KindTimestamp), time.Date(1900, 1, 1, 0, 0, 0, 1000, time.UTC), "TIMESTAMP", "CAST(%s AS VARCHAR)", "1900-01-01 00:00:00.000001"},
	{"timestamptz", typ(model.KindTimestampTZ), time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC), "TIMESTAMP WITH TIME ZONE", "CAST(epoch_us(%s) AS VARCHAR)", "1704164645123456"},
	{"uuid", typ(model.KindUUID), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "UUID", "CAST(%s AS VARCHAR)", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	{"json", typ(model.KindJSON), `{"a": [1, 2.5, "x"], "b": null, "c": {"d": "☃"}}`, "JSON", "CAST(%s AS VARCHAR)", `{"a": [1, 2.5, "x"], "b": null, "c": {"d": "☃"}}`},
	{"json_path", typ(model.KindJSON), `{"a": [1, 2.5]}`, "JSON", "CAST(%s->'$.a[1]' AS VARCHAR)", "2.5"},
	{"json_scalar", typ(model.KindJSON), `"text"`, "JSON", "CAST(%s AS VARCHAR)", `"text"`},
	{"interval", typ(model.KindInterval), model.Interval{Months: 14, Days: -3, Micros: -3723_000_001}, "INTERVAL", "CAST(%s AS VARCHAR)", "1 year 2 months -3 days -01:02:03.000001"},
	{"interval_text", typ(model.KindInterval), model.Interval{Months: 14, Days: 3, Micros: 3723_000_001}, "INTERVAL", "CAST(%s AS VARCHAR)", "1 year 2 months 3 days 01:02:03.000001"},
	{"int_array", arrayOf(typ(model.KindInt)), []any{int64(1), nil, int64(-3)}, "BIGINT[]", "CAST(%s AS VARCHAR)", "[1, NULL, -3]"},
	{"empty_array", arrayOf(typ(model.KindInt)), []any{}, "BIGINT[]", "CAST(len(%s) AS VARCHAR)", "0"},
	{"string_array", arrayOf(typ(model.KindString)), []any{"a,b", "☃"}, "VARCHAR[]", "%s[1] || '|' || %s[2]", "a,b|☃"},
	{"decimal_array", arrayOf(decType(10, 2)), []any{dec("150", 2), model.Decimal{Special: "Infinity"}}, "DECIMAL(10,2)[]", "CAST(%s AS VARCHAR)", "[1.50, NULL]"},
	{"uuid_array", arrayOf(typ(model.KindUUID)), []any{"00000000-0000-0000-0000-000000000001"}, "UUID[]", "CAST(%s AS VARCHAR)", "[00000000-0000-0000-0000-000000000001]"},
	{"timestamptz_array", arrayOf(typ(model.KindTimestampTZ)), []any{time.Unix(1, 0).UTC()}, "TIMESTAMP WITH TIME ZONE[]", "CAST(epoch_us(%s[1]) AS VARCHAR)", "1000000"},
}

// TestTypesRoundTrip writes every column type through both apply paths
// (MERGE insert and MERGE update) and into the changelog, and reads the
// values back with SQL.
func TestTypesRoundTrip(t *testing.T) {
	ctx := context.Background()
	w, err := OpenPath(ctx, t.TempDir()+"/types.duckdb", sinks.Options{Changelog: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cols := []model.Column{sinktest.Col("id", model.KindInt)}
	values := []any{int64(1)}
	nulls := []any{int64(2)}
	for _, c := range typeCases {
		col := sinktest.Col(c.name, c.typ.Kind)
		col.Type = c.typ
		cols = append(cols, col)
		values = append(values, c.in)
		nulls = append(nulls, nil)
	}
	tb := sinktest.Table("all types", []int{0}, cols...)
	h1, h2 := hlc.Timestamp{WallTime: 100}, hlc.Timestamp{WallTime: 200}
	commit := func(changes ...sinks.Change) {
		t.Helper()
		tx, err := w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, tb, changes); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Row 1 inserted with values; row 2 inserted with NULLs and then
	// updated to the values; row 3 stays NULL.
	commit(sinks.Change{Op: sinks.OpInsert, Updated: h1, Values: values},
		sinks.Change{Op: sinks.OpInsert, Updated: h1, Values: nulls},
		sinks.Change{Op: sinks.OpInsert, Updated: h1, Values: append([]any{int64(3)}, nulls[1:]...)})
	commit(sinks.Change{Op: sinks.OpUpdate, Updated: h2, Values: append([]any{int64(2)}, values[1:]...)})

	for _, c := range typeCases {
		t.Run(c.name, func(t *testing.T) {
			var gotType string
			if err := w.DB().QueryRowContext(ctx, `SELECT data_type FROM duckdb_columns() WHERE table_name = 'all types' AND column_name = ?`, c.name).Scan(&gotType); err != nil {
				t.Fatal(err)
			}
			if gotType != c.wantType {
				t.Errorf("column type: got %s, want %s", gotType, c.wantType)
			}
			expr := fmt.Sprintf(c.expr, sqlident.Quote(c.name))
			if strings.Contains(c.expr, "%[1]s") || strings.Count(c.expr, "%s") == 1 {
				expr = fmt.Sprintf(c.expr, sqlident.Quote(c.name))
			} else {
				expr = fmt.Sprintf(c.expr, sqlident.Quote(c.name), sqlident.Quote(c.name))
			}
			for _, table := range []string{"all types", "all types_changes"} {
				q := fmt.Sprintf(`SELECT id, %s, %s IS NULL FROM %s WHERE _hw_updated = (SELECT max(_hw_updated) FROM %s x WHERE x.id = %s.id) ORDER BY id`,
					expr, sqlident.Quote(c.name), sqlident.Quote(table), sqlident.Quote(table), sqlident.Quote(table))
				rows, err := w.DB().QueryContext(ctx, q)
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				var got []string
				for rows.Next() {
					var id int64
					var v *string
					var null bool
					if err := rows.Scan(&id, &v, &null); err != nil {
						t.Fatal(err)
					}
					s := "NULL"
					if v != nil {
						s = *v
					}
					got = append(got, fmt.Sprintf("%d:%s:%v", id, s, null))
				}
				rows.Close()
				want := []string{"1:" + c.want + ":false", "2:" + c.want + ":false", "3:NULL:true"}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s:\n got  %q\n want %q", table, got, want)
				}
			}
		})
	}
}

func TestNonFiniteDecimalStoredAsNull(t *testing.T) {
	ctx := context.Background()
	w, err := OpenPath(ctx, ":memory:", sinks.Options{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	d := sinktest.Col("d", model.KindDecimal)
	d.Type = decType(10, 2)
	wide := sinktest.Col("wide", model.KindDecimal)
	wide.Type = decType(40, 2)
	tb := sinktest.Table("prices", []int{0}, sinktest.Col("id", model.KindInt), d, wide)
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := hlc.Timestamp{WallTime: 1}
	err = tx.Write(ctx, tb, []sinks.Change{
		{Op: sinks.OpInsert, Updated: h, Values: []any{int64(1), model.Decimal{Special: "NaN"}, model.Decimal{Special: "NaN"}}},
		{Op: sinks.OpInsert, Updated: h, Values: []any{int64(2), model.Decimal{Special: "Infinity"}, model.Decimal{Special: "-Infinity"}}},
		{Op: sinks.OpInsert, Updated: h, Values: []any{int64(3), dec("-1", 2), dec("1", 2)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := sinktest.QueryDB(func(*testing.T) *sql.DB { return w.DB() })(t, `SELECT CAST(id AS VARCHAR), CAST(d AS VARCHAR), wide FROM prices ORDER BY id`)
	want := [][]string{{"1", "NULL", "NaN"}, {"2", "NULL", "-Infinity"}, {"3", "-0.01", "0.01"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if n := w.NonFiniteDecimals(); n != 2 {
		t.Fatalf("NonFiniteDecimals = %d, want 2", n)
	}
}

func TestBadValuesFailClearly(t *testing.T) {
	ctx := context.Background()
	w, err := OpenPath(ctx, ":memory:", sinks.Options{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cases := []struct {
		name string
		typ  model.Type
		in   any
		want string
	}{
		{"decimal_too_wide", decType(4, 2), dec("100000", 2), "does not fit DECIMAL(4,2)"},
		{"decimal_too_precise", decType(4, 1), dec("1234", 3), "more than 1 fractional digits"},
		{"uuid", typ(model.KindUUID), "not-a-uuid", "invalid UUID"},
		{"uuid_braced", typ(model.KindUUID), "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}", "invalid UUID"},
		{"time", typ(model.KindTime), -time.Second, "out of range"},
		{"array", arrayOf(typ(model.KindInt)), []any{"x"}, "element 0"},
		{"bool", typ(model.KindBool), "true", "unexpected Go value of type string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			col := sinktest.Col("v", c.typ.Kind)
			col.Type = c.typ
			tb := sinktest.Table("bad_"+c.name, []int{0}, sinktest.Col("id", model.KindInt), col)
			tx, err := w.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			err = tx.Write(ctx, tb, []sinks.Change{{Op: sinks.OpInsert, Updated: hlc.Timestamp{WallTime: 1}, Values: []any{int64(1), c.in}}})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `"v"`) || !strings.Contains(err.Error(), tb.Name) {
				t.Fatalf("got error %v, want one naming table, column and %q", err, c.want)
			}
		})
	}
}
