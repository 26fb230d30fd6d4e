// Package metrics exposes a running processor's figures for Prometheus
// (names follow Prometheus conventions with the highwater_ prefix) and the
// /healthz and /readyz probes.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/processor"
)

// Source is what the metrics read: processor.Processor satisfies it. A
// Source that is also a PartitionSource gets the per-partition gauges.
type Source interface {
	Stats() processor.Stats
}

// NewRegistry returns a Prometheus registry with the process and Go
// collectors and highwater's own figures read from src at scrape time.
// Every highwater metric is registered, even those that have no sample yet
// (per-partition and per-table series appear with their first partition or
// row); docs/METRICS.md lists them.
func NewRegistry(src Source, opts ...Option) *prometheus.Registry {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.obs == nil {
		o.obs = NewObserver()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(o.obs.collectors()...)
	reg.MustRegister(newPartitionCollector(src))
	reg.MustRegister(newFeedCollector(src))
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	counter := func(name, help string, f func(processor.Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(src.Stats()) })
	}
	gauge := func(name, help string, f func(processor.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(src.Stats()) })
	}
	reg.MustRegister(
		counter("highwater_records_consumed_total", "Changefeed records (rows and resolved) read from Kafka.",
			func(s processor.Stats) float64 { return float64(s.Consumed) }),
		counter("highwater_duplicates_dropped_total", "Rows dropped as older than their partition's applied frontier.",
			func(s processor.Stats) float64 { return float64(s.Duplicates) }),
		counter("highwater_decode_errors_total", "Poison records met (undecodable, unknown schema, key/value mismatch, timestamp beyond --max-clock-skew), dead-lettered or skipped; with --on-error=fail the first one stops the feed.",
			func(s processor.Stats) float64 { return float64(s.DeadLettersIngest + s.DeadLettersApply + s.Skipped) }),
		counter("highwater_rebalances_total", "Consumer-group rebalances that assigned, revoked or lost partitions of this member.",
			func(s processor.Stats) float64 { return float64(s.Rebalances) }),
		counter("highwater_windows_applied_total", "Resolved windows committed to the warehouse.",
			func(s processor.Stats) float64 { return float64(s.Windows) }),
		counter("highwater_windows_fenced_total", "Windows rolled back because another member had applied one of their partitions meanwhile; the member resumed those partitions from the stored checkpoints.",
			func(s processor.Stats) float64 { return float64(s.Fenced) }),
		counter("highwater_groups_applied_early_total", "Groups of rows at one HLC (an initial scan or a backfill bigger than --buffer-budget) applied ahead of their resolved timestamp, with no checkpoint, to stay within the budget.",
			func(s processor.Stats) float64 { return float64(s.EarlyGroups) }),
		counter("highwater_windows_cancelled_total", "Windows abandoned in flight because their partitions were lost (the member's group session expired).",
			func(s processor.Stats) float64 { return float64(s.Cancelled) }),
		deadLetters(src, processor.StageIngest, func(s processor.Stats) int64 { return s.DeadLettersIngest }),
		deadLetters(src, processor.StageApply, func(s processor.Stats) int64 { return s.DeadLettersApply }),
		counter("highwater_records_skipped_total", "Poison records skipped by --on-error=skip.",
			func(s processor.Stats) float64 { return float64(s.Skipped) }),
		counter("highwater_retention_gaps_total", "Partitions found with records deleted by Kafka retention before they were applied; the member stops unless --allow-retention-gap.",
			func(s processor.Stats) float64 { return float64(s.RetentionGaps) }),
		gauge("highwater_buffer_events", "Unresolved events held in the buffer.",
			func(s processor.Stats) float64 { return float64(s.Buffered) }),
		gauge("highwater_buffer_bytes", "Disk used by the buffer.",
			func(s processor.Stats) float64 { return float64(s.BufferBytes) }),
		gauge("highwater_partitions_owned", "Kafka partitions this member owns.",
			func(s processor.Stats) float64 { return float64(s.Partitions) }),
		gauge("highwater_ready", "1 while the member is ready (owns partitions and has applied a first window), as /readyz answers; 0 otherwise.",
			func(s processor.Stats) float64 { ok, _ := ready(s); return b2f(ok) }),
		gauge("highwater_fetch_paused", "1 while fetching is paused by the buffer's disk budget.",
			func(s processor.Stats) float64 { return b2f(s.Paused) }),
		gauge("highwater_frontier_lag_seconds", "Now minus the wall time of the last applied frontier.",
			lag),
		gauge("highwater_frontier_timestamp_seconds", "Wall time of the last applied frontier (HLC), as Unix seconds.",
			func(s processor.Stats) float64 {
				if s.Frontier.IsZero() {
					return 0
				}
				return float64(s.Frontier.WallTime) / 1e9
			}),
		gauge("highwater_last_flush_seconds", "Duration of the last window's flush.",
			func(s processor.Stats) float64 { return s.LastFlush.Seconds() }),
		gauge("highwater_resolved_to_visible_seconds", "Time from the resolved message that closed the last window to its commit.",
			func(s processor.Stats) float64 { return s.LastVisible.Seconds() }),
	)
	return reg
}

// deadLetters is highwater_dead_letters_total for one stage: poison records
// set aside by --on-error=dlq, at ingest or when their window was applied.
func deadLetters(src Source, stage string, f func(processor.Stats) int64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name:        "highwater_dead_letters_total",
		Help:        "Poison records set aside in the dead-letter topic and table (--on-error=dlq), by the stage where they failed.",
		ConstLabels: prometheus.Labels{"stage": stage},
	}, func() float64 { return float64(f(src.Stats())) })
}

// ready is the member's readiness, shared by /readyz and highwater_ready so
// that an alert on the metric means what the probe means.
func ready(s processor.Stats) (bool, string) {
	if s.Partitions == 0 || s.Frontier.IsZero() {
		return false, "waiting for partitions and a first resolved window"
	}
	return true, ""
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func lag(s processor.Stats) float64 {
	if s.Frontier.IsZero() {
		return 0
	}
	return time.Since(s.Frontier.Time()).Seconds()
}

// Serve serves /metrics, /healthz, /readyz and the status page (/) on addr
// until ctx ends. Ready means the member owns partitions and has applied a
// first window.
func Serve(ctx context.Context, addr string, src Source, log *zap.Logger, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	hist := &history{}
	go func() {
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			hist.add(src.Stats(), time.Now())
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	mux := http.NewServeMux()
	mux.Handle("/{$}", page(src, o.page, hist))
	mux.Handle("/metrics", promhttp.HandlerFor(NewRegistry(src, opts...), promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := ready(src.Stats()); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Info("serving metrics", zap.String("addr", ln.Addr().String()))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
