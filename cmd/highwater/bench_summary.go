package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// benchFigures are what one `highwater bench` measured, for the summary
// against issue 12's targets. A zero figure was not measured.
type benchFigures struct {
	events int // events of the throughput feed
	// Raw rates of the same run: a plain franz-go consumer of the same
	// topics, DuckDB's Appender.
	rawConsume, rawAppend float64
	e2e                   float64 // events/s end to end into DuckDB
	e2eHWM                int64   // kernel peak RSS of that run

	hard *hardFigures // the throughput feed again under a hard limit

	buffered      int64   // unresolved events buffered
	bufferedFeed  int64   // events the unresolved feed was asked for (--unresolved)
	bufferedAll   bool    // every record of that feed in Kafka was buffered
	bufferedHWM   int64   // kernel peak RSS while they were
	bufferedDisk  int64   // peak buffer disk
	bufferedBytes int64   // bytes (keys and values) of those events in Kafka
	ingest        float64 // events/s into the buffer
	rawConsumeMem float64 // raw consume of the memory feed's topics

	liveP50, liveP99 time.Duration
	liveWindows      int64
	liveRate         float64 // events/s the live feed achieved

	// From `go test -bench` of sinks/postgres (make bench passes the
	// output with --components).
	pgApply, pgRawCopy float64

	scan *scanFigures // the initial scan bigger than the buffer's budget
}

// hardFigures is the run under a hard memory limit.
type hardFigures struct {
	limit    int64
	skipped  string // why it did not run (no cgroup rights, ...)
	survived bool
	hwm      int64 // kernel peak RSS of the process
	cgPeak   int64 // peak memory charged to its cgroup (page cache included)
	oomKills int64
	failure  string
}

// summaryRow is one line of the summary: a target of issue 12.
type summaryRow struct {
	figure, measured, ratio, target, status string
}

const (
	statusMet         = "met"
	statusNotMet      = "NOT MET"
	statusNotMeasured = "not measured"
)

