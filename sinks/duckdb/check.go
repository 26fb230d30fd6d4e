package duckdb

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/highwater-dev/highwater/internal/jsontext"
	"github.com/highwater-dev/highwater/internal/redact"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// CheckChange reports whether DuckDB can store ch, one row version of
// table, before a window's transaction sees it (the processor's
// ChangeChecker): left to the Appender or the merge, one such value fails
// the whole window, every retry alike; refused here, it makes its record a
// poison record (--on-error) and the window goes on without it.
//
// It refuses what Write or Commit would fail on for this row alone: a NULL
// primary-key column, text that is not valid UTF-8 (VARCHAR requires it;
// a NUL character is stored), JSON that does not parse or holds a UTF-16
// surrogate escape outside a pair, a DECIMAL(p,s) value with more than s
// fractional digits or more than p digits, a UUID that does not parse, a
// TIME outside 00:00..24:00, a TIMESTAMP outside the years -290307..294246.
// Errors quote at most 64 bytes of a value.
func (w *Writer) CheckChange(table *model.Table, ch sinks.Change) error {
	if table == nil {
		return errors.New("no table")
	}
	if len(ch.Values) != len(table.Columns) {
		return fmt.Errorf("%d values for %d columns", len(ch.Values), len(table.Columns))
	}
	for i, c := range table.Columns {
		key := slices.Contains(table.Key, i)
		v := ch.Values[i]
		if ch.Op == sinks.OpDelete && !key {
			continue // a delete carries only its key
		}
		if key && (v == nil || storedAsNull(c.Type, v)) {
			return fmt.Errorf("primary-key column %q is NULL (or a value DuckDB stores as NULL)", c.Name)
		}
		if err := checkValue(c.Type, v); err != nil {
			return fmt.Errorf("column %q (%s): %w", c.Name, c.Type, err)
		}
	}
	return nil
}

// storedAsNull reports whether v is a NaN or ±Infinity decimal for a
// DuckDB DECIMAL column, which the converter stores as NULL.
func storedAsNull(t model.Type, v any) bool {
	d, ok := v.(model.Decimal)
	return ok && t.Kind == model.KindDecimal && !sinks.DecimalAsText(t) && (d.Special != "" || d.Unscaled == nil)
}

// The years a DuckDB TIMESTAMP holds, as the duckdb-go Appender checks them.
const (
	duckMinYear = -290307
	duckMaxYear = 294246
)

// checkValue reports whether DuckDB can store v (Go types as documented on
// model.Kind) in a column of type t. A value of another Go type is left
// to the converter, which fails Write with it: that is highwater's bug, not
// the record's.
func checkValue(t model.Type, v any) error {
	if v == nil {
		return nil
	}
	switch t.Kind {
	case model.KindString:
		if x, ok := v.(string); ok && !utf8.ValidString(x) {
			return fmt.Errorf("string %s is not valid UTF-8, which VARCHAR requires", redact.Clip(x))
		}
	case model.KindJSON:
		if x, ok := v.(string); ok {
			if !utf8.ValidString(x) {
				return fmt.Errorf("JSON %s is not valid UTF-8", redact.Clip(x))
			}
			if !json.Valid([]byte(x)) {
				return fmt.Errorf("JSON %s is not valid JSON text, which DuckDB's JSON refuses", redact.Clip(x))
			}
			if _, lone := jsontext.Escapes(x); lone {
				return fmt.Errorf("JSON %s holds a UTF-16 surrogate escape outside a pair, which DuckDB's JSON refuses", redact.Clip(x))
			}
		}
	case model.KindUUID:
		if x, ok := v.(string); ok {
			if _, err := sinks.ParseUUID(x); err != nil {
				return fmt.Errorf("invalid UUID %s", redact.Clip(x))
			}
		}
	case model.KindTime:
		if x, ok := v.(time.Duration); ok && (x < 0 || x > 24*time.Hour) {
			return fmt.Errorf("TIME value %s out of range", x)
		}
	case model.KindTimestamp, model.KindTimestampTZ:
		if x, ok := v.(time.Time); ok {
			if y := x.UTC().Year(); y < duckMinYear || y > duckMaxYear {
				return fmt.Errorf("timestamp in year %d is outside DuckDB's years %d..%d", y, duckMinYear, duckMaxYear)
			}
		}
	case model.KindDecimal:
		if x, ok := v.(model.Decimal); ok {
			return checkDecimal(t, x)
		}
	case model.KindArray:
		if x, ok := v.([]any); ok && t.Elem != nil {
			for i, e := range x {
				if err := checkValue(*t.Elem, e); err != nil {
					return fmt.Errorf("element %d: %w", i, err)
				}
			}
		}
	}
	return nil
}

// checkDecimal reports whether a DuckDB DECIMAL(p,s) column holds d: at
// most s fractional digits (the converter does not round) and at most p
// digits. Wider decimals are stored as text, specials as NULL.
func checkDecimal(t model.Type, d model.Decimal) error {
	if sinks.DecimalAsText(t) || d.Special != "" || d.Unscaled == nil {
		return nil
	}
	// The common case, an int64 at the column's scale, allocates nothing.
	if d.Scale == t.Scale && d.Unscaled.IsInt64() && d.Unscaled.Int64() != math.MinInt64 && t.Precision <= 18 {
		u := d.Unscaled.Int64()
		if u < 0 {
			u = -u
		}
		if bound := int64(math.Pow10(t.Precision)); u >= bound {
			return fmt.Errorf("decimal %s does not fit %s", redact.Clip(d.String()), t)
		}
		return nil
	}
	v, err := d.Rescale(t.Scale)
	if err != nil {
		return fmt.Errorf("decimal with more than %d fractional digits does not fit %s", t.Scale, t)
	}
	if new(big.Int).Abs(v).Cmp(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Precision)), nil)) >= 0 {
		return fmt.Errorf("decimal %s does not fit %s", redact.Clip(d.String()), t)
	}
	return nil
}
