package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
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

	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/simulator"
)

// newBenchCmd measures the whole pipeline the way an operator would meet it:
// the simulator fills an in-process broker, then `highwater run` runs as a
// separate process (so its CPU time and RSS are its own) until --stop-at.
// In the same run it measures the raw consume rate of the same topics and
// the raw DuckDB append rate, and a second feed holds millions of events
// unresolved to measure memory while they are buffered.
func newBenchCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the pipeline end to end (make bench)",
		Args:  noArgs,
	}
	fs := cmd.Flags()
	events := fs.Int("events", 1_000_000, "row events of the throughput feed")
	keys := fs.Int("keys", 100_000, "distinct keys of the throughput feed")
	window := fs.Int("window", 50_000, "events between resolved timestamps")
	partitions := fs.Int("partitions", 8, "partitions per topic")
	unresolved := fs.Int("unresolved", 2_000_000, "events of the memory feed, buffered without a resolved timestamp (0 skips)")
	dir := fs.String("dir", "", "working directory (default: a temporary one); the runs' logs are kept in it as throughput.log and memory.log")
	logLevel := fs.String("log-level", "info", "log level of the measured `highwater run` processes (debug logs every window)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		work := *dir
		if work == "" {
			var err error
			if work, err = os.MkdirTemp("", "highwater-bench-"); err != nil {
				return err
			}
			defer os.RemoveAll(work)
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

		fmt.Fprintf(stdout, "highwater bench: %d events over %d keys, %d partitions, resolved every %d events (%d cores)\n",
			*events, *keys, *partitions, *window, runtime.NumCPU())

		// 1. Produce the throughput feed.
		t0 := time.Now()
		topics, final, err := benchFeed(ctx, stack, "tp_", *partitions, *events, *keys, *window, true)
		if err != nil {
			return err
		}
		produce := time.Since(t0)
		fmt.Fprintf(stdout, "  simulator produced         %9.0f events/s  (%s)\n", float64(*events)/produce.Seconds(), produce.Round(time.Millisecond))

		// 2. Raw consume rate of the same topics.
		n, took, err := rawConsume(ctx, stack.Brokers(), topics)
		if err != nil {
			return err
		}
		rawRate := float64(n) / took.Seconds()
		fmt.Fprintf(stdout, "  raw Kafka consume          %9.0f records/s (%d records)\n", rawRate, n)

		// 3. Raw DuckDB append rate for rows of the same shape.
		appendRate, err := rawDuckDBAppend(ctx, filepath.Join(work, "raw.duckdb"), *events)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  raw DuckDB append          %9.0f rows/s\n", appendRate)

		// 4. The pipeline, as its own process.
		res, err := runBenchProcess(ctx, self, stack, topics, work, "throughput", *logLevel, final)
		if err != nil {
			return err
		}
		rate := float64(res.consumed) / res.wall.Seconds()
		fmt.Fprintf(stdout, "  highwater end to end       %9.0f events/s  (%d records in %s; %.2fx raw consume, %.2fx raw DuckDB append)\n",
			rate, res.consumed, res.wall.Round(time.Millisecond), rate/rawRate, rate/appendRate)
		fmt.Fprintf(stdout, "    CPU per event            %9.2f µs  (user+sys %s)\n", float64(res.cpu.Microseconds())/float64(max(res.consumed, 1)), res.cpu.Round(time.Millisecond))
		fmt.Fprintf(stdout, "    peak RSS                 %9.1f MiB  (at the sampled peak: %s)\n", float64(res.maxRSS)/(1<<20), res.peakMem)
		fmt.Fprintf(stdout, "    peak buffer disk         %9.1f MiB\n", float64(res.peakDisk)/(1<<20))
		fmt.Fprintf(stdout, "    resolved-to-visible      p50 %s  p99 %s  (%d windows)\n", res.p50, res.p99, res.windows)

		if *unresolved > 0 {
			// 5. Memory with millions of unresolved events buffered.
			t0 = time.Now()
			topics, _, err = benchFeed(ctx, stack, "mem_", *partitions, *unresolved, *unresolved/2, 0, false)
			if err != nil {
				return err
			}
			inKafka, _, err := rawConsume(ctx, stack.Brokers(), topics)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "  memory feed: %d unresolved events produced in %s (%d records in Kafka)\n", *unresolved, time.Since(t0).Round(time.Millisecond), inKafka)
			mem, err := runBenchProcess(ctx, self, stack, topics, work, "memory", *logLevel, schemas.HLC{}, inKafka)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "    peak RSS while %d events are buffered: %.1f MiB (buffer on disk %.1f MiB, ingest %.0f events/s)\n",
				mem.buffered, float64(mem.maxRSS)/(1<<20), float64(mem.peakDisk)/(1<<20), float64(mem.buffered)/mem.wall.Seconds())
			fmt.Fprintf(stdout, "      at the sampled peak: %s\n", mem.peakMem)
		}
		return nil
	}
	return cmd
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
func benchFeed(ctx context.Context, stack *devstack.Stack, prefix string, partitions, events, keys, window int, resolveAtEnd bool) ([]string, schemas.HLC, error) {
	sim, err := simulator.New(ctx, simulator.Options{
		Brokers: stack.Brokers(), RegistryURL: stack.RegistryURL(), Partitions: partitions,
		TopicPrefix: prefix, Seed: 42, Logger: zap.NewNop(),
		// A Start-based clock would run up to minutes ahead of real time
		// on a feed of millions of events: past --max-clock-skew.
		Live: true,
	}, benchTable)
	if err != nil {
		return nil, schemas.HLC{}, err
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
			return nil, schemas.HLC{}, err
		}
		if window > 0 && (i+perTxn)%window < perTxn {
			if _, err := sim.Resolve(ctx); err != nil {
				return nil, schemas.HLC{}, err
			}
		}
	}
	var final schemas.HLC
	if resolveAtEnd {
		if final, err = sim.Resolve(ctx); err != nil {
			return nil, schemas.HLC{}, err
		}
	} else if err := sim.Flush(ctx); err != nil {
		return nil, schemas.HLC{}, err
	}
	return sim.Topics(), final, nil
}

