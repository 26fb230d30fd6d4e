package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/internal/procstat"
	"github.com/highwater-dev/highwater/simulator"
)

// newBenchCmd measures the whole pipeline the way an operator would meet it:
// the simulator fills an in-process broker, then `highwater run` runs as a
// separate process (so its CPU time and RSS are its own) until --stop-at.
// In the same run it measures the raw consume rate of the same topics and
// the raw DuckDB append rate, and a second feed holds millions of events
// unresolved to measure memory while they are buffered. The phases that
// stand alone live beside this file (bench_cgroup.go, bench_live.go,
// bench_summary.go); this one keeps the feeds and the measured process.
func newBenchCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the pipeline end to end (make bench)",
		Long: `Measure the pipeline end to end (make bench), each phase with ` + "`highwater run`" + ` as
its own process fed by an in-process broker, then print one screen of
issue 12's targets (measured, ratio to the raw rates of the same run, met or
not; docs/BENCHMARKS.md). The phases, each skipped by its flag at 0:
  throughput   --events over --keys into DuckDB, raw consume and append rates
  hard limit   the same feed inside a memory cgroup of --hard-limit
  memory       --unresolved events buffered without a resolved timestamp
  live         a real-time feed of --live-rate events/s for --live
  initial scan --scan-rows rows scanned at one HLC, applied with
               --buffer-budget --scan-budget: completes, buffer and disk
               within 1.2x the budget, VmHWM, groups applied early, and the
               mirror compared with the simulator's oracle
Issue 12's initial scan target alone (the bench holds the scan in its own
memory, ~9.5 GB at 5M rows: run it alone; ~7 minutes):
  highwater bench --events 100000 --unresolved 0 --live 0 --hard-limit 0 --scan-rows 5000000`,
		Args: noArgs,
	}
	fs := cmd.Flags()
	events := fs.Int("events", 1_000_000, "row events of the throughput feed")
	keys := fs.Int("keys", 100_000, "distinct keys of the throughput feed")
	window := fs.Int("window", 50_000, "events between resolved timestamps")
	partitions := fs.Int("partitions", 8, "partitions per topic")
	unresolved := fs.Int("unresolved", 2_000_000, "events of the memory feed, buffered without a resolved timestamp (0 skips)")
	memoryLimit := fs.String("memory-limit", "512MiB", "--memory-limit of the measured `highwater run` processes, as in a container of that size (\"\": theirs, the cgroup's)")
	hardLimit := fs.String("hard-limit", "512MiB", "run the throughput feed once more inside a memory cgroup with this hard limit, the process taking its --memory-limit from the cgroup (needs root or a delegated cgroup; 0 skips)")
	live := fs.Duration("live", time.Minute, "length of the live phase, a real-time feed during which highwater runs (0 skips)")
	liveRate := fs.Int("live-rate", 20_000, "events a second of the live feed, with a resolved timestamp every second")
	components := fs.String("components", "", "`go test -bench` output to take the PostgreSQL apply and raw COPY rates from for the summary (make bench passes it)")
	dir := fs.String("dir", "", "working directory (default: a temporary one); the runs' logs are kept in it as throughput.log, memory.log, ...; what an earlier bench left there is removed first")
	logLevel := fs.String("log-level", "info", "log level of the measured `highwater run` processes (debug logs every window)")
	scanRows := fs.Int("scan-rows", 2_000_000, "rows of the initial scan phase: one table scanned at one HLC, no resolved timestamp until the scan's end, ~260 bytes a row (0 skips; issue 12's target is 5000000)")
	scanBudget := fs.String("scan-budget", "256MiB", "--buffer-budget of the initial scan phase's `highwater run`, which the scan exceeds (0 skips the phase)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		hard, err := config.ParseBytes(*hardLimit)
		if err != nil {
			return fmt.Errorf("--hard-limit: %w", err)
		}
		scanBud, err := config.ParseBytes(*scanBudget)
		if err != nil {
			return fmt.Errorf("--scan-budget: %w", err)
		}
		var comp map[string]float64
		if *components != "" {
			f, err := os.Open(*components)
			if err != nil {
				return fmt.Errorf("--components: %w", err)
			}
			comp, err = componentRates(f)
			_ = f.Close()
			if err != nil {
				return fmt.Errorf("--components %s: %w", *components, err)
			}
		}
		work := *dir
		if work == "" {
			if work, err = os.MkdirTemp("", "highwater-bench-"); err != nil {
				return err
			}
			defer os.RemoveAll(work)
		} else if err := clearBenchDir(work); err != nil { // bench_dir.go
			return err
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		stack, err := devstack.Start(devstack.Options{})
		if err != nil {
			return err
		}
		defer stack.Close()
		load := watchLoad()
		fig := benchFigures{events: *events, pgApply: comp["sinks/postgres.BenchmarkApply"], pgRawCopy: comp["sinks/postgres.BenchmarkRawCopy"]}

		fmt.Fprintf(stdout, "highwater bench: %d events over %d keys, %d partitions, resolved every %d events (%d cores, load %.2f, --memory-limit %q)\n",
			*events, *keys, *partitions, *window, runtime.NumCPU(), loadAvg(), *memoryLimit)

		// 1. Produce the throughput feed.
		t0 := time.Now()
		topics, final, err := benchFeed(ctx, stack, "tp_", *partitions, *events, *keys, *window, true)
		if err != nil {
			return err
		}
		produce := time.Since(t0)
		fmt.Fprintf(stdout, "  simulator produced         %9.0f events/s  (%s)\n", float64(*events)/produce.Seconds(), produce.Round(time.Millisecond))

		// 2. Raw consume rate of the same topics.
		n, _, took, err := rawConsume(ctx, stack.Brokers(), topics)
		if err != nil {
			return err
		}
		fig.rawConsume = float64(n) / took.Seconds()
		fmt.Fprintf(stdout, "  raw Kafka consume          %9.0f records/s (%d records)\n", fig.rawConsume, n)

		// 3. Raw DuckDB append rate for rows of the same shape.
		if fig.rawAppend, err = rawDuckDBAppend(ctx, filepath.Join(work, "raw.duckdb"), *events); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  raw DuckDB append          %9.0f rows/s\n", fig.rawAppend)

		// 4. The pipeline, as its own process.
		res, err := runBenchProcess(ctx, self, stack, benchSpec{name: "throughput", topics: topics, logLevel: *logLevel, stopAt: final, memoryLimit: *memoryLimit}, work)
		if err != nil {
			return err
		}
		fig.e2e, fig.e2eHWM = float64(res.consumed)/res.wall.Seconds(), res.hwm
		fmt.Fprintf(stdout, "  highwater end to end       %9.0f events/s  (%d records in %s; %.2fx raw consume, %.2fx raw DuckDB append)\n",
			fig.e2e, res.consumed, res.wall.Round(time.Millisecond), fig.e2e/fig.rawConsume, fig.e2e/fig.rawAppend)
		fmt.Fprintf(stdout, "    CPU per event            %9.2f µs  (user+sys %s)\n", float64(res.cpu.Microseconds())/float64(max(res.consumed, 1)), res.cpu.Round(time.Millisecond))
		res.printMemory(stdout)
		fmt.Fprintf(stdout, "    peak buffer disk         %9.1f MiB  (apparent size %.1f MiB)\n", float64(res.peakDisk)/(1<<20), float64(res.peakApparent)/(1<<20))
		fmt.Fprintf(stdout, "    resolved-to-visible      p50 %s  p99 %s  (%d windows)\n", res.p50, res.p99, res.windows)

		// 5. The same feed under a hard memory limit.
		if hard > 0 {
			fig.hard = runHardLimited(ctx, self, stack, benchSpec{name: "hardlimit", topics: topics, logLevel: *logLevel, stopAt: final}, work, hard, stdout)
		}
		dropTopics(ctx, stack, topics, stdout)

		if *unresolved > 0 {
			// 6. Memory with millions of unresolved events buffered.
			t0 = time.Now()
			topics, _, err = benchFeed(ctx, stack, "mem_", *partitions, *unresolved, *unresolved/2, 0, false)
			if err != nil {
				return err
			}
			inKafka, bytes, took, err := rawConsume(ctx, stack.Brokers(), topics)
			if err != nil {
				return err
			}
			fig.bufferedBytes, fig.rawConsumeMem = bytes, float64(inKafka)/took.Seconds()
			fmt.Fprintf(stdout, "  memory feed: %d unresolved events produced in %s (%d records, %.1f MiB of keys and values in Kafka)\n",
				*unresolved, time.Since(t0).Round(time.Millisecond), inKafka, float64(bytes)/(1<<20))
			mem, err := runBenchProcess(ctx, self, stack, benchSpec{name: "memory", topics: topics, logLevel: *logLevel, holdEvents: inKafka, memoryLimit: *memoryLimit}, work)
			if err != nil {
				return err
			}
			fig.buffered, fig.bufferedHWM, fig.bufferedDisk = mem.buffered, mem.hwm, mem.peakDisk
			fig.bufferedFeed, fig.bufferedAll = int64(*unresolved), mem.buffered == inKafka
			fig.ingest = float64(mem.buffered) / mem.wall.Seconds()
			fmt.Fprintf(stdout, "    %d events buffered: buffer on disk %.1f MiB (apparent size %.1f MiB), ingest %.0f events/s, CPU per event %.2f µs\n",
				mem.buffered, float64(mem.peakDisk)/(1<<20), float64(mem.peakApparent)/(1<<20), fig.ingest, float64(mem.cpu.Microseconds())/float64(max(mem.buffered, 1)))
			mem.printMemory(stdout)
			dropTopics(ctx, stack, topics, stdout)
		}

		if *live > 0 {
			// 7. A live feed: resolved-to-visible as an operator sees it.
			lr, feed, err := runLive(ctx, self, stack, work, *logLevel, *memoryLimit, *partitions, *liveRate, *keys, *live)
			if err != nil {
				return err
			}
			fig.liveP50, fig.liveP99, fig.liveWindows = lr.p50, lr.p99, lr.windows
			fig.liveRate = float64(feed.produced) / feed.took.Seconds()
			fmt.Fprintf(stdout, "  live feed: %.0f events/s for %s (%d events), resolved every second\n", fig.liveRate, feed.took.Round(time.Second), feed.produced)
			fmt.Fprintf(stdout, "    resolved-to-visible      p50 %s  p99 %s  (%d windows)\n", lr.p50, lr.p99, lr.windows)
			lr.printMemory(stdout)
			dropTopics(ctx, stack, feed.sim.Topics(), stdout)
		}
		if *scanRows > 0 && scanBud > 0 {
			// 8. An initial scan bigger than the buffer's budget.
			if fig.scan, err = runScanPhase(ctx, self, stack, work, *logLevel, *memoryLimit, *scanRows, scanBud, stdout); err != nil {
				return err
			}
		}
		printSummary(stdout, summaryRows(fig), load.finish())
		return nil
	}
	return cmd
}

