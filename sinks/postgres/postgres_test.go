package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	neturl "net/url"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

const base = int64(1659643584586630201)

func ts(i int64) hlc.Timestamp { return hlc.Timestamp{WallTime: base + i} }

func col(name string, t model.Type) model.Column {
	return model.Column{Name: name, AvroName: model.SQLNameToAvroName(name), Type: t, Nullable: true}
}

func kind(k model.Kind) model.Type { return model.Type{Kind: k} }

func arrayOf(t model.Type) model.Type { return model.Type{Kind: model.KindArray, Elem: &t} }

func dec(p, s int) model.Type {
	return model.Type{Kind: model.KindDecimal, Precision: p, Scale: s}
}

func table(name string, cols ...model.Column) *model.Table {
	t := &model.Table{Name: name, Columns: cols, Key: []int{0}}
	t.Columns[0].PrimaryKey, t.Columns[0].Nullable = true, false
	return t
}

// kv is id INT primary key, v STRING.
func kv(name string) *model.Table {
	return table(name, col("id", kind(model.KindInt)), col("v", kind(model.KindString)))
}

func change(op sinks.Op, h hlc.Timestamp, vals ...any) sinks.Change {
	return sinks.Change{Op: op, Updated: h, Values: vals}
}

type write struct {
	t       *model.Table
	changes []sinks.Change
}

// apply commits one window.
func apply(t testing.TB, w sinks.Writer, cps []sinks.Checkpoint, writes ...write) {
	t.Helper()
	if err := tryApply(context.Background(), w, cps, writes...); err != nil {
		t.Fatal(err)
	}
}

