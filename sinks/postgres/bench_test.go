package postgres

import (
	"context"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

const benchWindow = 100_000

func benchTable() *model.Table {
	return table("bench",
		col("id", kind(model.KindInt)),
		col("name", kind(model.KindString)),
		col("amount", dec(12, 2)),
		col("at", kind(model.KindTimestampTZ)),
		col("flag", kind(model.KindBool)),
	)
}

// benchChanges returns window w's changes: the first half updates keys
// 0..n/2-1 (present since the setup window), the second half inserts keys
// new to window w.
func benchChanges(w int, n int) []sinks.Change {
	changes := make([]sinks.Change, n)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range changes {
		id := int64(i)
		op := sinks.OpUpdate
		if i >= n/2 {
			id = int64(w*n + i)
			op = sinks.OpInsert
		}
		changes[i] = sinks.Change{Op: op, Updated: ts(int64(w)), Values: []any{
			id, fmt.Sprintf("name-%d-%d", id, w), model.Decimal{Unscaled: big.NewInt(id*100 + int64(w)), Scale: 2},
			at.Add(time.Duration(i) * time.Second), i%2 == 0,
		}}
	}
	return changes
}

// BenchmarkApply measures rows/s through the writer: 100k-change windows,
// half updates of existing keys and half inserts, one transaction each
// (COPY into staging, one upsert, checkpoint, commit).
func BenchmarkApply(b *testing.B) {
	url := server.CreateDB(b)
	w := openWriter(b, url, sinks.Options{})
	tb := benchTable()
	apply(b, w, nil, write{tb, benchChanges(0, benchWindow)})
	windows := make([][]sinks.Change, b.N)
	for i := range windows {
		windows[i] = benchChanges(i+1, benchWindow)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		cps := []sinks.Checkpoint{{Group: "bench", Topic: "bench", Resolved: ts(int64(i + 1)), NextOffset: int64(i)}}
		apply(b, w, cps, write{tb, windows[i]})
	}
	b.ReportMetric(float64(b.N*benchWindow)/time.Since(start).Seconds(), "rows/s")
	b.StopTimer()
	if got := query(b, url, `SELECT count(*)::text FROM bench`); got[0][0] != fmt.Sprint(benchWindow/2*(b.N+2)) {
		b.Fatalf("bench has %s rows, want %d", got[0][0], benchWindow/2*(b.N+2))
	}
}

// BenchmarkRawCopy measures a plain COPY of the same rows (already in
// pgx's types) into a table without key or index, on the same server: the
// floor under BenchmarkApply.
func BenchmarkRawCopy(b *testing.B) {
	ctx := context.Background()
	url := server.CreateDB(b)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE raw (id bigint, name text, amount numeric(12,2), at timestamptz, flag boolean, _hw_updated numeric(38,10))`); err != nil {
		b.Fatal(err)
	}
	windows := make([][][]any, b.N)
	for i := range windows {
		for _, c := range benchChanges(i+1, benchWindow) {
			d := c.Values[2].(model.Decimal)
			windows[i] = append(windows[i], []any{c.Values[0], c.Values[1],
				pgtype.Numeric{Int: d.Unscaled, Exp: -2, Valid: true}, c.Values[3], c.Values[4], hlcToPG(c.Updated)})
		}
	}
	cols := []string{"id", "name", "amount", "at", "flag", "_hw_updated"}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		n, err := conn.CopyFrom(ctx, pgx.Identifier{"raw"}, cols, pgx.CopyFromRows(windows[i]))
		if err != nil || n != benchWindow {
			b.Fatalf("CopyFrom: %d rows, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.N*benchWindow)/time.Since(start).Seconds(), "rows/s")
}
