package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/internal/testfeed"
	"github.com/highwater-dev/highwater/simulator"
)

// TestRunServesMetrics runs `highwater run --metrics-addr` over a simulated
// feed and scrapes it until the feed is applied: the per-table row
// counters, the flush histogram, the per-partition gauges and /readyz must
// all come from the live pipeline.
func TestRunServesMetrics(t *testing.T) {
	stack := testfeed.Stack(t, devstack.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sim := testfeed.On(t, ctx, stack, simulator.Options{Partitions: 2, Diff: true, Seed: 5, Live: true}, simulator.TelemetryTables()...)
	final := testfeed.Telemetry(t, ctx, sim, simulator.Workload{Txns: 300, KeysPerTable: 30, RowsPerTxn: 2, DeleteProb: 0.1, ResolveEvery: 50})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	dir := t.TempDir()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	out := newSyncBuffer()
	go func() {
		done <- run(runCtx, []string{"run", "--brokers", stack.Brokers()[0], "--registry", stack.RegistryURL(),
			"--topics", strings.Join(sim.Topics(), ","), "--group", "observed", "--sink", "duckdb://" + filepath.Join(dir, "wh.duckdb"),
			"--buffer-dir", filepath.Join(dir, "buffer"), "--metrics-addr", addr, "--log-level", "warn"}, out, out)
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// Scrape until the frontier is the feed's final resolved timestamp;
	// the minute-long context bounds a broken run.
	frontierWall := regexp.MustCompile(`(?m)^highwater_frontier_timestamp_seconds (\S+)$`)
	want := float64(final.WallTime) / 1e9
	var body string
	for caughtUp := false; !caughtUp; {
		select {
		case err := <-done:
			t.Fatalf("run ended: %v\n%s", err, out)
		case <-time.After(50 * time.Millisecond):
		}
		_, body = get("/metrics")
		if m := frontierWall.FindStringSubmatch(body); m != nil {
			v, err := strconv.ParseFloat(m[1], 64)
			caughtUp = err == nil && v >= want
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^highwater_rows_written_total\{op="(insert|update)",table="features"\} [1-9]`),
		regexp.MustCompile(`(?m)^highwater_rows_written_total\{op="delete",table="(features|nodes)"\} [1-9]`),
		regexp.MustCompile(`(?m)^highwater_flush_duration_seconds_count [1-9]`),
		regexp.MustCompile(`(?m)^highwater_partition_applied_lag_seconds\{partition="1",topic="` + regexp.QuoteMeta(sim.Topics()[0]) + `"\} `),
		regexp.MustCompile(`(?m)^highwater_partition_resolved_lag_seconds\{partition="0",topic="` + regexp.QuoteMeta(sim.Topics()[0]) + `"\} `),
		regexp.MustCompile(`(?m)^highwater_consumer_lag_records\{partition="0",topic="` + regexp.QuoteMeta(sim.Topics()[0]) + `"\} 0$`),
		regexp.MustCompile(`(?m)^highwater_rebalances_total [1-9]`),
		regexp.MustCompile(`(?m)^highwater_partitions_owned 4$`),
	} {
		if !want.MatchString(body) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d after the feed was applied", code)
	}
	checkStatusPageInBrowser(t, "http://"+addr+"/", sim.Topics())
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
}

func TestLogFormatsAndLevels(t *testing.T) {
	for _, tc := range []struct {
		level, format string
		json          bool
		debugShown    bool
	}{
		{"info", "auto", true, false}, // a buffer is not a terminal
		{"debug", "json", true, true},
		{"warn", "console", false, false},
	} {
		var buf strings.Builder
		log, err := newLogger(tc.level, tc.format, &buf)
		if err != nil {
			t.Fatal(err)
		}
		log.Debug("debug line")
		log.Warn("warn line")
		out := buf.String()
		if got := strings.HasPrefix(out, "{"); got != tc.json {
			t.Errorf("%s/%s: JSON = %v, want %v:\n%s", tc.level, tc.format, got, tc.json, out)
		}
		if got := strings.Contains(out, "debug line"); got != tc.debugShown {
			t.Errorf("%s/%s: debug shown = %v, want %v", tc.level, tc.format, got, tc.debugShown)
		}
		if !strings.Contains(out, "warn line") {
			t.Errorf("%s/%s: warn line missing", tc.level, tc.format)
		}
	}
	if _, err := newLogger("loud", "json", io.Discard); err == nil {
		t.Error("log level loud accepted")
	}
}

// checkStatusPageInBrowser loads the status page of a running member in a
// real browser (headless Chromium, Debian's chromium package, which .ci/run
// installs) and checks the rendered DOM: every owned partition, the
// watermark, the applied windows, readiness. It saves a screenshot, and
// with HIGHWATER_UPDATE_SCREENSHOT=1 writes it to docs/status-page.png.
func checkStatusPageInBrowser(t *testing.T, url string, topics []string) {
	t.Helper()
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: install Debian's chromium package (.ci/run does)")
	}
	profile := t.TempDir()
	shot := filepath.Join(t.TempDir(), "status-page.png")
	chrome := func(extra ...string) []byte {
		args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + profile, "--window-size=1280,1000"}, extra...)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, browser, append(args, url)...).Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", extra, err)
		}
		return out
	}
	dom := string(chrome("--dump-dom"))
	for _, topic := range topics {
		for _, part := range []string{"0", "1"} {
			row := regexp.MustCompile(`<tr class="partition[^"]*" data-topic="` + regexp.QuoteMeta(topic) + `" data-partition="` + part + `"`)
			if !row.MatchString(dom) {
				t.Errorf("the rendered status page has no row for %s[%s]", topic, part)
			}
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`id="ready" class="ok">ready<`),
		regexp.MustCompile(`id="group">observed<`),
		regexp.MustCompile(`id="watermark">\d{19}\.\d{10}<`),
		regexp.MustCompile(`id="windows">[1-9]\d*<`),
		regexp.MustCompile(`id="rows">[1-9]\d*<`),
		regexp.MustCompile(`id="partitions-owned">4<`),
	} {
		if !want.MatchString(dom) {
			t.Errorf("the rendered status page lacks %s", want)
		}
	}
	chrome("--screenshot=" + shot)
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 10_000 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s: %d bytes, %v", shot, len(png), err)
	}
	if os.Getenv("HIGHWATER_UPDATE_SCREENSHOT") == "1" {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "status-page.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
