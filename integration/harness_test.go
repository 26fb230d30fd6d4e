// Package integration holds highwater's end-to-end tests: the changefeed
// simulator plays a feed into an in-process Kafka broker (kfake, real wire
// protocol) and Schema Registry (srfake); highwater applies it to a real
// DuckDB file or PostgreSQL server; the warehouse is then compared with the
// simulator's oracle, the source tables AS OF the final resolved timestamp.
package integration

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/internal/pgtest"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/internal/testfeed"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/simulator"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/duckdb"
	"github.com/highwater-dev/highwater/sinks/postgres"
)

var (
	// binary is the highwater command built once for the subprocess tests.
	binary string
	// pg is one throwaway PostgreSQL server for the package.
	pg *pgtest.Server
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "highwater-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "highwater")
	build := exec.Command("go", "build", "-o", binary, "../cmd/highwater")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build highwater:", err)
		return 1
	}
	srv, stop, err := pgtest.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start PostgreSQL:", err)
		return 1
	}
	defer stop()
	pg = srv
	return m.Run()
}

// feedTables are the source tables of the end-to-end feeds: a composite
// primary key, names that need escaping and quoting, and every type.
func feedTables() []simulator.TableDef {
	return []simulator.TableDef{
		{
			Name: "orders",
			Columns: []simulator.ColumnDef{
				{Name: "region", Type: "STRING", NotNull: true},
				{Name: "id", Type: "INT8", NotNull: true},
				{Name: "status", Type: "STRING"},
				{Name: "amount", Type: "DECIMAL(12,2)"},
				{Name: "placed_at", Type: "TIMESTAMPTZ"},
				{Name: "tags", Type: "STRING[]"},
			},
			PrimaryKey: []string{"region", "id"},
		},
		{
			Name: `order items ☃`,
			Columns: []simulator.ColumnDef{
				{Name: "from", Type: "INT8", NotNull: true},
				{Name: "a b", Type: "STRING"},
				{Name: `Mixed"Quote`, Type: "BOOL"},
				{Name: "select", Type: "FLOAT8"},
				{Name: "🍦", Type: "INT8"},
			},
			PrimaryKey: []string{"from"},
		},
		simulator.AllTypesTable("all_types"),
	}
}

// feed is a simulated changefeed on an in-process broker and registry.
type feed struct {
	stack *devstack.Stack
	sim   *simulator.Sim
	opts  simulator.Options
}

