package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for postgres:// sinks
	"github.com/spf13/cobra"

	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/sinks/duckdb"
)

// newSQLCmd is `highwater sql`: one query against the warehouse, so that a
// user can look at the mirror tables, the changelog and the watermark
// without a duckdb or psql client.
func newSQLCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	l := config.NewLoader("sql", getenv)
	var format string
	cmd := &cobra.Command{
		Use:   "sql [flags] QUERY",
		Short: "Run one SQL query against the warehouse and print the result",
		Long: `Runs QUERY against the warehouse of --sink (a duckdb:// file, opened read-only,
or a postgres:// database) and prints the rows. --sink comes from the flag,
HIGHWATER_SINK or the --config file, as for run.

A DuckDB file can be opened by one process at a time: query it while
highwater run is stopped (PostgreSQL has no such limit).`,
		Example: `  highwater sql --sink duckdb:///var/lib/highwater/warehouse.duckdb "SELECT * FROM highwater_watermark"
  highwater sql --sink postgres://hw@db/analytics --format json "SELECT * FROM features LIMIT 5"`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef(cmd, "sql takes one QUERY argument (quote it), got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "auto":
				format = "csv"
				if isTerminal(stdout) {
					format = "table"
				}
			case "table", "csv", "json":
			default:
				return usagef(cmd, "--format %q: want table, csv, json or auto", format)
			}
			cfg, err := l.Merge()
			if err != nil {
				return fmt.Errorf("configuration: %w", err)
			}
			if cfg.Sink == "" {
				return usagef(cmd, "sql: no warehouse: set --sink (env HIGHWATER_SINK)")
			}
			return runSQL(cmd.Context(), cfg.Sink, args[0], format, stdout)
		},
	}
	cmd.Flags().SortFlags = false
	cmd.Flags().StringVar(&format, "format", "auto", "output: table, csv, json, or auto (table on a terminal, else csv)")
	cmd.Flags().AddFlagSet(l.FlagSet())
	return cmd
}

// openQueryDB opens the warehouse of a sink URL for queries.
func openQueryDB(sinkURL string) (*sql.DB, error) {
	if err := checkSink(sinkURL); err != nil {
		return nil, err
	}
	switch u, _ := url.Parse(sinkURL); strings.ToLower(u.Scheme) {
	case "duckdb":
		dsn, err := duckdb.ParseURL(sinkURL)
		if err != nil {
			return nil, err
		}
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return sql.Open("duckdb", dsn+sep+"access_mode=read_only")
	case "postgres", "postgresql":
		return sql.Open("pgx", sinkURL)
	}
	return nil, fmt.Errorf("sink %s: sql queries duckdb:// and postgres:// warehouses; query a files sink's Parquet with DuckDB's read_parquet", config.RedactURL(sinkURL))
}

func runSQL(ctx context.Context, sinkURL, query, format string, stdout io.Writer) error {
	db, err := openQueryDB(sinkURL)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("query %s: %w", config.RedactURL(sinkURL), redactErr(err, sinkURL))
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	var out resultWriter
	switch format {
	case "json":
		out = &jsonResult{w: stdout, cols: cols}
	case "csv":
		out = &csvResult{w: csv.NewWriter(stdout)}
	default:
		out = &tableResult{w: tabwriter.NewWriter(stdout, 1, 4, 2, ' ', 0), out: stdout}
	}
	if err := out.header(cols); err != nil {
		return err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for i, v := range vals {
			// DuckDB hands a UUID to database/sql as its 16 bytes.
			if b, ok := v.([]byte); ok && len(b) == 16 && types[i].DatabaseTypeName() == "UUID" {
				var u duckdbdriver.UUID
				copy(u[:], b)
				vals[i] = u
			}
		}
		if err := out.row(vals); err != nil {
			return err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("query %s: %w", config.RedactURL(sinkURL), redactErr(err, sinkURL))
	}
	return out.end(n)
}

// redactErr keeps a driver error that quotes the connection string from
// showing its password.
func redactErr(err error, sinkURL string) error {
	if red := config.RedactURL(sinkURL); red != sinkURL && strings.Contains(err.Error(), sinkURL) {
		return errors.New(strings.ReplaceAll(err.Error(), sinkURL, red))
	}
	return err
}

type resultWriter interface {
	header(cols []string) error
	row(vals []any) error
	end(n int) error
}

// text is a value as a person reads it; null says whether it is SQL NULL.
func text(v any) (s string, null bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case []byte:
		if utf8.Valid(x) {
			return string(x), false
		}
		return `\x` + hex.EncodeToString(x), false
	case time.Time:
		return x.Format(time.RFC3339Nano), false
	case string:
		return x, false
	case duckdbdriver.UUID:
		return x.String(), false
	case duckdbdriver.Decimal:
		return decimal(x), false
	case duckdbdriver.Interval:
		return interval(x), false
	case fmt.Stringer: // duckdbdriver.Decimal, pgtype values
		return x.String(), false
	}
	if b, err := json.Marshal(v); err == nil && (strings.HasPrefix(string(b), "[") || strings.HasPrefix(string(b), "{")) {
		return string(b), false // lists, structs and maps read best as JSON
	}
	return fmt.Sprint(v), false
}

