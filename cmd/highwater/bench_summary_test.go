package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// rowByFigure finds the summary row whose figure starts with prefix.
func rowByFigure(t *testing.T, rows []summaryRow, prefix string) summaryRow {
	t.Helper()
	for _, r := range rows {
		if strings.HasPrefix(strings.TrimSpace(r.figure), prefix) {
			return r
		}
	}
	t.Fatalf("no summary row %q in %+v", prefix, rows)
	return summaryRow{}
}

func TestSummaryVerdicts(t *testing.T) {
	const mib = 1 << 20
	good := benchFigures{
		events: 1_000_000, rawConsume: 1_500_000, rawAppend: 2_000_000, e2e: 300_000, e2eHWM: 500 * mib,
		hard:     &hardFigures{limit: 512 * mib, survived: true, hwm: 480 * mib, cgPeak: 510 * mib},
		buffered: 10_000_000, bufferedHWM: 512 * mib, bufferedDisk: 1900 * mib, bufferedBytes: 1000 * mib, ingest: 210_000, rawConsumeMem: 1_400_000,
		liveP50: 400 * time.Millisecond, liveP99: time.Second, liveWindows: 60, liveRate: 20_000,
		pgApply: 160_000, pgRawCopy: 300_000,
		scan: goodScan(),
	}
	for _, r := range summaryRows(good) {
		if r.status != statusMet {
			t.Errorf("%q: status %q, want %q (measured %s)", r.figure, r.status, statusMet, r.measured)
		}
	}
	if r := rowByFigure(t, summaryRows(good), "end to end"); r.ratio != "0.20x consume, 0.15x append" || r.measured != "300k events/s" {
		t.Errorf("end to end row: %+v", r)
	}
	if r := rowByFigure(t, summaryRows(good), "PostgreSQL"); r.ratio != "0.53x raw COPY" {
		t.Errorf("PostgreSQL row: %+v", r)
	}

	// Each figure just past its target is not met.
	for prefix, spoil := range map[string]func(f *benchFigures){
		"end to end":                         func(f *benchFigures) { f.e2e = 249_999 },
		"peak RSS of that run":               func(f *benchFigures) { f.e2eHWM = 512*mib + 1 },
		"same feed under a hard":             func(f *benchFigures) { f.hard.survived, f.hard.oomKills, f.hard.failure = false, 1, "signal: killed" },
		"unresolved events buffered":         func(f *benchFigures) { f.buffered = 9_999_999 },
		"peak RSS while buffered":            func(f *benchFigures) { f.bufferedHWM = 513 * mib },
		"buffer disk":                        func(f *benchFigures) { f.bufferedDisk = 2001 * mib },
		"ingest":                             func(f *benchFigures) { f.ingest = 199_000 },
		"resolved-to-visible p99, live feed": func(f *benchFigures) { f.liveP99 = time.Second + time.Millisecond },
		"PostgreSQL window apply":            func(f *benchFigures) { f.pgApply = 149_000 },
		"initial scan, 5M rows":              func(f *benchFigures) { f.scan.failure = "highwater run (scan): exit status 1" },
		"scan buffer size peak":              func(f *benchFigures) { f.scan.peakBuffer = f.scan.budget*6/5 + 1 },
		"scan buffer disk peak":              func(f *benchFigures) { f.scan.peakDisk = f.scan.budget*6/5 + 1 },
		"peak RSS of the scan":               func(f *benchFigures) { f.scan.hwm = 512*mib + 1 },
		"mirror equals the source":           func(f *benchFigures) { f.scan.mirrorOK = false },
	} {
		f := good
		h := *good.hard
		f.hard = &h
		sc := *good.scan
		f.scan = &sc
		spoil(&f)
		if r := rowByFigure(t, summaryRows(f), prefix); r.status != statusNotMet {
			t.Errorf("%q spoiled: status %q, want %q (measured %s)", prefix, r.status, statusNotMet, r.measured)
		}
	}

	// A 10M-event feed holds a few fewer records (a transaction's upserts
	// of one key are one event): buffering every one of them meets the
	// target, buffering fewer does not.
	for _, c := range []struct {
		all  bool
		want string
	}{{true, statusMet}, {false, statusNotMet}} {
		f := good
		f.buffered, f.bufferedFeed, f.bufferedAll = 9_999_992, 10_000_000, c.all
		if r := rowByFigure(t, summaryRows(f), "unresolved events buffered"); r.status != c.want {
			t.Errorf("9,999,992 of a 10M-event feed, all buffered %v: status %q, want %q (measured %s)", c.all, r.status, c.want, r.measured)
		}
	}

	// A figure not measured says so, and is neither met nor not met.
	empty := summaryRows(benchFigures{events: 1_000_000})
	for _, prefix := range []string{"end to end", "peak RSS of that run", "same feed under a hard", "unresolved events buffered", "resolved-to-visible", "PostgreSQL", "initial scan larger than --buffer-budget"} {
		if r := rowByFigure(t, empty, prefix); r.status != statusNotMeasured {
			t.Errorf("%q with nothing measured: status %q", prefix, r.status)
		}
	}
	skipped := good
	skipped.hard = &hardFigures{limit: 512 * mib, skipped: "permission denied"}
	if r := rowByFigure(t, summaryRows(skipped), "same feed under a hard"); r.status != statusNotMeasured || !strings.Contains(r.measured, "permission denied") {
		t.Errorf("hard limit that could not be set: %+v", r)
	}
	// A smaller feed than the target's is said to be one.
	small := good
	small.events = 100_000
	if r := rowByFigure(t, summaryRows(small), "end to end"); r.status != statusMet+" (feed < 1M)" || !strings.Contains(r.figure, "100k events") {
		t.Errorf("small feed: %+v", r)
	}
}