func newFeed(t *testing.T, opts simulator.Options, tables ...simulator.TableDef) *feed {
	t.Helper()
	stack := testfeed.Stack(t, devstack.Options{DataDir: filepath.Join(t.TempDir(), "kafka")})
	opts.Brokers = stack.Brokers()
	opts.RegistryURL = stack.RegistryURL()
	if opts.Partitions == 0 {
		opts.Partitions = 3
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	sim := testfeed.Sim(t, context.Background(), opts, tables...)
	return &feed{stack: stack, sim: sim, opts: opts}
}

// warehouse is one kind of sink under test.
type warehouse struct {
	name string
	// url returns a fresh warehouse's --sink URL.
	url func(t *testing.T) string
	// open opens a writer on it.
	open func(t *testing.T, url string, opts sinks.Options) sinks.Writer
}

func duckWarehouse() warehouse {
	return warehouse{
		name: "duckdb",
		url:  func(t *testing.T) string { return "duckdb://" + filepath.Join(t.TempDir(), "wh.duckdb") },
		open: func(t *testing.T, url string, opts sinks.Options) sinks.Writer {
			w, err := duckdb.Open(context.Background(), url, opts, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			return w
		},
	}
}

func pgWarehouse() warehouse {
	return warehouse{
		name: "postgres",
		url:  func(t *testing.T) string { return pg.CreateDB(t) },
		open: func(t *testing.T, url string, opts sinks.Options) sinks.Writer {
			w, err := postgres.Open(context.Background(), url, opts, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			return w
		},
	}
}

// member runs one in-process highwater group member.
type member struct {
	proc *processor.Processor
	done chan error
	stop context.CancelFunc
	// logs holds the member's warnings and errors when
	// memberConfig.observe is set.
	logs *observer.ObservedLogs
}

type memberConfig struct {
	group     string
	sinkURL   string
	changelog bool
	stopAt    hlc.Timestamp
	bufferDir string
	// registryURL, when set, replaces the stack's registry URL (a proxy
	// in front of it, for outages).
	registryURL string
	// kafkaOpts are added to the member's Kafka client options (a dialer
	// through a proxy, for outages).
	kafkaOpts []kgo.Opt
	// diskBudget is the buffer's disk budget (0: unlimited).
	diskBudget int64
	// allowRetentionGap is processor.Config.AllowRetentionGap.
	allowRetentionGap bool
	// observe keeps the member's warnings and errors in member.logs, for
	// tests that check what the member went through.
	observe bool
	// onError is processor.Config.OnError, the poison policy.
	onError processor.ErrorPolicy
	// log, when set, is the logger of the member's processor and buffer
	// (the default logs warnings and errors to the test log).
	log *zap.Logger
	// topics, when set, replaces the feed's topics (several simulated
	// changefeeds on one stack); feeds and frontier group them
	// (processor.Config.Feeds, Frontier).
	topics   []string
	feeds    []processor.Feed
	frontier processor.FrontierMode
	// decoderOpts are the member's decoder options.
	decoderOpts []schemas.DecoderOption
}

func startMember(t *testing.T, f *feed, wh warehouse, mc memberConfig) *member {
	t.Helper()
	log := mc.log
	if log == nil {
		log = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	var logs *observer.ObservedLogs
	if mc.observe {
		var core zapcore.Core
		core, logs = observer.New(zap.WarnLevel)
		log = zap.New(zapcore.NewTee(log.Core(), core))
	}
	if mc.registryURL == "" {
		mc.registryURL = f.stack.RegistryURL()
	}
	reg, err := schemas.NewRegistry(mc.registryURL)
	if err != nil {
		t.Fatal(err)
	}
	if mc.bufferDir == "" {
		mc.bufferDir = t.TempDir()
	}
	buf, err := buffer.Open(buffer.Options{Dir: mc.bufferDir, DiskBudget: mc.diskBudget, MemoryBudget: 64 << 20, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	w := wh.open(t, mc.sinkURL, sinks.Options{Changelog: mc.changelog})
	if mc.topics == nil {
		mc.topics = f.sim.Topics()
	}
	proc, err := processor.New(processor.Config{
		Brokers:          f.stack.Brokers(),
		Topics:           mc.topics,
		Feeds:            mc.feeds,
		Frontier:         mc.frontier,
		Group:            mc.group,
		Decoder:          schemas.NewDecoder(reg, mc.decoderOpts...),
		Buffer:           buf,
		Writer:           w,
		Changelog:        mc.changelog,
		StopAt:           mc.stopAt,
		KafkaOptions:     mc.kafkaOpts,
		OnError:          mc.onError,
		SessionTimeout:   2 * time.Second,
		RebalanceTimeout: 5 * time.Second,
		Logger:           log,
		// A retention gap stops the member unless the test allows it.
		AllowRetentionGap: mc.allowRetentionGap,
		HeadersJSONColumn: f.opts.HeadersJSONColumn,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{proc: proc, done: make(chan error, 1), stop: cancel, logs: logs}
	go func() {
		err := proc.Run(ctx)
		w.Close()
		buf.Close()
		m.done <- err
	}()
	return m
}

// stopped waits for the member to stop by itself, as on a fault it must
// not go past, and returns its run error; after timeout it stops the member
// and fails t, naming on, the fault it should have stopped on.
func (m *member) stopped(t *testing.T, timeout time.Duration, on string) error {
	t.Helper()
	select {
	case err := <-m.done:
		return err
	case <-time.After(timeout):
		m.stop()
		<-m.done
		t.Fatalf("the member did not stop on %s within %s; stats %+v", on, timeout, m.proc.Stats())
		return nil
	}
}

// wait waits for the member to stop by itself (StopAt) and fails the test on
// an error or a timeout.
func (m *member) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-m.done:
		if err != nil {
			t.Fatalf("member: %v", err)
		}
	case <-time.After(timeout):
		m.stop()
		<-m.done
		t.Fatalf("member did not reach stop-at within %s; stats %+v", timeout, m.proc.Stats())
	}
}

// tableModels returns the decoder's column model of the latest schema of
// each source table, for writing the oracle through the same writer.
func tableModels(t *testing.T, f *feed) map[string]*model.Table {
	t.Helper()
	ctx := context.Background()
	cl, err := sr.NewClient(sr.URLs(f.stack.RegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := schemas.NewRegistry(f.stack.RegistryURL())
	if err != nil {
		t.Fatal(err)
	}
	dec := schemas.NewDecoder(reg)
	out := make(map[string]*model.Table)
	for _, name := range f.sim.Oracle().Tables() {
		subject := model.SQLNameToKafkaName(f.opts.SchemaPrefix + name)
		key, err := cl.SchemaByVersion(ctx, subject+"-key", -1)
		if err != nil {
			t.Fatalf("key schema of %s: %v", name, err)
		}
		val, err := cl.SchemaByVersion(ctx, subject+"-value", -1)
		if err != nil {
			t.Fatalf("value schema of %s: %v", name, err)
		}
		tbl, err := dec.Table(ctx, key.ID, val.ID)
		if err != nil {
			t.Fatalf("column model of %s: %v", name, err)
		}
		out[name] = withHeadersColumn(tbl, f.opts.HeadersJSONColumn) // headers_test.go
	}
	return out
}

// writeOracle writes the source tables AS OF at into w, through the same
// writer as the pipeline, so that both sides store values alike and can be
// compared with SQL.
func writeOracle(t *testing.T, f *feed, w sinks.Writer, at hlc.Timestamp) map[string]*model.Table {
	t.Helper()
	ctx := context.Background()
	models := tableModels(t, f)
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, tbl := range models {
		rows := f.sim.Oracle().Rows(name, at)
		changes := make([]sinks.Change, 0, len(rows))
		for _, r := range rows {
			vals := make([]any, len(tbl.Columns))
			for i, c := range tbl.Columns {
				vals[i] = r.Values[c.Name]
			}
			changes = append(changes, sinks.Change{Op: sinks.OpUpsert, Updated: r.Updated, Values: vals})
		}
		if err := tx.Write(ctx, tbl, changes); err != nil {
			t.Fatalf("write oracle %s: %v", name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return models
}

// versionCounts is the number of versions per HLC of a table's history up
// to at: what a changelog must hold.
func versionCounts(f *feed, table string, at hlc.Timestamp) map[string]int {
	out := map[string]int{}
	for _, v := range f.sim.Oracle().Versions(table) {
		if !at.Less(v.Updated) {
			out[v.Updated.String()]++
		}
	}
	return out
}

// compareMirror checks that mirror table name in db (qualified by
// mirrorPrefix) holds exactly the oracle's rows (in oraclePrefix), column by
// column including _hw_updated.
func compareMirror(t *testing.T, db *sql.DB, mirrorPrefix, oraclePrefix string, tbl *model.Table) {
	t.Helper()
	_ = compareRows(t, db, tbl.Name, mirrorPrefix+sqlident.Quote(tbl.Name), oraclePrefix+sqlident.Quote(tbl.Name), tbl, false)
}

// compareRows checks that the relation mirror (a table, or a function
// call) holds exactly the rows of the relation oracle, column by column
// including _hw_updated; what names it in errors. Unless allowEmpty, an
// empty comparison fails too. It returns the number of rows of mirror.
func compareRows(t *testing.T, db *sql.DB, what, mirror, oracle string, tbl *model.Table, allowEmpty bool) int {
	t.Helper()
	cols := make([]string, 0, len(tbl.Columns)+1)
	for _, c := range tbl.Columns {
		cols = append(cols, sqlident.Quote(c.Name))
	}
	cols = append(cols, sqlident.Quote("_hw_updated"))
	list := strings.Join(cols, ", ")
	count := func(q string) int {
		var n int
		if err := db.QueryRow(q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	nm, no := count("SELECT count(*) FROM "+mirror), count("SELECT count(*) FROM "+oracle)
	if nm != no {
		t.Errorf("%s: %d rows in the warehouse, %d in the source", what, nm, no)
	}
	for _, dir := range [][2]string{{mirror, oracle}, {oracle, mirror}} {
		q := fmt.Sprintf("SELECT count(*) FROM (SELECT %s FROM %s EXCEPT SELECT %s FROM %s) d", list, dir[0], list, dir[1])
		if n := count(q); n != 0 {
			t.Errorf("%s: %d rows of %s are not in %s", what, n, dir[0], dir[1])
			showDiff(t, db, fmt.Sprintf("SELECT %s FROM %s EXCEPT SELECT %s FROM %s LIMIT 3", list, dir[0], list, dir[1]))
		}
	}
	if nm == 0 && !allowEmpty {
		t.Errorf("%s: the comparison is empty, the feed wrote nothing", what)
	}
	return nm
}

func showDiff(t *testing.T, db *sql.DB, q string) {
	rows, err := db.Query(q)
	if err != nil {
		t.Logf("diff query: %v", err)
		return
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		_ = rows.Scan(ptrs...)
		t.Logf("  %v", vals)
	}
}

// compareChangelog checks that <table>_changes holds every version of the
// table's history once: per HLC, as many versions as the oracle emitted.
func compareChangelog(t *testing.T, db *sql.DB, prefix string, f *feed, tbl *model.Table, at hlc.Timestamp, castText string) {
	t.Helper()
	want := versionCounts(f, tbl.Name, at)
	q := fmt.Sprintf("SELECT CAST(_hw_updated AS %s), count(*) FROM %s GROUP BY 1", castText, prefix+sqlident.Quote(tbl.Name+"_changes"))
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var h string
		var n int
		if err := rows.Scan(&h, &n); err != nil {
			t.Fatal(err)
		}
		got[h] = n
	}
	var diffs []string
	for h, n := range want {
		if got[h] != n {
			diffs = append(diffs, fmt.Sprintf("%s: %d versions, want %d", h, got[h], n))
		}
	}
	for h, n := range got {
		if _, ok := want[h]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: %d versions, want none", h, n))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s changelog differs from the oracle's history at %d timestamps, e.g. %v", tbl.Name, len(diffs), diffs[:min(5, len(diffs))])
	}
	if len(want) == 0 {
		t.Errorf("%s: the oracle has no versions; the test compares nothing", tbl.Name)
	}
}

// logFigures prints what a scenario measured.
func logFigures(t *testing.T, what string, start time.Time, s processor.Stats) {
	t.Logf("%s: %s, consumed %d, duplicates dropped %d, rows applied %d in %d windows",
		what, time.Since(start).Round(time.Millisecond), s.Consumed, s.Duplicates, s.RowsApplied, s.Windows)
}

// awaitFrontier waits (up to a minute) until m has applied through h: the
// scenarios let the member apply past the restart's checkpoint before the
// changefeed restart re-emits older versions. It fails the test, with the
// frontier and stats it saw, if the member stops or does not get there:
// going on would test the restart without the old duplicates it needs.
func (m *member) awaitFrontier(t *testing.T, h hlc.Timestamp) {
	t.Helper()
	deadline := time.After(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s := m.proc.Stats()
		if !s.Frontier.Less(h) {
			return
		}
		select {
		case err := <-m.done:
			m.done <- err // for wait
			t.Fatalf("member stopped (%v) at frontier %s before applying through %s; stats %+v", err, s.Frontier, h, s)
		case <-deadline:
			m.stop()
			<-m.done
			t.Fatalf("member's frontier is %s after 1m, want at least %s; stats %+v", s.Frontier, h, s)
		case <-tick.C:
		}
	}
}

// waitStopAt waits for a started `highwater run --stop-at` and fails the
// test unless it exits 0 within 3 minutes; stderr is its captured output.
func waitStopAt(t *testing.T, cmd *exec.Cmd, stderr *bytes.Buffer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("highwater run --stop-at: %v\n%s", err, stderr.String())
		}
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("highwater did not reach --stop-at within 3m\n%s", stderr.String())
	}
}
