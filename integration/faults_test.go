package integration

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/internal/pgtest"
	"github.com/highwater-dev/highwater/simulator"
)

// The fault scenarios: three group members on PostgreSQL with the
// changelog on, a feed that keeps playing while the fault lasts, and at the
// end the warehouse compared with the oracle (mirror equal, every version
// once in the changelog). Each logs its recovery time: from the end of the
// fault to the feed watermark in the warehouse passing the last resolved
// timestamp the changefeed emitted before the fault ended.

const faultMembers = 3

// steadyFeed plays a changefeed in small slices, with resolved timestamps
// every few transactions, until stopped.
type steadyFeed struct {
	sim    *simulator.Sim
	stop   chan struct{}
	done   chan error
	slices atomic.Int64
}

func playSteady(t *testing.T, f *feed) *steadyFeed {
	t.Helper()
	ctx := context.Background()
	for i := int64(0); i < 20; i++ {
		if err := f.sim.Load("orders", map[string]any{"region": fmt.Sprintf("r%d", i%3), "id": i, "status": "new"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.sim.InitialScan(ctx); err != nil {
		t.Fatal(err)
	}
	s := &steadyFeed{sim: f.sim, stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		w := simulator.Workload{Txns: 20, KeysPerTable: 60, RowsPerTxn: 3, DeleteProb: 0.1, ResolveEvery: 7}
		for {
			select {
			case <-s.stop:
				s.done <- nil
				return
			default:
			}
			if err := f.sim.Run(ctx, w); err != nil {
				s.done <- err
				return
			}
			s.slices.Add(1)
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return s
}

// finish stops the feed and returns its final resolved timestamp.
func (s *steadyFeed) finish(t *testing.T) hlc.Timestamp {
	t.Helper()
	close(s.stop)
	if err := <-s.done; err != nil {
		t.Fatalf("feed: %v", err)
	}
	final, err := s.sim.Resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return final
}

// faultEnv is one scenario's feed, warehouse and members.
type faultEnv struct {
	f       *feed
	wh      warehouse
	sinkURL string
	group   string
	db      *sql.DB
	members []*member
	waited  map[*member]bool
	feed    *steadyFeed
}

// newFaultEnv starts a feed and a PostgreSQL database (on srv, or the
// package's server when srv is nil); startFaultMembers starts the members.
func newFaultEnv(t *testing.T, seed int64, srv *pgtest.Server) *faultEnv {
	t.Helper()
	if srv == nil {
		srv = pg
	}
	wh := pgWarehouse()
	sinkURL := srv.CreateDB(t)
	wh.url = func(*testing.T) string { return sinkURL }
	f := newFeed(t, hostileOptions(seed), feedTables()...)
	db, err := sql.Open("pgx", sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &faultEnv{waited: map[*member]bool{}, f: f, wh: wh, sinkURL: sinkURL, group: "g-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), db: db}
}

func (e *faultEnv) startMembers(t *testing.T, mc memberConfig) {
	t.Helper()
	mc.group, mc.sinkURL, mc.changelog = e.group, e.sinkURL, true
	for range faultMembers {
		e.add(t, startMember(t, e.f, e.wh, mc))
	}
}

// add tracks a running member: it is stopped, and waited for, when the test
// ends unless wait collected it.
func (e *faultEnv) add(t *testing.T, m *member) {
	e.members = append(e.members, m)
	t.Cleanup(func() {
		if !e.waited[m] {
			m.stop()
			<-m.done
		}
	})
}

// wait waits for m to reach --stop-at and fails the test on an error or a
// timeout; on a timeout it saves every goroutine's stack for the post-mortem.
func (e *faultEnv) wait(t *testing.T, m *member, timeout time.Duration) {
	t.Helper()
	e.waited[m] = true
	select {
	case err := <-m.done:
		if err != nil {
			t.Fatalf("member: %v", err)
		}
	case <-time.After(timeout):
		stacks := make([]byte, 8<<20)
		stacks = stacks[:runtime.Stack(stacks, true)]
		where := "not saved"
		if dump, err := os.CreateTemp("", "highwater-faults-stacks-*.txt"); err == nil {
			_, _ = dump.Write(stacks)
			dump.Close()
			where = dump.Name()
		}
		defer func() {
			m.stop()
			<-m.done
		}()
		t.Fatalf("member did not reach stop-at within %s (goroutine stacks: %s); the warehouse watermark is %s; checkpoints:%s\nmembers: %s", timeout, where, e.watermark(), e.checkpoints(), e.stats())
	}
}

// watermark reads the feed-wide "complete through" HLC of the group from
// the warehouse's watermark view (zero while some partition of the feed has
// not been applied once). While the warehouse is down it returns zero.
func (e *faultEnv) watermark() hlc.Timestamp {
	return readWatermark(e.db, e.group)
}

func readWatermark(db *sql.DB, group string) hlc.Timestamp {
	var text sql.NullString
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := db.QueryRowContext(ctx, `SELECT CAST(resolved AS TEXT) FROM highwater_watermark WHERE consumer_group = $1 AND topic IS NULL`, group).Scan(&text)
	if err != nil || !text.Valid {
		return hlc.Timestamp{}
	}
	h, err := hlc.Parse(text.String)
	if err != nil {
		return hlc.Timestamp{}
	}
	return h
}

// waitWatermark waits until the warehouse watermark reaches mark and
// returns how long that took, or fails the test after timeout.
func (e *faultEnv) waitWatermark(t *testing.T, mark hlc.Timestamp, timeout time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for e.watermark().Less(mark) {
		if time.Since(start) > timeout {
			t.Fatalf("%s: the watermark stayed at %s, below %s, for %s; member stats %s", what, e.watermark(), mark, timeout, e.stats())
		}
		time.Sleep(25 * time.Millisecond)
	}
	return time.Since(start)
}

// checkpoints lists the group's checkpoints, for failure messages.
func (e *faultEnv) checkpoints() string {
	rows, err := e.db.Query(`SELECT topic, "partition", CAST(resolved AS TEXT), next_offset FROM highwater_checkpoints WHERE consumer_group = $1 ORDER BY 1, 2`, e.group)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var topic, resolved string
		var part int32
		var next int64
		if err := rows.Scan(&topic, &part, &resolved, &next); err != nil {
			return err.Error()
		}
		fmt.Fprintf(&b, "\n  %s[%d] resolved %s next offset %d", topic, part, resolved, next)
	}
	return b.String()
}

func (e *faultEnv) stats() string {
	var b strings.Builder
	for i, m := range e.members {
		fmt.Fprintf(&b, "\n  member %d: %+v", i, m.proc.Stats())
		for _, ps := range m.proc.PartitionStats() {
			fmt.Fprintf(&b, "\n    %s[%d] resolved %s applied %s next offset %d high watermark %d",
				ps.Topic, ps.Partition, ps.Resolved, ps.Applied, ps.NextOffset, ps.HighWatermark)
		}
	}
	return b.String()
}

// caughtUp waits until the feed has played a few slices and the
// warehouse holds them: the members are running and have cached the feed's
// schema ids.
func (e *faultEnv) caughtUp(t *testing.T, what string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); e.feed.slices.Load() < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the feed did not play", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
	e.waitWatermark(t, e.f.sim.LastResolved(), time.Minute, what)
}

// everyPartitionIngested waits until every member has ingested records of
// every partition it owns since its last assignment.
func (e *faultEnv) everyPartitionIngested(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; {
		ready := true
		for _, m := range e.members {
			ps := m.proc.PartitionStats()
			ready = ready && len(ps) > 0
			for _, p := range ps {
				ready = ready && p.NextOffset > 0
			}
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("some member has not ingested from every partition it owns after 1m")
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// recovered logs the recovery time after a fault that ended at end: until
// the watermark passes mark, the last resolved timestamp emitted before.
func (e *faultEnv) recovered(t *testing.T, what string, end time.Time, mark hlc.Timestamp) {
	t.Helper()
	e.waitWatermark(t, mark, 3*time.Minute, what)
	t.Logf("%s: recovered in %s (fault end to the feed watermark passing %s, the last resolved emitted before the fault ended)",
		what, time.Since(end).Round(time.Millisecond), mark)
}

// finish ends the feed, lets every member run to --stop-at and compares
// the warehouse with the oracle.
func (e *faultEnv) finish(t *testing.T) {
	t.Helper()
	final := e.feed.finish(t)
	for _, m := range e.members {
		m.proc.SetStopAt(final)
	}
	for _, m := range e.members {
		e.wait(t, m, 3*time.Minute)
	}
	var windows, rows, dups int64
	for _, m := range e.members {
		s := m.proc.Stats()
		windows, rows, dups = windows+s.Windows, rows+s.RowsApplied, dups+s.Duplicates
	}
	t.Logf("%d feed slices; members applied %d rows in %d windows, dropped %d duplicates", e.feed.slices.Load(), rows, windows, dups)
	verify(t, e.f, e.wh, e.sinkURL, final, true)
	if wm := e.watermark(); wm != final {
		t.Errorf("highwater_watermark says complete through %s, want %s", wm, final)
	}
}

// proxyDialer sends every Kafka connection of a member through proxy (the
// stack has one broker).
func proxyDialer(p *devstack.Proxy) kgo.Opt {
	return kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, p.Addr())
	})
}

// TestFaults runs the fault scenarios side by side, each on its own broker,
// registry and database.
func TestFaults(t *testing.T) {
	t.Run("BrokerUnreachable30s", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, 101, nil)
		proxy, err := devstack.NewProxy(e.f.stack.Brokers()[0])
		if err != nil {
			t.Fatal(err)
		}
		defer proxy.Close()
		e.startMembers(t, memberConfig{kafkaOpts: []kgo.Opt{proxyDialer(proxy)}})
		e.feed = playSteady(t, e.f)
		e.caughtUp(t, "before the outage")
		// The changefeed keeps producing (straight to the broker) while
		// the members cannot reach it.
		proxy.Cut()
		time.Sleep(30 * time.Second)
		mark := e.f.sim.LastResolved()
		if err := proxy.Restore(); err != nil {
			t.Fatal(err)
		}
		e.recovered(t, "broker unreachable for 30s", time.Now(), mark)
		e.finish(t)
	})

	t.Run("BrokerRestart", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, 102, nil)
		e.startMembers(t, memberConfig{})
		e.feed = playSteady(t, e.f)
		e.caughtUp(t, "before the restart")
		for i := range 2 {
			time.Sleep(2 * time.Second)
			// Down for 3s, then back on the same port with its data dir;
			// the changefeed waits for the broker like the members do.
			if err := e.f.stack.RestartBroker(3 * time.Second); err != nil {
				t.Fatal(err)
			}
			e.recovered(t, fmt.Sprintf("broker restart %d (3s down)", i+1), time.Now(), e.f.sim.LastResolved())
		}
		e.finish(t)
	})

	t.Run("RegistryDown30s", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, 103, nil)
		proxy, err := devstack.NewProxy(strings.TrimPrefix(e.f.stack.RegistryURL(), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer proxy.Close()
		e.startMembers(t, memberConfig{registryURL: "http://" + proxy.Addr()})
		e.feed = playSteady(t, e.f)
		// Every member must have decoded records of each partition it owns
		// (so cached their schema ids) before the cut: a member that joins
		// a rebalance late and never fetched one cannot decode anything
		// until the registry is back, which is the scenario's second half.
		e.everyPartitionIngested(t)
		e.caughtUp(t, "before the outage")
		cut := time.Now()
		proxy.Cut()
		// Schema ids the members cached keep working: windows are applied
		// while the registry is down, those resolved after the cut too.
		waitResolvedPast(t, e.f, e.f.sim.LastResolved(), 20*time.Second)
		e.waitWatermark(t, e.f.sim.LastResolved(), 20*time.Second, "cached schema ids while the registry is down")
		// A schema change registers a new id that the members cannot
		// fetch until the registry is back: they wait and retry.
		if _, err := e.f.sim.AddColumn(context.Background(), "orders", simulator.ColumnDef{Name: "priority", Type: "INT8", Default: "7"}, int64(7)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(cut.Add(30 * time.Second)))
		mark := e.f.sim.LastResolved()
		if wm := e.watermark(); !wm.Less(mark) {
			t.Errorf("the watermark reached %s while the registry was down, past the schema change: a new schema id was not waited for", wm)
		}
		if err := proxy.Restore(); err != nil {
			t.Fatal(err)
		}
		e.recovered(t, "registry down for 30s (with a schema change)", time.Now(), mark)
		e.finish(t)
	})

	t.Run("WarehouseDown20s", func(t *testing.T) {
		t.Parallel()
		// A server of its own: the other scenarios share the package's.
		srv := pgtest.Start(t)
		e := newFaultEnv(t, 104, srv)
		e.startMembers(t, memberConfig{})
		e.feed = playSteady(t, e.f)
		e.caughtUp(t, "before the outage")
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Second)
		mark := e.f.sim.LastResolved()
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		e.recovered(t, "warehouse down for 20s", time.Now(), mark)
		e.finish(t)
	})

	t.Run("BufferDiskBudget", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, 105, nil)
		// A backlog first, so that the members meet far more than their
		// budget at once: one window larger than what a member ingests per
		// poll, then the steady feed.
		e.feed = playSteady(t, e.f)
		if err := e.f.sim.Run(context.Background(), simulator.Workload{Txns: 4000, KeysPerTable: 3000, RowsPerTxn: 3}); err != nil {
			t.Fatal(err)
		}
		// mark: the first resolved timestamp that covers the backlog.
		waitResolvedPast(t, e.f, e.f.sim.LastResolved(), 20*time.Second)
		mark := e.f.sim.LastResolved()
		start := time.Now()
		e.startMembers(t, memberConfig{diskBudget: 16 << 10})
		var paused atomic.Bool
		stopWatch := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				for _, m := range e.members {
					if m.proc.Stats().Paused {
						paused.Store(true)
					}
				}
				select {
				case <-stopWatch:
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
		}()
		e.recovered(t, "16 KiB buffer budget, from start with a backlog", start, mark)
		e.finish(t)
		close(stopWatch)
		wg.Wait()
		if !paused.Load() {
			t.Errorf("no member paused fetching although the backlog exceeded the 16 KiB buffer budget")
		}
	})

	t.Run("KillNineAndRebalanceStorm", func(t *testing.T) {
		t.Parallel()
		testRebalanceStorm(t)
	})
}

