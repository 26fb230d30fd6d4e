package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/highwater-dev/highwater/internal/jsontext"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// CheckChange reports whether PostgreSQL can store ch, one row version of
// table, before a window's transaction sees it (the processor's
// ChangeChecker). CockroachDB holds values PostgreSQL refuses: a NUL
// character in STRING text or as \u0000 in JSONB, and a hostile or
// corrupt record can carry a value beyond a PostgreSQL type's range. Left
// to COPY or the merge, one such value fails the whole window, every
// retry alike; refused here, it makes its record a poison record
// (--on-error) and the window goes on without it.
//
// It refuses what Write would fail on for this row alone: a name with a
// NUL byte, a NULL primary-key column, text with NUL or invalid UTF-8,
// JSON that does not parse or holds \u0000 or a lone surrogate escape, a
// UUID that does not parse, a TIME outside 00:00..24:00, a DATE or
// TIMESTAMP outside PostgreSQL's range, a DECIMAL beyond NUMERIC's range
// or (rounded to the column's scale) its precision. Errors quote at most
// 64 bytes of a value.
func (w *Writer) CheckChange(table *model.Table, ch sinks.Change) error {
	if table == nil {
		return errors.New("no table")
	}
	if i := strings.IndexByte(table.Name, 0); i >= 0 {
		return fmt.Errorf("table name %q contains a NUL byte, which a PostgreSQL identifier cannot hold", truncate(table.Name))
	}
	if len(ch.Values) != len(table.Columns) {
		return fmt.Errorf("%d values for %d columns", len(ch.Values), len(table.Columns))
	}
	for i, c := range table.Columns {
		if strings.IndexByte(c.Name, 0) >= 0 {
			return fmt.Errorf("column name %q contains a NUL byte, which a PostgreSQL identifier cannot hold", truncate(c.Name))
		}
		key := slices.Contains(table.Key, i)
		v := ch.Values[i]
		if ch.Op == sinks.OpDelete && !key {
			continue // a delete carries only its key
		}
		if key && (v == nil || isNonFiniteIn(c.Type, v)) {
			return fmt.Errorf("primary-key column %q is NULL (or a value PostgreSQL cannot store)", c.Name)
		}
		if err := checkValue(c.Type, v); err != nil {
			return fmt.Errorf("column %q (%s): %w", c.Name, c.Type, err)
		}
	}
	return nil
}

// isNonFiniteIn reports whether v is ±Infinity for a NUMERIC(p,s) column,
// which toPG stores as NULL.
func isNonFiniteIn(t model.Type, v any) bool {
	d, ok := v.(model.Decimal)
	return ok && t.Kind == model.KindDecimal && d.Special != "" && d.Special != "NaN" && constrainedDecimal(t)
}

