package integration

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/files"
)

// fakeS3 is an in-process S3 server (gofakes3, in memory, path-style) with
// one bucket, reachable by subprocesses too.
type fakeS3 struct {
	endpoint string
	client   *s3.Client
}

const (
	s3Bucket = "lake"
	s3Key    = "test-key"
	s3Secret = "test-secret"
)

// startFakeS3 starts the server; onPut, if not nil, sees every PUT's path
// before the server handles it.
func startFakeS3(t *testing.T, onPut func(path string)) *fakeS3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(s3Bucket); err != nil {
		t.Fatal(err)
	}
	handler := gofakes3.New(backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if onPut != nil && r.Method == http.MethodPut {
			onPut(r.URL.Path)
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	// The writer takes its credentials from the standard AWS chain.
	for k, v := range s3Env(srv.URL) {
		t.Setenv(k, v)
	}
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s3Key, s3Secret, ""),
	})
	return &fakeS3{endpoint: srv.URL, client: client}
}

func s3Env(string) map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID": s3Key, "AWS_SECRET_ACCESS_KEY": s3Secret, "AWS_REGION": "us-east-1",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
	}
}

// download copies the objects under prefix into a local directory, for
// DuckDB's read_parquet.
func (f *fakeS3) download(t *testing.T, prefix string) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	p := s3.NewListObjectsV2Paginator(f.client, &s3.ListObjectsV2Input{Bucket: aws.String(s3Bucket), Prefix: aws.String(prefix + "/")})
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out, err := f.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s3Bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, err = buf.ReadFrom(out.Body)
			out.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			local := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(aws.ToString(o.Key), prefix+"/")))
			if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(local, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no objects under s3://%s/%s", s3Bucket, prefix)
	}
	return dir
}

