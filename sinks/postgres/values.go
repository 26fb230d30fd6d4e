package postgres

import (
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// toPG converts a decoded value (Go types as documented on model.Kind) to
// what pgx encodes into the column's PostgreSQL type. A value of the wrong
// Go type, or one PostgreSQL cannot store, is an error, never a panic; the
// one exception is ±Infinity in a DECIMAL(p,s) column, which PostgreSQL's
// NUMERIC(p,s) cannot hold: it becomes NULL and is counted in *nonFinite,
// as in the DuckDB writer.
func toPG(t model.Type, v any, nonFinite *int64) (any, error) {
	if v == nil {
		return nil, nil
	}
	bad := func() (any, error) {
		return nil, fmt.Errorf("value of Go type %T for a %s column", v, t)
	}
	switch t.Kind {
	case model.KindInt:
		if _, ok := v.(int64); ok {
			return v, nil // v, not x: boxing x again would allocate
		}
	case model.KindFloat:
		if _, ok := v.(float64); ok {
			return v, nil
		}
	case model.KindBool:
		if _, ok := v.(bool); ok {
			return v, nil
		}
	case model.KindString:
		if x, ok := v.(string); ok {
			if err := checkText(x); err != nil {
				return nil, err
			}
			return v, nil
		}
	case model.KindBytes:
		if _, ok := v.([]byte); ok {
			return v, nil
		}
	case model.KindDecimal:
		if x, ok := v.(model.Decimal); ok {
			if x.Special == "" {
				if n, ok := decimalNum(x.Unscaled, x.Scale); ok {
					return n, nil
				}
			}
			n, err := decimalToPG(x)
			if err == nil && n.InfinityModifier != pgtype.Finite && constrainedDecimal(t) {
				*nonFinite++
				return nil, nil
			}
			return n, err
		}
	case model.KindDate:
		if x, ok := v.(time.Time); ok {
			return pgtype.Date{Time: x, Valid: true}, nil
		}
	case model.KindTime:
		if x, ok := v.(time.Duration); ok {
			if x < 0 || x > 24*time.Hour {
				return nil, fmt.Errorf("time of day %v is outside 00:00..24:00", x)
			}
			return pgtype.Time{Microseconds: int64(x / time.Microsecond), Valid: true}, nil
		}
	case model.KindTimestamp, model.KindTimestampTZ:
		if x, ok := v.(time.Time); ok {
			if x.Location() == time.UTC {
				return v, nil
			}
			return x.UTC(), nil
		}
	case model.KindUUID:
		if x, ok := v.(string); ok {
			u, err := sinks.ParseUUID(x)
			if err != nil {
				return nil, err
			}
			return pgtype.UUID{Bytes: u, Valid: true}, nil
		}
	case model.KindJSON:
		if x, ok := v.(string); ok {
			if err := checkJSON(x); err != nil {
				return nil, err
			}
			return v, nil
		}
	case model.KindInterval:
		if x, ok := v.(model.Interval); ok {
			return pgtype.Interval{Months: x.Months, Days: x.Days, Microseconds: x.Micros, Valid: true}, nil
		}
	case model.KindArray:
		x, ok := v.([]any)
		if !ok || t.Elem == nil {
			return bad()
		}
		out := make([]any, len(x))
		for i, e := range x {
			c, err := toPG(*t.Elem, e, nonFinite)
			if err != nil {
				return nil, fmt.Errorf("array element %d: %w", i, err)
			}
			out[i] = c
		}
		return out, nil
	}
	return bad()
}

func decimalToPG(d model.Decimal) (pgtype.Numeric, error) {
	switch d.Special {
	case "":
	case "NaN":
		return pgtype.Numeric{NaN: true, Valid: true}, nil
	case "Infinity", "+Infinity", "Inf", "+Inf":
		return pgtype.Numeric{InfinityModifier: pgtype.Infinity, Valid: true}, nil
	case "-Infinity", "-Inf":
		return pgtype.Numeric{InfinityModifier: pgtype.NegativeInfinity, Valid: true}, nil
	default:
		return pgtype.Numeric{}, fmt.Errorf("unknown special decimal %q", d.Special)
	}
	n := d.Unscaled
	if n == nil {
		n = new(big.Int)
	}
	// PostgreSQL numeric weights are int16 and display scale is limited; an
	// absurd exponent would be rejected by the server anyway.
	if d.Scale > 16383 || d.Scale < -16383 {
		return pgtype.Numeric{}, fmt.Errorf("decimal scale %d out of PostgreSQL's range", d.Scale)
	}
	return pgtype.Numeric{Int: n, Exp: int32(-d.Scale), Valid: true}, nil
}

// constrainedDecimal reports whether pgType maps t to NUMERIC(p,s) rather
// than unconstrained NUMERIC.
func constrainedDecimal(t model.Type) bool {
	typ, _ := pgType(t)
	return typ != "numeric"
}

func hlcToPG(h hlc.Timestamp) pgtype.Numeric {
	return pgtype.Numeric{Int: h.Unscaled(), Exp: -10, Valid: true}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