// runHardLimited runs spec inside a memory cgroup limited to limit bytes,
// without --memory-limit, so that the process takes its limit from the
// cgroup as it would in a container. A process the kernel kills is a
// figure (it did not survive), not an error of the bench.
func runHardLimited(ctx context.Context, self string, stack *devstack.Stack, spec benchSpec, work string, limit int64, stdout io.Writer) *hardFigures {
	h := &hardFigures{limit: limit}
	cg, err := newBenchCgroup(limit)
	if err != nil {
		h.skipped = err.Error()
		fmt.Fprintf(stdout, "  hard %s limit: skipped: %v\n", mib(limit), err)
		return h
	}
	defer cg.remove()
	spec.cgroup = cg
	res, err := runBenchProcess(ctx, self, stack, spec, work)
	h.hwm, h.cgPeak, h.oomKills = res.hwm, cg.peak(), cg.oomKills()
	h.survived = err == nil
	if err != nil {
		h.failure = strings.SplitN(err.Error(), "\n", 2)[0]
		fmt.Fprintf(stdout, "  under a hard %s cgroup limit: FAILED (%d OOM kills): %s\n", mib(limit), h.oomKills, h.failure)
		return h
	}
	fmt.Fprintf(stdout, "  under a hard %s cgroup limit: survived, %.0f events/s, VmHWM %.1f MiB, cgroup peak %.1f MiB (page cache included), %d OOM kills\n",
		mib(limit), float64(res.consumed)/res.wall.Seconds(), float64(res.hwm)/(1<<20), float64(h.cgPeak)/(1<<20), h.oomKills)
	return h
}

