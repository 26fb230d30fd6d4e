// Package sqlident quotes SQL identifiers the way DuckDB, PostgreSQL,
// CockroachDB and Snowflake all read a delimited identifier: in double
// quotes, with each embedded double quote doubled. It is the one place
// that rule lives; every table and column name from a schema that reaches
// SQL text goes through Quote.
package sqlident

import "strings"

// Quote returns name as a delimited SQL identifier: "name", with every "
// in name doubled. A delimited identifier keeps its case and may hold any
// character but NUL, which the writers refuse before they quote.
func Quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
