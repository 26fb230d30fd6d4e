package simulator

import (
	"fmt"
	"strings"
	"time"

	"github.com/highwater-dev/highwater/hlc"
)

// parseDefault turns a column's DEFAULT expression into a function giving
// the value of a row written at an HLC. It understands literals and the
// functions changefeed tables commonly use.
func parseDefault(c *column) (func(*Sim, hlc.Timestamp) any, error) {
	expr := strings.TrimSpace(c.dflt)
	lower := strings.ToLower(expr)
	switch lower {
	case "null":
		return func(*Sim, hlc.Timestamp) any { return nil }, nil
	case "unique_rowid()":
		if c.typ.fam != famInt || c.typ.width != 64 {
			return nil, fmt.Errorf("unique_rowid() needs INT8, column is %s", c.typ.sql)
		}
		return func(s *Sim, ts hlc.Timestamp) any { return s.uniqueRowID(ts) }, nil
	case "now()", "current_timestamp()", "current_timestamp", "transaction_timestamp()":
		switch c.typ.fam {
		case famTimestamp, famTimestampTZ, famDate:
			t := c.typ
			return func(_ *Sim, ts hlc.Timestamp) any {
				v, _ := t.normalize(ts.Time()) // a time.Time always normalizes
				return v
			}, nil
		}
		return nil, fmt.Errorf("%s needs a timestamp column, column is %s", expr, c.typ.sql)
	case "gen_random_uuid()", "uuid_v4()":
		if c.typ.fam != famUUID {
			return nil, fmt.Errorf("%s needs a UUID column, column is %s", expr, c.typ.sql)
		}
		return func(s *Sim, _ hlc.Timestamp) any { return randomUUID(s.rng) }, nil
	}
	lit := expr
	if i := strings.Index(lit, ":::"); i > 0 {
		lit = lit[:i]
	} else if i := strings.Index(lit, "::"); i > 0 {
		lit = lit[:i]
	}
	var raw any
	switch {
	case len(lit) >= 2 && lit[0] == '\'' && lit[len(lit)-1] == '\'':
		raw = strings.ReplaceAll(lit[1:len(lit)-1], "''", "'")
	case strings.EqualFold(lit, "true"), strings.EqualFold(lit, "false"):
		raw = strings.EqualFold(lit, "true")
	default:
		raw = lit
	}
	v, err := literalValue(c.typ, raw)
	if err != nil {
		return nil, fmt.Errorf("DEFAULT %s: %w", expr, err)
	}
	return func(*Sim, hlc.Timestamp) any { return v }, nil
}

// literalValue converts a SQL literal (string or bool) to a canonical value
// of type t.
func literalValue(t *colType, raw any) (any, error) {
	s, isString := raw.(string)
	if !isString {
		return t.normalize(raw)
	}
	switch t.fam {
	case famInt:
		var n int64
		if _, err := fmt.Sscan(s, &n); err != nil {
			return nil, fmt.Errorf("not an integer: %q", s)
		}
		return t.normalize(n)
	case famFloat:
		var f float64
		if _, err := fmt.Sscan(s, &f); err != nil {
			return nil, fmt.Errorf("not a float: %q", s)
		}
		return t.normalize(f)
	case famBool:
		return t.normalize(strings.EqualFold(s, "true"))
	case famDate:
		tm, err := time.Parse("2006-01-02", s)
		if err != nil {
			return nil, err
		}
		return t.normalize(tm)
	case famTimestamp, famTimestampTZ:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
			if tm, err := time.Parse(layout, s); err == nil {
				return t.normalize(tm)
			}
		}
		return nil, fmt.Errorf("not a timestamp: %q", s)
	case famTime:
		tm, err := time.Parse("15:04:05.999999", s)
		if err != nil {
			return nil, err
		}
		return t.normalize(time.Duration(tm.Hour())*time.Hour + time.Duration(tm.Minute())*time.Minute +
			time.Duration(tm.Second())*time.Second + time.Duration(tm.Nanosecond()))
	case famInterval, famArray:
		return nil, fmt.Errorf("literal defaults of type %s are not supported", t.sql)
	}
	return t.normalize(s)
}

// uniqueRowID mimics unique_rowid(): a timestamp in 10µs units shifted left
// 15 bits, plus a sequence (CockroachDB puts the node id there), always
// increasing.
func (s *Sim) uniqueRowID(ts hlc.Timestamp) int64 {
	id := (ts.WallTime/10000)<<15 | 1
	if id <= s.rowidSeq {
		id = s.rowidSeq + 1
	}
	s.rowidSeq = id
	return id
}
