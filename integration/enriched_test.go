package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/simulator"
	"github.com/highwater-dev/highwater/sinks"
)

// TestEnrichedEnvelopeEndToEnd plays a changefeed WITH envelope = enriched,
// enriched_properties = 'source', updated, resolved (CockroachDB v25.2+),
// without diff, with duplicates and cross-key reordering. highwater must
// order the rows by source.ts_hlc (the commit HLC; the top-level ts_ns is
// processing time) and take the changelog's _hw_op from op: the mirror
// equals the source as of the final resolved timestamp, and the changelog
// holds every version once, as insert, update or delete as the oracle says
// (a wrapped feed without diff could only say upsert).
func TestEnrichedEnvelopeEndToEnd(t *testing.T) {
	cols := []simulator.ColumnDef{{Name: "id", Type: "INT8", NotNull: true}, {Name: "v", Type: "STRING"}, {Name: "n", Type: "INT8"}}
	defs := []simulator.TableDef{{Name: "orders", Columns: cols, PrimaryKey: []string{"id"}}}
	opts := hostileOptions(31)
	opts.Diff, opts.Envelope, opts.EnrichedProperties, opts.MVCCTimestamp, opts.SchemaPrefix = false, simulator.EnvelopeEnriched, "source", true, "crdb"
	for _, wh := range []warehouse{duckWarehouse(), pgWarehouse()} {
		t.Run(wh.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFeed(t, opts, defs...)
			sinkURL := wh.url(t)
			m := startMember(t, f, wh, memberConfig{group: "g", sinkURL: sinkURL, changelog: true})
			if err := f.sim.Run(ctx, simulator.Workload{Txns: 60, KeysPerTable: 15, RowsPerTxn: 4, DeleteProb: 0.15, ResolveEvery: 10}); err != nil {
				t.Fatal(err)
			}
			final, err := f.sim.Resolve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			m.proc.SetStopAt(final)
			m.wait(t, 2*time.Minute)

			o := withOracle(t, f, wh, sinkURL, final)
			mt := o.check(t, f, final, "orders", []string{"id", "v", "n"})
			checkOps(t, o, f, final, "orders", mt)
		})
	}
}

// checkOps compares the changelog's (_hw_updated, _hw_op) pairs with the
// oracle's versions through final.
func checkOps(t *testing.T, o *oracleView, f *feed, final hlc.Timestamp, src, mt string) {
	t.Helper()
	want := map[string]int{}
	ops := map[string]int{}
	for _, v := range f.sim.Oracle().Versions(src) {
		if !final.Less(v.Updated) {
			want[v.Updated.String()+" "+v.Op]++
			ops[v.Op]++
		}
	}
	if ops["insert"] == 0 || ops["update"] == 0 || ops["delete"] == 0 || ops["upsert"] != 0 {
		t.Fatalf("oracle ops %v: the workload must insert, update and delete, and enriched never upserts", ops)
	}
	q := fmt.Sprintf("SELECT CAST(%s AS %s) || ' ' || %s FROM %s", sinks.UpdatedColumn, o.text, sinks.OpColumn,
		o.mirrorPrefix+sqlident.Quote(mt+sinks.ChangesSuffix))
	rows, err := o.db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got[s]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var diffs []string
	for k, n := range want {
		if got[k] != n {
			diffs = append(diffs, fmt.Sprintf("%s: %d, want %d", k, got[k], n))
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: %d, want none", k, n))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("changelog ops differ from the oracle's at %d (timestamp, op) pairs, e.g. %v", len(diffs), diffs[:min(5, len(diffs))])
	}
	t.Logf("ops: %v", ops)
}

// TestEnrichedWithoutCommitHLCIsRefused plays enriched feeds that carry no
// commit timestamp: without enriched_properties = 'source' (only the
// processing time ts_ns), and with it but without updated (source.ts_hlc
// null). With --on-error=fail highwater must stop at the first row record,
// naming its topic[partition]@offset and the options to use instead.
func TestEnrichedWithoutCommitHLCIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name, props, hint string
		noUpdated         bool
	}{
		{"no source", "", "without enriched_properties = 'source'", false},
		{"source without updated", "source", "source.ts_hlc is null", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wh := duckWarehouse()
			opts := simulator.Options{Partitions: 1, Seed: 37, Envelope: simulator.EnvelopeEnriched, EnrichedProperties: tc.props, NoUpdated: tc.noUpdated}
			f := newFeed(t, opts, feedTables()[0])
			ctx := context.Background()
			if err := f.sim.Run(ctx, simulator.Workload{Txns: 5, KeysPerTable: 5, RowsPerTxn: 2, ResolveEvery: 5}); err != nil {
				t.Fatal(err)
			}
			m := startPolicyMember(t, f, wh, "g-enriched", wh.url(t), processor.OnErrorFail)
			runErr := m.stopped(t, time.Minute, "the first enriched record without a commit HLC")
			// The first record of the partition is the first row: the
			// simulator registers the resolved schema but sends no resolved
			// message before the first Resolve.
			where := f.sim.Topics()[0] + "[0]@0"
			for _, want := range []string{where, tc.hint, "WITH envelope = enriched, enriched_properties = 'source', updated, resolved"} {
				if runErr == nil || !strings.Contains(runErr.Error(), want) {
					t.Fatalf("error = %v, want it to say %q", runErr, want)
				}
			}
			t.Logf("stopped: %v", runErr)
		})
	}
}
