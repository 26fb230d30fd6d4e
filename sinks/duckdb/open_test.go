package duckdb

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/internal/bytesize"
	"github.com/highwater-dev/highwater/sinks"
)

// lockHolderEnv makes the test binary, re-executed by
// TestLockedByAnotherProcess, hold a warehouse open until stdin closes.
const lockHolderEnv = "HIGHWATER_TEST_DUCKDB_HOLD"

func TestLockedByAnotherProcess(t *testing.T) {
	ctx := context.Background()
	if path := os.Getenv(lockHolderEnv); path != "" {
		w, err := OpenPath(ctx, path, sinks.Options{}, nil)
		if err != nil {
			t.Fatalf("holder: %v", err)
		}
		os.Stdout.WriteString("holding\n")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
		_ = w.Close()
		return
	}
	path := filepath.Join(t.TempDir(), "locked.duckdb")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedByAnotherProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("holder did not start: %q %v", line, err)
	}

	_, err = OpenPath(ctx, path, sinks.Options{}, zaptest.NewLogger(t))
	if err == nil {
		t.Fatal("second process opened a locked warehouse")
	}
	for _, want := range []string{path, "is locked by another highwater or DuckDB process"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	t.Logf("lock error: %v", err)

	// Once the holder exits the file opens.
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	w, err := OpenPath(ctx, path, sinks.Options{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("open after holder exited: %v", err)
	}
	w.Close()
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Chdir(dir)
	cases := []struct {
		url     string
		file    string // created file, relative to dir
		setting string // current_setting('threads') when set
		wantErr string
	}{
		{url: "duckdb://" + filepath.Join(dir, "abs.duckdb"), file: "abs.duckdb"},
		{url: "duckdb://rel.duckdb", file: "rel.duckdb"},
		{url: "duckdb:plain.duckdb", file: "plain.duckdb"},
		{url: "DuckDB://upper.duckdb", file: "upper.duckdb"},
		{url: "duckdb://" + filepath.Join(dir, "with%20space.duckdb"), file: "with space.duckdb"},
		{url: "duckdb://" + filepath.Join(dir, "opts.duckdb") + "?threads=1", file: "opts.duckdb", setting: "1"},
		{url: "duckdb://:memory:"},
		{url: "postgres://localhost/db", wantErr: "scheme must be duckdb"},
		{url: "duckdb://", wantErr: "no database path"},
		{url: "duckdb://" + filepath.Join(dir, "missing", "dir.duckdb"), wantErr: "open duckdb"},
		{url: "duckdb://" + filepath.Join(dir, "bad.duckdb") + "?no_such_option=1", wantErr: "no_such_option"},
		// Options may hold tokens: an error names the path, never the query.
		{url: "duckdb://?motherduck_token=s3cr3t-token", wantErr: "no database path"},
		{url: "duckdb://" + filepath.Join(dir, "tok.duckdb") + "?motherduck_token=s3cr3t-token&x=%zz", wantErr: "options"},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			w, err := Open(ctx, c.url, sinks.Options{}, zaptest.NewLogger(t))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Fatalf("error %q shows a secret from the URL's query", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if c.setting != "" {
				var got string
				if err := w.DB().QueryRowContext(ctx, `SELECT CAST(current_setting('threads') AS VARCHAR)`).Scan(&got); err != nil || got != c.setting {
					t.Fatalf("threads = %q (%v), want %q", got, err, c.setting)
				}
			}
			if c.file != "" {
				if _, err := os.Stat(filepath.Join(dir, c.file)); err != nil {
					t.Fatalf("database file: %v", err)
				}
			}
		})
	}
}

// TestEarlyChunkBytesFollowsMemoryLimit: a group applied early is written
// in transactions of a quarter of DuckDB's memory_limit.
func TestEarlyChunkBytesFollowsMemoryLimit(t *testing.T) {
	w, err := OpenPath(context.Background(), filepath.Join(t.TempDir(), "wh.duckdb")+"?memory_limit=100MiB", sinks.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got, want := w.EarlyChunkBytes(), int64(25<<20); got != want {
		t.Errorf("EarlyChunkBytes with memory_limit=100MiB = %d, want %d", got, want)
	}
	for s, want := range map[string]int64{"102.0 MiB": 102 << 20, "1.5 GiB": 3 << 29, "512 bytes": 512, "2.0 GB": 2e9} {
		if got, err := bytesize.Parse(s); err != nil || got != want {
			t.Errorf("bytesize.Parse(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	if _, err := bytesize.Parse("lots"); err == nil {
		t.Error("bytesize.Parse(\"lots\") did not fail")
	}
}
