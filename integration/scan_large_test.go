package integration

import (
	"bufio"
	"context"
	"database/sql"
	"io/fs"
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
			if d := diskUse(bufDir); d > peakDisk.Load() {
				peakDisk.Store(d)
			}
			anon, file := rssParts(cmd.Process.Pid)
			if anon > peakAnon.Load() {
				peakAnon.Store(anon)
			}
			if file > peakFile.Load() {
				peakFile.Store(file)
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
		t.Logf("cgroup %s: peak charged %.1f MiB, OOM kills %d", cgroup, float64(cgroupPeak(cgroup))/(1<<20), cgroupOOMKills(cgroup))
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

// diskUse returns the bytes dir's files occupy on disk (allocated blocks,
// so that Badger's preallocated, sparse files count for what they hold).
func diskUse(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return total
}

// rssParts returns a process's anonymous and file-backed resident memory
// (RssAnon, RssFile of /proc/<pid>/status), zero if unknown.
func rssParts(pid int) (anon, file int64) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		for name, v := range map[string]*int64{"RssAnon:": &anon, "RssFile:": &file} {
			if rest, ok := strings.CutPrefix(line, name); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				*v = kb << 10
			}
		}
	}
	return anon, file
}

// cgroupPeak returns a memory cgroup's peak charged memory (v2
// memory.peak, v1 memory.max_usage_in_bytes), 0 if unknown.
func cgroupPeak(dir string) int64 {
	for _, name := range []string{"memory.peak", "memory.max_usage_in_bytes"} {
		if data, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
			return n
		}
	}
	return 0
}

// cgroupOOMKills returns how many processes the kernel OOM-killed in a
// memory cgroup (v2 memory.events, v1 memory.oom_control).
func cgroupOOMKills(dir string) int64 {
	for _, name := range []string{"memory.events", "memory.oom_control"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}
