package sinks

import "context"

// Several changefeeds' topics can be grouped into named feeds, which share
// one frontier or each have their own (processor.Config.Feeds, Frontier).
// A warehouse that can show each feed's watermark records which feed each
// topic belongs to.
const (
	// FeedsTable holds one row per (consumer group, topic): the topic's
	// feed and the group's frontier mode ("shared" or "independent"),
	// with recorded_at. Every member records its feeds at startup.
	FeedsTable = "highwater_feeds"
	// FeedWatermarkView gives each feed's watermark: one row per group and
	// feed, min(resolved) over the checkpoints of the feed's topics'
	// partitions, their count, the latest applied_at, and held_by, the
	// partition ("topic[partition]") with the lowest checkpoint when
	// another of the feed's is higher (NULL when all are equal).
	FeedWatermarkView = "highwater_feed_watermark"
)

// FeedTopic says which feed a topic belongs to.
type FeedTopic struct {
	Topic string
	Feed  string
}

// FeedRecorder is a Writer that records the feeds of a consumer group
// (FeedsTable), so that FeedWatermarkView can show each feed's watermark.
// The SQL writers implement it; a writer that does not keeps no record of
// the feeds (`highwater status` still shows them from the configuration).
type FeedRecorder interface {
	// RecordFeeds upserts the feed of each topic of group, and the
	// group's frontier mode, in one transaction of its own. Topics not
	// listed keep their rows.
	RecordFeeds(ctx context.Context, group, frontier string, feeds []FeedTopic) error
}
