package integration

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/simulator"
	"github.com/highwater-dev/highwater/sinks"
)

// hostileOptions make the simulated changefeed do everything CockroachDB
// is allowed to do: re-send rows, and interleave keys between resolved
// timestamps.
func hostileOptions(seed int64) simulator.Options {
	return simulator.Options{Partitions: 3, Diff: true, Seed: seed, DuplicateProb: 0.1, Reorder: true}
}

// play plays the standard feed: an initial scan, updates and deletes (of
// present and absent rows) with duplicates and cross-key reordering, a
// changefeed restart that re-emits from an old checkpoint with gaps, and
// schema changes with backfill. It returns the final resolved timestamp.
// beforeRestart, if not nil, runs before the changefeed restart with the
// checkpoint the restart re-emits from.
func play(ctx context.Context, sim *simulator.Sim, scale int, beforeRestart func(checkpoint hlc.Timestamp)) (hlc.Timestamp, error) {
	for i := int64(0); i < 20; i++ {
		if err := sim.Load("orders", map[string]any{"region": fmt.Sprintf("r%d", i%3), "id": i, "status": "new"}); err != nil {
			return hlc.Timestamp{}, err
		}
	}
	if _, err := sim.InitialScan(ctx); err != nil {
		return hlc.Timestamp{}, fmt.Errorf("initial scan: %w", err)
	}
	w := simulator.Workload{Txns: 100 * scale, KeysPerTable: 40 * scale, RowsPerTxn: 3, DeleteProb: 0.1, ResolveEvery: 15}
	if err := sim.Run(ctx, w); err != nil {
		return hlc.Timestamp{}, err
	}
	checkpoint, err := sim.Resolve(ctx)
	if err != nil {
		return hlc.Timestamp{}, err
	}
	if err := sim.Run(ctx, w); err != nil {
		return hlc.Timestamp{}, err
	}
	if beforeRestart != nil {
		beforeRestart(checkpoint)
	}
	// The changefeed restarts from an older checkpoint after later resolved
	// timestamps went out: re-emitted versions, with gaps.
	if err := sim.Restart(ctx, checkpoint, 0.3); err != nil {
		return hlc.Timestamp{}, fmt.Errorf("restart: %w", err)
	}
	if _, err := sim.Txn(ctx, func(tx *simulator.Txn) error {
		return tx.Delete("orders", "nowhere", int64(1_000_000))
	}); err != nil {
		return hlc.Timestamp{}, fmt.Errorf("delete of an absent row: %w", err)
	}
	if _, err := sim.AddColumn(ctx, "orders", simulator.ColumnDef{Name: "priority", Type: "INT8", Default: "7"}, int64(7)); err != nil {
		return hlc.Timestamp{}, fmt.Errorf("add column: %w", err)
	}
	if _, err := sim.DropColumn(ctx, `order items ☃`, "select"); err != nil {
		return hlc.Timestamp{}, fmt.Errorf("drop column: %w", err)
	}
	if err := sim.Run(ctx, w); err != nil {
		return hlc.Timestamp{}, err
	}
	return sim.Resolve(ctx)
}

func playScenario(t *testing.T, f *feed, scale int, beforeRestart func(hlc.Timestamp)) hlc.Timestamp {
	t.Helper()
	final, err := play(context.Background(), f.sim, scale, beforeRestart)
	if err != nil {
		t.Fatal(err)
	}
	return final
}

