package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/internal/testfeed"
)

func runArgs(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestRunRejectsBadConfigurationClearly(t *testing.T) {
	stack := testfeed.Stack(t, devstack.Options{})
	dir := t.TempDir()
	base := func(sink string, extra ...string) []string {
		return append([]string{"run", "--brokers", stack.Brokers()[0], "--registry", stack.RegistryURL(),
			"--topics", "orders", "--sink", sink, "--buffer-dir", filepath.Join(dir, "buf"), "--log-level", "error"}, extra...)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown sink scheme", base("mysql://x/y"), `unknown scheme "mysql" (supported: duckdb://, file://, postgres://, postgresql://, s3://)`},
		{"missing topics", base("duckdb://"+filepath.Join(dir, "a.duckdb"), "--startup-timeout", "1s"), "topics [orders] do not exist"},
		{"unreachable broker", []string{"run", "--brokers", "127.0.0.1:1", "--registry", "http://127.0.0.1:1", "--topics", "orders",
			"--sink", "duckdb://" + filepath.Join(dir, "b.duckdb"), "--buffer-dir", filepath.Join(dir, "buf2"), "--startup-timeout", "2s", "--log-level", "warn"},
			"cannot reach Kafka brokers [127.0.0.1:1] within 2s"},
		{"no brokers", []string{"run", "--topics", "x"}, "set --brokers"},
		{"bad stop-at", base("duckdb:///x", "--stop-at", "soon"), "stop-at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runArgs(t, tc.args...)
			if err == nil {
				t.Fatalf("run succeeded; want an error mentioning %q\n%s", tc.want, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to mention %q", err, tc.want)
			}
			if tc.name == "unreachable broker" {
				// Said once, and nothing created while waiting.
				if n := strings.Count(out, "waiting for the Kafka brokers"); n != 1 {
					t.Errorf("the wait for the brokers was logged %d times:\n%s", n, out)
				}
				for _, p := range []string{filepath.Join(dir, "b.duckdb"), filepath.Join(dir, "buf2")} {
					if _, err := os.Stat(p); err == nil {
						t.Errorf("%s was created although the brokers never answered", p)
					}
				}
			}
		})
	}
}

func TestUnknownCommandAndVersion(t *testing.T) {
	if _, err := runArgs(t, "frobnicate"); err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Fatalf("err = %v", err)
	}
	out, err := runArgs(t, "version")
	if err != nil || !strings.HasPrefix(out, "highwater ") {
		t.Fatalf("version: %q, %v", out, err)
	}
}

// TestDemoRunsTwiceAndMatchesTheSource runs the demo end to end, twice in
// the same directory: it must verify the warehouse against the simulator's
// oracle (demo fails otherwise) and start clean the second time.
func TestDemoRunsTwiceAndMatchesTheSource(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	for i := 0; i < 2; i++ {
		out, err := runArgs(t, "demo", "--dir", dir, "--txns", "1500", "--keys", "200")
		if err != nil {
			t.Fatalf("demo run %d: %v\n%s", i+1, err, out)
		}
		for _, want := range []string{"watermark (complete through) HLC", "features", "Query it further"} {
			if !strings.Contains(out, want) {
				t.Fatalf("demo output lacks %q:\n%s", want, out)
			}
		}
		if i == 0 {
			continue
		}
		// The commands the demo suggests work as printed (the test binary
		// is `go run`'s kind: a temporary build).
		var ran int
		for _, line := range strings.Split(out, "\n") {
			cmdline, ok := strings.CutPrefix(strings.TrimSpace(line), "go run ./cmd/highwater ")
			if !ok {
				continue
			}
			args := shellWords(t, cmdline)
			got, err := runArgs(t, args...)
			if err != nil {
				t.Fatalf("the demo's suggestion %q fails: %v\n%s", line, err, got)
			}
			// A header and rows (CSV: the output is not a terminal).
			want := map[string]string{"sql": "_hw_updated", "status": "highwater-demo"}[args[0]]
			if strings.Contains(args[len(args)-1], "highwater_watermark") {
				want = "resolved"
			}
			if !strings.Contains(got, want) || len(strings.Split(strings.TrimSpace(got), "\n")) < 3 {
				t.Errorf("the demo's suggestion %q printed too little:\n%s", line, got)
			}
			ran++
		}
		if ran < 4 {
			t.Errorf("the demo suggested %d highwater commands, want the sql and status ones:\n%s", ran, out)
		}
	}
}

// shellWords splits a command line as a POSIX shell would, for the quoting
// the demo prints: words separated by spaces, "..." and '...' quotes.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case '"', '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				t.Fatalf("unbalanced quote in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i, inWord = i+1+j, true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
