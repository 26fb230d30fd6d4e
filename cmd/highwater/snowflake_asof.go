package main

import (
	"fmt"
	"strings"

	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/files"
)

// writeSnowflakeAsOf writes the time-travel function of a table: a SQL
// UDTF <t>_asof(hlc NUMBER(38,10)) over the landing table <t>_changes that
// returns the table as of hlc (per key the newest version at or below it,
// unless a delete), with the mirror table's columns. Functions live apart
// from tables in Snowflake, and each table's name is its own, so no two
// functions share a name.
func writeSnowflakeAsOf(b *strings.Builder, t files.TableInfo) error {
	fn, changes := sqlident.Quote(sinks.AsOfName(t.Name)), sqlident.Quote(t.Name+sinks.ChangesSuffix)
	upd, op := sqlident.Quote(sinks.UpdatedColumn), sqlident.Quote(sinks.OpColumn)
	var outs, sel []string
	// The argument is unquoted, so Snowflake resolves it upper-cased; every
	// column is referenced qualified, and the argument takes a name no
	// column has.
	arg := "hlc"
	taken := map[string]bool{}
	for _, c := range t.Columns {
		taken[c.Name] = true
	}
	for i := 1; taken[strings.ToUpper(arg)]; i++ {
		arg = fmt.Sprintf("hlc_%d", i)
	}
	for _, c := range t.Columns {
		typ, err := snowflakeType(c)
		if err != nil {
			return err
		}
		outs = append(outs, sqlident.Quote(c.Name)+" "+typ)
		sel = append(sel, "v."+sqlident.Quote(c.Name))
	}
	outs = append(outs, upd+" NUMBER(38,10)")
	sel = append(sel, "v."+upd)
	keys := make([]string, len(t.PrimaryKey))
	for i, k := range t.PrimaryKey {
		keys[i] = "c." + sqlident.Quote(k)
	}
	body := fmt.Sprintf(`
  SELECT %s
  FROM (
    SELECT c.* FROM %s AS c
    WHERE c.%s <= %s
    QUALIFY ROW_NUMBER() OVER (PARTITION BY %s ORDER BY c.%s DESC) = 1
  ) AS v
  WHERE v.%s <> 'delete'
`, strings.Join(sel, ", "), changes, upd, arg, strings.Join(keys, ", "), upd, op)
	// A name holding $$ would end a dollar-quoted body: such a body is a
	// string literal instead.
	quoted := "$$" + body + "$$"
	if strings.Contains(body, "$$") {
		quoted = sfString(body)
	}
	fmt.Fprintf(b, "\n-- Table %s as of any HLC back to the start of the feed:\n", sfComment(t.Name))
	// (A name that could end the comment is not shown in it.)
	example := fn
	if strings.ContainsFunc(fn, unsafeInText) {
		example = "<the function below>"
	}
	fmt.Fprintf(b, "--   SELECT * FROM TABLE(%s(1700000000000000000.0000000000));\n", example)
	fmt.Fprintf(b, "CREATE OR REPLACE FUNCTION %s(%s NUMBER(38,10))\n  RETURNS TABLE (\n  %s)\nAS %s;\n",
		fn, arg, strings.Join(outs, ",\n  "), quoted)
	return nil
}