func TestMirrorEqualsSourceAsOfFrontier(t *testing.T) {
	for _, wh := range []warehouse{duckWarehouse(), pgWarehouse()} {
		t.Run(wh.name, func(t *testing.T) {
			f := newFeed(t, hostileOptions(11), feedTables()...)
			sinkURL := wh.url(t)
			start := time.Now()
			// The member runs while the feed plays, so windows close as
			// resolved timestamps arrive, and learns the end at the end.
			m := startMember(t, f, wh, memberConfig{group: "g1", sinkURL: sinkURL, changelog: true})
			// Let the member apply everything emitted so far first, so
			// that the re-emitted versions (above the restart's checkpoint,
			// up to the latest resolved) arrive as old duplicates. Waiting
			// only for the checkpoint let the member sit exactly there on
			// a slow machine, and nothing re-emitted was older.
			final := playScenario(t, f, 2, func(hlc.Timestamp) {
				latest, err := f.sim.Resolve(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				m.awaitFrontier(t, latest)
			})
			m.proc.SetStopAt(final)
			m.wait(t, 2*time.Minute)
			logFigures(t, wh.name, start, m.proc.Stats())
			if m.proc.Stats().Duplicates == 0 {
				t.Errorf("the changefeed re-emitted versions older than the applied frontier, yet none were dropped as duplicates")
			}
			verify(t, f, wh, sinkURL, final, true)
		})
	}
}

// TestKillNineAndSIGTERMRestarts stops the highwater process at random
// moments while the feed plays (SIGKILL, and every third time SIGTERM),
// restarts it each time, and then lets it finish: the warehouse must still equal the source, with every version in
// the changelog exactly once.
func TestKillNineAndSIGTERMRestarts(t *testing.T) {
	for _, wh := range []warehouse{duckWarehouse(), pgWarehouse()} {
		t.Run(wh.name, func(t *testing.T) {
			f := newFeed(t, hostileOptions(23), feedTables()...)
			sinkURL := wh.url(t)
			bufDir := t.TempDir()
			args := func(extra ...string) []string {
				return append([]string{"run",
					"--brokers", strings.Join(f.stack.Brokers(), ","),
					"--registry", f.stack.RegistryURL(),
					"--topics", strings.Join(f.sim.Topics(), ","),
					"--group", "g-kill",
					"--sink", sinkURL,
					"--buffer-dir", bufDir,
					"--changelog",
					"--session-timeout", "2s",
					"--rebalance-timeout", "4s",
					"--log-format", "json",
					"--log-level", "warn",
				}, extra...)
			}
			finalCh := make(chan hlc.Timestamp, 1)
			playErr := make(chan error, 1)
			go func() {
				final, err := play(context.Background(), f.sim, 10, func(hlc.Timestamp) { time.Sleep(time.Second) })
				if err != nil {
					playErr <- err
					return
				}
				finalCh <- final
			}()

			rng := rand.New(rand.NewPCG(7, 9))
			kills, terms := 0, 0
			var final hlc.Timestamp
			// Kill while the feed plays, and a few times more while the
			// member catches up on the backlog.
			for final.IsZero() || kills < 6 {
				cmd := exec.Command(binary, args()...)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
				if kills%3 == 2 {
					// Every third stop is graceful: SIGTERM must finish or
					// abandon the in-flight window and exit 0.
					_ = cmd.Process.Signal(syscall.SIGTERM)
					if err := cmd.Wait(); err != nil {
						t.Fatalf("highwater did not exit cleanly on SIGTERM: %v\n%s", err, stderr.String())
					}
					terms++
				} else {
					_ = cmd.Process.Signal(syscall.SIGKILL)
					err := cmd.Wait()
					if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
						t.Fatalf("highwater exited before it was killed: %v\n%s", err, stderr.String())
					}
				}
				kills++
				if final.IsZero() {
					select {
					case final = <-finalCh:
					case err := <-playErr:
						t.Fatal(err)
					default:
					}
				}
			}
			// One more kill after the feed is complete, then run to the end.
			start := time.Now()
			cmd := exec.Command(binary, args("--stop-at", final.String())...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitStopAt(t, cmd, &stderr)
			t.Logf("%s: %d stops (%d kill -9, %d SIGTERM) while the feed played; the last run finished in %s",
				wh.name, kills, kills-terms, terms, time.Since(start).Round(time.Millisecond))
			if kills < 6 {
				t.Errorf("only %d kills: the scenario did not exercise restarts", kills)
			}
			verify(t, f, wh, sinkURL, final, true)
		})
	}
}

// verify compares the warehouse at sinkURL with the oracle AS OF final.
func verify(t *testing.T, f *feed, wh warehouse, sinkURL string, final hlc.Timestamp, changelog bool) {
	t.Helper()
	var (
		db                         *sql.DB
		mirrorPrefix, oraclePrefix string
		castText                   string
		models                     map[string]*model.Table
		err                        error
	)
	switch wh.name {
	case "duckdb":
		oracleURL := "duckdb://" + filepath.Join(t.TempDir(), "oracle.duckdb")
		w := wh.open(t, oracleURL, sinks.Options{})
		models = writeOracle(t, f, w, final)
		w.Close()
		db, err = sql.Open("duckdb", strings.TrimPrefix(sinkURL, "duckdb://"))
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		if _, err := db.Exec(fmt.Sprintf("ATTACH '%s' AS oracle (READ_ONLY)", strings.TrimPrefix(oracleURL, "duckdb://"))); err != nil {
			t.Fatal(err)
		}
		oraclePrefix, castText = "oracle.", "VARCHAR"
	case "postgres":
		sep := "?"
		if strings.Contains(sinkURL, "?") {
			sep = "&"
		}
		w := wh.open(t, sinkURL+sep+"schema=oracle", sinks.Options{})
		models = writeOracle(t, f, w, final)
		w.Close()
		db, err = sql.Open("pgx", sinkURL)
		if err != nil {
			t.Fatal(err)
		}
		mirrorPrefix, oraclePrefix, castText = "public.", "oracle.", "TEXT"
	}
	defer db.Close()
	for _, tbl := range models {
		compareMirror(t, db, mirrorPrefix, oraclePrefix, tbl)
		if changelog {
			compareChangelog(t, db, mirrorPrefix, f, tbl, final, castText)
		}
	}
	var wm string
	if err := db.QueryRow(fmt.Sprintf("SELECT CAST(min(resolved) AS %s) FROM %shighwater_checkpoints", castText, mirrorPrefix)).Scan(&wm); err != nil {
		t.Fatal(err)
	}
	if wm != final.String() {
		t.Errorf("checkpoints say complete through %s, want %s", wm, final)
	}
}

// TestPostgresDownMidFeed stops the PostgreSQL server for a few seconds
// while the feed plays and windows are being applied: the windows that fail
// roll back and are retried from the buffer once the server is back, and the
// warehouse still equals the source.
func TestPostgresDownMidFeed(t *testing.T) {
	wh := pgWarehouse()
	f := newFeed(t, hostileOptions(31), feedTables()...)
	sinkURL := wh.url(t)
	// Begin retries connecting for reconnect_timeout (30s by default),
	// which would wait the whole outage out inside one attempt: shorter
	// than the outage, windows fail, roll back and are retried.
	sep := "?"
	if strings.Contains(sinkURL, "?") {
		sep = "&"
	}
	m := startMember(t, f, wh, memberConfig{group: "g-pgdown", sinkURL: sinkURL + sep + "reconnect_timeout=500ms", changelog: true, observe: true})
	final := playScenario(t, f, 3, func(checkpoint hlc.Timestamp) {
		// The member has windows behind it; take the warehouse away while
		// the rest of the feed (restart, schema changes) arrives.
		m.awaitFrontier(t, checkpoint)
		if err := pg.Stop(); err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(4 * time.Second)
			if err := pg.Restart(); err != nil {
				t.Error(err)
			}
		}()
	})
	windowsBefore := m.proc.Stats().Windows
	recovery := time.Now()
	m.proc.SetStopAt(final)
	m.wait(t, 3*time.Minute)
	t.Logf("PostgreSQL down 4s mid-feed: the member applied the rest in %s, %d windows after the outage began",
		time.Since(recovery).Round(time.Millisecond), m.proc.Stats().Windows-windowsBefore)
	// The outage must have failed a window that was then retried and
	// applied (the frontier passed it), or the test proved nothing.
	failed := m.logs.FilterMessage("applying window failed; retrying").All()
	if len(failed) == 0 {
		t.Fatalf("no window failed while PostgreSQL was down; warnings: %v", m.logs.All())
	}
	frontier := m.proc.Stats().Frontier
	for _, e := range failed {
		through, err := hlc.Parse(fmt.Sprint(e.ContextMap()["through"]))
		if err != nil {
			t.Fatalf("failed window's through %v: %v", e.ContextMap()["through"], err)
		}
		if frontier.Less(through) {
			t.Errorf("the window through %s failed (%v) and was not applied: frontier %s", through, e.ContextMap()["error"], frontier)
		}
	}
	t.Logf("%d failed window attempts retried, the first through %v: %v", len(failed), failed[0].ContextMap()["through"], failed[0].ContextMap()["error"])
	verify(t, f, wh, sinkURL, final, true)
}

