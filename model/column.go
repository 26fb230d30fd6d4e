// Package model is the value model that the decoder produces and the
// writers consume: a source table version's columns (Table, Column, Type,
// Kind), the Go values of each kind (Decimal, Interval; the rest are
// standard Go types, see Kind), and CockroachDB's escaping of SQL names
// into Avro and Kafka names. It imports only the standard library (and
// internal/redact), so that the buffer, the writers and the simulator can
// share it without the Avro decoder or the registry client.
package model

import (
	"fmt"
	"math/big"
	"strings"
)

// Kind is the warehouse-relevant family of a column's type. Several
// CockroachDB types share a kind: ENUM, INET, TIMETZ, collated strings, BIT
// and the other text-encoded types are all KindString.
type Kind uint8

// Column kinds. The comment after each names the Go type that decoded values
// of that kind have (nil is SQL NULL for every kind).
const (
	KindInvalid     Kind = iota
	KindInt              // int64
	KindFloat            // float64
	KindBool             // bool
	KindString           // string
	KindBytes            // []byte
	KindDecimal          // Decimal
	KindDate             // time.Time, UTC midnight
	KindTime             // time.Duration since midnight
	KindTimestamp        // time.Time in UTC (wall clock of a TIMESTAMP taken as UTC)
	KindTimestampTZ      // time.Time in UTC
	KindUUID             // string, canonical lowercase hyphenated
	KindJSON             // string, CockroachDB's JSON text
	KindInterval         // Interval
	KindArray            // []any, elements of Type.Elem's Go type or nil
)

var kindNames = [...]string{
	KindInvalid: "INVALID", KindInt: "INT", KindFloat: "FLOAT", KindBool: "BOOL",
	KindString: "STRING", KindBytes: "BYTES", KindDecimal: "DECIMAL", KindDate: "DATE",
	KindTime: "TIME", KindTimestamp: "TIMESTAMP", KindTimestampTZ: "TIMESTAMPTZ",
	KindUUID: "UUID", KindJSON: "JSONB", KindInterval: "INTERVAL", KindArray: "ARRAY",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Type is a column's type as far as a warehouse needs it.
type Type struct {
	Kind Kind
	// Precision and Scale are set for KindDecimal.
	Precision, Scale int
	// Elem is the element type of a KindArray.
	Elem *Type
}

// String renders t in CockroachDB's SQL spelling, e.g. DECIMAL(10,2) or INT[].
func (t Type) String() string {
	switch t.Kind {
	case KindDecimal:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	case KindArray:
		if t.Elem == nil {
			return "ARRAY"
		}
		return t.Elem.String() + "[]"
	}
	return t.Kind.String()
}

// Equal reports whether t and o are the same type.
func (t Type) Equal(o Type) bool {
	if t.Kind != o.Kind || t.Precision != o.Precision || t.Scale != o.Scale {
		return false
	}
	if (t.Elem == nil) != (o.Elem == nil) {
		return false
	}
	return t.Elem == nil || t.Elem.Equal(*o.Elem)
}

// Column is one column of a source table, as a changefeed schema describes it.
type Column struct {
	// Name is the SQL column name, unescaped from the Avro field name.
	Name string
	// AvroName is the field name as it appears in the Avro schema.
	AvroName string
	Type     Type
	// SQLType is the CockroachDB type from the field's __crdb__ hint
	// (e.g. "TIMESTAMPTZ", "DECIMAL(10,2)", "STRING COLLATE de"), or "" when
	// the schema carries no hint.
	SQLType string
	// Nullable is false when __crdb__ says NOT NULL. Avro itself always says
	// nullable.
	Nullable bool
	// PrimaryKey is set for columns of the primary key (from the key schema).
	PrimaryKey bool
}

// Table is the column model of one source table version: the columns of the
// value record in table order, and which of them form the primary key.
//
// Decoders return the same *Table for every record written with the same
// schema, so pointer equality means "same schema version".
type Table struct {
	// Name is the SQL table name, unescaped (with split_column_families it
	// is "table.family").
	Name    string
	Columns []Column
	// Key holds indexes into Columns of the primary-key columns, in
	// primary-index order.
	Key []int
	// Family is the column family of a feed created WITH
	// split_column_families, when the decoder is told so
	// (schemas.WithSplitColumnFamilies) and the table has several
	// families; Source is then the table the family belongs to (Name
	// without the ".family" suffix). Both are empty otherwise.
	Family, Source string
}

// Column returns the column named name and whether it exists.
func (t *Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// Decimal is a decoded DECIMAL: Unscaled * 10^-Scale, or one of CockroachDB's
// special values NaN, Infinity and -Infinity (Special non-empty, Unscaled nil).
type Decimal struct {
	Unscaled *big.Int
	Scale    int
	Special  string
}

// String renders d as a plain decimal number ("12.30") or its special name.
func (d Decimal) String() string {
	if d.Special != "" {
		return d.Special
	}
	if d.Unscaled == nil {
		return "0"
	}
	s := new(big.Int).Abs(d.Unscaled).String()
	neg := d.Unscaled.Sign() < 0
	if d.Scale > 0 {
		if len(s) <= d.Scale {
			s = strings.Repeat("0", d.Scale-len(s)+1) + s
		}
		s = s[:len(s)-d.Scale] + "." + s[len(s)-d.Scale:]
	} else if d.Scale < 0 {
		s += strings.Repeat("0", -d.Scale)
	}
	if neg {
		s = "-" + s
	}
	return s
}

// Rescale returns d's unscaled value at scale (d * 10^scale), exactly: it
// fails when d has more fractional digits than scale keeps or is a special
// value. Checking the precision is the caller's (it knows its bound). The
// result may alias d.Unscaled when the scales match: do not modify it.
func (d Decimal) Rescale(scale int) (*big.Int, error) {
	if d.Special != "" {
		return nil, fmt.Errorf("decimal %s has no finite value", d.Special)
	}
	v := d.Unscaled
	if v == nil {
		v = new(big.Int)
	}
	switch {
	case d.Scale < scale:
		return new(big.Int).Mul(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale-d.Scale)), nil)), nil
	case d.Scale > scale:
		q, r := new(big.Int).QuoRem(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale-scale)), nil), new(big.Int))
		if r.Sign() != 0 {
			return nil, fmt.Errorf("decimal %s has more than %d fractional digits", d, scale)
		}
		return q, nil
	}
	return v, nil
}

// Interval is a decoded INTERVAL, split as CockroachDB and most warehouses
// store it: months, days and microseconds are independent.
type Interval struct {
	Months int32
	Days   int32
	Micros int64
}
