package integration

import (
	"bufio"
	"context"
	"database/sql"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/internal/procstat"
)

// TestInitialScanLarge is issue 12 item 4's full-size run, gated by the
// environment because it takes minutes and gigabytes:
// HIGHWATER_SCAN_ROWS=5000000 (rows of the initial scan) and optionally
// HIGHWATER_SCAN_BUDGET (bytes, default 256 MiB) and
// HIGHWATER_SCAN_MEMORY_LIMIT (`--memory-limit`), HIGHWATER_SCAN_CGROUP
// (the directory of an existing memory cgroup, v1 or v2, whose hard limit
// plays the container's: the process runs inside it) and
// HIGHWATER_SCAN_LOG (a file for the process's whole log) and
// HIGHWATER_SCAN_SINK_OPTIONS (appended to the duckdb:// URL, e.g.
// "?memory_limit=32MiB"). `highwater
// run` applies the scan into DuckDB as its own process; the test samples
// the buffer's own size (highwater_buffer_bytes), its directory's disk use
// and the process's anonymous and file-backed resident memory, and reads
// its VmHWM from its exit log. The buffer must stay within
// budget + 20% and the mirror must hold exactly the scanned rows. Figures:
// docs/BENCHMARKS.md.
func TestInitialScanLarge(t *testing.T) {
	rows, _ := strconv.Atoi(os.Getenv("HIGHWATER_SCAN_ROWS"))
	if rows <= 0 {
		t.Skip("set HIGHWATER_SCAN_ROWS (e.g. 5000000) to run the full-size initial scan")
	}
	budget := int64(256 << 20)
	if b, err := strconv.ParseInt(os.Getenv("HIGHWATER_SCAN_BUDGET"), 10, 64); err == nil && b > 0 {
		budget = b
	}
	f := newFeed(t, scanOptions(47, 0), scanTable())
	start := time.Now()
	scan := loadScan(t, f, rows)
	final, err := f.sim.Resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scan of %d rows at %s emitted in %s", rows, scan, time.Since(start).Round(time.Millisecond))

	wh := filepath.Join(t.TempDir(), "wh.duckdb")
	bufDir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := l.Addr().String()
	l.Close()
	cmd := exec.Command(binary, "run",
		"--brokers", strings.Join(f.stack.Brokers(), ","),
		"--registry", f.stack.RegistryURL(),
		"--topics", strings.Join(f.sim.Topics(), ","),
		"--group", "g-scan-large",
		"--sink", "duckdb://"+wh+os.Getenv("HIGHWATER_SCAN_SINK_OPTIONS"),
		"--buffer-dir", bufDir,
		"--buffer-budget", strconv.FormatInt(budget, 10),
		"--metrics-addr", metricsAddr,
		"--stop-at", final.String(),
		"--log-format", "json",
		"--log-level", "info")
	if limit := os.Getenv("HIGHWATER_SCAN_MEMORY_LIMIT"); limit != "" {
		cmd.Args = append(cmd.Args, "--memory-limit", limit)
	}
	cgroup := os.Getenv("HIGHWATER_SCAN_CGROUP")
	if cgroup != "" {
		// A shell moves itself into the cgroup and execs highwater, which
		// is then limited from its first instruction (and keeps the pid).
		cmd = exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`,
			filepath.Join(cgroup, "cgroup.procs")}, cmd.Args...)...)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	var peakBytes, peakDisk, peakAnon, peakFile atomic.Int64
	sampling := make(chan struct{})
	go func() {
		defer close(sampling)
		for {
			select {
			case <-exited:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if b, ok := scrape(metricsAddr, "highwater_buffer_bytes"); ok && int64(b) > peakBytes.Load() {
				peakBytes.Store(int64(b))
			}
			if d, _ := procstat.DirSize(bufDir); d > peakDisk.Load() {
				peakDisk.Store(d)
			}
			m := procstat.Memory(cmd.Process.Pid)
			if m.Anon > peakAnon.Load() {
				peakAnon.Store(m.Anon)
			}
			if m.File > peakFile.Load() {
				peakFile.Store(m.File)
			}
		}
	}()
	select {
	case <-sampling:
	case <-time.After(30 * time.Minute):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		t.Fatalf("highwater did not finish the scan within 30m\n%s", tail(stderr.String(), 3000))
	}
	took := time.Since(start)
	if name := os.Getenv("HIGHWATER_SCAN_LOG"); name != "" {
		if err := os.WriteFile(name, []byte(stderr.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	if cgroup != "" {
		t.Logf("cgroup %s: peak charged %.1f MiB, OOM kills %d", cgroup, float64(procstat.CgroupPeak(cgroup))/(1<<20), procstat.CgroupOOMKills(cgroup))
	}
	if waitErr != nil {
		t.Fatalf("highwater run: %v\n%s", waitErr, tail(stderr.String(), 3000))
	}
	var hwm float64
	var groups, retries int
	for _, l := range logLines(stderr.String()) {
		switch l["msg"] {
		case "peak memory":
			hwm, _ = l["vm_hwm_bytes"].(float64)
		case "applying window failed; retrying":
			if retries++; retries == 1 {
				t.Logf("first failed attempt: %v", l["error"])
			}
		}
		if m, _ := l["msg"].(string); strings.HasPrefix(m, "applied a group ahead") {
			groups++
			t.Logf("group %d: %v rows in %v", groups, l["rows"], l["took"])
		}
	}
	t.Logf("%d rows applied in %s (%.0f rows/s) in %d groups applied early, %d failed attempts; buffer peak %.1f MiB (%.2fx the %d MiB budget), buffer directory peak %.1f MiB on disk (%.2fx); VmHWM %.1f MiB (sampled peaks: anon %.1f MiB, file-backed %.1f MiB)",
		rows, took.Round(time.Millisecond), float64(rows)/took.Seconds(), groups, retries,
		float64(peakBytes.Load())/(1<<20), float64(peakBytes.Load())/float64(budget), budget>>20,
		float64(peakDisk.Load())/(1<<20), float64(peakDisk.Load())/float64(budget), hwm/(1<<20),
		float64(peakAnon.Load())/(1<<20), float64(peakFile.Load())/(1<<20))
	if p := peakBytes.Load(); p > budget+budget/5 {
		t.Errorf("the buffer held %d bytes, more than its %d-byte budget + 20%%", p, budget)
	}
	if groups == 0 {
		t.Errorf("no group was applied early")
	}

	db, err := sql.Open("duckdb", wh)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, distinct, bad, notScan int
	var lo, hi int64
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT id), min(id), max(id),
		count(*) FILTER (WHERE payload IS DISTINCT FROM repeat('x', 180) || '-' || lpad(CAST(id AS VARCHAR), 8, '0')),
		count(*) FILTER (WHERE CAST(_hw_updated AS VARCHAR) <> $1) FROM items`, scan.String()).Scan(&n, &distinct, &lo, &hi, &bad, &notScan); err != nil {
		t.Fatal(err)
	}
	if n != rows || distinct != rows || lo != 0 || hi != int64(rows-1) || bad != 0 || notScan != 0 {
		t.Errorf("mirror: %d rows, %d distinct ids in [%d, %d], %d with a wrong payload, %d not at the scan's HLC; want exactly ids 0..%d from the scan",
			n, distinct, lo, hi, bad, notScan, rows-1)
	}
	var wm string
	if err := db.QueryRow(`SELECT CAST(min(resolved) AS VARCHAR) FROM highwater_checkpoints`).Scan(&wm); err != nil {
		t.Fatal(err)
	}
	if wm != final.String() {
		t.Errorf("checkpoints at %s, want %s", wm, final)
	}
}

// scrape returns the value of an unlabelled metric from a member's
// /metrics.
func scrape(addr, name string) (float64, bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
