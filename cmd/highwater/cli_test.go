package main

import (
	"bytes"
	"context"
	"database/sql"
	"math/big"
	"path/filepath"
	"strings"
	"testing"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/internal/pgtest"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/postgres"
)

func TestHelpExitsZeroAndUsageErrorsExitTwo(t *testing.T) {
	root := newRootCmd(func(string) string { return "" }, nil, nil)
	var cmds [][]string
	for _, c := range root.Commands() {
		cmds = append(cmds, []string{c.Name()})
		for _, sub := range c.Commands() {
			cmds = append(cmds, []string{c.Name(), sub.Name()})
		}
	}
	if len(cmds) < 11 {
		t.Fatalf("found only %d commands: %v", len(cmds), cmds)
	}
	for _, c := range append(cmds, []string{}, []string{"completion"}, []string{"completion", "bash"}) {
		for _, h := range []string{"--help", "-h"} {
			out, err := runArgs(t, append(append([]string{}, c...), h)...)
			if err != nil || !strings.Contains(out, "Usage:") {
				t.Errorf("highwater %s %s: err %v, output %q", strings.Join(c, " "), h, err, out)
			}
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "a command is required"},
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "highwater"`},
		{[]string{"config", "lint"}, `unknown command "lint" for "highwater config"`},
		{[]string{"run", "--nope"}, "unknown flag: --nope"},
		{[]string{"run", "extra"}, "takes no arguments"},
		{[]string{"run", "--session-timeout", "soon"}, `invalid argument "soon" for "--session-timeout"`},
		{[]string{"sql", "--sink", "duckdb:///x.duckdb"}, "one QUERY argument"},
		{[]string{"sql", "--format", "xml", "SELECT 1"}, `--format "xml"`},
		{[]string{"probe", "http://a", "http://b"}, "at most one URL"},
		{[]string{"snowflake-sql"}, "--sink is required"},
	} {
		_, err := runArgs(t, tc.args...)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("highwater %q: err %v (exit %d), want a usage error mentioning %q", tc.args, err, exitCode(err), tc.want)
			continue
		}
		if strings.HasSuffix(err.Error(), "usage") {
			t.Errorf("highwater %q: error %q ends in \"usage\"", tc.args, err)
		}
	}
	// A runtime error exits 1.
	if _, err := runArgs(t, "status", "--sink", "nonsense://x"); err == nil || exitCode(err) != 1 {
		t.Errorf("status on an unknown sink: err %v, want exit 1", err)
	}
}

func TestRunHelpShowsDefaultsAndEnvNames(t *testing.T) {
	out, err := runArgs(t, "run", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--session-timeout duration", "(default 10s)", "(env HIGHWATER_SESSION_TIMEOUT)",
		"--buffer-budget string", `(default "8GiB")`, "--brokers list", "(env HIGHWATER_BROKERS)",
		"--config string", "(env HIGHWATER_CONFIG)", "Precedence: flags, then",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("run --help lacks %q:\n%s", want, out)
		}
	}
}

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_highwater", "zsh": "#compdef highwater", "fish": "complete -c highwater"} {
		out, err := runArgs(t, "completion", shell)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("completion %s: err %v, output lacks %q", shell, err, want)
		}
	}
	// Flags complete too: cobra's hidden __complete command answers as the
	// shell scripts ask it.
	out, err := runArgs(t, "__complete", "run", "--session")
	if err != nil || !strings.Contains(out, "--session-timeout") {
		t.Errorf("completing `run --session`: err %v, output %q", err, out)
	}
}

func TestSQLPrintsTheResultInEachFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wh.duckdb")
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (id BIGINT, amount DECIMAL(38,10), note VARCHAR, took INTERVAL, u UUID, tags VARCHAR[], ok BOOLEAN);
		INSERT INTO t VALUES (1, 12.5, 'tab	in', INTERVAL '1 day 2 hours 3.5 seconds', 'b581e11a-9058-4f85-a121-c449437ef088', ['a', 'b'], true),
		                     (2, NULL, NULL, NULL, NULL, NULL, NULL)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	sink := "duckdb://" + path
	const q = "SELECT * FROM t ORDER BY id"
	for _, tc := range []struct{ format, want string }{
		{"csv", "id,amount,note,took,u,tags,ok\n" +
			"1,12.5000000000,tab\tin,1 days 02:00:03.500000,b581e11a-9058-4f85-a121-c449437ef088,\"[\"\"a\"\",\"\"b\"\"]\",true\n" +
			"2,,,,,,\n"},
		{"json", "[\n" +
			`  {"id": 1, "amount": "12.5000000000", "note": "tab\tin", "took": "1 days 02:00:03.500000", "u": "b581e11a-9058-4f85-a121-c449437ef088", "tags": ["a","b"], "ok": true},` + "\n" +
			`  {"id": 2, "amount": null, "note": null, "took": null, "u": null, "tags": null, "ok": null}` + "\n]\n"},
		{"table", "id  amount         note     took                    u                                     tags       ok    \n" +
			"--  ------         ----     ----                    -                                     ----       --    \n"},
	} {
		out, err := runArgs(t, "sql", "--sink", sink, "--format", tc.format, q)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.format, err, out)
		}
		if tc.format == "table" {
			if !strings.HasPrefix(out, "id") || !strings.Contains(out, `tab\tin`) || !strings.Contains(out, "NULL") || !strings.HasSuffix(out, "(2 rows)\n") {
				t.Errorf("table output:\n%s", out)
			}
			continue
		}
		if out != tc.want {
			t.Errorf("%s output:\n%s\nwant:\n%s", tc.format, out, tc.want)
		}
	}
	// A bad query names the warehouse, not only DuckDB's message.
	if _, err := runArgs(t, "sql", "--sink", sink, "SELECT * FROM nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("bad query: %v", err)
	}
}

func TestSQLAndStatusOnPostgreSQL(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.CreateDB(t)
	var out, errOut bytes.Buffer
	err := execute(context.Background(), []string{"sql", "--format", "json", "SELECT 1 AS one, 'x' AS s, NULL::text AS n, 2.50::numeric(10,2) AS d"},
		func(k string) string { return map[string]string{"HIGHWATER_SINK": url}[k] }, &out, &errOut)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	if want := "[\n  {\"one\": 1, \"s\": \"x\", \"n\": null, \"d\": \"2.50\"}\n]\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}

	// status names the groups a PostgreSQL warehouse has.
	ctx := context.Background()
	w, err := postgres.Open(ctx, url, sinks.Options{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	tx, err := w.Begin(ctx)
	if err == nil {
		err = tx.Checkpoint(ctx, []sinks.Checkpoint{{Group: "pg-group", Topic: "t", Partition: 0}, {Group: "a-group", Topic: "t", Partition: 0}})
	}
	if err == nil {
		err = tx.Commit(ctx)
	}
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	err = execute(ctx, []string{"status", "--sink", url, "--group", "nobody"}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `it has checkpoints for "a-group", "pg-group": use --group a-group`) {
		t.Errorf("status with an unknown group on PostgreSQL: %v", err)
	}
}

func TestDecimalKeepsEveryScaleDigit(t *testing.T) {
	for _, c := range []struct {
		value string
		scale uint8
		want  string
	}{
		{"17962202905245564370000000001", 10, "1796220290524556437.0000000001"},
		{"17000000000000000000000000000", 10, "1700000000000000000.0000000000"},
		{"1", 10, "0.0000000001"},
		{"-15", 1, "-1.5"},
		{"0", 2, "0.00"},
		{"42", 0, "42"},
	} {
		v, _ := new(big.Int).SetString(c.value, 10)
		if got := decimal(duckdb.Decimal{Width: 38, Scale: c.scale, Value: v}); got != c.want {
			t.Errorf("decimal(%s, scale %d) = %q, want %q", c.value, c.scale, got, c.want)
		}
	}
}
