package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPrecedenceFlagsOverEnvOverFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hw.yaml")
	if err := os.WriteFile(file, []byte(`
brokers: [file:9092]
registry: http://file:8081
topics: [a, b]
group: from-file
sink: duckdb:///tmp/x.duckdb
changelog: true
session_timeout: 7s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"--config", file, "--group", "from-flag"}, env(map[string]string{
		"HIGHWATER_GROUP":    "from-env",
		"HIGHWATER_BROKERS":  "env1:9092, env2:9092",
		"HIGHWATER_STOP_AT":  "1659643584586630201.0000000000",
		"HIGHWATER_REGISTRY": "",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Group != "from-flag" {
		t.Errorf("group = %q, want the flag's", c.Group)
	}
	if !reflect.DeepEqual(c.Brokers, []string{"env1:9092", "env2:9092"}) {
		t.Errorf("brokers = %q, want env's", c.Brokers)
	}
	if !reflect.DeepEqual(c.Topics, []string{"a", "b"}) || !c.Changelog || c.SessionTimeout != 7*time.Second {
		t.Errorf("file values lost: %+v", c)
	}
	if c.RebalanceTimeout != 30*time.Second || c.BufferDir != "highwater-buffer" {
		t.Errorf("defaults lost: %+v", c)
	}
	if h, _ := c.StopAtHLC(); h.WallTime != 1659643584586630201 {
		t.Errorf("stop-at = %v", h)
	}
}

func TestConfigErrorsSayWhatToFix(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "set --brokers"},
		{[]string{"--brokers", "b:1", "--registry", "ftp://x", "--topics", "t", "--sink", "duckdb:///x"}, "want an http"},
		{[]string{"--brokers", "b:1", "--registry", "http://r", "--sink", "duckdb:///x"}, "no topics"},
		{[]string{"--brokers", "b:1", "--registry", "http://r", "--topics", "t"}, "no warehouse"},
		{[]string{"--brokers", "b:1", "--registry", "http://r", "--topics", "t", "--sink", "duckdb:///x", "--stop-at", "yesterday"}, "stop-at"},
		{[]string{"--brokers", "b:1", "--registry", "http://r", "--topics", "t", "--sink", "duckdb:///x", "--buffer-budget", "lots"}, "size \"lots\""},
		{[]string{"--nope"}, "unknown flag: --nope"},
	} {
		_, err := Load(tc.args, env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%q) error = %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}

func TestUnknownYAMLFieldIsAnError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hw.yaml")
	os.WriteFile(file, []byte("brokerz: [x]\n"), 0o644)
	if _, err := Load([]string{"--config", file}, env(nil)); err == nil || !strings.Contains(err.Error(), "brokerz") {
		t.Fatalf("err = %v, want unknown field named", err)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "0": 0, "1024": 1024, "512MiB": 512 << 20, "8GiB": 8 << 30, "1.5 GB": 1_500_000_000} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	c := Defaults()
	c.Sink = "postgres://hw:s3cret@db:5432/wh?sslmode=disable"
	c.Registry = "https://user:hunter2@sr:8081"
	c.RegistryPassword = "pw-xyz"
	out := c.Redacted()
	for _, secret := range []string{"s3cret", "hunter2", "pw-xyz"} {
		if strings.Contains(out, secret) {
			t.Errorf("redacted config contains %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "db:5432") {
		t.Errorf("redaction removed too much:\n%s", out)
	}
	for _, raw := range []string{"postgres://db/wh?password=qwerty", "postgres://u:qwerty@[::1", "s3://b/p?secret_key=qwerty",
		"s3://b/p?region=x&session_token=qwerty", "postgres://db/wh?sslpassword=qwerty", "https://r?access_credential=qwerty"} {
		if got := RedactURL(raw); strings.Contains(got, "qwerty") {
			t.Errorf("RedactURL(%q) = %q still holds the secret", raw, got)
		}
	}
}