// TestTwoMembersShareTheFeed runs two group members on one PostgreSQL
// warehouse: they split the partitions (a rebalance while windows are in
// flight), then one leaves mid-feed and the other takes its partitions over
// from the warehouse checkpoints. The result must still equal the source.
func TestTwoMembersShareTheFeed(t *testing.T) {
	wh := pgWarehouse()
	f := newFeed(t, hostileOptions(41), feedTables()...)
	sinkURL := wh.url(t)
	a := startMember(t, f, wh, memberConfig{group: "g-two", sinkURL: sinkURL, changelog: true})
	b := startMember(t, f, wh, memberConfig{group: "g-two", sinkURL: sinkURL, changelog: true})
	var split bool
	bStopped := make(chan error, 1)
	final := playScenario(t, f, 3, func(hlc.Timestamp) {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) && !split {
			split = a.proc.Stats().Partitions > 0 && b.proc.Stats().Partitions > 0
			time.Sleep(20 * time.Millisecond)
		}
		// b leaves while the rest of the feed arrives.
		go func() {
			time.Sleep(700 * time.Millisecond)
			b.stop()
			bStopped <- <-b.done
		}()
	})
	if !split {
		t.Fatalf("the two members never both owned partitions; stats a=%+v b=%+v", a.proc.Stats(), b.proc.Stats())
	}
	if err := <-bStopped; err != nil {
		t.Errorf("member b: %v", err)
	}
	t.Logf("member b applied %d windows before it left; a applied %d", b.proc.Stats().Windows, a.proc.Stats().Windows)
	a.proc.SetStopAt(final)
	a.wait(t, 3*time.Minute)
	verify(t, f, wh, sinkURL, final, true)
}

