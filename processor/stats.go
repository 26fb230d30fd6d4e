package processor

import (
	"sync"
	"time"

	"github.com/highwater-dev/highwater/hlc"
)

// Stats are the processor's running totals, safe to read while it runs.
type Stats struct {
	Consumed     int64         // row and resolved records read from Kafka
	ResolvedMsgs int64         // resolved-timestamp records among them
	Duplicates   int64         // rows dropped as older than their partition's applied frontier
	Buffered     int64         // events in the buffer now
	BufferBytes  int64         // buffer size on disk
	RowsApplied  int64         // changes written to the warehouse
	Windows      int64         // windows committed
	Frontier     hlc.Timestamp // last applied frontier (min over owned partitions)
	Resolved     hlc.Timestamp // min latest resolved over owned partitions
	Partitions   int           // partitions owned
	Paused       bool          // fetching paused by the buffer's disk budget
	LastFlush    time.Duration
	LastVisible  time.Duration // resolved-to-visible latency of the last window
	Rebalances   int64         // partition assignments, revocations and losses

	// Poison records (see Config.OnError): set aside in the dead-letter
	// topic and table, at ingest and at apply, and skipped.
	DeadLettersIngest int64
	DeadLettersApply  int64
	Skipped           int64

	// LastError is the last error the member met and went on from (a
	// window that failed and is retried, a fetch error), and LastErrorAt
	// when; empty and zero if none.
	LastError   string
	LastErrorAt time.Time
	// RetentionGaps counts partitions found with records deleted by
	// Kafka's retention before they were applied (RetentionGapError).
	RetentionGaps int64
	// Fenced counts windows rolled back because another member had
	// applied one of their partitions meanwhile (this member had lost
	// them, say in a stall longer than the session timeout); the member
	// resumed those partitions from the stored checkpoints.
	Fenced int64
	// Cancelled counts windows abandoned in flight because their
	// partitions were lost (the member's group session expired).
	Cancelled int64
	// EarlyGroups counts groups applied ahead of their resolved timestamp
	// because the buffer reached its disk budget (an initial scan or a
	// backfill bigger than the budget, early.go), and EarlyRows their rows
	// (also counted in RowsApplied).
	EarlyGroups int64
	EarlyRows   int64
}

// Stats returns a snapshot of the running totals.
func (p *Processor) Stats() Stats {
	u := p.cfg.Buffer.Usage()
	s := Stats{
		Consumed:     p.stats.consumed.Load(),
		ResolvedMsgs: p.stats.resolvedMsgs.Load(),
		Duplicates:   p.stats.duplicates.Load(),
		Buffered:     u.Events,
		BufferBytes:  u.Bytes,
		RowsApplied:  p.stats.rowsApplied.Load(),
		Windows:      p.stats.windows.Load(),
		Partitions:   int(p.stats.partitions.Load()),
		Paused:       p.stats.paused.Load(),
		LastFlush:    time.Duration(p.stats.lastFlush.Load()),
		LastVisible:  time.Duration(p.stats.lastVisible.Load()),
		Rebalances:   p.obs.rebalances.Load(),

		DeadLettersIngest: p.stats.deadIngest.Load(),
		DeadLettersApply:  p.stats.deadApply.Load(),
		Skipped:           p.stats.skipped.Load(),
		RetentionGaps:     p.stats.retentionGaps.Load(),
		Fenced:            p.stats.fenced.Load(),
		Cancelled:         p.stats.cancelled.Load(),
		EarlyGroups:       p.stats.earlyGroups.Load(),
		EarlyRows:         p.stats.earlyRows.Load(),
	}
	if f := p.stats.frontier.Load(); f != nil {
		s.Frontier = *f
	}
	if r := p.stats.resolved.Load(); r != nil {
		s.Resolved = *r
	}
	if e := p.lastErr.Load(); e != nil {
		s.LastError, s.LastErrorAt = e.msg, e.at
	}
	return s
}

// Latencies returns the resolved-to-visible latencies of recent windows
// (time from the ingest of the resolved message that closed a window to the
// commit of that window), oldest first.
func (p *Processor) Latencies() []time.Duration { return p.latency.snapshot() }

// latencies keeps the most recent resolved-to-visible latencies.
type latencies struct {
	mu   sync.Mutex
	buf  []time.Duration
	next int
	full bool
}

func newLatencies(n int) *latencies { return &latencies{buf: make([]time.Duration, n)} }

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.buf[l.next] = d
	l.next = (l.next + 1) % len(l.buf)
	if l.next == 0 {
		l.full = true
	}
	l.mu.Unlock()
}

func (l *latencies) last() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full && l.next == 0 {
		return 0
	}
	return l.buf[(l.next+len(l.buf)-1)%len(l.buf)]
}

func (l *latencies) snapshot() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full {
		return append([]time.Duration(nil), l.buf[:l.next]...)
	}
	return append(append([]time.Duration(nil), l.buf[l.next:]...), l.buf[:l.next]...)
}