// runLive runs highwater on a live feed of rate events a second for dur,
// until it has applied the feed's last resolved timestamp.
func runLive(ctx context.Context, self string, stack *devstack.Stack, work, logLevel, memoryLimit string, partitions, rate, keys int, dur time.Duration) (benchResult, *liveFeed, error) {
	feed, err := newLiveFeed(ctx, stack, partitions, rate, keys, dur)
	if err != nil {
		return benchResult{}, nil, err
	}
	start := time.Now()
	// A producer that fails ends the run too: the process would otherwise
	// wait forever for the resolved timestamp that stops it.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	produced := make(chan error, 1)
	go func() {
		err := feed.run(runCtx, start)
		if err != nil {
			cancel()
		}
		produced <- err
	}()
	res, err := runBenchProcess(runCtx, self, stack, benchSpec{name: "live", topics: feed.sim.Topics(), logLevel: logLevel, stopAt: feed.stopAt(start), memoryLimit: memoryLimit}, work)
	cancel()
	if perr := <-produced; perr != nil && !errors.Is(perr, context.Canceled) {
		return res, feed, fmt.Errorf("live feed: %w", perr)
	}
	return res, feed, err
}

// benchTable is a features-like row of eight columns.
var benchTable = simulator.TableDef{
	Name: "bench_features",
	Columns: []simulator.ColumnDef{
		{Name: "id", Type: "INT8", NotNull: true},
		{Name: "feature", Type: "STRING"},
		{Name: "internal", Type: "BOOL"},
		{Name: "node", Type: "INT8"},
		{Name: "timestamp", Type: "TIMESTAMPTZ"},
		{Name: "uptime", Type: "INT8"},
		{Name: "uses", Type: "INT8"},
		{Name: "version", Type: "STRING"},
	},
	PrimaryKey: []string{"id"},
}