func TestPrintSummaryOneLinePerTarget(t *testing.T) {
	var buf bytes.Buffer
	rows := summaryRows(benchFigures{events: 1_000_000, e2e: 100_000, rawConsume: 1_000_000})
	printSummary(&buf, rows, loadFigures{start: 3, max: 9.5, end: 4})
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// Title, header, one line per row, the load, the warning about load.
	if len(lines) != 2+len(rows)+2 {
		t.Fatalf("%d lines for %d rows:\n%s", len(lines), len(rows), out)
	}
	if !strings.Contains(out, "start 3.00, max 9.50, end 4.00") || !strings.Contains(out, "not quiet-machine figures") {
		t.Fatalf("load missing:\n%s", out)
	}
	if !strings.Contains(lines[2], "100k events/s") || !strings.Contains(lines[2], "0.10x consume") || !strings.HasSuffix(lines[2], statusNotMet) {
		t.Fatalf("end to end line: %q", lines[2])
	}
}

func TestComponentRates(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/highwater-dev/highwater/sinks/duckdb
BenchmarkApply/changelog=false-2         	       3	 612345678 ns/op	    120000 merged-rows/s	     81234 rows/s	    310000 staged-rows/s
PASS
pkg: github.com/highwater-dev/highwater/sinks/postgres
cpu: Intel(R) Xeon(R)
BenchmarkApply-2     	       5	 712345678 ns/op	     85000 rows/s
BenchmarkRawCopy-2   	      10	 212345678 ns/op	    280000 rows/s
PASS
ok  	github.com/highwater-dev/highwater/sinks/postgres	12.3s
`
	got, err := componentRates(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"sinks/duckdb.BenchmarkApply/changelog=false": 81234,
		"sinks/postgres.BenchmarkApply":               85000,
		"sinks/postgres.BenchmarkRawCopy":             280000,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int64]string{999: "999", 199_998: "200k", 1_000_000: "1M", 2_460_000: "2.5M", 10_000_000: "10M"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}

// goodScan is an initial scan phase that meets every target.
func goodScan() *scanFigures {
	const mib = 1 << 20
	return &scanFigures{
		rows: 5_000_000, budget: 256 * mib, scanBytes: 1300 * mib, rawConsume: 1_500_000, took: 100 * time.Second,
		peakBuffer: 256 * mib * 6 / 5, peakDisk: 140 * mib, hwm: 512 * mib, earlyGroups: 5,
		compared: true, mirrorOK: true, mirror: "5M rows, checksum equal; checkpoints at the end",
	}
}

func TestSummaryInitialScan(t *testing.T) {
	rows := scanRows(goodScan())
	if len(rows) != 5 {
		t.Fatalf("%d rows for the scan: %+v", len(rows), rows)
	}
	if r := rows[0]; r.figure != "initial scan, 5M rows, --buffer-budget 256 MiB" || r.measured != "1m40s, 50k rows/s, 5 groups early" ||
		r.ratio != "0.03x raw consume" || r.status != statusMet {
		t.Errorf("scan row: %+v", r)
	}
	if r := rowByFigure(t, rows, "scan buffer size peak"); r.measured != "307 MiB" || r.ratio != "1.20x the budget" {
		t.Errorf("buffer peak row: %+v", r)
	}

	// A scan that did not complete is not met, and its mirror was not
	// compared; what was sampled until it failed is still judged.
	failed := goodScan()
	failed.failure, failed.compared, failed.mirrorOK = "highwater run (scan): signal: killed", false, false
	rows = scanRows(failed)
	if r := rows[0]; r.status != statusNotMet || !strings.Contains(r.measured, "failed after 1m40s: highwater run (scan): signal: killed") || r.ratio != "" {
		t.Errorf("failed scan: %+v", r)
	}
	if r := rowByFigure(t, rows, "mirror equals"); r.status != statusNotMeasured {
		t.Errorf("mirror of a failed scan: %+v", r)
	}
	if r := rowByFigure(t, rows, "scan buffer size peak"); r.status != statusMet {
		t.Errorf("buffer peak of a failed scan: %+v", r)
	}
	nothing := goodScan()
	nothing.failure, nothing.peakBuffer, nothing.peakDisk, nothing.hwm = "could not start", 0, 0, 0
	for _, r := range scanRows(nothing)[1:] {
		if r.status != statusNotMeasured {
			t.Errorf("%q with nothing sampled: %+v", r.figure, r)
		}
	}

	// A scan smaller than the target's, or one that fits its budget, is
	// said to be one.
	small := goodScan()
	small.rows = 2_000_000
	if r := scanRows(small)[0]; r.status != statusMet+" (scan < 5M)" || !strings.Contains(r.figure, "2M rows") {
		t.Errorf("small scan: %+v", r)
	}
	fits := goodScan()
	fits.scanBytes = fits.budget
	if r := scanRows(fits)[0]; r.status != statusMet+" (scan <= budget)" {
		t.Errorf("scan within its budget: %+v", r)
	}
}
