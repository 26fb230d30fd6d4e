package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/internal/devstack"
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
	stack, err := devstack.Start(devstack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close()
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
			"--sink", "duckdb://" + filepath.Join(dir, "b.duckdb"), "--buffer-dir", filepath.Join(dir, "buf2"), "--startup-timeout", "2s", "--log-level", "error"},
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
		for _, want := range []string{"complete through HLC", "features", "Query it further"} {
			if !strings.Contains(out, want) {
				t.Fatalf("demo output lacks %q:\n%s", want, out)
			}
		}
	}
}
