package integration

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/scanfeed"
	"github.com/highwater-dev/highwater/simulator"
)

// Issue 12 item 4: an initial scan much bigger than --buffer-budget. The
// scan's rows share one HLC and no resolved timestamp reaches it before
// the scan ends, so without groups applied early (processor/early.go) the
// buffer holds the whole scan.

// scanTable is the table of the big-scan tests (internal/scanfeed, which
// the initial scan phase of `highwater bench` plays too): a key and a
// payload that makes each buffered event ~260 bytes.
func scanTable() simulator.TableDef { return scanfeed.Table() }

// scanOptions are the simulator's options of the big-scan tests
// (scanfeed.Options).
func scanOptions(seed int64, dupProb float64) simulator.Options {
	return scanfeed.Options(seed, dupProb)
}

// loadScan loads rows rows into items and emits the initial scan (no
// resolved timestamp yet, scanfeed.Load); it returns the scan's HLC.
func loadScan(t *testing.T, f *feed, rows int) hlc.Timestamp {
	t.Helper()
	scan, err := scanfeed.Load(context.Background(), f.sim, rows)
	if err != nil {
		t.Fatal(err)
	}
	return scan
}

// afterScan plays what follows the scan: its resolved timestamp, then
// updates and deletes of scanned keys (so that later windows supersede
// scan rows) and a final resolved timestamp, which it returns.
func afterScan(t *testing.T, f *feed) hlc.Timestamp {
	t.Helper()
	ctx := context.Background()
	if _, err := f.sim.Resolve(ctx); err != nil {
		t.Fatal(err)
	}
	w := simulator.Workload{Txns: 300, KeysPerTable: 2000, RowsPerTxn: 3, DeleteProb: 0.2, ResolveEvery: 50}
	if err := f.sim.Run(ctx, w); err != nil {
		t.Fatal(err)
	}
	final, err := f.sim.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return final
}

// watermark returns the feed's watermark from highwater_watermark ("0" if
// nothing is applied yet).
func watermark(t *testing.T, db *sql.DB, group string) string {
	t.Helper()
	var text sql.NullString
	err := db.QueryRow(`SELECT CAST(resolved AS TEXT) FROM highwater_watermark WHERE consumer_group = $1 AND topic IS NULL`, group).Scan(&text)
	if err != nil && err != sql.ErrNoRows {
		t.Fatal(err)
	}
	if !text.Valid {
		return "0"
	}
	return text.String
}

