package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMemoryLimitSpellings: --memory-limit, HIGHWATER_MEMORY_LIMIT and
// memory_limit all set it; empty means "the cgroup's" (-1), 0 none, and a
// value below the minimum or not a size is refused.
func TestMemoryLimitSpellings(t *testing.T) {
	base := []string{"--brokers", "b:9092", "--registry", "http://r:8081", "--topics", "t", "--sink", "duckdb:///tmp/x.duckdb"}
	file := filepath.Join(t.TempDir(), "hw.yaml")
	if err := os.WriteFile(file, []byte("memory_limit: 1GiB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want int64
		err  string
	}{
		{name: "default: the cgroup's", want: -1},
		{name: "flag", args: []string{"--memory-limit", "512MiB"}, want: 512 << 20},
		{name: "env", env: map[string]string{"HIGHWATER_MEMORY_LIMIT": "768MiB"}, want: 768 << 20},
		{name: "file", args: []string{"--config", file}, want: 1 << 30},
		{name: "flag over file", args: []string{"--config", file, "--memory-limit", "0"}, want: 0},
		{name: "too small", args: []string{"--memory-limit", "128MiB"}, err: `memory-limit "128MiB": below the minimum of 256MiB`},
		{name: "not a size", args: []string{"--memory-limit", "lots"}, err: `memory-limit: size "lots"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(append(append([]string{}, base...), tc.args...), env(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.MemoryLimitBytes()
			if err != nil || got != tc.want {
				t.Fatalf("MemoryLimitBytes() = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
