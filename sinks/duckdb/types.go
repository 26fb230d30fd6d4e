package duckdb

import (
	"database/sql/driver"
	"fmt"
	"math/big"
	"strings"
	"time"

	duck "github.com/duckdb/duckdb-go/v2"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// warehouseType returns the DuckDB column type for t, spelt as DuckDB's
// catalog (duckdb_columns().data_type) reports it, so that an existing
// column's type can be compared with a string compare.
func warehouseType(t model.Type) (string, error) {
	return duckType(t, false)
}

// stagingType is warehouseType for the TEMP staging tables: JSON is staged
// as VARCHAR so that CockroachDB's JSON text reaches the warehouse
// unchanged (the Appender would JSON-encode a Go string once more).
func stagingType(t model.Type) (string, error) {
	return duckType(t, true)
}

func duckType(t model.Type, staging bool) (string, error) {
	switch t.Kind {
	case model.KindInt:
		return "BIGINT", nil
	case model.KindFloat:
		return "DOUBLE", nil
	case model.KindBool:
		return "BOOLEAN", nil
	case model.KindString:
		return "VARCHAR", nil
	case model.KindBytes:
		return "BLOB", nil
	case model.KindDecimal:
		if sinks.DecimalAsText(t) {
			return "VARCHAR", nil
		}
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale), nil
	case model.KindDate:
		return "DATE", nil
	case model.KindTime:
		return "TIME", nil
	case model.KindTimestamp:
		return "TIMESTAMP", nil
	case model.KindTimestampTZ:
		return "TIMESTAMP WITH TIME ZONE", nil
	case model.KindUUID:
		return "UUID", nil
	case model.KindJSON:
		if staging {
			return "VARCHAR", nil
		}
		return "JSON", nil
	case model.KindInterval:
		return "INTERVAL", nil
	case model.KindArray:
		if t.Elem == nil {
			return "", fmt.Errorf("array type without element type")
		}
		e, err := duckType(*t.Elem, staging)
		if err != nil {
			return "", err
		}
		return e + "[]", nil
	}
	return "", fmt.Errorf("unsupported column type %s", t)
}

// converter turns a decoded value (Go types as documented on model.Kind)
// into a value the DuckDB Appender accepts for the staging column.
type converter struct {
	t model.Type
	// bound is 10^precision, the first unscaled value a DECIMAL column
	// cannot hold.
	bound *big.Int
	elem  *converter
}

func newConverter(t model.Type) *converter {
	c := &converter{t: t}
	if t.Kind == model.KindDecimal && !sinks.DecimalAsText(t) {
		c.bound = new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Precision)), nil)
	}
	if t.Kind == model.KindArray && t.Elem != nil {
		c.elem = newConverter(*t.Elem)
	}
	return c
}

var midnight = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// convert returns v for the Appender, and the number of non-finite
// decimals it replaced by NULL.
func (c *converter) convert(v any) (driver.Value, int, error) {
	if v == nil {
		return nil, 0, nil
	}
	bad := func() (driver.Value, int, error) {
		return nil, 0, fmt.Errorf("%s column: unexpected Go value of type %T", c.t, v)
	}
	switch c.t.Kind {
	case model.KindInt:
		switch x := v.(type) {
		case int64:
			return x, 0, nil
		case int:
			return int64(x), 0, nil
		case int32:
			return int64(x), 0, nil
		}
	case model.KindFloat:
		switch x := v.(type) {
		case float64:
			return x, 0, nil
		case float32:
			return float64(x), 0, nil
		}
	case model.KindBool:
		if x, ok := v.(bool); ok {
			return x, 0, nil
		}
	case model.KindString, model.KindJSON:
		switch x := v.(type) {
		case string:
			return text(x), 0, nil
		case []byte:
			return x, 0, nil
		}
	case model.KindBytes:
		switch x := v.(type) {
		case []byte:
			return x, 0, nil
		case string:
			return []byte(x), 0, nil
		}
	case model.KindDecimal:
		d, ok := v.(model.Decimal)
		if !ok {
			return bad()
		}
		return c.decimal(d)
	case model.KindDate, model.KindTimestamp, model.KindTimestampTZ:
		if x, ok := v.(time.Time); ok {
			return x.UTC(), 0, nil
		}
	case model.KindTime:
		if x, ok := v.(time.Duration); ok {
			if x < 0 || x > 24*time.Hour {
				return nil, 0, fmt.Errorf("TIME value %s out of range", x)
			}
			return midnight.Add(x), 0, nil
		}
	case model.KindUUID:
		switch x := v.(type) {
		case string:
			u, err := sinks.ParseUUID(x)
			if err != nil {
				return nil, 0, err
			}
			return duck.UUID(u), 0, nil
		case []byte:
			if len(x) == 16 {
				var u duck.UUID
				copy(u[:], x)
				return u, 0, nil
			}
		}
	case model.KindInterval:
		if x, ok := v.(model.Interval); ok {
			return duck.Interval{Months: x.Months, Days: x.Days, Micros: x.Micros}, 0, nil
		}
	case model.KindArray:
		x, ok := v.([]any)
		if !ok || c.elem == nil {
			return bad()
		}
		out := make([]any, len(x))
		n := 0
		for i, e := range x {
			ev, en, err := c.elem.convert(e)
			if err != nil {
				return nil, 0, fmt.Errorf("element %d: %w", i, err)
			}
			out[i] = ev
			n += en
		}
		return out, n, nil
	}
	return bad()
}

func (c *converter) decimal(d model.Decimal) (driver.Value, int, error) {
	if c.bound == nil {
		// VARCHAR column: the exact text, NaN and Infinity included.
		return d.String(), 0, nil
	}
	if d.Special != "" || d.Unscaled == nil {
		// DuckDB's DECIMAL has no NaN or Infinity.
		return nil, 1, nil
	}
	v, err := d.Rescale(c.t.Scale)
	if err != nil {
		return nil, 0, err
	}
	if new(big.Int).Abs(v).Cmp(c.bound) >= 0 {
		return nil, 0, fmt.Errorf("decimal %s does not fit %s", d, c.t)
	}
	return duck.Decimal{Width: uint8(c.t.Precision), Scale: uint8(c.t.Scale), Value: v}, 0, nil
}

// text returns s for a VARCHAR column. The Appender passes a Go string
// to DuckDB as a C string, which would cut it at a NUL byte; a []byte is
// passed with its length.
func text(s string) driver.Value {
	if strings.IndexByte(s, 0) >= 0 {
		return []byte(s)
	}
	return s
}