// PostgreSQL's date and timestamp ranges: 4714-11-24 BC (Julian day 0, year
// -4713 in Go's proleptic calendar) through 5874897-12-31 for dates and
// 294276-12-31 23:59:59.999999 for timestamps.
var (
	pgMinTime      = time.Date(-4713, 11, 24, 0, 0, 0, 0, time.UTC)
	pgMaxDate      = time.Date(5874897, 12, 31, 0, 0, 0, 0, time.UTC)
	pgMaxTimestamp = time.Date(294276, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// NUMERIC's limits: 131072 digits before the decimal point (a base-10000
// weight of at most 32767) and a display scale of at most 16383.
const (
	pgNumericMaxIntDigits = 131072
	pgNumericMaxScale     = 16383
)

// checkValue reports whether PostgreSQL can store v (Go types as documented
// on model.Kind) in a column of type t. A value of another Go type is
// left to toPG, which fails Write with it: that is highwater's bug, not the
// record's.
func checkValue(t model.Type, v any) error {
	if v == nil {
		return nil
	}
	switch t.Kind {
	case model.KindString:
		if x, ok := v.(string); ok {
			return checkText(x)
		}
	case model.KindJSON:
		if x, ok := v.(string); ok {
			if err := checkJSON(x); err != nil {
				return err
			}
			if !json.Valid([]byte(x)) {
				return fmt.Errorf("JSON %q is not valid JSON text, which PostgreSQL JSONB refuses", truncate(x))
			}
		}
	case model.KindUUID:
		if x, ok := v.(string); ok {
			_, err := sinks.ParseUUID(x)
			return err
		}
	case model.KindTime:
		if x, ok := v.(time.Duration); ok && (x < 0 || x > 24*time.Hour) {
			return fmt.Errorf("time of day %v is outside 00:00..24:00", x)
		}
	case model.KindDate:
		if x, ok := v.(time.Time); ok && (x.Before(pgMinTime) || x.After(pgMaxDate)) {
			return fmt.Errorf("date %s is outside PostgreSQL's range (4714-11-24 BC to 5874897-12-31)", x.Format("2006-01-02"))
		}
	case model.KindTimestamp, model.KindTimestampTZ:
		if x, ok := v.(time.Time); ok && (x.Before(pgMinTime) || x.After(pgMaxTimestamp)) {
			return fmt.Errorf("timestamp %s is outside PostgreSQL's range (4714-11-24 BC to 294276-12-31)", x.UTC().Format(time.RFC3339Nano))
		}
	case model.KindDecimal:
		if x, ok := v.(model.Decimal); ok {
			return checkDecimal(t, x)
		}
	case model.KindArray:
		if x, ok := v.([]any); ok && t.Elem != nil {
			for i, e := range x {
				if err := checkValue(*t.Elem, e); err != nil {
					return fmt.Errorf("array element %d: %w", i, err)
				}
			}
		}
	}
	return nil
}

// checkText reports whether PostgreSQL TEXT can hold s: no NUL character,
// valid UTF-8 (the database encoding highwater requires).
func checkText(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("string %q contains a NUL character, which PostgreSQL TEXT cannot hold", truncate(s))
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("string %q is not valid UTF-8", truncate(s))
	}
	return nil
}

// checkJSON reports whether PostgreSQL JSONB can hold the JSON text s as
// CockroachDB sends it: JSONB refuses the escape \u0000 (it cannot be
// converted to text) and a UTF-16 surrogate escape that is not part of a
// pair.
func checkJSON(s string) error {
	if err := checkText(s); err != nil {
		return err
	}
	nul, lone := jsontext.Escapes(s)
	if nul {
		return fmt.Errorf("JSON %q contains \\u0000, which PostgreSQL JSONB cannot hold", truncate(s))
	}
	if lone {
		return fmt.Errorf("JSON %q contains a UTF-16 surrogate escape outside a pair, which PostgreSQL JSONB refuses", truncate(s))
	}
	return nil
}

// checkDecimal reports whether PostgreSQL stores d in a column of type t:
// a known special value, a scale and integer part within NUMERIC's limits,
// and for NUMERIC(p,s) a value that, rounded half away from zero to s
// decimal places as PostgreSQL does, has at most p digits. ±Infinity in
// NUMERIC(p,s) is stored as NULL (toPG), which is fine outside the key.
func checkDecimal(t model.Type, d model.Decimal) error {
	if _, err := decimalToPG(d); err != nil {
		return err
	}
	if d.Special != "" || d.Unscaled == nil || d.Unscaled.Sign() == 0 {
		return nil
	}
	// The common case, a value at the column's scale that fits an int64,
	// costs no allocation.
	if d.Scale == t.Scale && d.Unscaled.IsInt64() && d.Unscaled.Int64() != math.MinInt64 && t.Precision >= 1 && t.Precision <= 18 && constrainedDecimal(t) {
		u := d.Unscaled.Int64()
		if u < 0 {
			u = -u
		}
		if u >= pow10[t.Precision] {
			return fmt.Errorf("decimal %s does not fit NUMERIC(%d,%d)", truncate(d.String()), t.Precision, t.Scale)
		}
		return nil
	}
	abs := new(big.Int).Abs(d.Unscaled)
	if digits := decimalDigits(abs); digits-d.Scale > pgNumericMaxIntDigits {
		return fmt.Errorf("decimal with %d digits before the point is beyond PostgreSQL NUMERIC's %d", digits-d.Scale, pgNumericMaxIntDigits)
	}
	if !constrainedDecimal(t) {
		return nil
	}
	// abs at the column's scale, rounded half away from zero.
	v := abs
	switch {
	case d.Scale < t.Scale:
		v = new(big.Int).Mul(abs, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Scale-d.Scale)), nil))
	case d.Scale > t.Scale:
		div := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale-t.Scale)), nil)
		q, r := new(big.Int).QuoRem(abs, div, new(big.Int))
		if r.Lsh(r, 1).Cmp(div) >= 0 {
			q.Add(q, big.NewInt(1))
		}
		v = q
	}
	if decimalDigits(v) > t.Precision {
		return fmt.Errorf("decimal %s does not fit NUMERIC(%d,%d)", truncate(d.String()), t.Precision, t.Scale)
	}
	return nil
}

// pow10 holds 10^0 through 10^18.
var pow10 = func() (p [19]int64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// decimalDigits returns the number of decimal digits of x > 0.
func decimalDigits(x *big.Int) int {
	if x.IsUint64() {
		n, u := 1, x.Uint64()
		for ; u >= 10; u /= 10 {
			n++
		}
		return n
	}
	// log10(2) ≈ 0.30103: the estimate is exact or one short; a comparison
	// with the power of ten settles it.
	n := int(float64(x.BitLen())*0.30102999566398) + 1
	if x.Cmp(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n-1)), nil)) < 0 {
		return n - 1
	}
	if x.Cmp(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)) >= 0 {
		return n + 1
	}
	return n
}
