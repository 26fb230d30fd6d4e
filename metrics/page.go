package metrics

import (
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/processor"
)

// PageInfo is what the status page says about the member beyond its
// figures: which feed it runs and its buffer's disk budget.
type PageInfo struct {
	Group  string
	Topics []string
	// Sink is the warehouse URL with its secrets redacted.
	Sink string
	// BufferBudget is the buffer's disk budget in bytes (0: unlimited).
	BufferBudget int64
}

// WithPageInfo sets what the status page (GET /) shows about the feed.
func WithPageInfo(info PageInfo) Option { return func(o *options) { o.page = info } }

//go:embed page.html
var pageFS embed.FS

var pageTmpl = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"bytes": humanBytes,
	"dur":   age,
}).ParseFS(pageFS, "page.html"))

// History of the windows and rows applied, for the page's charts: one
// sample every sampleEvery over the last historyLen samples (10 minutes).
const (
	sampleEvery = 5 * time.Second
	historyLen  = 120
)

type point struct {
	at            time.Time
	windows, rows int64
}

// history keeps the recent samples of a Source's running totals.
type history struct {
	mu      sync.Mutex
	samples []point
}

func (h *history) add(s processor.Stats, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.samples) == historyLen {
		h.samples = append(h.samples[:0], h.samples[1:]...)
	}
	h.samples = append(h.samples, point{at: at, windows: s.Windows, rows: s.RowsApplied})
}

// rates returns, per interval between samples, windows and rows per second.
func (h *history) rates() (windows, rows []float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := 1; i < len(h.samples); i++ {
		a, b := h.samples[i-1], h.samples[i]
		secs := b.at.Sub(a.at).Seconds()
		if secs <= 0 {
			continue
		}
		windows = append(windows, float64(b.windows-a.windows)/secs)
		rows = append(rows, float64(b.rows-a.rows)/secs)
	}
	return windows, rows
}

// pageData is what page.html renders.
type pageData struct {
	Info       PageInfo
	Now        string
	Ready      bool
	NotReady   string
	Watermark  hlcView
	Stats      processor.Stats
	Partitions []partitionView
	// Feeds are the member's feeds (feeds.go), Frontier their mode.
	Feeds      []feedView
	Frontier   string
	Windows    chart
	Rows       chart
	BufferPct  float64
	DeadTotal  int64
	LastError  string
	LastErrAge string
}

type hlcView struct {
	HLC, Wall, Age string
	Set            bool
}

func viewHLC(h hlc.Timestamp, now time.Time) hlcView {
	if h.IsZero() {
		return hlcView{HLC: "-", Wall: "-", Age: "-"}
	}
	return hlcView{HLC: h.String(), Wall: h.Time().UTC().Format("2006-01-02 15:04:05.000"), Age: age(now.Sub(h.Time())), Set: true}
}

type partitionView struct {
	Topic     string
	Partition int32
	Applied   hlcView
	Resolved  hlcView
	// Behind says whether the partition holds the frontier back: its
	// latest resolved timestamp is the oldest of the member's, and another
	// partition's is newer.
	Behind      bool
	ConsumerLag string
}

// chart is an inline SVG line chart of one series.
type chart struct {
	Title, Unit string
	Last, Max   string
	Points      string // SVG polyline points
	Width       int
	Height      int
	Empty       bool
}

func newChart(title, unit string, values []float64) chart {
	c := chart{Title: title, Unit: unit, Width: 480, Height: 80, Empty: len(values) < 2}
	maxV := 0.0
	for _, v := range values {
		maxV = max(maxV, v)
	}
	if len(values) > 0 {
		c.Last = strconv.FormatFloat(values[len(values)-1], 'f', 1, 64)
	}
	c.Max = strconv.FormatFloat(maxV, 'f', 1, 64)
	if c.Empty {
		return c
	}
	if maxV == 0 {
		maxV = 1
	}
	var b strings.Builder
	step := float64(c.Width) / float64(historyLen-2)
	x0 := float64(c.Width) - step*float64(len(values)-1)
	for i, v := range values {
		fmt.Fprintf(&b, "%.1f,%.1f ", x0+step*float64(i), float64(c.Height)-v/maxV*float64(c.Height-4))
	}
	c.Points = strings.TrimSpace(b.String())
	return c
}

// page serves the status page: one server-rendered HTML document, no
// external assets (it must work offline inside a cluster), refreshing
// itself every 5 seconds.
func page(src Source, info PageInfo, hist *history) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		now := time.Now()
		s := src.Stats()
		d := pageData{Info: info, Now: now.UTC().Format(time.RFC3339), Stats: s, Watermark: viewHLC(s.Frontier, now),
			DeadTotal: s.DeadLettersIngest + s.DeadLettersApply}
		d.Ready, d.NotReady = ready(s)
		if ps, ok := src.(PartitionSource); ok {
			stats := ps.PartitionStats()
			var oldest, newest hlc.Timestamp
			for i, p := range stats {
				if i == 0 || p.Resolved.Less(oldest) {
					oldest = p.Resolved
				}
				if newest.Less(p.Resolved) {
					newest = p.Resolved
				}
			}
			for _, p := range stats {
				lag := "-"
				if p.NextOffset > 0 || p.HighWatermark > 0 {
					lag = strconv.FormatInt(max(p.HighWatermark-p.NextOffset, 0), 10)
				}
				d.Partitions = append(d.Partitions, partitionView{Topic: p.Topic, Partition: p.Partition,
					Applied: viewHLC(p.Applied, now), Resolved: viewHLC(p.Resolved, now),
					Behind: oldest.Less(newest) && p.Resolved == oldest, ConsumerLag: lag})
			}
		}
		d.Frontier, d.Feeds = feedViews(src, now)
		winRates, rowRates := hist.rates()
		d.Windows = newChart("Windows applied", "per second", winRates)
		d.Rows = newChart("Rows written", "per second", rowRates)
		if info.BufferBudget > 0 {
			d.BufferPct = min(100, float64(s.BufferBytes)/float64(info.BufferBudget)*100)
		}
		if s.LastError != "" {
			d.LastError, d.LastErrAge = s.LastError, age(now.Sub(s.LastErrorAt))
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := pageTmpl.Execute(w, d); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}
}

// age is a duration as a person reads it: 850ms, 12.3s, 3m20s, 5h2m,
// 12d4h.
func age(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d < 0:
		return "-" + age(-d)
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < day:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	return fmt.Sprintf("%dd%dh", d/day, d%day/time.Hour)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