// decimal formats a DuckDB DECIMAL with all its scale digits, as DuckDB's
// own shell does: an HLC in _hw_updated reads exactly as CockroachDB's
// WALLNANOS.LOGICAL.
func decimal(d duckdbdriver.Decimal) string {
	digits := new(big.Int).Abs(d.Value).String()
	sign := ""
	if d.Value.Sign() < 0 {
		sign = "-"
	}
	scale := int(d.Scale)
	if scale == 0 {
		return sign + digits
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	return sign + digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
}

// interval formats a DuckDB INTERVAL as PostgreSQL prints one: "1 mon 2
// days 03:04:05.000006".
func interval(iv duckdbdriver.Interval) string {
	var parts []string
	if iv.Months != 0 {
		parts = append(parts, fmt.Sprintf("%d mon", iv.Months))
	}
	if iv.Days != 0 {
		parts = append(parts, fmt.Sprintf("%d days", iv.Days))
	}
	if iv.Micros != 0 || len(parts) == 0 {
		us := iv.Micros
		sign := ""
		if us < 0 {
			sign, us = "-", -us
		}
		clock := fmt.Sprintf("%s%02d:%02d:%02d", sign, us/3_600_000_000, us/60_000_000%60, us/1_000_000%60)
		if frac := us % 1_000_000; frac != 0 {
			clock += fmt.Sprintf(".%06d", frac)
		}
		parts = append(parts, clock)
	}
	return strings.Join(parts, " ")
}

type tableResult struct {
	w   *tabwriter.Writer
	out io.Writer
}

func (t *tableResult) header(cols []string) error {
	fmt.Fprintln(t.w, strings.Join(cols, "\t")+"\t")
	seps := make([]string, len(cols))
	for i, c := range cols {
		seps[i] = strings.Repeat("-", max(utf8.RuneCountInString(c), 4))
	}
	fmt.Fprintln(t.w, strings.Join(seps, "\t")+"\t")
	return nil
}

func (t *tableResult) row(vals []any) error {
	var b strings.Builder
	for _, v := range vals {
		s, null := text(v)
		if null {
			s = "NULL"
		}
		// A tab or newline inside a value would break the columns.
		b.WriteString(strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(s))
		b.WriteByte('\t')
	}
	_, err := fmt.Fprintln(t.w, b.String())
	return err
}

func (t *tableResult) end(n int) error {
	if err := t.w.Flush(); err != nil {
		return err
	}
	word := "rows"
	if n == 1 {
		word = "row"
	}
	_, err := fmt.Fprintf(t.out, "(%d %s)\n", n, word)
	return err
}

type csvResult struct{ w *csv.Writer }

func (c *csvResult) header(cols []string) error { return c.w.Write(cols) }

func (c *csvResult) row(vals []any) error {
	rec := make([]string, len(vals))
	for i, v := range vals {
		rec[i], _ = text(v) // NULL is an empty field
	}
	return c.w.Write(rec)
}

func (c *csvResult) end(int) error { c.w.Flush(); return c.w.Error() }

// jsonResult writes one JSON array of objects, keys in column order.
type jsonResult struct {
	w    io.Writer
	cols []string
	n    int
}

func (j *jsonResult) header([]string) error { _, err := io.WriteString(j.w, "["); return err }

func (j *jsonResult) row(vals []any) error {
	var b strings.Builder
	if j.n > 0 {
		b.WriteByte(',')
	}
	b.WriteString("\n  {")
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		k, _ := json.Marshal(j.cols[i])
		b.Write(k)
		b.WriteString(": ")
		b.Write(jsonValue(v))
	}
	b.WriteByte('}')
	j.n++
	_, err := io.WriteString(j.w, b.String())
	return err
}

func (j *jsonResult) end(int) error {
	nl := "\n"
	if j.n == 0 {
		nl = ""
	}
	_, err := io.WriteString(j.w, nl+"]\n")
	return err
}

// jsonValue keeps numbers, booleans, NULL, lists and maps as JSON; every
// other value (decimals, UUIDs, timestamps, bytes) as its text, so that no
// precision is lost to float64.
func jsonValue(v any) []byte {
	switch v.(type) {
	case nil:
		return []byte("null")
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		if b, err := json.Marshal(v); err == nil {
			return b
		}
	}
	s, _ := text(v)
	if (strings.HasPrefix(s, "[") || strings.HasPrefix(s, "{")) && json.Valid([]byte(s)) {
		if _, isStr := v.(string); !isStr {
			return []byte(s)
		}
	}
	b, _ := json.Marshal(s)
	return b
}
