package sinks

import (
	"github.com/highwater-dev/highwater/model"
)

// MaxDecimalPrecision is the widest DECIMAL(p,s) that a 128-bit decimal
// holds: DuckDB's widest DECIMAL, and the widest that Parquet readers
// (Snowflake, BigQuery, DuckDB, Spark) take as a number.
const MaxDecimalPrecision = 38

// DecimalAsText reports whether the DuckDB and files writers store a
// DECIMAL column of type t as its exact decimal text rather than as a
// DECIMAL(p,s): a decimal without a declared precision, wider than
// MaxDecimalPrecision, or with a scale outside 0..p.
func DecimalAsText(t model.Type) bool {
	return t.Precision < 1 || t.Precision > MaxDecimalPrecision || t.Scale < 0 || t.Scale > t.Precision
}