func tryApply(ctx context.Context, w sinks.Writer, cps []sinks.Checkpoint, writes ...write) error {
	tx, err := w.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	for _, wr := range writes {
		if err := tx.Write(ctx, wr.t, wr.changes); err != nil {
			return err
		}
	}
	if err := tx.Checkpoint(ctx, cps); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func expectRows(t testing.TB, what string, got, want [][]string) {
	t.Helper()
	if want == nil {
		want = [][]string{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func mustContain(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

// TestTypesRoundTrip writes a value of every column kind through a real
// server and reads it back in PostgreSQL's text form, and checks the
// warehouse column types of the mapping.
func TestTypesRoundTrip(t *testing.T) {
	url := server.CreateDB(t)
	w := openWriter(t, url, sinks.Options{Changelog: true})
	huge, _ := new(big.Int).SetString("-123456789012345678901234567890123456789012345", 10)
	cases := []struct {
		name   string
		typ    model.Type
		pgType string
		value  any
		text   string
	}{
		{"int", kind(model.KindInt), "bigint", int64(math.MinInt64), "-9223372036854775808"},
		{"float", kind(model.KindFloat), "double precision", 1.5, "1.5"},
		{"float_nan", kind(model.KindFloat), "double precision", math.NaN(), "NaN"},
		{"float_inf", kind(model.KindFloat), "double precision", math.Inf(-1), "-Infinity"},
		{"bool", kind(model.KindBool), "boolean", true, "true"},
		{"string", kind(model.KindString), "text", `héllo 'q' "d" ☃ \n`, `héllo 'q' "d" ☃ \n`},
		{"bytes", kind(model.KindBytes), "bytea", []byte{0, 1, 0xff}, `\x0001ff`},
		{"decimal", dec(10, 2), "numeric(10,2)", model.Decimal{Unscaled: big.NewInt(12345), Scale: 2}, "123.45"},
		{"decimal_neg", dec(10, 2), "numeric(10,2)", model.Decimal{Unscaled: big.NewInt(-5), Scale: 2}, "-0.05"},
		{"decimal_nan", dec(10, 2), "numeric(10,2)", model.Decimal{Special: "NaN"}, "NaN"},
		// NUMERIC(p,s) cannot hold infinity: NULL, counted (as DuckDB).
		{"decimal_inf", dec(10, 2), "numeric(10,2)", model.Decimal{Special: "Infinity"}, "NULL"},
		{"decimal_any", dec(0, 0), "numeric", model.Decimal{Unscaled: huge, Scale: 20}, "-1234567890123456789012345.67890123456789012345"},
		{"decimal_any_inf", dec(0, 0), "numeric", model.Decimal{Special: "-Infinity"}, "-Infinity"},
		{"date", kind(model.KindDate), "date", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), "2024-02-29"},
		{"time", kind(model.KindTime), "time without time zone", 13*time.Hour + 14*time.Minute + 15*time.Second + 123456*time.Microsecond, "13:14:15.123456"},
		{"time_2400", kind(model.KindTime), "time without time zone", 24 * time.Hour, "24:00:00"},
		{"timestamp", kind(model.KindTimestamp), "timestamp without time zone", time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), "1969-12-31 23:59:59.999999"},
		{"timestamptz", kind(model.KindTimestampTZ), "timestamp with time zone", time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC), "2024-01-02 03:04:05.123456+00"},
		{"uuid", kind(model.KindUUID), "uuid", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"},
		{"json", kind(model.KindJSON), "jsonb", `{"b": [1, 2.50], "a": "x"}`, `{"a": "x", "b": [1, 2.50]}`},
		{"interval", kind(model.KindInterval), "interval", model.Interval{Months: 14, Days: -3, Micros: (4*3600+5*60+6)*1e6 + 7}, "1 year 2 mons -3 days +04:05:06.000007"},
		{"int_array", arrayOf(kind(model.KindInt)), "bigint[]", []any{int64(1), nil, int64(-3)}, "{1,NULL,-3}"},
		{"string_array", arrayOf(kind(model.KindString)), "text[]", []any{"a", "b c", `q"`, ""}, `{a,"b c","q\"",""}`},
		{"empty_array", arrayOf(kind(model.KindString)), "text[]", []any{}, "{}"},
		{"decimal_array", arrayOf(dec(6, 2)), "numeric(6,2)[]", []any{model.Decimal{Unscaled: big.NewInt(150), Scale: 2}}, "{1.50}"},
		{"uuid_array", arrayOf(kind(model.KindUUID)), "uuid[]", []any{"00000000-0000-0000-0000-000000000001"}, "{00000000-0000-0000-0000-000000000001}"},
		{"tstz_array", arrayOf(kind(model.KindTimestampTZ)), "timestamp with time zone[]", []any{time.Unix(0, 0).UTC()}, `{"1970-01-01 00:00:00+00"}`},
		{"bool_array", arrayOf(kind(model.KindBool)), "boolean[]", []any{true, false}, "{t,f}"},
	}
	cols := []model.Column{col("id", kind(model.KindInt))}
	full := []any{int64(1)}
	nulls := []any{int64(2)}
	for _, c := range cases {
		cols = append(cols, col(c.name, c.typ))
		full = append(full, c.value)
		nulls = append(nulls, nil)
	}
	tb := table("types", cols...)
	apply(t, w, nil, write{tb, []sinks.Change{change(sinks.OpInsert, ts(1), full...), change(sinks.OpInsert, ts(1), nulls...)}})
	if n := w.NonFiniteDecimals(); n != 1 {
		t.Errorf("NonFiniteDecimals = %d, want 1", n)
	}

	utc := withParam(url, "timezone=UTC")
	types := query(t, utc, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'types'::regclass AND attnum > 1 ORDER BY attnum`)
	for _, tbl := range []string{"types", "types_changes"} {
		var sel []string
		for _, c := range cases {
			sel = append(sel, sqlident.Quote(c.name)+"::text")
		}
		rows := query(t, utc, "SELECT "+strings.Join(sel, ", ")+" FROM "+sqlident.Quote(tbl)+" ORDER BY id")
		if len(rows) != 2 {
			t.Fatalf("%s: %d rows, want 2", tbl, len(rows))
		}
		for i, c := range cases {
			if tbl == "types" && (types[i][0] != c.name || types[i][1] != c.pgType) {
				t.Errorf("column %s: warehouse type %s %s, want %s", c.name, types[i][0], types[i][1], c.pgType)
			}
			if rows[0][i] != c.text {
				t.Errorf("%s.%s (%s): read back %q, want %q", tbl, c.name, c.typ, rows[0][i], c.text)
			}
			if rows[1][i] != "NULL" {
				t.Errorf("%s.%s: NULL read back as %q", tbl, c.name, rows[1][i])
			}
		}
	}
}

// TestBadValuesAreErrors feeds values PostgreSQL cannot take, or of the
// wrong Go type: each is an error naming table and column, no panic, and
// the window leaves nothing behind.
func TestBadValuesAreErrors(t *testing.T) {
	url := server.CreateDB(t)
	w := openWriter(t, url, sinks.Options{})
	cases := []struct {
		name  string
		typ   model.Type
		value any
		want  string
	}{
		{"nul_string", kind(model.KindString), "a\x00b", "NUL"},
		{"bad_utf8", kind(model.KindString), "a\xffb", "UTF-8"},
		{"bad_uuid", kind(model.KindUUID), "not-a-uuid", "invalid UUID"},
		{"uuid_32_digits", kind(model.KindUUID), "6ba7b8109dad11d180b400c04fd430c8", "invalid UUID"},
		{"wrong_go_type", kind(model.KindInt), int32(5), "int32"},
		{"bad_time", kind(model.KindTime), -time.Second, "outside"},
		{"bad_array", arrayOf(kind(model.KindInt)), []any{"x"}, "array element 0"},
		{"bad_special", dec(0, 0), model.Decimal{Special: "Huge"}, "Huge"},
		{"json_nul", kind(model.KindJSON), `"\u0000"`, "JSONB"},
		{"json_invalid", kind(model.KindJSON), `{"a":`, "json"},
		{"numeric_overflow", dec(3, 0), model.Decimal{Unscaled: big.NewInt(12345)}, "numeric field overflow"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := table("bad_"+c.name, col("id", kind(model.KindInt)), col(c.name, c.typ))
			err := tryApply(context.Background(), w, nil, write{tb, []sinks.Change{change(sinks.OpInsert, ts(1), int64(1), c.value)}})
			mustContain(t, err, "bad_"+c.name, c.want)
			if got := query(t, url, "SELECT count(*) FROM pg_class WHERE relname = $1", "bad_"+c.name); got[0][0] != "0" {
				t.Errorf("the failed window left table %s behind", "bad_"+c.name)
			}
		})
	}
	// The writer works after all that.
	apply(t, w, nil, write{kv("ok"), []sinks.Change{change(sinks.OpInsert, ts(1), int64(1), "x")}})
}

// TestHostileNames covers what the conformance suite's odd names do not:
// schema names, names PostgreSQL cannot hold, reserved columns, and names
// at the 63-byte limit.
func TestHostileNames(t *testing.T) {
	url := server.CreateDB(t)
	schema := `Sch"ema; DROP SCHEMA public--`
	w := openWriter(t, withParam(url, "schema="+neturl.QueryEscape(schema)), sinks.Options{Changelog: true})
	if w.Schema() != schema {
		t.Fatalf("Schema() = %q, want %q", w.Schema(), schema)
	}
	// Names at the limit fit: a 63-byte multi-byte column name, a table
	// name whose changelog name is 62 bytes. Longer ones are mapped
	// (TestLongNamesAreMapped).
	fits := strings.Repeat("é", 27) // 54 bytes; +"_changes" = 62
	colName := strings.Repeat("ü", 31) + "c"
	names := []string{"user", "Order", "TABLE", `x"y`, "$1", "a\tb", fits}
	for i, n := range names {
		tb := table(n, col(colName, kind(model.KindInt)), col("Select", kind(model.KindString)), col("", kind(model.KindString)))
		tb.Columns[2].Name = "?column?"
		apply(t, w, nil, write{tb, []sinks.Change{change(sinks.OpInsert, ts(1), int64(i), n, "q")}})
		got := query(t, url, fmt.Sprintf(`SELECT %s::text, %s, %s FROM %s.%s`, sqlident.Quote(colName), sqlident.Quote("Select"),
			sqlident.Quote("?column?"), sqlident.Quote(schema), sqlident.Quote(n)))
		expectRows(t, "table "+n, got, [][]string{{fmt.Sprint(i), n, "q"}})
	}
	if got := query(t, url, `SELECT count(*) FROM pg_namespace WHERE nspname = 'public'`); got[0][0] != "1" {
		t.Fatal("schema public is gone")
	}
	bad := []struct {
		name string
		t    *model.Table
		want string
	}{
		{"NUL in table", kv("a\x00b"), "NUL"},
		{"NUL in column", table("t", col("id", kind(model.KindInt)), col("a\x00", kind(model.KindInt))), "NUL"},
		{"duplicate column", table("t", col("id", kind(model.KindInt)), col("id", kind(model.KindInt))), "twice"},
		{"no key", &model.Table{Name: "t", Columns: []model.Column{col("id", kind(model.KindInt))}}, "no primary-key"},
		{"key out of range", &model.Table{Name: "t", Columns: []model.Column{col("id", kind(model.KindInt))}, Key: []int{3}}, "out of range"},
		{"key given twice", &model.Table{Name: "t", Columns: []model.Column{col("id", kind(model.KindInt))}, Key: []int{0, 0}}, "given twice"},
		{"nested array", table("t", col("id", kind(model.KindInt)), col("a", arrayOf(arrayOf(kind(model.KindInt))))), "nested array"},
		{"invalid kind", table("t", col("id", kind(model.KindInt)), col("a", kind(model.KindInvalid))), "unsupported column type"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			vals := make([]any, len(b.t.Columns))
			err := tryApply(context.Background(), w, nil, write{b.t, []sinks.Change{{Op: sinks.OpInsert, Updated: ts(1), Values: vals}}})
			mustContain(t, err, b.want)
		})
	}
	if _, err := Open(context.Background(), withParam(url, "schema="+strings.Repeat("s", 64)), sinks.Options{}, nil); err == nil {
		t.Error("Open with a 64-byte schema name succeeded")
	}
}

// TestURLOptions checks the schema selection and highwater's own options,
// and that they do not reach the server as settings.
func TestURLOptions(t *testing.T) {
	ctx := context.Background()
	url := server.CreateDB(t)
	for _, c := range []struct{ param, schema string }{
		{"schema=wh", "wh"},
		{"search_path=%22Mixed%20Case%22,public", "Mixed Case"},
		{"search_path=other&reconnect_timeout=5s&application_name=mine", "other"},
	} {
		w := openWriter(t, withParam(url, c.param), sinks.Options{})
		if w.Schema() != c.schema {
			t.Errorf("%s: schema %q, want %q", c.param, w.Schema(), c.schema)
		}
		apply(t, w, []sinks.Checkpoint{{Group: "g", Topic: c.schema, Resolved: ts(1), NextOffset: 1}},
			write{kv("t"), []sinks.Change{change(sinks.OpUpsert, ts(1), int64(1), c.schema)}})
		got := query(t, url, fmt.Sprintf(`SELECT v FROM %s.t`, sqlident.Quote(c.schema)))
		expectRows(t, c.param, got, [][]string{{c.schema}})
		got = query(t, url, fmt.Sprintf(`SELECT topic FROM %s.highwater_checkpoints`, sqlident.Quote(c.schema)))
		expectRows(t, c.param+" checkpoints", got, [][]string{{c.schema}})
	}
	if got := query(t, url, `SELECT count(*) FROM pg_class WHERE relname = 't' AND relnamespace = 'public'::regnamespace`); got[0][0] != "0" {
		t.Error("a table was created in public although another schema was chosen")
	}
	bad := []struct{ url, want string }{
		{withParam(url, "schema=a&search_path=b"), "give one"},
		{withParam(url, "reconnect_timeout=soon"), "reconnect_timeout"},
		{"mysql://localhost/db", "scheme"},
		{"postgres://%zz", "parsing sink URL"},
		{withParam(url, "schema=a;b"), "options"},
		{strings.Replace(url, "/hw_test_", "/no_such_db_", 1), "does not exist"},
	}
	for _, b := range bad {
		_, err := Open(ctx, b.url, sinks.Options{}, nil)
		mustContain(t, err, b.want)
	}
}

// TestServerRestartMidWindow stops PostgreSQL between a window's writes and
// its commit: the commit fails, nothing of the window is visible, and the
// next Begin reconnects; replaying the window from the checkpoint then
// applies it exactly once.
func TestServerRestartMidWindow(t *testing.T) {
	ctx := context.Background()
	url := server.CreateDB(t)
	w := openWriter(t, url, sinks.Options{Changelog: true})
	tb := kv("t")
	cp := func(h hlc.Timestamp, off int64) []sinks.Checkpoint {
		return []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 0, Resolved: h, NextOffset: off}}
	}
	apply(t, w, cp(ts(1), 10), write{tb, []sinks.Change{
		change(sinks.OpInsert, ts(1), int64(1), "a"),
		change(sinks.OpInsert, ts(1), int64(2), "b"),
	}})

	window := []sinks.Change{
		change(sinks.OpUpdate, ts(2), int64(1), "a2"),
		change(sinks.OpDelete, ts(2), int64(2), nil),
		change(sinks.OpInsert, ts(2), int64(3), "c"),
	}
	for _, when := range []string{"before commit", "before checkpoint"} {
		tx, err := w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, tb, window); err != nil {
			t.Fatal(err)
		}
		if when == "before checkpoint" {
			if err := server.Restart(); err != nil {
				t.Fatal(err)
			}
			if err := tx.Checkpoint(ctx, cp(ts(2), 20)); err == nil {
				t.Fatalf("%s: Checkpoint on a dead connection succeeded", when)
			}
		} else {
			if err := tx.Checkpoint(ctx, cp(ts(2), 20)); err != nil {
				t.Fatal(err)
			}
			if err := server.Restart(); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err == nil {
			t.Fatalf("%s: Commit after a server restart succeeded", when)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatalf("%s: Rollback after failed Commit: %v", when, err)
		}
		// Nothing of the window is visible; the checkpoint says where to
		// resume.
		cps, err := w.Checkpoints(ctx, "g")
		if err != nil {
			t.Fatalf("%s: Checkpoints after restart: %v", when, err)
		}
		if !reflect.DeepEqual(cps, cp(ts(1), 10)) {
			t.Fatalf("%s: checkpoints %+v, want the first window's", when, cps)
		}
		expectRows(t, when+": rows after failed window", query(t, url, `SELECT id::text, v FROM t ORDER BY id`),
			[][]string{{"1", "a"}, {"2", "b"}})
	}
	// The processor replays the window from the checkpoint: Begin
	// reconnects (the idle connection died with the server).
	if err := server.Restart(); err != nil {
		t.Fatal(err)
	}
	apply(t, w, cp(ts(2), 20), write{tb, window})
	// Replayed once more (say, the process died before committing Kafka
	// offsets): still applied exactly once.
	apply(t, w, cp(ts(2), 20), write{tb, window})
	expectRows(t, "rows", query(t, url, `SELECT id::text, v, _hw_updated::text FROM t ORDER BY id`),
		[][]string{{"1", "a2", ts(2).String()}, {"3", "c", ts(2).String()}})
	expectRows(t, "changelog", query(t, url, `SELECT id::text, _hw_op, count(*)::text FROM t_changes GROUP BY 1, 2 ORDER BY 1, 2`),
		[][]string{{"1", "insert", "1"}, {"1", "update", "1"}, {"2", "delete", "1"}, {"2", "insert", "1"}, {"3", "insert", "1"}})
	cps, err := w.Checkpoints(ctx, "g")
	if err != nil || !reflect.DeepEqual(cps, cp(ts(2), 20)) {
		t.Fatalf("checkpoints %+v, %v; want the second window's", cps, err)
	}
	// Reading checkpoints (what a restarting processor does first) also
	// survives the idle connection's death.
	if err := server.Restart(); err != nil {
		t.Fatal(err)
	}
	cps, err = w.Checkpoints(ctx, "g")
	if err != nil || !reflect.DeepEqual(cps, cp(ts(2), 20)) {
		t.Fatalf("checkpoints after another restart %+v, %v; want the second window's", cps, err)
	}
}

// TestServerDownBeginWaitsThenGivesUp stops the server: Begin retries for
// the reconnect timeout, then fails saying it cannot connect; once the
// server is back, Begin works again.
func TestServerDownBeginWaitsThenGivesUp(t *testing.T) {
	ctx := context.Background()
	url := server.CreateDB(t)
	w := openWriter(t, withParam(url, "reconnect_timeout=300ms"), sinks.Options{})
	apply(t, w, nil, write{kv("t"), []sinks.Change{change(sinks.OpInsert, ts(1), int64(1), "a")}})
	if err := server.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = server.Restart()
		}
	}()
	_, err := w.Begin(ctx)
	mustContain(t, err, "connecting to 127.0.0.1")
	_, err = w.Checkpoints(ctx, "g")
	mustContain(t, err, "connecting to 127.0.0.1")
	if err := server.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	apply(t, w, nil, write{kv("t"), []sinks.Change{change(sinks.OpUpdate, ts(2), int64(1), "b")}})
	expectRows(t, "rows", query(t, url, `SELECT v FROM t`), [][]string{{"b"}})
}