// TestPoisonRecordStopsWithItsLocation produces a record that is not a
// Confluent Avro frame into a feed topic after some good windows: the member
// must stop with an error naming topic, partition and offset, and the
// warehouse must keep exactly what was applied before it.
func TestPoisonRecordStopsWithItsLocation(t *testing.T) {
	wh := duckWarehouse()
	f := newFeed(t, simulator.Options{Partitions: 1, Seed: 5}, feedTables()[0])
	ctx := context.Background()
	if err := f.sim.Run(ctx, simulator.Workload{Txns: 50, KeysPerTable: 20, RowsPerTxn: 2, ResolveEvery: 10}); err != nil {
		t.Fatal(err)
	}
	good, err := f.sim.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sinkURL := wh.url(t)
	m := startMember(t, f, wh, memberConfig{group: "g-poison", sinkURL: sinkURL})
	for deadline := time.Now().Add(time.Minute); m.proc.Stats().Frontier.Less(good); {
		if time.Now().After(deadline) {
			t.Fatalf("the good windows were not applied: %+v", m.proc.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.stack.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topic := f.sim.Topics()[0]
	res := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("not avro"), Value: []byte{1, 2, 3}})
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	poison, _ := res.First()
	if err := f.sim.Run(ctx, simulator.Workload{Txns: 10, KeysPerTable: 20, RowsPerTxn: 2, ResolveEvery: 5}); err != nil {
		t.Fatal(err)
	}
	runErr := m.stopped(t, time.Minute, "the poison record")
	want := fmt.Sprintf("%s[0]@%d", topic, poison.Offset)
	if runErr == nil || !strings.Contains(runErr.Error(), want) {
		t.Fatalf("error = %v, want it to name %s", runErr, want)
	}
	// The windows before the poison record stay applied, nothing after it
	// is: the warehouse is the source as of the last good window.
	verify(t, f, wh, sinkURL, good, false)
}
