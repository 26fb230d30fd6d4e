package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/highwater-dev/highwater/simulator"
)

// TestStaleMemberIsFenced freezes one of three `highwater run` members
// (SIGSTOP, through the HIGHWATER_TEST_HOOK_SIGSTOP test hook) at a precise
// point of one of its windows, longer than the session timeout. The other
// two take its partitions over and apply later windows, then the test
// deletes every row of every source table (so every key the frozen window
// touches is deleted by another member) and the others apply that too.
// Then the frozen member resumes (SIGCONT). Its stale window must never
// commit: it is fenced by the checkpoints the others moved, or cancelled
// when the member learns its partitions were lost, or (frozen inside its
// transaction) PostgreSQL has ended its session. In the end the mirror
// equals the oracle and every version is once in the changelog: no deleted
// row came back.
//
// The stages: "begin" (before the window's transaction begins: only the
// fence stops it), "written" (rows written, not committed) and "commit"
// (just before COMMIT). Frozen inside its transaction, the member holds
// row locks the others wait for; the sink URL sets PostgreSQL's
// idle_in_transaction_session_timeout to 3s (the writer's default is 1min)
// so that the server ends the frozen session while the test runs.
func TestStaleMemberIsFenced(t *testing.T) {
	for i, stage := range []string{"begin", "written", "commit"} {
		t.Run(stage, func(t *testing.T) {
			t.Parallel()
			testFreeze(t, int64(120+i), stage)
		})
	}
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test
// reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLines returns the JSON log lines of s, decoded.
func logLines(s string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(s, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// after returns the log lines following the first whose msg starts with
// msg, and whether there is one.
func after(lines []map[string]any, msg string) ([]map[string]any, bool) {
	for i, l := range lines {
		if m, _ := l["msg"].(string); strings.HasPrefix(m, msg) {
			return lines[i+1:], true
		}
	}
	return nil, false
}

// processState returns the state letter of pid from /proc (T: stopped).
func processState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "?"
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return "?"
}

// memberSet is the group member ids the broker has seen heartbeat.
type memberSet struct {
	mu     sync.Mutex
	ids    map[string]bool
	closed bool // no more ids are recorded
}

func (m *memberSet) has(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ids[id]
}

// recordMembers records the member ids of the heartbeats the broker
// receives from now on.
func recordMembers(e *faultEnv) *memberSet {
	m := &memberSet{ids: map[string]bool{}}
	c := e.f.stack.Cluster
	c.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if hb, ok := req.(*kmsg.HeartbeatRequest); ok {
			m.mu.Lock()
			if !m.closed {
				m.ids[hb.MemberID] = true
			}
			m.mu.Unlock()
		}
		return nil, nil, false
	})
	return m
}

// delayHeartbeats holds, until until, the broker's reply to every heartbeat
// of a member not in others.
func delayHeartbeats(e *faultEnv, others *memberSet, until time.Time) {
	others.mu.Lock()
	others.closed = true
	others.mu.Unlock()
	c := e.f.stack.Cluster
	c.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if hb, ok := req.(*kmsg.HeartbeatRequest); ok && !others.has(hb.MemberID) && time.Now().Before(until) {
			c.SleepControl(func() { time.Sleep(time.Until(until)) })
		}
		return nil, nil, false
	})
}

// sessionEnded matches the errors of a window whose PostgreSQL session the
// server ended (idle_in_transaction_session_timeout: SQLSTATE 25P03, or the
// connection it closed).
var sessionEnded = regexp.MustCompile(`idle-in-transaction|25P03|conn closed|unexpected EOF|connection reset`)