// TestPermissionDenied runs the writer as a role that may read but not
// write: it stops with PostgreSQL's message and the table it concerns.
func TestPermissionDenied(t *testing.T) {
	ctx := context.Background()
	url := server.CreateDB(t)
	db := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	role := "reader_" + db
	execSQL(t, url, fmt.Sprintf(`CREATE ROLE %s LOGIN`, role))
	t.Cleanup(func() {
		_ = server.Exec(ctx, db, fmt.Sprintf(`DROP OWNED BY %s; DROP ROLE %s`, role, role))
	})

	// A fresh schema: the reader may not even create it.
	execSQL(t, url, `REVOKE CREATE ON SCHEMA public FROM PUBLIC; REVOKE CREATE ON DATABASE `+db+` FROM PUBLIC`)
	_, err := Open(ctx, withParam(server.URLAs(role, db), "schema=wh"), sinks.Options{}, nil)
	mustContain(t, err, "permission denied", `"wh"`)

	// A prepared database: Open works, writing does not.
	w := openWriter(t, url, sinks.Options{})
	apply(t, w, nil, write{kv("accounts"), []sinks.Change{change(sinks.OpInsert, ts(1), int64(1), "a")}})
	execSQL(t, url, fmt.Sprintf(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO %s`, role))
	r := openWriter(t, server.URLAs(role, db), sinks.Options{})
	if _, err := r.Checkpoints(ctx, "g"); err != nil {
		t.Fatalf("Checkpoints as a reader: %v", err)
	}
	err = tryApply(ctx, r, nil, write{kv("accounts"), []sinks.Change{change(sinks.OpUpdate, ts(2), int64(1), "b")}})
	mustContain(t, err, "permission denied for table accounts", "accounts", "SQLSTATE 42501")
	err = tryApply(ctx, r, []sinks.Checkpoint{{Group: "g", Topic: "t", Resolved: ts(2), NextOffset: 2}})
	mustContain(t, err, "permission denied for table highwater_checkpoints")
	// A new table needs CREATE.
	err = tryApply(ctx, r, nil, write{kv("fresh"), []sinks.Change{change(sinks.OpInsert, ts(2), int64(1), "b")}})
	// (Its name is recorded first, in highwater_tables.)
	mustContain(t, err, "permission denied for table highwater_tables", "fresh")
	// And the connection is still usable: it is not a connection failure.
	if _, err := r.Checkpoints(ctx, "g"); err != nil {
		t.Fatalf("Checkpoints after a permission error: %v", err)
	}
	expectRows(t, "rows unchanged", query(t, url, `SELECT v FROM accounts`), [][]string{{"a"}})
}

const memberWindows, memberPerWindow = 20, 50

// runMember is one highwater member writing its own keys and its two
// partitions' checkpoints to url, window after window, evolving the shared
// table halfway through.
func runMember(ctx context.Context, url string, member int) error {
	w, err := Open(ctx, url, sinks.Options{Changelog: true}, nil)
	if err != nil {
		return err
	}
	defer w.Close()
	v1 := kv("shared")
	v2 := table("shared", col("id", kind(model.KindInt)), col("v", kind(model.KindString)), col("extra", kind(model.KindInt)))
	for win := range memberWindows {
		tb := v1
		if win >= memberWindows/2 {
			tb = v2 // both members evolve the table at about the same time
		}
		var changes []sinks.Change
		for i := range memberPerWindow {
			id := int64(member*1_000_000 + win*memberPerWindow + i)
			vals := []any{id, fmt.Sprintf("m%d", member)}
			if tb == v2 {
				vals = append(vals, int64(win))
			}
			changes = append(changes, change(sinks.OpInsert, ts(int64(win)), vals...))
		}
		cps := []sinks.Checkpoint{
			{Group: "g", Topic: "shared", Partition: int32(2 * member), Resolved: ts(int64(win)), NextOffset: int64(win)},
			{Group: "g", Topic: "shared", Partition: int32(2*member + 1), Resolved: ts(int64(win)), NextOffset: int64(win)},
		}
		err := tryApply(ctx, w, cps, write{tb, changes})
		var pe interface{ SQLState() string }
		if err != nil && errors.As(err, &pe) && (pe.SQLState() == "40P01" || pe.SQLState() == "40001") {
			// A deadlock or serialization victim is a failed window like
			// any other: the processor retries it.
			err = tryApply(ctx, w, cps, write{tb, changes})
		}
		if err != nil {
			return fmt.Errorf("member %d window %d: %w", member, win, err)
		}
	}
	return nil
}

// checkMembers verifies what two runMember calls left in url.
func checkMembers(t *testing.T, url string) {
	t.Helper()
	all, evolved := fmt.Sprint(memberWindows*memberPerWindow), fmt.Sprint(memberWindows/2*memberPerWindow)
	expectRows(t, "rows per member", query(t, url, `SELECT v, count(*)::text, count(extra)::text FROM shared GROUP BY v ORDER BY v`),
		[][]string{{"m0", all, evolved}, {"m1", all, evolved}})
	expectRows(t, "changelog", query(t, url, `SELECT count(*)::text FROM shared_changes`), [][]string{{fmt.Sprint(2 * memberWindows * memberPerWindow)}})
	last := ts(memberWindows - 1).String()
	expectRows(t, "watermark", query(t, url, `SELECT coalesce(topic, '*'), resolved::text, partitions::text FROM highwater_watermark WHERE consumer_group = 'g' ORDER BY topic NULLS FIRST`),
		[][]string{{"*", last, "4"}, {"shared", last, "4"}})
}

// TestConcurrentWritersShareDatabase runs two writers (two members of one
// group, on their own connections) against one database at once: both
// create the same tables in their first window, then apply disjoint keys
// and their own partitions' checkpoints, window after window.
func TestConcurrentWritersShareDatabase(t *testing.T) {
	url := server.CreateDB(t)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for member := range 2 {
		wg.Go(func() { errs[member] = runMember(context.Background(), url, member) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	checkMembers(t, url)
}

// envMember makes the test binary run as one member process (see
// TestMain and TestConcurrentWriterProcesses).
const envMember = "HIGHWATER_PGTEST_MEMBER"

// TestConcurrentWriterProcesses is TestConcurrentWritersShareDatabase with
// the two members in two processes (this test binary, re-executed).
func TestConcurrentWriterProcesses(t *testing.T) {
	url := server.CreateDB(t)
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for member := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %s", envMember, member, url))
		out := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("member process %d: %v\n%s", i, err, outs[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	checkMembers(t, url)
}

// TestCheckpointDuplicatesInOneCall keeps the last entry of a partition
// given twice in one Checkpoint call (an INSERT cannot update a row twice).
func TestCheckpointDuplicatesInOneCall(t *testing.T) {
	ctx := context.Background()
	url := server.CreateDB(t)
	w := openWriter(t, url, sinks.Options{})
	apply(t, w, []sinks.Checkpoint{
		{Group: "g", Topic: "t", Partition: 1, Resolved: ts(1), NextOffset: 1},
		{Group: "g", Topic: "t", Partition: 1, Resolved: ts(2), NextOffset: 2},
	})
	cps, err := w.Checkpoints(ctx, "g")
	want := []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 1, Resolved: ts(2), NextOffset: 2}}
	if err != nil || !reflect.DeepEqual(cps, want) {
		t.Fatalf("checkpoints %+v, %v; want %+v", cps, err, want)
	}
}