func verdict(ok bool) string {
	if ok {
		return statusMet
	}
	return statusNotMet
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func ratio(x, raw float64) string {
	if x <= 0 || raw <= 0 {
		return ""
	}
	return fmt.Sprintf("%.2fx", x/raw)
}

// summaryRows judges the figures against issue 12's targets.
func summaryRows(f benchFigures) []summaryRow {
	var rows []summaryRow
	add := func(r summaryRow) { rows = append(rows, r) }
	feed := fmt.Sprintf("end to end, %s events into DuckDB", count(int64(f.events)))
	switch {
	case f.e2e <= 0:
		add(summaryRow{feed, "", "", ">= 250k events/s", statusNotMeasured})
	default:
		st := verdict(f.e2e >= 250_000)
		if f.events < 1_000_000 {
			st += " (feed < 1M)"
		}
		add(summaryRow{feed, fmt.Sprintf("%.0fk events/s", f.e2e/1000), ratio(f.e2e, f.rawConsume) + " consume, " + ratio(f.e2e, f.rawAppend) + " append", ">= 250k events/s", st})
	}
	if f.e2eHWM > 0 {
		add(summaryRow{"  peak RSS of that run (VmHWM)", mib(f.e2eHWM), "", "<= 512 MiB", verdict(f.e2eHWM <= 512<<20)})
	} else {
		add(summaryRow{"  peak RSS of that run (VmHWM)", "", "", "<= 512 MiB", statusNotMeasured})
	}
	switch h := f.hard; {
	case h == nil:
		add(summaryRow{"  same feed under a hard memory limit", "", "", "survives 512 MiB", statusNotMeasured})
	case h.skipped != "":
		add(summaryRow{"  same feed under a hard memory limit", "could not limit: " + h.skipped, "", "survives " + mib(h.limit), statusNotMeasured})
	default:
		m := fmt.Sprintf("survived; VmHWM %s, cgroup %s", mib(h.hwm), mib(h.cgPeak))
		if !h.survived {
			m = fmt.Sprintf("failed (%d OOM kills): %s", h.oomKills, h.failure)
		}
		add(summaryRow{"  same feed under a hard " + mib(h.limit) + " cgroup limit", m, "", "survives " + mib(512<<20), verdict(h.survived && h.limit <= 512<<20)})
	}
	if f.buffered <= 0 {
		add(summaryRow{"unresolved events buffered", "", "", ">= 10M", statusNotMeasured})
	} else {
		// A simulated transaction's upserts of one key are one event, so a
		// feed of 10M events holds a few fewer records; all of them count.
		m := count(f.buffered)
		if f.bufferedAll {
			m += fmt.Sprintf(" (every record of the %s-event feed)", count(f.bufferedFeed))
		}
		add(summaryRow{"unresolved events buffered", m, "", ">= 10M", verdict(f.buffered >= 10_000_000 || f.bufferedAll && f.bufferedFeed >= 10_000_000)})
		add(summaryRow{"  peak RSS while buffered (VmHWM)", mib(f.bufferedHWM), "", "<= 512 MiB", verdict(f.bufferedHWM > 0 && f.bufferedHWM <= 512<<20)})
		if f.bufferedBytes > 0 {
			r := float64(f.bufferedDisk) / float64(f.bufferedBytes)
			add(summaryRow{"  buffer disk", mib(f.bufferedDisk), fmt.Sprintf("%.2fx the events' bytes", r), "<= 2x the events' bytes", verdict(r <= 2)})
		}
		add(summaryRow{"  ingest", fmt.Sprintf("%.0fk events/s", f.ingest/1000), ratio(f.ingest, f.rawConsumeMem) + " raw consume", ">= 200k events/s", verdict(f.ingest >= 200_000)})
	}
	if f.liveWindows <= 0 {
		add(summaryRow{"resolved-to-visible p99, live feed", "", "", "<= 1 s", statusNotMeasured})
	} else {
		add(summaryRow{"resolved-to-visible p99, live feed", fmt.Sprintf("%s (p50 %s)", f.liveP99, f.liveP50),
			fmt.Sprintf("%d windows at %.0fk events/s", f.liveWindows, f.liveRate/1000), "<= 1 s", verdict(f.liveP99 <= time.Second)})
	}
	if f.pgApply <= 0 {
		add(summaryRow{"PostgreSQL window apply", "", "", ">= 150k rows/s", statusNotMeasured})
	} else {
		add(summaryRow{"PostgreSQL window apply", fmt.Sprintf("%.0fk rows/s", f.pgApply/1000), ratio(f.pgApply, f.pgRawCopy) + " raw COPY", ">= 150k rows/s", verdict(f.pgApply >= 150_000)})
	}
	rows = append(rows, scanRows(f.scan)...)
	return rows
}

// scanTargetRows is the size of issue 12's initial scan target.
const scanTargetRows = 5_000_000

// scanRows judges the initial scan phase: it completes, the buffer and its
// directory stay within the budget + 20%, the member's VmHWM within
// 512 MiB, and the mirror equals the source.
func scanRows(s *scanFigures) []summaryRow {
	const figure = "initial scan larger than --buffer-budget"
	if s == nil {
		return []summaryRow{{figure, "", "", "completes within the budget", statusNotMeasured}}
	}
	head := summaryRow{figure: fmt.Sprintf("initial scan, %s rows, --buffer-budget %s", count(s.rows), mib(s.budget)), target: "completes"}
	if s.failure != "" {
		head.measured, head.status = fmt.Sprintf("failed after %s: %s", s.took.Round(time.Second), s.failure), statusNotMet
	} else {
		rate := float64(s.rows) / s.took.Seconds()
		head.measured = fmt.Sprintf("%s, %.0fk rows/s, %d groups early", s.took.Round(time.Second), rate/1000, s.earlyGroups)
		head.ratio = ratio(rate, s.rawConsume) + " raw consume"
		head.status = statusMet
	}
	// A scan that fits its budget, or smaller than the target's, proves
	// less than the target asks: said beside the verdict.
	switch {
	case s.scanBytes <= s.budget:
		head.status += " (scan <= budget)"
	case s.rows < scanTargetRows:
		head.status += " (scan < 5M)"
	}
	out := []summaryRow{head}
	within := func(name string, b int64) {
		r := float64(b) / float64(s.budget)
		if b <= 0 {
			out = append(out, summaryRow{name, "", "", "<= 1.2x the budget", statusNotMeasured})
			return
		}
		out = append(out, summaryRow{name, mib(b), fmt.Sprintf("%.2fx the budget", r), "<= 1.2x the budget", verdict(r <= 1.2)})
	}
	within("  scan buffer size peak (highwater_buffer_bytes)", s.peakBuffer)
	within("  scan buffer disk peak (allocated)", s.peakDisk)
	if s.hwm > 0 {
		out = append(out, summaryRow{"  peak RSS of the scan (VmHWM)", mib(s.hwm), "", "<= 512 MiB", verdict(s.hwm <= 512<<20)})
	} else {
		out = append(out, summaryRow{"  peak RSS of the scan (VmHWM)", "", "", "<= 512 MiB", statusNotMeasured})
	}
	if s.compared && s.failure == "" {
		out = append(out, summaryRow{"  mirror equals the source at the end", s.mirror, "", "equal to the oracle", verdict(s.mirrorOK)})
	} else {
		out = append(out, summaryRow{"  mirror equals the source at the end", "not compared: the scan did not complete", "", "equal to the oracle", statusNotMeasured})
	}
	return out
}

// count formats an event count, rounded: 1M, 2.5M, 300k, 999.
func count(n int64) string {
	switch {
	case n >= 1_000_000:
		return strconv.FormatFloat(math.Round(float64(n)/1e5)/10, 'f', -1, 64) + "M"
	case n >= 1000:
		return strconv.FormatFloat(math.Round(float64(n)/1e3), 'f', -1, 64) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// printSummary writes the summary screen: one line per target.
func printSummary(w io.Writer, rows []summaryRow, load loadFigures) {
	widths := [4]int{len("figure"), len("measured"), len("ratio to raw (same run)"), len("target")}
	for _, r := range rows {
		for i, s := range []string{r.figure, r.measured, r.ratio, r.target} {
			widths[i] = max(widths[i], len([]rune(s)))
		}
	}
	line := func(a, b, c, d, e string) {
		fmt.Fprintf(w, "%-*s  %-*s  %-*s  %-*s  %s\n", widths[0], a, widths[1], b, widths[2], c, widths[3], d, e)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "issue 12 targets")
	line("figure", "measured", "ratio to raw (same run)", "target", "status")
	for _, r := range rows {
		line(r.figure, r.measured, r.ratio, r.target, r.status)
	}
	fmt.Fprintf(w, "machine load (1-min /proc/loadavg): %s\n", load)
	if load.max >= 1 {
		fmt.Fprintln(w, "figures taken under load are not quiet-machine figures: re-measure with nothing else running")
	}
}

// loadFigures is the machine's 1-minute load average over the bench run.
type loadFigures struct{ start, max, end float64 }

func (l loadFigures) String() string {
	return fmt.Sprintf("start %.2f, max %.2f, end %.2f", l.start, l.max, l.end)
}

// loadWatch samples /proc/loadavg every second until stopped.
type loadWatch struct {
	mu   sync.Mutex
	l    loadFigures
	stop chan struct{}
	done chan struct{}
}

func watchLoad() *loadWatch {
	w := &loadWatch{stop: make(chan struct{}), done: make(chan struct{})}
	w.l.start = loadAvg()
	w.l.max = w.l.start
	go func() {
		defer close(w.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				l := loadAvg()
				w.mu.Lock()
				w.l.max = max(w.l.max, l)
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// finish stops the sampling and returns the figures.
func (w *loadWatch) finish() loadFigures {
	close(w.stop)
	<-w.done
	w.l.end = loadAvg()
	w.l.max = max(w.l.max, w.l.end)
	return w.l
}

// loadAvg is the 1-minute load average (Linux); 0 if unknown.
func loadAvg() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// componentRates reads `go test -bench` output and returns the rows/s
// metric of each benchmark as "<package path suffix>.<Benchmark>" (the
// GOMAXPROCS suffix dropped), e.g. "sinks/postgres.BenchmarkApply".
func componentRates(r io.Reader) (map[string]float64, error) {
	rates := map[string]float64{}
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			if i := strings.Index(pkg, "/highwater/"); i >= 0 {
				pkg = pkg[i+len("/highwater/"):]
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			if f[i+1] == "rows/s" {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					return nil, fmt.Errorf("benchmark output: %s: %q is not a number", name, f[i])
				}
				rates[pkg+"."+name] = v
			}
		}
	}
	return rates, sc.Err()
}