func filesWarehouse(name string, url func(t *testing.T) string) warehouse {
	return warehouse{
		name: name,
		url:  url,
		open: func(t *testing.T, url string, opts sinks.Options) sinks.Writer {
			w, err := files.Open(context.Background(), url, opts, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			return w
		},
	}
}

// TestFilesSinkLatestPerKeyEqualsSource plays the standard hostile feed
// into the files sink (a local directory, and S3), then reads the change
// files back with DuckDB's read_parquet: every version of the source's
// history is there exactly once, and the newest version per key (deletes
// dropped) equals the source AS OF the final resolved timestamp.
func TestFilesSinkLatestPerKeyEqualsSource(t *testing.T) {
	for _, kind := range []string{"file", "s3"} {
		t.Run(kind, func(t *testing.T) {
			var wh warehouse
			var local func(t *testing.T, sinkURL string) string
			switch kind {
			case "file":
				wh = filesWarehouse(kind, func(t *testing.T) string { return "file://" + t.TempDir() + "?max_file_size=64KiB" })
				local = func(t *testing.T, sinkURL string) string {
					return strings.TrimPrefix(strings.Split(sinkURL, "?")[0], "file://")
				}
			case "s3":
				fs3 := startFakeS3(t, nil)
				wh = filesWarehouse(kind, func(t *testing.T) string { return "s3://" + s3Bucket + "/cdc?endpoint=" + fs3.endpoint })
				local = func(t *testing.T, _ string) string { return fs3.download(t, "cdc") }
			}
			f := newFeed(t, hostileOptions(13), feedTables()...)
			sinkURL := wh.url(t)
			start := time.Now()
			m := startMember(t, f, wh, memberConfig{group: "g-files", sinkURL: sinkURL, changelog: true})
			final := playScenario(t, f, 2, func(h hlc.Timestamp) { m.awaitFrontier(t, h) })
			m.proc.SetStopAt(final)
			m.wait(t, 2*time.Minute)
			logFigures(t, kind, start, m.proc.Stats())
			verifyFiles(t, f, wh, sinkURL, local(t, sinkURL), "g-files", final)
		})
	}
}

// TestFilesSinkKillNine runs `highwater run` into an S3 files sink and kills
// it with -9 mid-feed, restarting it each time: the windows cut short leave
// no files behind, and the files still hold every version once and the
// source's latest state.
//
// The first kill is aimed: the S3 server kills the process when it receives
// the second data file of a window, so that a restart must find the window
// cut short between its data files and its manifest. The aimed process has
// had the consumer group to itself for a while, so the kill lands in a
// window and not in a rebalance (kfake keeps a member that dies between
// JoinGroup and SyncGroup in the group, which would stall the next run).
// The later kills come at random moments.
func TestFilesSinkKillNine(t *testing.T) {
	var current atomic.Pointer[exec.Cmd]
	var armed atomic.Bool
	var dataPuts atomic.Int32
	aimedKills := 0
	var aimedMu sync.Mutex
	fs3 := startFakeS3(t, func(path string) {
		if !strings.HasSuffix(path, ".parquet") || !armed.Load() {
			return
		}
		if dataPuts.Add(1) == 2 {
			if cmd := current.Load(); cmd != nil && armed.CompareAndSwap(true, false) {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				aimedMu.Lock()
				aimedKills++
				aimedMu.Unlock()
			}
		}
	})
	wh := filesWarehouse("s3", nil)
	f := newFeed(t, hostileOptions(29), feedTables()...)
	sinkURL := "s3://" + s3Bucket + "/killed?endpoint=" + fs3.endpoint + "&max_file_size=8KiB"
	bufDir := t.TempDir()
	env := os.Environ()
	for k, v := range s3Env(fs3.endpoint) {
		env = append(env, k+"="+v)
	}
	args := func(extra ...string) []string {
		return append([]string{"run",
			"--brokers", strings.Join(f.stack.Brokers(), ","),
			"--registry", f.stack.RegistryURL(),
			"--topics", strings.Join(f.sim.Topics(), ","),
			"--group", "g-files-kill",
			"--sink", sinkURL,
			"--buffer-dir", bufDir,
			// No --changelog: run turns it on for file and s3 sinks, and
			// the check below that every version is in the files proves it.
			"--session-timeout", "2s",
			"--rebalance-timeout", "4s",
			"--log-format", "json",
			"--log-level", "warn",
		}, extra...)
	}
	kills, recovered := 0, 0
	startRun := func(extra ...string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(binary, args(extra...)...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		current.Store(cmd)
		return cmd, &stderr
	}
	waitKilled := func(cmd *exec.Cmd, stderr *bytes.Buffer) {
		err := cmd.Wait()
		current.Store(nil)
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("highwater exited before it was killed: %v\n%s", err, stderr.String())
		}
		kills++
		recovered += strings.Count(stderr.String(), "a crash cut short")
	}

	// The aimed kill: the member owns every partition and is idle before
	// the feed starts.
	cmd, stderr := startRun()
	waitGroupSettled(t, f, "g-files-kill", 1, time.Minute)
	armed.Store(true)
	finalCh := make(chan hlc.Timestamp, 1)
	playErr := make(chan error, 1)
	go func() {
		final, err := play(context.Background(), f.sim, 4, func(hlc.Timestamp) { time.Sleep(time.Second) })
		if err != nil {
			playErr <- err
			return
		}
		finalCh <- final
	}()
	exited := make(chan struct{})
	go func() {
		select {
		case <-exited:
		case <-time.After(time.Minute):
			// No window came: kill it anyway, the check below reports it.
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}()
	waitKilled(cmd, stderr)
	close(exited)
	armed.Store(false)

	// Random kills while the feed plays.
	rng := rand.New(rand.NewPCG(3, 5))
	var final hlc.Timestamp
	for final.IsZero() || kills < 4 {
		cmd, stderr := startRun()
		time.Sleep(time.Duration(400+rng.IntN(1200)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		waitKilled(cmd, stderr)
		if final.IsZero() {
			select {
			case final = <-finalCh:
			case err := <-playErr:
				t.Fatal(err)
			default:
			}
		}
	}
	start := time.Now()
	cmd, stderr = startRun("--stop-at", final.String(), "--log-level", "info")
	current.Store(nil)
	waitStopAt(t, cmd, stderr)
	recovered += strings.Count(stderr.String(), "a crash cut short")
	t.Logf("%d kill -9 while the feed played (%d between a window's data files), %d restarts found a window cut short and deleted its files; the last run finished in %s",
		kills, aimedKills, recovered, time.Since(start).Round(time.Millisecond))
	if aimedKills == 0 || recovered == 0 {
		t.Errorf("no kill landed between a window's data files and its manifest (%d aimed kills, %d recoveries): the scenario did not test recovery", aimedKills, recovered)
	}
	verifyFiles(t, f, wh, sinkURL, fs3.download(t, "killed"), "g-files-kill", final)
}

// verifyFiles compares the change files under dir (a local copy of the
// sink) with the oracle: per table, no (key, _hw_updated) twice, every
// version of the history once, and the newest version per key (deletes
// dropped) equal to the source AS OF final. The checkpoints must say final.
func verifyFiles(t *testing.T, f *feed, wh warehouse, sinkURL, dir, group string, final hlc.Timestamp) {
	t.Helper()
	ctx := context.Background()
	oracle := duckWarehouse()
	oracleURL := "duckdb://" + filepath.Join(t.TempDir(), "oracle.duckdb")
	ow := oracle.open(t, oracleURL, sinks.Options{})
	models := writeOracle(t, f, ow, final)
	ow.Close()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(fmt.Sprintf("ATTACH '%s' AS oracle (READ_ONLY)", strings.TrimPrefix(oracleURL, "duckdb://"))); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range models {
		src := fmt.Sprintf("read_parquet('%s/%s/*/*/*.parquet', hive_partitioning=false, union_by_name=true)", dir, model.SQLNameToKafkaName(tbl.Name))
		keys := make([]string, len(tbl.Key))
		for i, k := range tbl.Key {
			keys[i] = sqlident.Quote(tbl.Columns[k].Name)
		}
		key := strings.Join(keys, ", ")
		var rows, distinct int
		if err := db.QueryRow(fmt.Sprintf(`SELECT count(*), count(DISTINCT (%s, _hw_updated)) FROM %s`, key, src)).Scan(&rows, &distinct); err != nil {
			t.Fatal(err)
		}
		if rows != distinct {
			t.Errorf("%s: %d rows in the files but %d distinct (key, _hw_updated): a window was written twice", tbl.Name, rows, distinct)
		}
		// Every version once: the files as a changelog.
		if _, err := db.Exec(fmt.Sprintf(`CREATE VIEW %s AS SELECT * FROM %s`, sqlident.Quote(tbl.Name+"_changes"), src)); err != nil {
			t.Fatal(err)
		}
		compareChangelog(t, db, "", f, tbl, final, "VARCHAR")
		// The newest version per key, in the oracle's column types.
		cols := make([]string, 0, len(tbl.Columns)+1)
		for _, c := range tbl.Columns {
			cols = append(cols, sqlident.Quote(c.Name))
		}
		cols = append(cols, sqlident.Quote("_hw_updated"))
		q := fmt.Sprintf(`CREATE TABLE %s AS SELECT * FROM oracle.%s LIMIT 0;
INSERT INTO %s BY NAME SELECT %s FROM %s
QUALIFY row_number() OVER (PARTITION BY %s ORDER BY _hw_updated DESC) = 1 AND _hw_op <> 'delete'`,
			sqlident.Quote(tbl.Name), sqlident.Quote(tbl.Name), sqlident.Quote(tbl.Name), strings.Join(cols, ", "), src, key)
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		compareMirror(t, db, "", "oracle.", tbl)
	}
	w := wh.open(t, sinkURL, sinks.Options{})
	defer w.Close()
	// Every data file belongs to a complete window: the windows a kill cut
	// short left nothing behind.
	ms, err := w.(*files.Writer).Manifests(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range ms {
		for _, fe := range m.Files {
			listed[fe.Path] = true
		}
	}
	var onDisk []string
	for _, tbl := range models {
		found, err := filepath.Glob(filepath.Join(dir, model.SQLNameToKafkaName(tbl.Name), "*", "*", "*.parquet"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range found {
			rel, _ := filepath.Rel(dir, p)
			onDisk = append(onDisk, filepath.ToSlash(rel))
		}
	}
	for _, p := range onDisk {
		if !listed[p] {
			t.Errorf("data file %s is in no manifest: a half-written window is visible", p)
		}
	}
	if len(onDisk) != len(listed) {
		t.Errorf("%d data files, the manifests list %d", len(onDisk), len(listed))
	}
	t.Logf("%d complete windows, %d data files", len(ms), len(onDisk))
	cps, err := w.Checkpoints(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) == 0 {
		t.Fatal("no checkpoints")
	}
	for _, cp := range cps {
		if cp.Resolved != final {
			t.Errorf("checkpoint %s[%d] at %s, want %s", cp.Topic, cp.Partition, cp.Resolved, final)
		}
	}
}