func testFreeze(t *testing.T, seed int64, stage string) {
	e := newFaultEnv(t, seed, nil)
	ctx := context.Background()
	sinkURL := e.sinkURL + "&idle_in_transaction_session_timeout=3s"
	type proc struct {
		cmd    *exec.Cmd
		stderr *syncBuffer
		done   chan error
	}
	procs := make([]*proc, faultMembers)
	defer func() {
		for _, p := range procs {
			if p != nil {
				_ = p.cmd.Process.Signal(syscall.SIGCONT)
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
	}()
	for i := range procs {
		level := "warn"
		if i == 0 {
			level = "info"
		}
		cmd := exec.Command(binary, "run",
			"--brokers", strings.Join(e.f.stack.Brokers(), ","),
			"--registry", e.f.stack.RegistryURL(),
			"--topics", strings.Join(e.f.sim.Topics(), ","),
			"--group", e.group,
			"--sink", sinkURL,
			"--buffer-dir", t.TempDir(),
			"--changelog",
			"--session-timeout", "2s",
			"--rebalance-timeout", "4s",
			"--log-format", "json",
			"--log-level", level)
		if i == 0 {
			// Member 0 freezes at its 6th window: by then it owns
			// partitions and the feed has data in them.
			cmd.Env = append(os.Environ(), "HIGHWATER_TEST_HOOK_SIGSTOP="+stage+":6")
		}
		p := &proc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
		cmd.Stderr = p.stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.done <- cmd.Wait() }()
		procs[i] = p
	}
	frozen := procs[0]
	e.feed = playSteady(t, e.f)

	// Member 0 stops itself inside its window.
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(frozen.stderr.String(), "test hook: stopping this process") || processState(frozen.cmd.Process.Pid) != "T" {
		select {
		case err := <-frozen.done:
			t.Fatalf("member 0 exited (%v) before it froze:\n%s", err, frozen.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("member 0 did not freeze at %q within a minute:\n%s", stage, frozen.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	frozenAt := time.Now()
	var through string
	for _, l := range logLines(frozen.stderr.String()) {
		if l["msg"] == "test hook: stopping this process with SIGSTOP" {
			through, _ = l["through"].(string)
		}
	}

	// The other two take its partitions over and apply later windows.
	mark := e.f.sim.LastResolved()
	took := e.waitWatermark(t, mark, time.Minute, "the others take over from the frozen member")
	// From now on (member 0's session has expired: a heartbeat it sent
	// just before it froze is long answered) the broker hears the others.
	others := recordMembers(e)
	// Every row is deleted, by the other members, while member 0 is frozen.
	last := e.feed.finish(t)
	if _, err := e.f.sim.Txn(ctx, func(tx *simulator.Txn) error {
		for _, name := range e.f.sim.Oracle().Tables() {
			for _, r := range e.f.sim.Oracle().Rows(name, last) {
				if err := tx.Delete(name, r.Key...); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// One fresh row per table, so that no comparison is empty.
	for _, name := range e.f.sim.Oracle().Tables() {
		if err := e.f.sim.Run(ctx, simulator.Workload{Txns: 1, RowsPerTxn: 1, KeysPerTable: 1000, Tables: []string{name}}); err != nil {
			t.Fatal(err)
		}
	}
	final := e.f.sim.LastResolved()
	e.waitWatermark(t, final, time.Minute, "the others apply the deletes")
	if st := processState(frozen.cmd.Process.Pid); st != "T" {
		t.Fatalf("member 0 is no longer frozen (state %s): the scenario did not happen", st)
	}
	t.Logf("member 0 frozen at %q of its window through %s; the others took over in %s and applied the deletes; resuming it after %s",
		stage, through, took.Round(time.Millisecond), time.Since(frozenAt).Round(time.Millisecond))

	// Member 0 resumes, and for 5s the broker holds the replies to its
	// heartbeats (as if it were cut from the broker but not from the
	// warehouse): it does not learn at once that its session expired, so
	// it goes on with its window rather than cancel it, and only the fence
	// can stop it. Once it has learnt that its partitions were lost (onLost
	// returned), no window of its old session can commit.
	resumed := time.Now()
	delayHeartbeats(e, others, resumed.Add(5*time.Second))
	if err := frozen.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		rest, _ := after(logLines(frozen.stderr.String()), "test hook: resumed")
		if _, ok := after(rest, "partitions lost"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("member 0 did not report its partitions lost within 30s of SIGCONT:\n%s", frozen.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Let the group settle with member 0 back in it, then stop everyone.
	time.Sleep(2 * time.Second)
	e.waitWatermark(t, final, time.Minute, "after member 0 resumed")
	for i, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("member %d did not exit cleanly on SIGTERM: %v\n%s", i, err, p.stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("member %d did not exit within 30s of SIGTERM", i)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		procs[i] = nil
	}

	// What happened to the stale window, from member 0's log: every window
	// after the resume is logged by the test hook with its stage. Nothing
	// was left to apply after the resume (every partition was applied
	// through the final resolved timestamp, and the feed had stopped), so
	// any commit is the stale window's.
	rest, _ := after(logLines(frozen.stderr.String()), "test hook: resumed")
	var outcome []string
	fencedOrCancelled := false
	for _, l := range rest {
		msg, _ := l["msg"].(string)
		switch {
		case msg == "test hook: window stage" && l["stage"] == "committed":
			t.Errorf("member 0 committed a window through %v after it resumed: the stale window was not fenced", l["through"])
		case strings.HasPrefix(msg, "window fenced"), strings.HasPrefix(msg, "window cancelled"):
			fencedOrCancelled = true
			outcome = append(outcome, fmt.Sprintf("%s (%v[%v] stored %v)", msg[:strings.IndexByte(msg, ':')], l["topic"], l["partition"], l["stored"]))
		case strings.HasPrefix(msg, "applying window failed"):
			outcome = append(outcome, fmt.Sprintf("window failed: %v", l["error"]))
			// Frozen inside its transaction, the member may find that
			// PostgreSQL ended its session (idle in transaction longer
			// than 3s) before it learns its partitions were lost: the
			// third way the stale window is stopped.
			if stage != "begin" && sessionEnded.MatchString(fmt.Sprint(l["error"])) {
				fencedOrCancelled = true
			}
		}
	}
	t.Logf("member 0 after the resume: %v", outcome)
	if !fencedOrCancelled {
		t.Errorf("member 0's stale window was neither fenced nor cancelled nor ended by the server; log after the resume:\n%v", rest)
	}
	verify(t, e.f, e.wh, e.sinkURL, final, true)
	if wm := e.watermark(); wm != final {
		t.Errorf("highwater_watermark says complete through %s, want %s", wm, final)
	}
}