func mirrorCount(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM items`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestInitialScanBiggerThanBudget plays a 200k-row initial scan (~50 MB
// buffered) into a member with a 12 MiB buffer budget: the scan is applied
// in groups ahead of its resolved timestamp, the buffer never holds much
// more than its budget, the watermark stays at zero while the mirror fills
// with scan rows, and at the end the mirror equals the source and the
// changelog holds every version once.
func TestInitialScanBiggerThanBudget(t *testing.T) {
	const rows, budget = 200_000, 12 << 20
	wh := pgWarehouse()
	f := newFeed(t, scanOptions(41, 0.02), scanTable())
	sinkURL := wh.url(t)
	start := time.Now()
	loadScan(t, f, rows)
	t.Logf("scan of %d rows emitted in %s", rows, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	m := startMember(t, f, wh, memberConfig{group: "g-scan", sinkURL: sinkURL, changelog: true, diskBudget: budget})
	var peak atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-m.done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if b := m.proc.Stats().BufferBytes; b > peak.Load() {
				peak.Store(b)
			}
			s := m.proc.Stats()
			if s.Consumed >= rows && (s.EarlyGroups >= 2 || time.Since(start) > time.Minute) {
				return
			}
		}
	}()
	<-sampled
	s := m.proc.Stats()
	db, err := sql.Open("pgx", sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The whole scan is read and no resolved timestamp has come: the
	// mirror holds scan rows ahead of the watermark, which has not moved.
	if s.EarlyGroups < 2 {
		m.stop()
		<-m.done
		t.Fatalf("the member applied %d groups early, want several: stats %+v", s.EarlyGroups, s)
	}
	if n := mirrorCount(t, db); n == 0 || n > rows {
		t.Errorf("the mirror holds %d rows mid-scan, want some of the %d scan rows", n, rows)
	}
	if wm := watermark(t, db, "g-scan"); wm != "0" && wm != "0.0000000000" {
		t.Errorf("highwater_watermark moved to %s before the scan's resolved timestamp", wm)
	}
	t.Logf("scan ingested in %s: %d groups applied early (%d rows), buffer peak %d bytes against a %d-byte budget (%.2fx)",
		time.Since(start).Round(time.Millisecond), s.EarlyGroups, s.EarlyRows, peak.Load(), budget, float64(peak.Load())/budget)
	if p := peak.Load(); p > budget+budget/4 {
		t.Errorf("the buffer held %d bytes, more than its %d-byte budget + 25%%", p, budget)
	}

	final := afterScan(t, f)
	m.proc.SetStopAt(final)
	m.wait(t, 3*time.Minute)
	verify(t, f, wh, sinkURL, final, true)
}

// TestInitialScanKillNine kills `highwater run` with -9 while it applies a
// scan bigger than its budget: first right after the second transaction of
// a group commits (a group takes several, and stays buffered whole until
// the last; frozen there by the test hook), then at a random moment of the
// scan; every restart reuses the buffer.
// No row is lost and no version is written twice.
func TestInitialScanKillNine(t *testing.T) {
	const rows, budget = 150_000, 8 << 20
	wh := pgWarehouse()
	f := newFeed(t, scanOptions(43, 0), scanTable())
	sinkURL := wh.url(t)
	bufDir := t.TempDir()
	loadScan(t, f, rows)
	args := func(extra ...string) []string {
		return append([]string{"run",
			"--brokers", strings.Join(f.stack.Brokers(), ","),
			"--registry", f.stack.RegistryURL(),
			"--topics", strings.Join(f.sim.Topics(), ","),
			"--group", "g-scan-kill",
			"--sink", sinkURL,
			"--buffer-dir", bufDir,
			"--buffer-budget", strconv.Itoa(budget),
			"--changelog",
			"--session-timeout", "2s",
			"--rebalance-timeout", "4s",
			"--log-format", "json",
			"--log-level", "info",
		}, extra...)
	}
	db, err := sql.Open("pgx", sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// 1. Frozen right after a group's second transaction commits, with the
	// group still buffered.
	cmd := exec.Command(binary, args()...)
	cmd.Env = append(os.Environ(), "HIGHWATER_TEST_HOOK_SIGSTOP=committed:2")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(stderr.String(), "test hook: stopping this process") || processState(cmd.Process.Pid) != "T" {
		select {
		case err := <-done:
			t.Fatalf("highwater exited (%v) before a group was committed:\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no group applied ahead of the scan's resolved timestamp within 2m (the buffer holds the scan):\n%s", tail(stderr.String(), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	applied := mirrorCount(t, db)
	if applied == 0 {
		t.Errorf("two transactions of a group are committed but the mirror is empty")
	}
	if wm := watermark(t, db, "g-scan-kill"); wm != "0" && wm != "0.0000000000" {
		t.Errorf("highwater_watermark moved to %s before the scan's resolved timestamp", wm)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	t.Logf("killed after a group's second transaction, before its trim, with %d scan rows in the mirror", applied)

	// 2. Restarted on the same buffer, killed at a random moment of the
	// rest of the scan.
	cmd = exec.Command(binary, args()...)
	stderr = &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	// Once the restarted process has committed a group (the one frozen
	// untrimmed is applied again with it), kill it a little later: in the
	// middle of reading or applying the next.
	deadline = time.Now().Add(time.Minute)
	for mirrorCount(t, db) == applied && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Duration(time.Now().UnixNano()%700) * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	t.Logf("killed again with %d scan rows in the mirror", mirrorCount(t, db))

	// 3. The rest of the feed, and a run to its end.
	final := afterScan(t, f)
	cmd = exec.Command(binary, args("--stop-at", final.String())...)
	var out strings.Builder
	cmd.Stderr = &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()
	select {
	case err := <-waitDone:
		if err != nil {
			t.Fatalf("highwater run --stop-at: %v\n%s", err, tail(out.String(), 3000))
		}
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("highwater did not reach --stop-at within 3m\n%s", tail(out.String(), 3000))
	}
	t.Logf("the last run finished in %s", time.Since(start).Round(time.Millisecond))
	verify(t, f, wh, sinkURL, final, true)
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
