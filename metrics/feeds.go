package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/processor"
)

// FrontierSource is a Source that also reports its frontier per feed;
// processor.Processor is one.
type FrontierSource interface {
	FrontierStats() processor.FrontierStats
}

// feedCollector exports the per-feed gauges and the partition holding the
// member's cut back, read from the source at scrape time.
type feedCollector struct {
	src               Source
	resolved, applied *prometheus.Desc
	holder            *prometheus.Desc
}

func newFeedCollector(src Source) *feedCollector {
	return &feedCollector{
		src: src,
		resolved: prometheus.NewDesc("highwater_feed_resolved_timestamp_seconds",
			"Wall time of the feed's frontier on this member (the min latest resolved timestamp over its owned partitions), as Unix seconds; 0 while one of them has none.", []string{"feed"}, nil),
		applied: prometheus.NewDesc("highwater_feed_applied_timestamp_seconds",
			"Wall time of the feed's applied checkpoint on this member (the min over its owned partitions), as Unix seconds; 0 before its first window.", []string{"feed"}, nil),
		holder: prometheus.NewDesc("highwater_frontier_holder",
			"1 on the one series naming the feed and partition that hold this member's cut back: the lowest latest resolved timestamp of all.", []string{"feed", "topic", "partition"}, nil),
	}
}

func (c *feedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.resolved
	ch <- c.applied
	ch <- c.holder
}

func (c *feedCollector) Collect(ch chan<- prometheus.Metric) {
	fs, ok := c.src.(FrontierSource)
	if !ok {
		return
	}
	st := fs.FrontierStats()
	for _, f := range st.Feeds {
		if f.Partitions == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.resolved, prometheus.GaugeValue, unixSeconds(f.Resolved), f.Name)
		ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, unixSeconds(f.Applied), f.Name)
	}
	if st.Holder >= 0 {
		h := st.Feeds[st.Holder]
		ch <- prometheus.MustNewConstMetric(c.holder, prometheus.GaugeValue, 1, h.Name, h.HeldByTopic, strconv.Itoa(int(h.HeldByPartition)))
	}
}

// unixSeconds is h's wall time as Unix seconds, 0 for the zero HLC.
func unixSeconds(h hlc.Timestamp) float64 {
	if h.IsZero() {
		return 0
	}
	return float64(h.WallTime) / 1e9
}
