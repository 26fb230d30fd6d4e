package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"math/big"
	"testing"
	"time"

	duck "github.com/duckdb/duckdb-go/v2"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

const benchWindow = 100_000

// benchTable is a typical OLTP row: five columns of common types.
func benchTable() *model.Table {
	price := sinktest.Col("price", model.KindDecimal)
	price.Type = decType(12, 2)
	return sinktest.Table("orders", []int{0},
		sinktest.Col("id", model.KindInt),
		sinktest.Col("customer", model.KindString),
		sinktest.Col("qty", model.KindInt),
		price,
		sinktest.Col("updated_at", model.KindTimestampTZ))
}

func benchChanges(from, n int, op sinks.Op, h hlc.Timestamp) []sinks.Change {
	changes := make([]sinks.Change, n)
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range changes {
		id := int64(from + i)
		changes[i] = sinks.Change{Op: op, Updated: h, Values: []any{
			id, fmt.Sprintf("customer-%d", id%5000), id % 17,
			model.Decimal{Unscaled: big.NewInt(id * 7), Scale: 2}, at.Add(time.Duration(id) * time.Second),
		}}
	}
	return changes
}

// BenchmarkApply measures whole windows of 100k changes, half of them
// updates of keys already in the warehouse, half inserts: Write (Appender
// into staging) plus Commit (MERGE, changelog, checkpoint).
func BenchmarkApply(b *testing.B) {
	for _, changelog := range []bool{false, true} {
		b.Run(fmt.Sprintf("changelog=%v", changelog), func(b *testing.B) {
			ctx := context.Background()
			w, err := OpenPath(ctx, b.TempDir()+"/bench.duckdb", sinks.Options{Changelog: changelog}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			tb := benchTable()
			wall := int64(1_700_000_000_000_000_000)
			commit := func(changes ...[]sinks.Change) (write, apply time.Duration) {
				start := time.Now()
				tx, err := w.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				for _, c := range changes {
					if err := tx.Write(ctx, tb, c); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Checkpoint(ctx, []sinks.Checkpoint{{Group: "g", Topic: "orders", Resolved: hlc.Timestamp{WallTime: wall}, NextOffset: wall}}); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := tx.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				return mid.Sub(start), time.Since(mid)
			}
			// The warehouse starts with one window of rows.
			commit(benchChanges(0, benchWindow, sinks.OpInsert, hlc.Timestamp{WallTime: wall}))
			next := benchWindow
			var writeT, applyT time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				wall++
				h := hlc.Timestamp{WallTime: wall}
				upd := benchChanges(next-benchWindow/2, benchWindow/2, sinks.OpUpdate, h)
				ins := benchChanges(next, benchWindow/2, sinks.OpInsert, h)
				next += benchWindow / 2
				b.StartTimer()
				wt, at := commit(upd, ins)
				writeT += wt
				applyT += at
			}
			b.StopTimer()
			total := float64(b.N * benchWindow)
			b.ReportMetric(total/(writeT+applyT).Seconds(), "rows/s")
			b.ReportMetric(total/writeT.Seconds(), "staged-rows/s")
			b.ReportMetric(total/applyT.Seconds(), "merged-rows/s")
		})
	}
}

// BenchmarkAppenderRaw is the DuckDB Appender alone, into a plain table of
// the same shape, for comparison with BenchmarkApply.
func BenchmarkAppenderRaw(b *testing.B) {
	ctx := context.Background()
	w, err := OpenPath(ctx, b.TempDir()+"/raw.duckdb", sinks.Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	if _, err := w.DB().ExecContext(ctx, `CREATE TABLE raw (id BIGINT, customer VARCHAR, qty BIGINT, price DECIMAL(12,2), updated_at TIMESTAMPTZ, _hw_updated DECIMAL(38,10))`); err != nil {
		b.Fatal(err)
	}
	conn, err := w.DB().Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	changes := benchChanges(0, benchWindow, sinks.OpInsert, hlc.Timestamp{WallTime: 1})
	updated := big.NewInt(10_000_000_000)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		err := conn.Raw(func(dc any) error {
			a, err := duck.NewAppender(dc.(driver.Conn), "", "", "raw")
			if err != nil {
				return err
			}
			row := make([]driver.Value, 6)
			for _, c := range changes {
				d := c.Values[3].(model.Decimal)
				row[0], row[1], row[2] = c.Values[0], c.Values[1], c.Values[2]
				row[3] = duck.Decimal{Width: 12, Scale: 2, Value: d.Unscaled}
				row[4] = c.Values[4]
				row[5] = duck.Decimal{Width: 38, Scale: 10, Value: updated}
				if err := a.AppendRow(row...); err != nil {
					return err
				}
			}
			return a.Close()
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchWindow)/time.Since(start).Seconds(), "rows/s")
}
