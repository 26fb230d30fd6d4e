package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// spelling is one way of giving settings to run: flags (where "@file" is
// the path of the test's --config file), env, or both. Exactly one of err
// (a part of the expected error) and check is set.
type spelling struct {
	name  string
	args  []string
	env   map[string]string
	err   string
	check func(t *testing.T, c Config)
}

// testSpellings loads each case on top of a minimal valid command line,
// with yaml as the --config file's contents: each setting has three
// spellings (flag, env, YAML field) and one precedence.
func testSpellings(t *testing.T, yaml string, cases []spelling) {
	t.Helper()
	base := []string{"--brokers", "b:9092", "--registry", "http://r:8081", "--topics", "t", "--sink", "duckdb:///tmp/x.duckdb"}
	file := filepath.Join(t.TempDir(), "hw.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{}, base...)
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "@file", file))
			}
			c, err := Load(args, env(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestMaxClockSkewSpellingsAndBounds(t *testing.T) {
	skew := func(want time.Duration) func(*testing.T, Config) {
		return func(t *testing.T, c Config) {
			if c.MaxClockSkew != want {
				t.Fatalf("max_clock_skew = %s, want %s", c.MaxClockSkew, want)
			}
		}
	}
	testSpellings(t, "max_clock_skew: 90s\n", []spelling{
		{name: "default", check: skew(5 * time.Minute)},
		{name: "flag", args: []string{"--max-clock-skew", "10m"}, check: skew(10 * time.Minute)},
		{name: "env", env: map[string]string{"HIGHWATER_MAX_CLOCK_SKEW": "30s"}, check: skew(30 * time.Second)},
		{name: "file", args: []string{"--config", "@file"}, check: skew(90 * time.Second)},
		{name: "flag over env", args: []string{"--max-clock-skew", "2m"}, env: map[string]string{"HIGHWATER_MAX_CLOCK_SKEW": "30s"}, check: skew(2 * time.Minute)},
		{name: "off, explicitly", args: []string{"--max-clock-skew", "876000h"}, check: skew(876000 * time.Hour)},
		// Zero and negative values never turn the check off silently.
		{name: "zero", args: []string{"--max-clock-skew", "0s"}, err: "max-clock-skew 0s: want a positive duration"},
		{name: "negative", env: map[string]string{"HIGHWATER_MAX_CLOCK_SKEW": "-1m"}, err: "max-clock-skew -1m0s: want a positive duration"},
	})
}

// TestMemoryLimitSpellings: --memory-limit, HIGHWATER_MEMORY_LIMIT and
// memory_limit all set it; empty means "the cgroup's" (-1), 0 none, and a
// value below the minimum or not a size is refused.
func TestMemoryLimitSpellings(t *testing.T) {
	limit := func(want int64) func(*testing.T, Config) {
		return func(t *testing.T, c Config) {
			if got, err := c.MemoryLimitBytes(); err != nil || got != want {
				t.Fatalf("MemoryLimitBytes() = %d, %v; want %d", got, err, want)
			}
		}
	}
	testSpellings(t, "memory_limit: 1GiB\n", []spelling{
		{name: "default: the cgroup's", check: limit(-1)},
		{name: "flag", args: []string{"--memory-limit", "512MiB"}, check: limit(512 << 20)},
		{name: "env", env: map[string]string{"HIGHWATER_MEMORY_LIMIT": "768MiB"}, check: limit(768 << 20)},
		{name: "file", args: []string{"--config", "@file"}, check: limit(1 << 30)},
		{name: "flag over file", args: []string{"--config", "@file", "--memory-limit", "0"}, check: limit(0)},
		{name: "too small", args: []string{"--memory-limit", "128MiB"}, err: `memory-limit "128MiB": below the minimum of 256MiB`},
		{name: "not a size", args: []string{"--memory-limit", "lots"}, err: `memory-limit: size "lots"`},
	})
}

func TestOnErrorAndDLQTopicSpellings(t *testing.T) {
	policy := func(onError, topic string) func(*testing.T, Config) {
		return func(t *testing.T, c Config) {
			if c.OnError != onError || c.DLQTopic != topic {
				t.Fatalf("on_error = %q, dlq_topic = %q; want %q, %q", c.OnError, c.DLQTopic, onError, topic)
			}
		}
	}
	testSpellings(t, "on_error: skip\ndlq_topic: from-file\n", []spelling{
		{name: "default", check: policy("fail", "")},
		{name: "flag", args: []string{"--on-error", "dlq", "--dlq-topic", "poison"}, check: policy("dlq", "poison")},
		{name: "env", env: map[string]string{"HIGHWATER_ON_ERROR": "skip", "HIGHWATER_DLQ_TOPIC": "p2"}, check: policy("skip", "p2")},
		{name: "file", args: []string{"--config", "@file"}, check: policy("skip", "from-file")},
		{name: "flag over env", args: []string{"--on-error", "fail"}, env: map[string]string{"HIGHWATER_ON_ERROR": "dlq"}, check: policy("fail", "")},
		{name: "unknown policy", args: []string{"--on-error", "ignore"}, err: `on-error "ignore": want fail, dlq or skip`},
	})
}