// rawConsume reads every record of topics with a plain franz-go consumer.
func rawConsume(ctx context.Context, brokers, topics []string) (int64, time.Duration, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(32<<20), kgo.FetchMaxPartitionBytes(8<<20))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		return 0, 0, err
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	start := time.Now()
	var n int64
	for n < want {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return 0, 0, err
		}
		n += int64(fs.NumRecords())
	}
	return n, time.Since(start), nil
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
		h := schemas.HLC{WallTime: ts.UnixNano() + int64(i)}
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
	maxRSS, peakDisk            int64
	// peakMem splits the largest sampled RSS into its anonymous part (Go
	// heap, Badger's memtables and builders) and its file-backed part
	// (Badger's memory-mapped tables and logs: page cache).
	peakMem memSample
}

// runBenchProcess runs `highwater run` on topics as a child process. With a
// stopAt it waits for the process to finish; with holdEvents it waits until
// that many events are buffered, samples, and stops the process.
func runBenchProcess(ctx context.Context, self string, stack *devstack.Stack, topics []string, work, name, logLevel string, stopAt schemas.HLC, holdEvents ...int64) (benchResult, error) {
	var res benchResult
	addr, err := freeAddr()
	if err != nil {
		return res, err
	}
	bufDir := filepath.Join(work, name+"-buffer")
	args := []string{"run", "--brokers", strings.Join(stack.Brokers(), ","), "--registry", stack.RegistryURL(),
		"--topics", strings.Join(topics, ","), "--group", "bench-" + name, "--sink", "duckdb://" + filepath.Join(work, name+".duckdb"),
		"--buffer-dir", bufDir, "--buffer-budget", "0", "--metrics-addr", addr, "--log-format", "json", "--log-level", logLevel}
	if !stopAt.IsZero() {
		args = append(args, "--stop-at", stopAt.String())
	}
	cmd := exec.CommandContext(ctx, self, args...)
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
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				return res, fmt.Errorf("highwater run (%s): %w\n%s", name, err, logs.String())
			}
			running = false
		case <-tick.C:
			res.sample(cmd.Process.Pid)
			if d := dirSize(bufDir); d > res.peakDisk {
				res.peakDisk = d
			}
			if len(holdEvents) > 0 {
				if c := scrapeMetric(addr, "highwater_records_consumed_total"); int64(c) >= holdEvents[0] {
					res.sample(cmd.Process.Pid)
					// The kernel's high-water mark also covers peaks
					// between two samples.
					if hwm := procMem(cmd.Process.Pid).hwm; hwm > res.maxRSS {
						res.maxRSS = hwm
					}
					res.buffered = int64(scrapeMetric(addr, "highwater_buffer_events"))
					res.wall = time.Since(start)
					_ = cmd.Process.Signal(syscall.SIGTERM)
					<-done
					return res, nil
				}
			}
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-done
			return res, fmt.Errorf("highwater run (%s): %w (consumed %v, buffered %v)\n%s", name, ctx.Err(),
				scrapeMetric(addr, "highwater_records_consumed_total"), scrapeMetric(addr, "highwater_buffer_events"), lastLines(logs.String(), 20))
		}
	}
	res.wall = time.Since(start)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		if rss := ru.Maxrss * 1024; rss > res.maxRSS {
			res.maxRSS = rss
		}
	}
	// The process logs a JSON summary line when it stops.
	sc := bufio.NewScanner(bytes.NewReader(logs.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m struct {
			Msg      string  `json:"msg"`
			Consumed int64   `json:"consumed"`
			Windows  int64   `json:"windows"`
			P50      float64 `json:"visible_p50"` // seconds
			P99      float64 `json:"visible_p99"`
		}
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Msg == "highwater stopped" {
			res.consumed, res.windows = m.Consumed, m.Windows
			res.p50 = time.Duration(m.P50 * float64(time.Second)).Round(time.Millisecond)
			res.p99 = time.Duration(m.P99 * float64(time.Second)).Round(time.Millisecond)
		}
	}
	if res.consumed == 0 {
		return res, fmt.Errorf("highwater run (%s) printed no summary:\n%s", name, logs.String())
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

// sample records the process's memory if it is the largest so far.
func (r *benchResult) sample(pid int) {
	if m := procMem(pid); m.rss > r.maxRSS {
		r.maxRSS, r.peakMem = m.rss, m
	}
}

// procMem reads a process's resident set size and its anonymous and
// file-backed parts from /proc (Linux).
func procMem(pid int) memSample {
	var m memSample
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.rss = kb * 1024
		case "VmHWM:":
			m.hwm = kb * 1024
		case "RssAnon:":
			m.anon = kb * 1024
		case "RssFile:", "RssShmem:":
			m.file += kb * 1024
		}
	}
	return m
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// scrapeMetric reads one unlabelled metric from a Prometheus endpoint.
func scrapeMetric(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(line[len(name):]), 64)
			return v
		}
	}
	return 0
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
