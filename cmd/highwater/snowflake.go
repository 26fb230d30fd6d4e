package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/internal/redact"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/files"
)

// snowflakeOptions say what `highwater snowflake-sql` generates.
type snowflakeOptions struct {
	// stageURL is the stage's URL (s3://bucket/prefix/).
	stageURL string
	// integration is the storage integration that grants Snowflake read
	// access to the bucket; empty leaves a placeholder.
	integration string
	// snsTopic is the AWS SNS topic of the bucket's event notifications,
	// when the bucket already publishes them to one.
	snsTopic string
	// warehouse runs the merge tasks; empty makes them serverless.
	warehouse string
	schedule  string
	// prefix names the shared objects (<prefix>_stage, <prefix>_parquet).
	prefix string
	format files.Format
}

func newSnowflakeCmd(stdout, stderr io.Writer) *cobra.Command {
	var f snowflakeFlags
	cmd := &cobra.Command{
		Use:   "snowflake-sql --sink URL",
		Short: "Print the Snowflake stage, pipe and MERGE task SQL for a files sink",
		Long: `Prints the Snowflake SQL that loads the files sink's change files into
deduplicated tables: a file format and stage, and per table a landing
table <t>_changes fed by a Snowpipe with AUTO_INGEST, the mirror table <t>,
a stream on the landing table, a task whose MERGE keeps the newest
_hw_updated per primary key (deletes delete, older versions never win), and
a table function <t>_asof(hlc) that returns the table as of any HLC.`,
		Example: `  highwater snowflake-sql --sink s3://bucket/highwater?region=us-east-1 --storage-integration s3_int`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.sinkURL == "" {
				return usagef(cmd, "snowflake-sql: --sink is required")
			}
			return snowflakeSQL(cmd.Context(), f, stdout)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&f.sinkURL, "sink", "", "the files sink (s3://bucket/prefix?... or file:///dir) whose table catalog gives the columns")
	fs.StringVar(&f.stageURL, "stage-url", "", "URL of the Snowflake stage (default: the s3:// sink's bucket and prefix)")
	fs.StringVar(&f.tableList, "tables", "", "comma-separated source tables (default: every table the sink has written)")
	fs.StringVar(&f.integration, "storage-integration", "", "Snowflake storage integration for the stage")
	fs.StringVar(&f.sns, "aws-sns-topic", "", "ARN of the SNS topic the bucket sends its object-created events to, if any")
	fs.StringVar(&f.warehouse, "warehouse", "", "warehouse for the merge tasks (default: serverless tasks)")
	fs.StringVar(&f.schedule, "schedule", "1 MINUTE", "how often the merge tasks look at their stream")
	fs.StringVar(&f.prefix, "prefix", "highwater", "name prefix of the stage and file format")
	return cmd
}

// snowflakeFlags are snowflake-sql's flags.
type snowflakeFlags struct {
	sinkURL, stageURL, tableList, integration, sns, warehouse, schedule, prefix string
}

func snowflakeSQL(ctx context.Context, f snowflakeFlags, stdout io.Writer) error {
	cfg, err := files.ParseURL(f.sinkURL)
	if err != nil {
		return fmt.Errorf("snowflake-sql: %w", redact.Error(err, f.sinkURL))
	}
	opts := snowflakeOptions{stageURL: f.stageURL, integration: f.integration, snsTopic: f.sns, warehouse: f.warehouse,
		schedule: f.schedule, prefix: f.prefix}
	if opts.stageURL == "" {
		if !strings.HasPrefix(cfg.Root, "s3://") {
			return &usageError{err: errors.New("snowflake-sql: a file:// sink needs --stage-url (where the files are uploaded for Snowflake)"), cmd: "highwater snowflake-sql"}
		}
		opts.stageURL = cfg.Root
	}
	w, err := files.OpenConfig(ctx, cfg, zap.NewNop())
	if err != nil {
		return fmt.Errorf("snowflake-sql: %w", redact.Error(err, f.sinkURL))
	}
	defer w.Close()
	all, err := w.Tables(ctx)
	if err != nil {
		return fmt.Errorf("snowflake-sql: %w", err)
	}
	tables := all
	if f.tableList != "" {
		tables = nil
		for _, name := range strings.Split(f.tableList, ",") {
			name = strings.TrimSpace(name)
			found := false
			for _, t := range all {
				if t.Name == name {
					tables, found = append(tables, t), true
				}
			}
			if !found {
				return fmt.Errorf("snowflake-sql: table %q has no files under %s yet", name, w.Location(""))
			}
		}
	}
	if len(tables) == 0 {
		return fmt.Errorf("snowflake-sql: no tables under %s yet: run highwater into the sink first", w.Location(""))
	}
	// The format the files were written in.
	opts.format = tables[0].Format
	for _, t := range tables[1:] {
		if t.Format != opts.format {
			return fmt.Errorf("snowflake-sql: tables %q and %q were written as %s and %s: generate them separately with --tables", tables[0].Name, t.Name, opts.format, t.Format)
		}
	}
	return writeSnowflakeSQL(stdout, opts, tables)
}

var plainIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// sfName renders a name the user gave (a warehouse, an integration) as
// Snowflake resolves it when typed unquoted, quoting only what must be.
func sfName(s string) string {
	if plainIdent.MatchString(s) {
		return s
	}
	return sqlident.Quote(s)
}

// sfString quotes a Snowflake string literal. Backslash starts an escape
// sequence in Snowflake's single-quoted strings, so it is doubled; control
// characters and line separators become \uhhhh escapes, so that a literal
// never spans lines.
func sfString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch {
		case r == '\'':
			b.WriteString("''")
		case r == '\\':
			b.WriteString(`\\`)
		case unsafeInText(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// unsafeInText reports whether r could end a line (or confuse a reader)
// if printed raw: C0 and C1 controls, DEL, the Unicode line and paragraph
// separators and invalid UTF-8.
func unsafeInText(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError
}

// sfComment renders a name (or URL) for a -- comment: Go-quoted, so that a
// newline or any other control character in it shows as an escape and can
// never end the comment and start SQL of its own.
func sfComment(s string) string { return strconv.Quote(s) }

// safeStagePath matches a table directory the files sink writes: escaped
// names, in Kafka's topic alphabet.
var safeStagePath = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// snowflakeType maps a column as the files hold it to a Snowflake type.
func snowflakeType(c files.ColumnInfo) (string, error) {
	p := c.Parquet
	switch {
	case p == "INT64":
		return "NUMBER(19,0)", nil
	case p == "DOUBLE":
		return "FLOAT", nil
	case p == "BOOLEAN":
		return "BOOLEAN", nil
	case p == "BINARY":
		return "BINARY", nil
	case p == "STRING":
		return "VARCHAR", nil
	case p == "JSON":
		// The JSON text as is; PARSE_JSON() it in a view when a VARIANT
		// is wanted.
		return "VARCHAR", nil
	case p == "DATE":
		return "DATE", nil
	case p == "TIME(MICROS)":
		return "TIME(6)", nil
	case p == "TIMESTAMP(MICROS)":
		return "TIMESTAMP_NTZ(6)", nil
	case p == "TIMESTAMP(MICROS,UTC)":
		return "TIMESTAMP_LTZ(6)", nil
	case strings.HasPrefix(p, "DECIMAL("):
		return "NUMBER" + strings.TrimPrefix(p, "DECIMAL"), nil
	case strings.HasPrefix(p, "LIST<"):
		return "ARRAY", nil
	}
	return "", fmt.Errorf("column %q: no Snowflake type for %s", c.Name, p)
}

func writeSnowflakeSQL(out io.Writer, o snowflakeOptions, tables []files.TableInfo) error {
	var b strings.Builder
	// The shared objects have plain (unquoted, case-insensitive) names, so
	// that FORMAT_NAME and stage references need no quoting rules.
	if !plainIdent.MatchString(o.prefix) {
		return fmt.Errorf("snowflake-sql: --prefix %q: want letters, digits and underscores, starting with a letter or underscore", o.prefix)
	}
	stage, ff := o.prefix+"_stage", o.prefix+"_"+string(o.format)
	url := o.stageURL
	if !strings.HasSuffix(url, "/") {
		url += "/"
	}
	fmt.Fprintf(&b, "-- Generated by highwater snowflake-sql from the table catalog of %s.\n", sfComment(url))
	b.WriteString("-- Run in the target database and schema. Re-run after a schema change: the tasks are\n")
	b.WriteString("-- replaced; add new columns to both tables with ALTER TABLE ... ADD COLUMN first.\n\n")
	if o.format == files.NDJSON {
		fmt.Fprintf(&b, "CREATE FILE FORMAT IF NOT EXISTS %s\n  TYPE = JSON\n  COMPRESSION = AUTO;\n\n", ff)
	} else {
		fmt.Fprintf(&b, "CREATE FILE FORMAT IF NOT EXISTS %s\n  TYPE = PARQUET\n  USE_LOGICAL_TYPE = TRUE\n  BINARY_AS_TEXT = FALSE\n  USE_VECTORIZED_SCANNER = TRUE;\n\n", ff)
	}
	fmt.Fprintf(&b, "CREATE STAGE IF NOT EXISTS %s\n  URL = %s\n", stage, sfString(url))
	if o.integration != "" {
		fmt.Fprintf(&b, "  STORAGE_INTEGRATION = %s\n", sfName(o.integration))
	} else {
		b.WriteString("  -- STORAGE_INTEGRATION = <your storage integration>\n")
	}
	fmt.Fprintf(&b, "  FILE_FORMAT = (FORMAT_NAME = %s);\n", sfString(ff))
	for _, t := range tables {
		if err := writeSnowflakeTable(&b, o, t, stage); err != nil {
			return fmt.Errorf("snowflake-sql: table %q: %w", t.Name, err)
		}
	}
	b.WriteString("\n-- Snowpipe AUTO_INGEST on S3: point the bucket's s3:ObjectCreated:* notifications (prefix\n")
	b.WriteString("-- of each table's directory) at the pipes' notification_channel from SHOW PIPES.\n")
	_, err := io.WriteString(out, b.String())
	return err
}

func writeSnowflakeTable(b *strings.Builder, o snowflakeOptions, t files.TableInfo, stage string) error {
	if len(t.PrimaryKey) == 0 {
		return errors.New("no primary key in the catalog")
	}
	// The directory comes from the catalog; the sink only writes escaped
	// names, so anything else is refused rather than printed into SQL.
	if !safeStagePath.MatchString(t.Dir) || strings.Trim(t.Dir, ".") == "" {
		return fmt.Errorf("directory %q in the catalog is not an escaped table name", t.Dir)
	}
	name, changes := sqlident.Quote(t.Name), sqlident.Quote(t.Name+sinks.ChangesSuffix)
	pipe, stream, task := sqlident.Quote(t.Name+"_pipe"), sqlident.Quote(t.Name+sinks.ChangesSuffix+"_stream"), sqlident.Quote(t.Name+"_merge")
	upd, op := sqlident.Quote(sinks.UpdatedColumn), sqlident.Quote(sinks.OpColumn)
	ext := ".parquet"
	if o.format == files.NDJSON {
		ext = ".ndjson"
	}
	isKey := map[string]bool{}
	for _, k := range t.PrimaryKey {
		isKey[k] = true
	}
	var defs, cols []string
	for _, c := range t.Columns {
		typ, err := snowflakeType(c)
		if err != nil {
			return err
		}
		def := sqlident.Quote(c.Name) + " " + typ
		if isKey[c.Name] {
			def += " NOT NULL"
		}
		defs = append(defs, def)
		cols = append(cols, sqlident.Quote(c.Name))
	}
	keys := make([]string, len(t.PrimaryKey))
	for i, k := range t.PrimaryKey {
		keys[i] = sqlident.Quote(k)
	}
	join := func(parts []string, f func(string) string, sep string) string {
		out := make([]string, len(parts))
		for i, p := range parts {
			out[i] = f(p)
		}
		return strings.Join(out, sep)
	}
	prefixed := func(p string) func(string) string { return func(s string) string { return p + s } }
	fmt.Fprintf(b, "\n-- Table %s: every version, as the files hold them.\n", sfComment(t.Name))
	fmt.Fprintf(b, "CREATE TABLE IF NOT EXISTS %s (\n  %s,\n  %s NUMBER(38,10) NOT NULL,\n  %s VARCHAR NOT NULL);\n\n",
		changes, strings.Join(defs, ",\n  "), upd, op)
	fmt.Fprintf(b, "CREATE PIPE IF NOT EXISTS %s\n  AUTO_INGEST = TRUE\n", pipe)
	if o.snsTopic != "" {
		fmt.Fprintf(b, "  AWS_SNS_TOPIC = %s\n", sfString(o.snsTopic))
	}
	// The stage's file format applies.
	// The location is quoted: an escaped name may hold "--", which starts
	// a comment in unquoted SQL.
	fmt.Fprintf(b, "  AS COPY INTO %s\n  FROM %s\n  PATTERN = %s\n  MATCH_BY_COLUMN_NAME = CASE_SENSITIVE;\n\n",
		changes, sfString("@"+stage+"/"+t.Dir+"/"), sfString(`.*[.]`+strings.TrimPrefix(ext, ".")+`.*`))
	fmt.Fprintf(b, "-- Table %s: the newest version of each row; deleted rows are absent.\n", sfComment(t.Name))
	fmt.Fprintf(b, "CREATE TABLE IF NOT EXISTS %s (\n  %s,\n  %s NUMBER(38,10) NOT NULL,\n  PRIMARY KEY (%s));\n\n",
		name, strings.Join(defs, ",\n  "), upd, strings.Join(keys, ", "))
	fmt.Fprintf(b, "CREATE STREAM IF NOT EXISTS %s ON TABLE %s APPEND_ONLY = TRUE;\n\n", stream, changes)
	fmt.Fprintf(b, "CREATE OR REPLACE TASK %s\n", task)
	if o.warehouse != "" {
		fmt.Fprintf(b, "  WAREHOUSE = %s\n", sfName(o.warehouse))
	}
	fmt.Fprintf(b, "  SCHEDULE = %s\n  WHEN SYSTEM$STREAM_HAS_DATA(%s)\nAS\n", sfString(o.schedule), sfString(stream))
	// The source keeps a streamed version only if the landing table holds
	// nothing newer for its key (so a late file never brings back an older
	// version or a deleted row), once per (key, _hw_updated).
	var set, ins, vals []string
	for _, c := range t.Columns {
		if !isKey[c.Name] {
			set = append(set, sqlident.Quote(c.Name)+" = src."+sqlident.Quote(c.Name))
		}
		ins = append(ins, sqlident.Quote(c.Name))
		vals = append(vals, "src."+sqlident.Quote(c.Name))
	}
	set = append(set, upd+" = src."+upd)
	ins = append(ins, upd)
	vals = append(vals, "src."+upd)
	on := make([]string, len(keys))
	newer := make([]string, len(keys))
	for i, k := range keys {
		on[i] = "tgt." + k + " = src." + k
		newer[i] = "c." + k + " = s." + k
	}
	fmt.Fprintf(b, `MERGE INTO %s AS tgt
USING (
  SELECT %s, s.%s, s.%s
  FROM %s AS s
  WHERE NOT EXISTS (
    SELECT 1 FROM %s AS c
    WHERE %s AND c.%s > s.%s)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY %s ORDER BY s.%s DESC) = 1
) AS src
ON %s
WHEN MATCHED AND src.%s = 'delete' AND tgt.%s <= src.%s THEN DELETE
WHEN MATCHED AND src.%s <> 'delete' AND tgt.%s <= src.%s THEN UPDATE SET
  %s
WHEN NOT MATCHED AND src.%s <> 'delete' THEN INSERT (%s)
  VALUES (%s);

ALTER TASK %s RESUME;
`,
		name, join(cols, prefixed("s."), ", "), upd, op, stream, changes,
		strings.Join(newer, " AND "), upd, upd,
		join(keys, prefixed("s."), ", "), upd,
		strings.Join(on, " AND "),
		op, upd, upd, op, upd, upd,
		strings.Join(set, ",\n  "),
		op, strings.Join(ins, ", "), strings.Join(vals, ", "), task)
	return writeSnowflakeAsOf(b, t)
}
