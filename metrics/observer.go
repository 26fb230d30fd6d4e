package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/sinks"
)

// Observer collects what a snapshot of the processor cannot give: the
// duration of every flush (it is a processor.Observer) and the rows
// committed per table and operation (through Writer). One Observer serves
// one registry; create it before the processor and pass it to both.
type Observer struct {
	flush *prometheus.HistogramVec
	rows  *prometheus.CounterVec
}

// NewObserver returns an Observer with no observations yet.
func NewObserver() *Observer {
	return &Observer{
		// Windows take milliseconds when the feed is quiet and up to
		// minutes after an outage: 5 ms .. ~164 s.
		flush: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "highwater_flush_duration_seconds",
			Help:    "Duration of each window's flush: read from the buffer, decode, write and commit to the warehouse.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}, nil),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "highwater_rows_written_total",
			Help: "Row changes committed to the warehouse, by table and operation (insert, update, upsert, delete).",
		}, []string{"table", "op"}),
	}
}

// WindowApplied implements processor.Observer.
func (o *Observer) WindowApplied(_ hlc.Timestamp, took time.Duration, _ int) {
	o.flush.WithLabelValues().Observe(took.Seconds())
}

var _ processor.Observer = (*Observer)(nil)

func (o *Observer) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.flush, o.rows}
}

// Writer returns w with its committed rows counted per table and op.
// Changes are counted when their transaction commits, so a window that is
// rolled back and retried counts once.
func (o *Observer) Writer(w sinks.Writer) sinks.Writer {
	return countingWriter{Writer: w, o: o}
}

type countingWriter struct {
	sinks.Writer
	o *Observer
}

func (w countingWriter) Begin(ctx context.Context) (sinks.Tx, error) {
	tx, err := w.Writer.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &countingTx{Tx: tx, o: w.o}, nil
}

// countingTx embeds the writer's Tx, so that every method but Write and
// Commit is the writer's own.
type countingTx struct {
	sinks.Tx
	o *Observer
	// counts holds, per table, the changes of each sinks.Op written in
	// this transaction.
	counts map[string]*[4]int
}

func (t *countingTx) Write(ctx context.Context, table *model.Table, changes []sinks.Change) error {
	if err := t.Tx.Write(ctx, table, changes); err != nil {
		return err
	}
	if t.counts == nil {
		t.counts = make(map[string]*[4]int)
	}
	c := t.counts[table.Name]
	if c == nil {
		c = new([4]int)
		t.counts[table.Name] = c
	}
	for i := range changes {
		if op := changes[i].Op; int(op) < len(c) {
			c[op]++
		}
	}
	return nil
}

func (t *countingTx) Commit(ctx context.Context) error {
	if err := t.Tx.Commit(ctx); err != nil {
		return err
	}
	for table, c := range t.counts {
		for op, n := range c {
			if n > 0 {
				t.o.rows.WithLabelValues(table, sinks.Op(op).String()).Add(float64(n))
			}
		}
	}
	t.counts = nil
	return nil
}

// PartitionSource is a Source that also reports per-partition positions;
// processor.Processor is one.
type PartitionSource interface {
	PartitionStats() []processor.PartitionStat
}

// partitionCollector exports per-partition gauges read from the source at
// scrape time; a partition that left this member leaves no stale series.
type partitionCollector struct {
	src                     Source
	resolvedLag, appliedLag *prometheus.Desc
	consumerLag             *prometheus.Desc
	now                     func() time.Time
}

func newPartitionCollector(src Source) *partitionCollector {
	labels := []string{"topic", "partition"}
	return &partitionCollector{
		src: src,
		resolvedLag: prometheus.NewDesc("highwater_partition_resolved_lag_seconds",
			"Now minus the wall time of the latest resolved timestamp read from the partition (absent until the first one).", labels, nil),
		appliedLag: prometheus.NewDesc("highwater_partition_applied_lag_seconds",
			"Now minus the wall time of the resolved timestamp the warehouse checkpoint holds for the partition (absent before the first).", labels, nil),
		consumerLag: prometheus.NewDesc("highwater_consumer_lag_records",
			"Records in the partition not yet read: high watermark minus next offset, as of the last fetch that returned records.", labels, nil),
		now: time.Now,
	}
}

func (c *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.resolvedLag
	ch <- c.appliedLag
	ch <- c.consumerLag
}

func (c *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	ps, ok := c.src.(PartitionSource)
	if !ok {
		return
	}
	now := c.now()
	for _, p := range ps.PartitionStats() {
		part := strconv.Itoa(int(p.Partition))
		if !p.Resolved.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.resolvedLag, prometheus.GaugeValue, now.Sub(p.Resolved.Time()).Seconds(), p.Topic, part)
		}
		if !p.Applied.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.appliedLag, prometheus.GaugeValue, now.Sub(p.Applied.Time()).Seconds(), p.Topic, part)
		}
		if p.HighWatermark > 0 || p.NextOffset > 0 {
			ch <- prometheus.MustNewConstMetric(c.consumerLag, prometheus.GaugeValue, float64(max(0, p.HighWatermark-p.NextOffset)), p.Topic, part)
		}
	}
}

// Option configures NewRegistry and Serve.
type Option func(*options)

type options struct {
	obs  *Observer
	page PageInfo
}

// WithObserver exports obs's flush histogram and per-table row counters.
// Without it they are registered but stay empty.
func WithObserver(obs *Observer) Option { return func(o *options) { o.obs = obs } }
