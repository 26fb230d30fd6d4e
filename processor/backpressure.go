package processor

import (
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/buffer"
)

// applyBackpressure pauses fetching while the buffer is over its disk budget
// and resumes once a flush freed space. Only the partitions ahead of the
// frontier pause: those holding it back (latest resolved == the frontier,
// or none yet) keep fetching until their next resolved timestamp arrives.
// Pausing them too would stall the feed for good whenever the budget is
// reached inside a window: no window could close and free space. So the
// buffer stays within the budget plus about one window per partition.
func (p *Processor) applyBackpressure(buf *buffer.Store) {
	if !buf.OverBudget() {
		if p.paused {
			p.paused = false
			p.stats.paused.Store(false)
			p.log.Info("buffer below its disk budget: resuming fetches")
			if paused := p.cl.PauseFetchPartitions(nil); len(paused) > 0 {
				p.cl.ResumeFetchPartitions(paused)
			}
		}
		return
	}
	owned := p.owned()
	if p.earlyInFlight() {
		// A group is being applied ahead of its resolved timestamp
		// (early.go): it frees the space without any partition's next
		// resolved timestamp, so every partition may wait for it.
		p.pauseAll(buf, owned)
		return
	}
	f, _, _ := frontier(owned)
	isAhead := p.aheadOfFrontier(owned)
	ahead, behind := map[string][]int32{}, map[string][]int32{}
	for _, st := range owned {
		if isAhead(st) {
			ahead[st.p.Topic] = append(ahead[st.p.Topic], st.p.Partition)
		} else {
			behind[st.p.Topic] = append(behind[st.p.Topic], st.p.Partition)
		}
	}
	if !p.paused {
		p.paused = true
		p.stats.paused.Store(true)
		p.log.Warn("buffer disk budget reached: pausing fetches of the partitions ahead of the frontier until a resolved window is flushed",
			zap.Int64("bytes", buf.Usage().Bytes), zap.Stringer("frontier", f))
	}
	if len(ahead) > 0 {
		p.cl.PauseFetchPartitions(ahead)
	}
	if len(behind) > 0 {
		p.cl.ResumeFetchPartitions(behind)
	}
}

// pauseAll pauses fetching of every owned partition while the buffer is
// over its budget and a group applied early will free space.
func (p *Processor) pauseAll(buf *buffer.Store, owned []*partState) {
	if !p.paused {
		p.paused = true
		p.stats.paused.Store(true)
		p.log.Warn("buffer disk budget reached: pausing fetches of every partition while a group is applied ahead of its resolved timestamp",
			zap.Int64("bytes", buf.Usage().Bytes))
	}
	all := map[string][]int32{}
	for _, st := range owned {
		all[st.p.Topic] = append(all[st.p.Topic], st.p.Partition)
	}
	if len(all) > 0 {
		p.cl.PauseFetchPartitions(all)
	}
}
