package postgres

import (
	"context"
	"math"
	"math/big"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// fastNumCases are decimals as (unscaled, scale) that fastNum holds.
var fastNumCases = []struct {
	u     int64
	scale int
}{
	{0, 0}, {0, 2}, {0, 16}, {1, 0}, {-1, 0}, {1, 16}, {-1, 16}, {10_000, 0}, {10_000, 4},
	{123456789, 2}, {-123456789, 2}, {100, 2}, {-100, 2}, {12_3400, 4}, {5, 1}, {50_000, 5},
	{math.MaxInt64, 0}, {math.MinInt64, 0}, {math.MaxInt64, 16}, {math.MinInt64, 16},
	{math.MaxInt64, 7}, {1_0000_0000_0000_0000, 16}, {999_999_999_999, 3},
}

// TestFastNumericEncoding checks fastNum's binary NUMERIC against the value
// it stands for, through the server: COPY writes it, PostgreSQL renders it
// as text, and that text must be the decimal's own (scale included).
func TestFastNumericEncoding(t *testing.T) {
	ctx := context.Background()
	url := server.CreateDB(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	registerFastNumeric(conn)
	if _, err := conn.Exec(ctx, `CREATE TABLE n (i int, v numeric)`); err != nil {
		t.Fatal(err)
	}
	var rows [][]any
	var want []string
	for i, c := range fastNumCases {
		n, ok := decimalNum(big.NewInt(c.u), c.scale)
		if !ok {
			t.Fatalf("case %d: decimalNum(%d, %d) refused", i, c.u, c.scale)
		}
		rows = append(rows, []any{len(rows), n})
		want = append(want, model.Decimal{Unscaled: big.NewInt(c.u), Scale: c.scale}.String())
	}
	for _, h := range []hlc.Timestamp{{}, {WallTime: 1, Logical: 0}, {WallTime: 1767225600123456789, Logical: 7},
		{WallTime: math.MaxInt64, Logical: math.MaxInt32}, {WallTime: 0, Logical: 1}} {
		n, ok := hlcNum(h)
		if !ok {
			t.Fatalf("hlcNum(%v) refused", h)
		}
		rows = append(rows, []any{len(rows), n})
		want = append(want, model.Decimal{Unscaled: h.Unscaled(), Scale: 10}.String())
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"n"}, []string{"i", "v"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatalf("COPY: %v", err)
	}
	got := query(t, url, `SELECT v::text FROM n ORDER BY i`)
	for i := range want {
		if got[i][0] != want[i] {
			t.Errorf("row %d: PostgreSQL has %s, want %s", i, got[i][0], want[i])
		}
	}
}

// TestFastNumericFallback checks that values fastNum cannot hold are left
// to pgx's codec.
func TestFastNumericFallback(t *testing.T) {
	huge, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	for _, c := range []struct {
		u     *big.Int
		scale int
	}{{huge, 2}, {big.NewInt(1), 17}, {big.NewInt(1), -1}} {
		if _, ok := decimalNum(c.u, c.scale); ok {
			t.Errorf("decimalNum(%s, %d) accepted", c.u, c.scale)
		}
	}
	if _, ok := hlcNum(hlc.Timestamp{WallTime: -1}); ok {
		t.Error("hlcNum accepted a negative wall time")
	}
	if _, ok := hlcValue(hlc.Timestamp{WallTime: -1}).(pgtype.Numeric); !ok {
		t.Error("hlcValue of a negative wall time is not a pgtype.Numeric")
	}
}
