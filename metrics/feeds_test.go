package metrics

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/processor"
)

// feedSource is a statsSource that also reports feeds.
type feedSource struct {
	statsSource
	fs processor.FrontierStats
}

func (f *feedSource) FrontierStats() processor.FrontierStats { return f.fs }

// TestFeedGaugesNameTheHolder: each feed's frontier and applied checkpoint
// are exported, and one series names the feed and partition holding the
// member's cut back.
func TestFeedGaugesNameTheHolder(t *testing.T) {
	src := &feedSource{fs: processor.FrontierStats{Mode: processor.FrontierIndependent, Holder: 1, Feeds: []processor.FeedStat{
		{Name: "orders", Partitions: 3, Resolved: hlc.Timestamp{WallTime: 1_700_000_060e9}, Applied: hlc.Timestamp{WallTime: 1_700_000_050e9}, HeldByTopic: "orders", HeldByPartition: 2},
		{Name: "users", Partitions: 1, Resolved: hlc.Timestamp{WallTime: 1_700_000_000e9}, HeldByTopic: "users", HeldByPartition: 0},
		// Owned by another member: no series.
		{Name: "audit", HeldByPartition: -1},
	}}}
	src.s.Store(&processor.Stats{})
	get, stop := serve(t, src)
	defer stop()
	_, body := get("/metrics")
	for _, tc := range []struct {
		name, labels string
		want         float64
	}{
		{"highwater_feed_resolved_timestamp_seconds", `{feed="orders"}`, 1_700_000_060},
		{"highwater_feed_applied_timestamp_seconds", `{feed="orders"}`, 1_700_000_050},
		{"highwater_feed_resolved_timestamp_seconds", `{feed="users"}`, 1_700_000_000},
		{"highwater_feed_applied_timestamp_seconds", `{feed="users"}`, 0},
		{"highwater_frontier_holder", `{feed="users",partition="0",topic="users"}`, 1},
	} {
		if got, ok := sample(t, body, tc.name, tc.labels); !ok || got != tc.want {
			t.Errorf("%s%s = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if strings.Contains(body, `feed="audit"`) {
		t.Error("a feed with no owned partition has series")
	}
	if n := strings.Count(body, "\nhighwater_frontier_holder{"); n != 1 {
		t.Errorf("%d holder series, want 1", n)
	}
}

// TestStatusPageNamesTheFeedHoldingTheCutBack: the status page lists the
// feeds and marks the one holding the member's cut back, with its
// partition.
func TestStatusPageNamesTheFeedHoldingTheCutBack(t *testing.T) {
	src := &feedSource{fs: processor.FrontierStats{Mode: processor.FrontierShared, Holder: 1, Feeds: []processor.FeedStat{
		{Name: "orders", Topics: []string{"orders", "order_items"}, Partitions: 6, Resolved: hlc.Timestamp{WallTime: 1_700_000_060e9}, HeldByTopic: "order_items", HeldByPartition: 1},
		{Name: "users", Topics: []string{"users"}, Partitions: 3, Resolved: hlc.Timestamp{WallTime: 1_700_000_000e9}, HeldByTopic: "users", HeldByPartition: 2},
	}}}
	src.s.Store(&processor.Stats{})
	rec := httptest.NewRecorder()
	page(src, PageInfo{}, &history{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`<h2>Feeds \(shared frontier\)</h2>`),
		regexp.MustCompile(`<tr class="feed" data-feed="orders">\s*<td>orders</td><td>orders, order_items</td><td>6</td>`),
		regexp.MustCompile(`<tr class="feed behind" data-feed="users" title="holds the cut back">`),
		regexp.MustCompile(`<td>users\[2\]</td>`),
	} {
		if !want.MatchString(body) {
			t.Errorf("status page lacks %s", want)
		}
	}
}
