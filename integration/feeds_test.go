package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/testfeed"
	"github.com/highwater-dev/highwater/metrics"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/simulator"
)

// twoChangefeeds is two CockroachDB changefeeds on one broker: sales
// (orders, order_items) goes on resolving, people (users) resolves once
// at paused and then only writes rows, as a paused or lagging changefeed.
// Both clocks follow the local clock (Live), so paused < final, the last
// resolved timestamp of sales, and some sales rows are below paused.
type twoChangefeeds struct {
	sales, people *feed
	paused, final hlc.Timestamp
}

func playTwoChangefeeds(t *testing.T) *twoChangefeeds {
	t.Helper()
	ctx := context.Background()
	sales := newFeed(t, simulator.Options{Seed: 1, Partitions: 2, Live: true},
		simulator.TableDef{Name: "orders", PrimaryKey: []string{"id"}, Columns: []simulator.ColumnDef{
			{Name: "id", Type: "INT8", NotNull: true}, {Name: "status", Type: "STRING"}, {Name: "amount", Type: "DECIMAL(12,2)"}}},
		simulator.TableDef{Name: "order_items", PrimaryKey: []string{"id"}, Columns: []simulator.ColumnDef{
			{Name: "id", Type: "INT8", NotNull: true}, {Name: "qty", Type: "INT8"}}})
	peopleOpts := simulator.Options{Seed: 2, Partitions: 2, Live: true}
	peopleSim := testfeed.On(t, ctx, sales.stack, peopleOpts, simulator.TableDef{Name: "users", PrimaryKey: []string{"id"}, Columns: []simulator.ColumnDef{
		{Name: "id", Type: "INT8", NotNull: true}, {Name: "name", Type: "STRING"}}})
	people := &feed{stack: sales.stack, sim: peopleSim, opts: peopleOpts}
	run := func(f *feed, txns int) {
		t.Helper()
		if err := f.sim.Run(ctx, simulator.Workload{Txns: txns, KeysPerTable: 80, RowsPerTxn: 2, DeleteProb: 0.1, ResolveEvery: 50}); err != nil {
			t.Fatal(err)
		}
	}
	run(sales, 150)
	run(people, 150)
	tc := &twoChangefeeds{sales: sales, people: people, paused: people.sim.LastResolved()}
	// The people changefeed pauses: rows, and no resolved timestamp.
	for i := range 20 {
		if _, err := people.sim.Txn(ctx, func(tx *simulator.Txn) error {
			return tx.Upsert("users", map[string]any{"id": int64(i), "name": "after the pause"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := people.sim.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	run(sales, 150)
	tc.final = sales.sim.LastResolved()
	if !tc.paused.Less(tc.final) {
		t.Fatalf("paused %s is not below final %s: the live clocks went backwards", tc.paused, tc.final)
	}
	return tc
}

func (tc *twoChangefeeds) member(t *testing.T, sinkURL string, mode processor.FrontierMode) *member {
	return startMember(t, tc.sales, duckWarehouse(), memberConfig{
		group: "g", sinkURL: sinkURL, changelog: true, frontier: mode,
		topics: append(tc.sales.sim.Topics(), tc.people.sim.Topics()...),
		feeds:  []processor.Feed{{Name: "sales", Topics: tc.sales.sim.Topics()}, {Name: "people", Topics: tc.people.sim.Topics()}},
	})
}

// awaitFeeds waits (up to a minute) until the member's frontier stats
// satisfy done, failing t with what it saw otherwise.
func awaitFeeds(t *testing.T, m *member, what string, done func(processor.FrontierStats) bool) processor.FrontierStats {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		fs := m.proc.FrontierStats()
		if done(fs) {
			return fs
		}
		select {
		case err := <-m.done:
			m.done <- err
			t.Fatalf("member stopped (%v) before %s; feeds %+v", err, what, fs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 1m; feeds %+v", what, fs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func feedStat(fs processor.FrontierStats, name string) processor.FeedStat {
	for _, f := range fs.Feeds {
		if f.Name == name {
			return f
		}
	}
	return processor.FeedStat{}
}

// checkFeedAsOf checks, in the stopped member's DuckDB warehouse, that
// each of f's topics has the watermark at (highwater_watermark) and that
// each of f's tables equals the source as of at, and its changelog holds
// every version through at.
func checkFeedAsOf(t *testing.T, sinkURL string, f *feed, name string, at hlc.Timestamp) {
	t.Helper()
	view := withOracle(t, f, duckWarehouse(), sinkURL, at)
	var got string
	if err := view.db.QueryRow(`SELECT CAST(resolved AS VARCHAR) FROM highwater_feed_watermark WHERE consumer_group = 'g' AND feed = ?`, name).Scan(&got); err != nil {
		t.Fatalf("highwater_feed_watermark of feed %s: %v", name, err)
	}
	if got != at.String() {
		t.Errorf("highwater_feed_watermark of feed %s = %s, want %s", name, got, at)
	}
	for _, topic := range f.sim.Topics() {
		if err := view.db.QueryRow(`SELECT CAST(resolved AS VARCHAR) FROM highwater_watermark WHERE consumer_group = 'g' AND topic = ?`, topic).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != at.String() {
			t.Errorf("highwater_watermark of topic %s = %s, want %s", topic, got, at)
		}
	}
	for _, table := range f.sim.Oracle().Tables() {
		view.check(t, f, at, table, f.sim.Oracle().Columns(table))
	}
	view.db.Close()
}

// statusJSON runs `highwater status --json` with the two feeds.
func statusJSON(t *testing.T, sinkURL string, tc *twoChangefeeds, mode processor.FrontierMode) (st struct {
	Feeds []struct{ Feed, Resolved string }
	Held  struct{ Feed, Topic string } `json:"held_by"`
}) {
	t.Helper()
	feeds := "sales=" + strings.Join(tc.sales.sim.Topics(), ",") + ";people=" + strings.Join(tc.people.sim.Topics(), ",")
	var out, errOut bytes.Buffer
	cmd := exec.Command(binary, "status", "--sink", sinkURL, "--group", "g", "--feeds", feeds, "--frontier", string(mode), "--json")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("highwater status: %v\n%s", err, errOut.String())
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out.String())
	}
	return st
}

// TestIndependentFrontiersApplyTheFeedThatIsNotPaused: two changefeeds,
// one paused. With independent frontiers the running one's tables are
// applied through its last resolved timestamp, its watermark moves on
// while the paused one's stays, and each feed's tables equal the source as
// of its own watermark; status and the metrics name the paused feed.
func TestIndependentFrontiersApplyTheFeedThatIsNotPaused(t *testing.T) {
	tc := playTwoChangefeeds(t)
	sinkURL := duckWarehouse().url(t)
	m := tc.member(t, sinkURL, processor.FrontierIndependent)
	fs := awaitFeeds(t, m, "sales applied through its final resolved timestamp and people through its paused one", func(fs processor.FrontierStats) bool {
		return feedStat(fs, "sales").Applied == tc.final && feedStat(fs, "people").Applied == tc.paused
	})
	if fs.Holder < 0 || fs.Feeds[fs.Holder].Name != "people" || !slices.Contains(tc.people.sim.Topics(), fs.Feeds[fs.Holder].HeldByTopic) {
		t.Errorf("frontier stats %+v: want the paused feed people holding the cut back", fs)
	}
	checkHolderMetric(t, m, "people")
	m.stop()
	if err := <-m.done; err != nil {
		t.Fatal(err)
	}
	checkFeedAsOf(t, sinkURL, tc.sales, "sales", tc.final)
	checkFeedAsOf(t, sinkURL, tc.people, "people", tc.paused)
	st := statusJSON(t, sinkURL, tc, processor.FrontierIndependent)
	if len(st.Feeds) != 2 || st.Feeds[0].Feed != "sales" || st.Feeds[0].Resolved != tc.final.String() ||
		st.Feeds[1].Feed != "people" || st.Feeds[1].Resolved != tc.paused.String() || st.Held.Feed != "people" {
		t.Errorf("status --json = %+v; want sales through %s, people through %s, held by people", st, tc.final, tc.paused)
	}
}

// TestSharedFrontierHoldsEveryFeedAtOneCut: the same two changefeeds with
// the shared frontier (the default): every table stays at the paused
// feed's resolved timestamp, one consistent cut across both changefeeds,
// and the member's metrics name the paused feed as the holder.
func TestSharedFrontierHoldsEveryFeedAtOneCut(t *testing.T) {
	tc := playTwoChangefeeds(t)
	sinkURL := duckWarehouse().url(t)
	m := tc.member(t, sinkURL, "")
	// Once every resolved message is read and the cut applied, no other
	// window can start: the frontier is the paused feed's.
	all := func(f *feed, at hlc.Timestamp) bool {
		n := 0
		for _, p := range m.proc.PartitionStats() {
			if slices.Contains(f.sim.Topics(), p.Topic) && p.Resolved == at {
				n++
			}
		}
		return n == len(f.sim.Topics())*f.opts.Partitions
	}
	fs := awaitFeeds(t, m, "every resolved timestamp read and the cut applied", func(fs processor.FrontierStats) bool {
		return all(tc.sales, tc.final) && all(tc.people, tc.paused) &&
			feedStat(fs, "sales").Applied == tc.paused && feedStat(fs, "people").Applied == tc.paused
	})
	if fs.Mode != processor.FrontierShared || fs.Holder < 0 || fs.Feeds[fs.Holder].Name != "people" {
		t.Errorf("frontier stats %+v: want the paused feed people holding the shared cut back", fs)
	}
	checkHolderMetric(t, m, "people")
	m.stop()
	if err := <-m.done; err != nil {
		t.Fatal(err)
	}
	checkFeedAsOf(t, sinkURL, tc.sales, "sales", tc.paused)
	checkFeedAsOf(t, sinkURL, tc.people, "people", tc.paused)
}

// checkHolderMetric checks that the member's metrics name feed as the one
// holding the cut back.
func checkHolderMetric(t *testing.T, m *member, feed string) {
	t.Helper()
	reg := metrics.NewRegistry(m.proc)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != "highwater_frontier_holder" {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%d holder series, want 1", len(mf.GetMetric()))
		}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			if l.GetName() == "feed" && l.GetValue() != feed {
				t.Errorf("highwater_frontier_holder names feed %s, want %s", l.GetValue(), feed)
			}
		}
		return
	}
	t.Errorf("no highwater_frontier_holder series")
}