// testRebalanceStorm runs three highwater processes in one group and, while
// the feed plays, kills them with -9 at random moments, stops them with
// SIGTERM, and starts them again (members leave and join: one rebalance
// after another). Then all three run with --stop-at and must each exit 0
// once the whole feed is applied.
func testRebalanceStorm(t *testing.T) {
	e := newFaultEnv(t, 106, nil)
	bufDirs := make([]string, faultMembers+1) // +1: the member joining after the storm
	for i := range bufDirs {
		bufDirs[i] = t.TempDir()
	}
	args := func(i int, extra ...string) []string {
		return append([]string{"run",
			"--brokers", strings.Join(e.f.stack.Brokers(), ","),
			"--registry", e.f.stack.RegistryURL(),
			"--topics", strings.Join(e.f.sim.Topics(), ","),
			"--group", e.group,
			"--sink", e.sinkURL,
			"--buffer-dir", bufDirs[i],
			"--changelog",
			"--session-timeout", "2s",
			"--rebalance-timeout", "4s",
			"--log-format", "json",
			"--log-level", "warn",
		}, extra...)
	}
	type proc struct {
		cmd    *exec.Cmd
		stderr *bytes.Buffer
		done   chan error
	}
	start := func(i int, extra ...string) *proc {
		cmd := exec.Command(binary, args(i, extra...)...)
		p := &proc{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
		cmd.Stderr = p.stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.done <- cmd.Wait() }()
		return p
	}
	procs := make([]*proc, faultMembers)
	defer func() {
		for _, p := range procs {
			if p != nil {
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
	}()
	for i := range procs {
		procs[i] = start(i)
	}
	e.feed = playSteady(t, e.f)
	rng := rand.New(rand.NewPCG(106, 1))
	kills, terms, starts := 0, 0, 0
	for stormEnd := time.Now().Add(35 * time.Second); time.Now().Before(stormEnd); {
		time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
		i := rng.IntN(faultMembers)
		p := procs[i]
		switch {
		case p == nil:
			procs[i] = start(i)
			starts++
		case rng.IntN(3) == 0:
			// A graceful stop must finish or abandon the window in flight
			// and exit 0.
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			if err := <-p.done; err != nil {
				t.Fatalf("member %d did not exit cleanly on SIGTERM: %v\n%s", i, err, p.stderr.String())
			}
			procs[i] = nil
			terms++
		default:
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			err := <-p.done
			if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
				t.Fatalf("member %d exited before it was killed: %v\n%s", i, err, p.stderr.String())
			}
			procs[i] = nil
			kills++
		}
	}
	final := e.feed.finish(t)
	for i, p := range procs {
		if p != nil {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
			procs[i] = nil
			kills++
		}
	}
	// The storm ends: three members with --stop-at; each exits 0 once every
	// partition of the feed is applied through final, whoever applied it.
	end := time.Now()
	for i := range procs {
		procs[i] = start(i, "--stop-at", final.String(), "--log-level", "info")
	}
	// kfake, the test broker, can keep a member that was killed while its
	// JoinGroup was in flight as a member for good: the JoinGroup reply goes
	// to a closed connection, which leaves the member without a session
	// timer, and the group settles with it holding partitions nobody
	// fetches (a real broker expires it after the session timeout). The
	// next rebalance drops it, so one more member joins once the three have
	// started, as an operator scaling out would; it runs to --stop-at too.
	time.Sleep(3 * time.Second)
	procs = append(procs, start(faultMembers, "--stop-at", final.String(), "--log-level", "info"))
	recoveredAt := make(chan time.Duration, 1)
	go func() {
		for e.watermark().Less(final) && time.Since(end) < 3*time.Minute {
			time.Sleep(25 * time.Millisecond)
		}
		recoveredAt <- time.Since(end)
	}()
	for i, p := range procs {
		select {
		case err := <-p.done:
			procs[i] = nil
			if err != nil {
				t.Fatalf("member %d: highwater run --stop-at: %v\n%s", i, err, p.stderr.String())
			}
		case <-time.After(3 * time.Minute):
			var logs strings.Builder
			for j, q := range procs {
				if q != nil {
					_ = q.cmd.Process.Signal(syscall.SIGQUIT) // stacks to stderr
					<-q.done
					fmt.Fprintf(&logs, "\n--- member %d:\n%s", j, q.stderr.String())
					procs[j] = nil
				}
			}
			t.Fatalf("member %d did not exit at --stop-at %s within 3m; checkpoints:%s%s", i, final, e.checkpoints(), logs.String())
		}
	}
	t.Logf("rebalance storm: %d kill -9, %d SIGTERM, %d restarts in 35s while the feed played (%d slices); recovered in %s (restart of the members to the feed watermark passing the final resolved %s)",
		kills, terms, starts, e.feed.slices.Load(), (<-recoveredAt).Round(time.Millisecond), final)
	if kills < 3 || starts < 3 {
		t.Errorf("only %d kills and %d restarts: the storm did not exercise rebalances", kills, starts)
	}
	verify(t, e.f, e.wh, e.sinkURL, final, true)
	if wm := e.watermark(); wm != final {
		t.Errorf("highwater_watermark says complete through %s, want %s", wm, final)
	}
}

// TestWatermarkWaitsForUnownedPartitions runs two highwater members and a
// third group member that takes its share of the partitions and applies
// nothing (a wedged member). The two apply their partitions, yet the feed
// watermark in the warehouse stays at zero, and --stop-at does not let them
// exit, until the wedged member leaves and its partitions are applied too.
func TestWatermarkWaitsForUnownedPartitions(t *testing.T) {
	e := newFaultEnv(t, 107, nil)
	ctx := context.Background()
	// The wedged member tracks what it owns and applies nothing.
	var wedgedMu sync.Mutex
	owned := map[string]map[int32]bool{}
	track := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
			wedgedMu.Lock()
			defer wedgedMu.Unlock()
			for t, parts := range ps {
				if owned[t] == nil {
					owned[t] = map[int32]bool{}
				}
				for _, p := range parts {
					if add {
						owned[t][p] = true
					} else {
						delete(owned[t], p)
					}
				}
			}
		}
	}
	var wedgedParts atomic.Int64
	wedged, err := kgo.NewClient(kgo.SeedBrokers(e.f.stack.Brokers()...), kgo.ConsumerGroup(e.group),
		kgo.ConsumeTopics(e.f.sim.Topics()...), kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(2*time.Second), kgo.HeartbeatInterval(400*time.Millisecond), kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(track(true)), kgo.OnPartitionsRevoked(track(false)), kgo.OnPartitionsLost(track(false)))
	if err != nil {
		t.Fatal(err)
	}
	wedgedDone := make(chan struct{})
	go func() {
		defer close(wedgedDone)
		for {
			pollCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			closed := wedged.PollFetches(pollCtx).IsClientClosed()
			cancel()
			if closed {
				return
			}
			wedgedMu.Lock()
			n := 0
			for _, ps := range owned {
				n += len(ps)
			}
			wedgedMu.Unlock()
			wedgedParts.Store(int64(n))
		}
	}()
	mc := memberConfig{group: e.group, sinkURL: e.sinkURL, changelog: true}
	e.add(t, startMember(t, e.f, e.wh, mc))
	e.add(t, startMember(t, e.f, e.wh, mc))
	if _, err := play(ctx, e.f.sim, 1, nil); err != nil {
		t.Fatal(err)
	}
	final, err := e.f.sim.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range e.members {
		m.proc.SetStopAt(final)
	}
	// Both members apply what they own through final ...
	deadline := time.Now().Add(2 * time.Minute)
	for {
		a, b := e.members[0].proc.Stats(), e.members[1].proc.Stats()
		if !a.Frontier.Less(final) && !b.Frontier.Less(final) && a.Partitions > 0 && b.Partitions > 0 && wedgedParts.Load() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two members did not apply their partitions through %s beside the wedged one (%d partitions): %s", final, wedgedParts.Load(), e.stats())
		}
		time.Sleep(25 * time.Millisecond)
	}
	// ... yet the feed is not complete: the wedged member's partitions hold
	// the watermark (and --stop-at) back.
	time.Sleep(time.Second)
	if wm := e.watermark(); !wm.IsZero() {
		t.Errorf("the watermark is %s while %d partitions were never applied; want zero", wm, wedgedParts.Load())
	}
	var parts int
	if err := e.db.QueryRow(`SELECT partitions FROM highwater_watermark WHERE consumer_group = $1 AND topic IS NULL`, e.group).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if want := 3 * len(e.f.sim.Topics()); parts != want {
		t.Errorf("the watermark covers %d partitions, want all %d of the feed", parts, want)
	}
	for i, m := range e.members {
		select {
		case err := <-m.done:
			t.Fatalf("member %d exited (%v) before the whole feed was applied through --stop-at", i, err)
		default:
		}
	}
	// The wedged member leaves: its partitions move, are applied, and both
	// members exit at --stop-at.
	wedged.Close()
	<-wedgedDone
	for _, m := range e.members {
		e.wait(t, m, 2*time.Minute)
	}
	if wm := e.watermark(); wm != final {
		t.Errorf("after the wedged member left the watermark is %s, want %s", wm, final)
	}
	verify(t, e.f, e.wh, e.sinkURL, final, true)
}
