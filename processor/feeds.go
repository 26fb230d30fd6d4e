package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// Several changefeeds' topics may be consumed by one processor. Every
// resolved timestamp is an HLC of one CockroachDB cluster, so the minimum
// over all their partitions is a consistent cut across every table: that
// is the shared frontier, and the default. Its cost is that one paused or
// lagging changefeed holds every table back. With independent frontiers
// each feed (a named group of topics, Config.Feeds) has its own frontier
// and its own windows: a stalled feed holds back only its own tables.

// FrontierMode says whether the feeds of one processor share one frontier.
type FrontierMode string

const (
	// FrontierShared applies one window through the minimum latest
	// resolved timestamp over every partition of every feed: the mirror is
	// one consistent cut across all tables, and a stalled feed holds every
	// table back.
	FrontierShared FrontierMode = "shared"
	// FrontierIndependent gives each feed its own frontier and windows,
	// applied one at a time, in turn: a stalled feed holds back only its
	// own tables; each feed's tables are consistent as of its own
	// watermark.
	FrontierIndependent FrontierMode = "independent"
)

// FrontierModes are the accepted Config.Frontier words, in the order the
// help lists them.
var FrontierModes = []FrontierMode{FrontierShared, FrontierIndependent}

// ParseFrontierMode parses a --frontier word; empty is FrontierShared.
func ParseFrontierMode(s string) (FrontierMode, error) {
	if s == "" {
		return FrontierShared, nil
	}
	for _, m := range FrontierModes {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("frontier %q: want shared or independent", s)
}

// DefaultFeed names the one feed of a shared frontier when Config.Feeds is
// empty: every topic.
const DefaultFeed = "default"

// Feed is a named group of topics, typically the topics of one CockroachDB
// changefeed (CockroachDB recommends a changefeed per table for tables
// with heavy traffic).
type Feed struct {
	Name   string
	Topics []string
}

// ResolveFeeds returns the feeds topics are grouped in: feeds as given,
// then each topic named by no feed as a feed of its own, named after the
// topic; with no feeds at all, one feed DefaultFeed of every topic under
// FrontierShared, and a feed per topic under FrontierIndependent. A feed
// with no name or no topics, a name used twice, a topic in two feeds or a
// feed topic missing from topics is an error.
func ResolveFeeds(topics []string, feeds []Feed, mode FrontierMode) ([]Feed, error) {
	if len(feeds) == 0 && mode != FrontierIndependent {
		return []Feed{{Name: DefaultFeed, Topics: slices.Clone(topics)}}, nil
	}
	known := make(map[string]bool, len(topics))
	for _, t := range topics {
		known[t] = true
	}
	names := map[string]bool{}
	inFeed := map[string]string{}
	var out []Feed
	var errs []error
	for _, f := range feeds {
		switch {
		case f.Name == "":
			errs = append(errs, fmt.Errorf("feed of topics %v: no name", f.Topics))
			continue
		case names[f.Name]:
			errs = append(errs, fmt.Errorf("feed %q: named twice", f.Name))
			continue
		case len(f.Topics) == 0:
			errs = append(errs, fmt.Errorf("feed %q: no topics", f.Name))
			continue
		}
		names[f.Name] = true
		for _, t := range f.Topics {
			switch {
			case inFeed[t] != "":
				errs = append(errs, fmt.Errorf("topic %q is in feeds %q and %q: a topic belongs to one feed", t, inFeed[t], f.Name))
			case !known[t]:
				errs = append(errs, fmt.Errorf("feed %q: topic %q is not one of the topics %v", f.Name, t, topics))
			}
			inFeed[t] = f.Name
		}
		out = append(out, Feed{Name: f.Name, Topics: slices.Clone(f.Topics)})
	}
	for _, t := range topics {
		if inFeed[t] != "" {
			continue
		}
		if names[t] {
			errs = append(errs, fmt.Errorf("topic %q is in no feed, and a feed of its own would be named like feed %q", t, t))
			continue
		}
		names[t] = true
		out = append(out, Feed{Name: t, Topics: []string{t}})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// feedSet is the processor's feeds, fixed at New.
type feedSet struct {
	mode  FrontierMode
	feeds []Feed
	// of maps a topic to its feed's index in feeds.
	of map[string]int
}

func newFeedSet(c *Config) (*feedSet, error) {
	mode, err := ParseFrontierMode(string(c.Frontier))
	if err != nil {
		return nil, fmt.Errorf("processor: %w", err)
	}
	c.Frontier = mode
	feeds, err := ResolveFeeds(c.Topics, c.Feeds, mode)
	if err != nil {
		return nil, fmt.Errorf("processor: %w", err)
	}
	fs := &feedSet{mode: mode, feeds: feeds, of: map[string]int{}}
	for i, f := range feeds {
		for _, t := range f.Topics {
			fs.of[t] = i
		}
	}
	return fs, nil
}

// split groups owned partitions (in owned's order) by feed, indexed as
// feeds.
func (fs *feedSet) split(owned []*partState) [][]*partState {
	out := make([][]*partState, len(fs.feeds))
	for _, st := range owned {
		i := fs.of[st.p.Topic]
		out[i] = append(out[i], st)
	}
	return out
}

// nextWindow returns the partitions and frontier of the next window to
// apply, if any. Shared: every owned partition, through the min latest
// resolved over them, as soon as it passes the lowest applied checkpoint.
// Independent: the feeds are taken in turn, starting after the one that
// had the last window, and the first whose own frontier passed its own
// applied checkpoints gets the window. The caller holds p.mu.
func (p *Processor) nextWindow() ([]*partState, hlc.Timestamp, bool) {
	owned := p.owned()
	f, applied, ok := frontier(owned)
	if ok {
		p.stats.resolved.Store(&f)
	}
	if p.feeds.mode != FrontierIndependent {
		if !ok || !applied.Less(f) {
			return nil, hlc.Timestamp{}, false
		}
		return owned, f, true
	}
	groups := p.feeds.split(owned)
	n := len(groups)
	// After a failed window its feed goes first again: a commit reported
	// failed that did take effect is recognised only by the retry of the
	// same window (uncertainCommit), before another window succeeds.
	first := 1
	if p.attempt > 0 || p.uncertain != nil {
		first = 0
	}
	for k := first; k < first+n; k++ {
		i := (p.lastFeed + k) % n
		f, applied, ok := frontier(groups[i])
		if ok && applied.Less(f) {
			p.lastFeed = i
			return groups[i], f, true
		}
	}
	return nil, hlc.Timestamp{}, false
}

// storeFrontier records the member's applied frontier after a window
// through f: f itself with a shared frontier (the window covered every
// owned partition), the lowest applied checkpoint over the owned
// partitions with independent ones (the window covered one feed). The
// caller holds p.mu.
func (p *Processor) storeFrontier(f hlc.Timestamp) {
	if p.feeds.mode == FrontierIndependent {
		if owned := p.owned(); len(owned) > 0 {
			_, f, _ = frontier(owned)
		}
	}
	p.stats.frontier.Store(&f)
}

// aheadOfFrontier reports, for backpressure, whether a partition's latest
// resolved is past the frontier it is part of: the member's (shared) or
// its feed's (independent). Only such partitions may pause: the others
// hold a frontier back. The caller holds p.mu.
func (p *Processor) aheadOfFrontier(owned []*partState) func(*partState) bool {
	if p.feeds.mode != FrontierIndependent {
		f, _, _ := frontier(owned)
		return func(st *partState) bool { return f.Less(st.resolved) }
	}
	groups := p.feeds.split(owned)
	fs := make([]hlc.Timestamp, len(groups))
	for i, g := range groups {
		fs[i], _, _ = frontier(g)
	}
	return func(st *partState) bool { return fs[p.feeds.of[st.p.Topic]].Less(st.resolved) }
}

// FeedStat is what the member knows about one feed: its owned partitions'
// frontier, applied checkpoint and the partition holding it back.
type FeedStat struct {
	Name   string
	Topics []string
	// Partitions is how many of the feed's partitions the member owns.
	Partitions int
	// Resolved is the feed's frontier on this member: the min latest
	// resolved timestamp over its owned partitions; zero while one of
	// them has none.
	Resolved hlc.Timestamp
	// Applied is the min applied checkpoint over its owned partitions.
	Applied hlc.Timestamp
	// HeldByTopic and HeldByPartition name the owned partition whose
	// latest resolved timestamp is the lowest (one with none first; on a
	// tie the first by topic and partition): the one holding the feed's
	// frontier back. Empty and -1 when the member owns none.
	HeldByTopic     string
	HeldByPartition int32
}

// FrontierStats is the member's frontier per feed: how each feed stands
// and which holds the cut back.
type FrontierStats struct {
	Mode  FrontierMode
	Feeds []FeedStat
	// Holder indexes Feeds: the feed, among those with owned partitions,
	// whose frontier (Resolved) is the lowest (one that has none first; on
	// a tie the first in Feeds). With a shared frontier it holds the
	// member's window back; with independent ones it is the furthest
	// behind. -1 when the member owns no partition.
	Holder int
}

// FrontierStats returns the member's frontier per feed as of the last poll
// or rebalance.
func (p *Processor) FrontierStats() FrontierStats {
	if s := p.obs.feeds.Load(); s != nil {
		out := *s
		out.Feeds = slices.Clone(out.Feeds)
		return out
	}
	out := FrontierStats{Mode: p.feeds.mode, Holder: -1}
	for _, f := range p.feeds.feeds {
		out.Feeds = append(out.Feeds, FeedStat{Name: f.Name, Topics: f.Topics, HeldByPartition: -1})
	}
	return out
}

// publishFeeds snapshots the feeds for FrontierStats. The caller holds
// p.mu.
func (p *Processor) publishFeeds() {
	out := FrontierStats{Mode: p.feeds.mode, Holder: -1}
	owned := p.owned()
	for i, g := range p.feeds.split(owned) {
		fs := FeedStat{Name: p.feeds.feeds[i].Name, Topics: p.feeds.feeds[i].Topics, Partitions: len(g), HeldByPartition: -1}
		if len(g) > 0 {
			hold := slices.MinFunc(g, func(a, b *partState) int { return a.resolved.Compare(b.resolved) })
			fs.HeldByTopic, fs.HeldByPartition = hold.p.Topic, hold.p.Partition
			fs.Resolved, fs.Applied, _ = frontier(g)
			if out.Holder < 0 || fs.Resolved.Less(out.Feeds[out.Holder].Resolved) {
				out.Holder = i
			}
		}
		out.Feeds = append(out.Feeds, fs)
	}
	p.obs.feeds.Store(&out)
}

// recordFeeds records in the warehouse which feed each topic belongs to,
// when the writer keeps that record (sinks.FeedRecorder), so that the
// warehouse shows each feed's watermark. It retries while the warehouse is
// unreachable, as registerPartitions does.
func (p *Processor) recordFeeds(ctx context.Context) error {
	r, ok := p.cfg.Writer.(sinks.FeedRecorder)
	if !ok {
		return nil
	}
	var fts []sinks.FeedTopic
	for _, f := range p.feeds.feeds {
		for _, t := range f.Topics {
			fts = append(fts, sinks.FeedTopic{Topic: t, Feed: f.Name})
		}
	}
	backoff := 100 * time.Millisecond
	for {
		err := r.RecordFeeds(ctx, p.cfg.Group, string(p.feeds.mode), fts)
		if err == nil {
			return nil
		}
		p.log.Warn("recording the feeds in the warehouse failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return fmt.Errorf("record the feeds in the warehouse: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
