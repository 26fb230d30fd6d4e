package sinktest

import (
	"context"
	"testing"

	"github.com/highwater-dev/highwater/sinks"
)

// feedTests are the conformance tests of sinks.FeedRecorder, for the
// writers that implement it.
func (s *suite) feedTests() []struct {
	name string
	fn   func(t *testing.T)
} {
	return []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"FeedWatermarkIsMinResolvedPerFeed", s.testFeedWatermark},
	}
}

// testFeedWatermark: highwater_feed_watermark has one row per recorded
// feed of a group, min(resolved) over its topics' partitions and the
// partition holding it back; recording again moves topics between feeds.
func (s *suite) testFeedWatermark(t *testing.T) {
	w := s.open(t, sinks.Options{})
	defer closeW(t, w)
	r, ok := w.(sinks.FeedRecorder)
	if !ok {
		t.Skip("the writer records no feeds")
	}
	ctx := context.Background()
	apply(t, w, []sinks.Checkpoint{
		{Group: "g1", Topic: "a", Partition: 0, Resolved: ts(5), NextOffset: 1},
		{Group: "g1", Topic: "a", Partition: 1, Resolved: ts(3), NextOffset: 1},
		{Group: "g1", Topic: "b", Partition: 0, Resolved: ts(7), NextOffset: 1},
		{Group: "g1", Topic: "c", Partition: 0, Resolved: ts(9), NextOffset: 1},
		{Group: "g2", Topic: "a", Partition: 0, Resolved: ts(1), NextOffset: 1},
	})
	if err := r.RecordFeeds(ctx, "g1", "independent", []sinks.FeedTopic{{Topic: "a", Feed: "x"}, {Topic: "b", Feed: "x"}, {Topic: "c", Feed: "y"}}); err != nil {
		t.Fatal(err)
	}
	q := `SELECT consumer_group, feed, frontier, CAST(resolved AS VARCHAR), CAST(partitions AS VARCHAR), COALESCE(held_by, '-') FROM ` +
		sinks.FeedWatermarkView + ` ORDER BY consumer_group, feed`
	expect(t, "feed watermark", s.h.Query(t, q), [][]string{
		{"g1", "x", "independent", S(ts(3)), "3", "a[1]"},
		{"g1", "y", "independent", S(ts(9)), "1", "-"},
	})
	if err := r.RecordFeeds(ctx, "g1", "shared", []sinks.FeedTopic{{Topic: "c", Feed: "x"}}); err != nil {
		t.Fatal(err)
	}
	expect(t, "feed watermark after recording again", s.h.Query(t, q), [][]string{
		{"g1", "x", "shared", S(ts(3)), "4", "a[1]"},
	})
	// The group-wide watermark is untouched by the feeds.
	expect(t, "watermark", s.h.Query(t, `SELECT CAST(resolved AS VARCHAR), CAST(partitions AS VARCHAR) FROM highwater_watermark WHERE consumer_group = 'g1' AND topic IS NULL`),
		[][]string{{S(ts(3)), "4"}})
}
