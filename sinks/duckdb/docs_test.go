package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

// TestDocQueries runs the queries shown in docs/SINK_DUCKDB.md (and
// README's time-travel query).
func TestDocQueries(t *testing.T) {
	ctx := context.Background()
	w, err := OpenPath(ctx, t.TempDir()+"/doc.duckdb", sinks.Options{Changelog: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tb := sinktest.Table("orders", []int{0}, sinktest.Col("id", model.KindInt), sinktest.Col("customer", model.KindString))
	h := func(i int64) hlc.Timestamp { return hlc.Timestamp{WallTime: 1659643584586630201 + i} }
	window := func(resolved hlc.Timestamp, changes ...sinks.Change) {
		tx, err := w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, tb, changes); err != nil {
			t.Fatal(err)
		}
		if err := tx.Checkpoint(ctx, []sinks.Checkpoint{{Group: "highwater", Topic: "orders", Resolved: resolved, NextOffset: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	window(h(10),
		sinks.Change{Op: sinks.OpInsert, Updated: h(1), Values: []any{int64(7), "c-42"}},
		sinks.Change{Op: sinks.OpInsert, Updated: h(1), Values: []any{int64(8), "c-1"}},
		sinks.Change{Op: sinks.OpDelete, Updated: h(5), Values: []any{int64(8), nil}})
	// Changes after the watermark of the AS OF query below.
	tx, _ := w.Begin(ctx)
	_ = tx.Write(ctx, tb, []sinks.Change{{Op: sinks.OpUpdate, Updated: h(20), Values: []any{int64(7), "c-43"}}})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.RecordFeeds(ctx, "highwater", "shared", []sinks.FeedTopic{{Topic: "orders", Feed: "default"}}); err != nil {
		t.Fatal(err)
	}
	query := sinktest.QueryDB(func(*testing.T) *sql.DB { return w.DB() })
	cases := []struct {
		q    string
		want string
	}{
		{`SELECT consumer_group, coalesce(topic, '*'), CAST(resolved AS VARCHAR), CAST(partitions AS VARCHAR), CAST(applied_at IS NOT NULL AS VARCHAR) FROM highwater_watermark ORDER BY topic NULLS FIRST`,
			fmt.Sprintf("[[highwater * %[1]s 1 true] [highwater orders %[1]s 1 true]]", h(10))},
		{`SELECT consumer_group, topic, CAST(resolved AS VARCHAR) AS complete_through,
         CAST(to_timestamp(CAST(floor(resolved / 1e9) AS BIGINT)) AS VARCHAR) AS complete_through_time
  FROM highwater_watermark WHERE topic IS NULL`,
			fmt.Sprintf("[[highwater NULL %s 2022-08-04 20:06:24+00]]", h(10))},
		// The feed holding the group's watermark back (docs/SINK_DUCKDB.md).
		{`SELECT feed, CAST(resolved AS VARCHAR) FROM highwater_feed_watermark WHERE consumer_group = 'highwater' ORDER BY resolved LIMIT 1`,
			fmt.Sprintf("[[default %s]]", h(10))},
		{`SELECT CAST(id AS VARCHAR), customer FROM orders WHERE customer = 'c-43'`, "[[7 c-43]]"},
		{`SELECT CAST(id AS VARCHAR), customer, _hw_op FROM orders_changes
  WHERE id = 7 AND _hw_updated <= 1659643584586630211.0000000000
  ORDER BY _hw_updated DESC LIMIT 1`, "[[7 c-42 insert]]"},
		{`SELECT CAST(id AS VARCHAR), customer FROM (SELECT * EXCLUDE (_hw_op) FROM (
    SELECT * FROM orders_changes WHERE _hw_updated <= (SELECT resolved FROM highwater_watermark WHERE topic IS NULL AND consumer_group = 'highwater')
    QUALIFY row_number() OVER (PARTITION BY id ORDER BY _hw_updated DESC) = 1)
WHERE _hw_op <> 'delete')`, "[[7 c-42]]"},
		{`SELECT CAST(id AS VARCHAR), customer FROM orders_asof(1659643584586630211.0000000000) WHERE customer = 'c-42'`, "[[7 c-42]]"},
		{`SELECT CAST(id AS VARCHAR), customer FROM orders_asof(1659643584586630211.0000000000) ORDER BY id`, "[[7 c-42]]"},
		{`SELECT CAST(id AS VARCHAR), customer FROM orders_asof(1659643584586630203) ORDER BY id`, "[[7 c-42] [8 c-1]]"},
		{`SELECT CAST(id AS VARCHAR), customer FROM orders_asof('1659643584586630221') ORDER BY id`, "[[7 c-43]]"},
		// README, "Query the past".
		{`SELECT CAST(id AS VARCHAR), customer FROM orders_asof(CAST(epoch_ns(now() - INTERVAL 1 HOUR) AS DECIMAL(38,10)))`, "[[7 c-43]]"},
	}
	for _, c := range cases {
		if _, err := w.DB().ExecContext(ctx, `SET TimeZone = 'UTC'`); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(query(t, c.q)); got != c.want {
			t.Errorf("%s:\n got  %s\n want %s", c.q, got, c.want)
		}
	}
}
