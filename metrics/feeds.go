package metrics

import (
	"fmt"
	"strconv"
	"strings"
	"time"

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

// feedView is one row of the status page's feeds table.
type feedView struct {
	Name, Topics      string
	Partitions        int
	Applied, Resolved hlcView
	// HeldBy is the partition holding the feed's frontier back.
	HeldBy string
	// Holder marks the feed holding the member's cut back.
	Holder bool
}

// feedViews returns the frontier mode and the feeds for the status page;
// none when src does not report feeds.
func feedViews(src Source, now time.Time) (string, []feedView) {
	fs, ok := src.(FrontierSource)
	if !ok {
		return "", nil
	}
	st := fs.FrontierStats()
	out := make([]feedView, 0, len(st.Feeds))
	for i, f := range st.Feeds {
		v := feedView{Name: f.Name, Topics: strings.Join(f.Topics, ", "), Partitions: f.Partitions,
			Applied: viewHLC(f.Applied, now), Resolved: viewHLC(f.Resolved, now), HeldBy: "-", Holder: i == st.Holder}
		if f.HeldByPartition >= 0 {
			v.HeldBy = fmt.Sprintf("%s[%d]", f.HeldByTopic, f.HeldByPartition)
		}
		out = append(out, v)
	}
	return string(st.Mode), out
}