// benchFeed produces events upserts over keys, with a resolved timestamp
// every window events (never, if window is 0) and, if resolveAtEnd, one at
// the end, whose HLC it returns.
func benchFeed(ctx context.Context, stack *devstack.Stack, prefix string, partitions, events, keys, window int, resolveAtEnd bool) ([]string, hlc.Timestamp, error) {
	sim, err := simulator.New(ctx, simulator.Options{
		Brokers: stack.Brokers(), RegistryURL: stack.RegistryURL(), Partitions: partitions,
		TopicPrefix: prefix, Seed: 42, Logger: zap.NewNop(),
		// A Start-based clock would run up to minutes ahead of real time
		// on a feed of millions of events: past --max-clock-skew.
		Live: true,
	}, benchTable)
	if err != nil {
		return nil, hlc.Timestamp{}, err
	}
	defer sim.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	features := []string{"changefeeds", "backup", "sql.multiregion", "cdc.avro", "rangefeeds", "kv.split", "auth.oidc", "jobs.schedules"}
	const perTxn = 4
	for i := 0; i < events; i += perTxn {
		if _, err := sim.Txn(ctx, func(tx *simulator.Txn) error {
			for j := 0; j < perTxn; j++ {
				if err := tx.Upsert(benchTable.Name, map[string]any{
					"id": int64(rng.IntN(keys)), "feature": features[rng.IntN(len(features))], "internal": rng.IntN(2) == 0,
					"node": int64(rng.IntN(64)), "timestamp": time.Unix(1_700_000_000+int64(i), 0).UTC(),
					"uptime": int64(rng.IntN(1 << 30)), "uses": int64(rng.IntN(1 << 20)), "version": "v25.2." + strconv.Itoa(rng.IntN(9)),
				}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, hlc.Timestamp{}, err
		}
		if window > 0 && (i+perTxn)%window < perTxn {
			if _, err := sim.Resolve(ctx); err != nil {
				return nil, hlc.Timestamp{}, err
			}
		}
	}
	var final hlc.Timestamp
	if resolveAtEnd {
		if final, err = sim.Resolve(ctx); err != nil {
			return nil, hlc.Timestamp{}, err
		}
	} else if err := sim.Flush(ctx); err != nil {
		return nil, hlc.Timestamp{}, err
	}
	return sim.Topics(), final, nil
}

// rawConsume reads every record of topics with a plain franz-go consumer
// and returns how many there were, their keys' and values' bytes, and how
// long it took.
func rawConsume(ctx context.Context, brokers, topics []string) (int64, int64, time.Duration, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(32<<20), kgo.FetchMaxPartitionBytes(8<<20))
	if err != nil {
		return 0, 0, 0, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		return 0, 0, 0, err
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	start := time.Now()
	var n, size int64
	for n < want {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return 0, 0, 0, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			size += int64(len(r.Key) + len(r.Value))
		})
	}
	return n, size, time.Since(start), nil
}

// rawDuckDBAppend appends rows of the bench shape with the DuckDB Appender,
// the fastest way into DuckDB: the ceiling for the sink.
func rawDuckDBAppend(ctx context.Context, path string, rows int) (float64, error) {
	connector, err := duckdb.NewConnector(path, nil)
	if err != nil {
		return 0, err
	}
	defer connector.Close()
	db := sql.OpenDB(connector)
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE raw (id BIGINT, feature VARCHAR, internal BOOLEAN, node BIGINT, "timestamp" TIMESTAMPTZ, uptime BIGINT, uses BIGINT, version VARCHAR, _hw_updated DECIMAL(38,10))`); err != nil {
		return 0, err
	}
	conn, err := connector.Connect(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	app, err := duckdb.NewAppenderFromConn(conn, "", "raw")
	if err != nil {
		return 0, err
	}
	start := time.Now()
	ts := time.Unix(1_700_000_000, 0).UTC()
	for i := 0; i < rows; i++ {
		h := hlc.Timestamp{WallTime: ts.UnixNano() + int64(i)}
		if err := app.AppendRow(int64(i), "changefeeds", true, int64(i%64), ts, int64(i), int64(i), "v25.2.1",
			duckdb.Decimal{Width: 38, Scale: 10, Value: h.Unscaled()}); err != nil {
			return 0, err
		}
	}
	if err := app.Close(); err != nil {
		return 0, err
	}
	return float64(rows) / time.Since(start).Seconds(), nil
}

type benchResult struct {
	consumed, windows, buffered int64
	wall, cpu, p50, p99         time.Duration
	// peakDisk is the buffer directory's peak disk use: allocated blocks,
	// as du counts them; peakApparent its peak apparent size, which also
	// counts the unwritten tails of the files Badger preallocates sparse
	// (each memtable's WAL at twice its size, the value log's file).
	peakDisk, peakApparent int64
	// hwm is the kernel's high-water mark of the process's resident set
	// (VmHWM; the Maxrss of its rusage once reaped): it covers the peaks
	// between two samples, which sampled misses.
	hwm int64
	// sampled is the largest RSS seen by the 100 ms samples, split into its
	// anonymous part (Go heap, Badger's memtables and builders, DuckDB) and
	// its file-backed part (Badger's memory-mapped tables and logs: page
	// cache).
	sampled memSample
	// peakBuffer is the largest highwater_buffer_bytes sampled and
	// earlyGroups the groups the process applied ahead of their resolved
	// timestamp (only with a budget).
	peakBuffer, earlyGroups int64
}

// printMemory prints the process's peak memory, kernel and sampled.
func (r benchResult) printMemory(w io.Writer) {
	fmt.Fprintf(w, "    peak RSS (kernel VmHWM)  %9.1f MiB  (100 ms samples peak at %.1f MiB: %s)\n",
		float64(r.hwm)/(1<<20), float64(r.sampled.rss)/(1<<20), r.sampled)
}

// benchSpec is one measured `highwater run`.
type benchSpec struct {
	name, logLevel string
	topics         []string
	// stopAt: the process runs until it has applied it (--stop-at).
	stopAt hlc.Timestamp
	// holdEvents: the process is stopped (SIGTERM) once it has consumed
	// that many records.
	holdEvents int64
	// memoryLimit is the process's --memory-limit; empty leaves the flag
	// out, so that the process takes its cgroup's limit.
	memoryLimit string
	// cgroup, if set, runs the process inside it.
	cgroup *benchCgroup
	// budget is the process's --buffer-budget (0: none); with one, the
	// buffer's own size and the groups applied early are sampled too.
	budget int64
}

// runBenchProcess runs `highwater run` as a child process, samples its
// memory and buffer disk every 100 ms, and reads its summary line.
func runBenchProcess(ctx context.Context, self string, stack *devstack.Stack, spec benchSpec, work string) (benchResult, error) {
	var res benchResult
	name := spec.name
	addr, err := freeAddr()
	if err != nil {
		return res, err
	}
	bufDir := filepath.Join(work, name+"-buffer")
	args := []string{"run", "--brokers", strings.Join(stack.Brokers(), ","), "--registry", stack.RegistryURL(),
		"--topics", strings.Join(spec.topics, ","), "--group", "bench-" + name, "--sink", "duckdb://" + filepath.Join(work, name+".duckdb"),
		"--buffer-dir", bufDir, "--buffer-budget", strconv.FormatInt(spec.budget, 10), "--metrics-addr", addr, "--log-format", "json", "--log-level", spec.logLevel}
	if !spec.stopAt.IsZero() {
		args = append(args, "--stop-at", spec.stopAt.String())
	}
	if spec.memoryLimit != "" {
		args = append(args, "--memory-limit", spec.memoryLimit)
	}
	cmd := exec.Command(self, args...)
	if spec.cgroup != nil {
		cmd = spec.cgroup.command(self, args...)
	}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	// Kept for a look at the windows (with --dir, after the run too).
	defer func() { _ = os.WriteFile(filepath.Join(work, name+".log"), logs.Bytes(), 0o644) }()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var waitErr error
	for running := true; running; {
		select {
		case waitErr = <-done:
			running = false
		case <-tick.C:
			res.sample(cmd.Process.Pid)
			d, a := procstat.DirSize(bufDir)
			res.peakDisk, res.peakApparent = max(res.peakDisk, d), max(res.peakApparent, a)
			if spec.budget > 0 {
				if m, err := scrapeMetrics(addr, "highwater_buffer_bytes", "highwater_groups_applied_early_total"); err == nil {
					res.peakBuffer = max(res.peakBuffer, int64(m["highwater_buffer_bytes"]))
					res.earlyGroups = max(res.earlyGroups, int64(m["highwater_groups_applied_early_total"]))
				}
			}
			if spec.holdEvents > 0 {
				if c := scrapeMetric(addr, "highwater_records_consumed_total"); int64(c) >= spec.holdEvents {
					res.buffered, res.wall = waitBuffered(addr, spec.holdEvents, start)
					res.sample(cmd.Process.Pid)
					_ = cmd.Process.Signal(syscall.SIGTERM)
					waitErr = <-done
					running = false
				}
			}
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-done
			return res, fmt.Errorf("highwater run (%s): %w (consumed %v, buffered %v)\n%s", name, ctx.Err(),
				scrapeMetric(addr, "highwater_records_consumed_total"), scrapeMetric(addr, "highwater_buffer_events"), lastLines(logs.String(), 20))
		}
	}
	if res.wall == 0 {
		res.wall = time.Since(start)
	}
	// Not the rusage's Maxrss for the peak: Go starts the child with vfork
	// (CLONE_VM), and at the exec the kernel charges the parent's own
	// high-water mark (this bench process, with the in-process broker
	// holding every record) to the child's maxrss. The child logs its own
	// VmHWM as it exits (below); the samples' VmHWM covers a child killed
	// before it could.
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// Each group applied early is logged too: the count covers one
	// applied after the last sample.
	res.earlyGroups = max(res.earlyGroups, int64(strings.Count(logs.String(), `"msg":"applied a group ahead`)))
	if waitErr != nil {
		return res, fmt.Errorf("highwater run (%s): %w\n%s", name, waitErr, lastLines(logs.String(), 20))
	}
	// The process logs a JSON summary line when it stops.
	sc := bufio.NewScanner(bytes.NewReader(logs.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m struct {
			Msg      string  `json:"msg"`
			HWM      int64   `json:"vm_hwm_bytes"`
			Consumed int64   `json:"consumed"`
			Windows  int64   `json:"windows"`
			P50      float64 `json:"visible_p50"` // seconds
			P99      float64 `json:"visible_p99"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		switch m.Msg {
		case "peak memory":
			res.hwm = max(res.hwm, m.HWM)
		case "highwater stopped":
			res.consumed, res.windows = m.Consumed, m.Windows
			res.p50 = time.Duration(m.P50 * float64(time.Second)).Round(time.Millisecond)
			res.p99 = time.Duration(m.P99 * float64(time.Second)).Round(time.Millisecond)
		}
	}
	if res.consumed == 0 {
		return res, fmt.Errorf("highwater run (%s) printed no summary:\n%s", name, lastLines(logs.String(), 20))
	}
	return res, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// memSample is a process's resident memory from /proc/PID/status.
type memSample struct{ rss, anon, file, hwm int64 }

func (m memSample) String() string {
	return fmt.Sprintf("anon %.1f MiB + file-backed %.1f MiB", float64(m.anon)/(1<<20), float64(m.file)/(1<<20))
}

// sample records the process's memory if it is the largest so far, and
// its kernel high-water mark.
func (r *benchResult) sample(pid int) {
	m := procMem(pid)
	if m.rss > r.sampled.rss {
		r.sampled = m
	}
	r.hwm = max(r.hwm, m.hwm)
}

// procMem reads a process's resident set size and its anonymous and
// file-backed parts from /proc (Linux).
func procMem(pid int) memSample {
	m := procstat.Memory(pid)
	return memSample{rss: m.RSS, anon: m.Anon, file: m.File, hwm: m.HWM}
}

// scrapeMetric reads one unlabelled metric from a Prometheus endpoint.
func scrapeMetric(addr, name string) float64 {
	m, _ := scrapeMetrics(addr, name)
	return m[name]
}

// scrapeMetrics reads unlabelled metrics from a Prometheus endpoint in
// one request; a metric not found is absent from the map.
func scrapeMetrics(addr string, names ...string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range names {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				if x, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					out[name] = x
				}
			}
		}
	}
	return out, sc.Err()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitBuffered returns the events buffered once the last fetch's Write has
// landed, and when it landed: records count as consumed before their
// fetch's Write, so the buffer can trail the consumed count by a fetch.
// It waits until every record of the feed is buffered, or until the count
// has not moved for a second (a transaction's upserts of one key are one
// event, so a feed may hold fewer events than records).
func waitBuffered(addr string, records int64, start time.Time) (int64, time.Duration) {
	n := int64(scrapeMetric(addr, "highwater_buffer_events"))
	wall := time.Since(start)
	for still := 0; n < records && still < 10; {
		time.Sleep(100 * time.Millisecond)
		m := int64(scrapeMetric(addr, "highwater_buffer_events"))
		if m == n {
			still++
			continue
		}
		n, wall, still = m, time.Since(start), 0
	}
	return n, wall
}
