package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/sinks"
)

// feedWatermark is one feed's "complete through": the min checkpoint over
// its topics' partitions. With independent frontiers each feed's moves on
// its own.
type feedWatermark struct {
	Feed   string   `json:"feed"`
	Topics []string `json:"topics"`
	point
}

// heldBy names the partition whose checkpoint is the lowest, strictly
// below another's: the one holding the group's watermark back.
type heldBy struct {
	Feed      string `json:"feed"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// addFeeds fills the feeds' watermarks (when the configuration groups the
// topics: feeds, or an independent frontier) and the partition holding the
// watermark back. The topics are the configuration's and the checkpoints'.
func (st *status) addFeeds(cfg config.Config, cps []sinks.Checkpoint, now time.Time) error {
	mode, err := cfg.FrontierMode()
	if err != nil {
		return err
	}
	topics := slices.Clone(cfg.Topics)
	for _, cp := range cps {
		if !slices.Contains(topics, cp.Topic) {
			topics = append(topics, cp.Topic)
		}
	}
	feeds, err := processor.ResolveFeeds(topics, cfg.Feeds.Processor(), mode)
	if err != nil {
		return fmt.Errorf("feeds: %w", err)
	}
	feedOf := map[string]string{}
	for _, f := range feeds {
		for _, t := range f.Topics {
			feedOf[t] = f.Name
		}
	}
	// The lowest checkpoint holds the watermark back, if another is above.
	var low, high *sinks.Checkpoint
	for i := range cps {
		if low == nil || cps[i].Resolved.Less(low.Resolved) {
			low = &cps[i]
		}
		if high == nil || high.Resolved.Less(cps[i].Resolved) {
			high = &cps[i]
		}
	}
	if low != nil && low.Resolved.Less(high.Resolved) {
		st.HeldBy = &heldBy{Feed: feedOf[low.Topic], Topic: low.Topic, Partition: low.Partition}
	}
	if len(cfg.Feeds) == 0 && mode != processor.FrontierIndependent {
		return nil
	}
	st.Frontier = string(mode)
	for _, f := range feeds {
		var lowest hlc.Timestamp
		found := false
		for _, cp := range cps {
			if feedOf[cp.Topic] == f.Name && (!found || cp.Resolved.Less(lowest)) {
				lowest, found = cp.Resolved, true
			}
		}
		if found {
			st.Feeds = append(st.Feeds, feedWatermark{Feed: f.Name, Topics: f.Topics, point: newPoint(lowest, now)})
		}
	}
	return nil
}

// writeFeeds prints the feeds' watermarks and the partition holding the
// group's back, after the tables of writeTables.
func (st status) writeFeeds(out io.Writer) error {
	if len(st.Feeds) > 0 {
		fmt.Fprintf(out, "\nfeeds (%s frontier)\n", st.Frontier)
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FEED\tTOPICS\tHLC\tWALL TIME (UTC)\tAGE")
		for _, f := range st.Feeds {
			wall, age := f.cells()
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Feed, strings.Join(f.Topics, ","), f.Resolved, wall, age)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if st.HeldBy != nil {
		fmt.Fprintf(out, "\nwatermark held back by feed %s, %s[%d] (the lowest checkpoint)\n", st.HeldBy.Feed, st.HeldBy.Topic, st.HeldBy.Partition)
	}
	return nil
}
