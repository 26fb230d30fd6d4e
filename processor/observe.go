package processor

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/highwater-dev/highwater/hlc"
)

// Observer is told what the processor does, for metrics that a snapshot
// (Stats, PartitionStats) cannot give, such as a histogram of every flush.
// Its methods are called from the processor's goroutines; they must be safe
// for concurrent use and return quickly.
type Observer interface {
	// WindowApplied is called once a window through the frontier has
	// committed; took is its flush's duration (read from the buffer,
	// decode, write, commit) and rows the changes it wrote.
	WindowApplied(through hlc.Timestamp, took time.Duration, rows int)
}

// PartitionStat is what the member knows about one owned partition.
type PartitionStat struct {
	Topic     string
	Partition int32
	// Resolved is the latest resolved timestamp read from the partition;
	// zero until the first one arrives.
	Resolved hlc.Timestamp
	// Applied is the resolved timestamp the warehouse checkpoint holds
	// for the partition.
	Applied hlc.Timestamp
	// NextOffset is the offset after the last record read (0 before any
	// record), and HighWatermark the partition's high watermark as of that
	// fetch: HighWatermark - NextOffset is the consumer lag in records.
	NextOffset    int64
	HighWatermark int64
}

// observed holds the figures behind PartitionStats and Stats.Rebalances.
type observed struct {
	rebalances atomic.Int64
	// partitions is the latest snapshot, published by the poll loop and
	// the rebalance callbacks while they hold Processor.mu, so that a
	// metrics scrape never waits for a flush.
	partitions atomic.Pointer[[]PartitionStat]
	// feeds is the latest FrontierStats, published with partitions.
	feeds atomic.Pointer[FrontierStats]
}

// PartitionStats returns the owned partitions' positions, ordered by topic
// and partition, as of the last poll or rebalance.
func (p *Processor) PartitionStats() []PartitionStat {
	if s := p.obs.partitions.Load(); s != nil {
		return append([]PartitionStat(nil), (*s)...)
	}
	return nil
}

// publishPartitions snapshots the partitions' state for PartitionStats.
// The caller holds p.mu.
func (p *Processor) publishPartitions() {
	out := make([]PartitionStat, 0, len(p.parts))
	for _, st := range p.parts {
		out = append(out, PartitionStat{
			Topic: st.p.Topic, Partition: st.p.Partition,
			Resolved: st.resolved, Applied: st.applied,
			NextOffset: st.nextOffset, HighWatermark: st.highWatermark,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	p.obs.partitions.Store(&out)
	p.publishFeeds()
}

// rebalanced counts one change of the member's partitions.
func (p *Processor) rebalanced(parts map[string][]int32) {
	for _, ps := range parts {
		if len(ps) > 0 {
			p.obs.rebalances.Add(1)
			return
		}
	}
}

// observeWindow tells the Observer, if any, about a committed window.
func (p *Processor) observeWindow(through hlc.Timestamp, took time.Duration, rows int) {
	if p.cfg.Observer != nil {
		p.cfg.Observer.WindowApplied(through, took, rows)
	}
}
