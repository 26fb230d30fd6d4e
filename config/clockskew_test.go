package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMaxClockSkewSpellingsAndBounds(t *testing.T) {
	base := []string{"--brokers", "b:9092", "--registry", "http://r:8081", "--topics", "t", "--sink", "duckdb:///tmp/x.duckdb"}
	file := filepath.Join(t.TempDir(), "hw.yaml")
	if err := os.WriteFile(file, []byte("max_clock_skew: 90s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want time.Duration
		err  string
	}{
		{name: "default", want: 5 * time.Minute},
		{name: "flag", args: []string{"--max-clock-skew", "10m"}, want: 10 * time.Minute},
		{name: "env", env: map[string]string{"HIGHWATER_MAX_CLOCK_SKEW": "30s"}, want: 30 * time.Second},
		{name: "file", args: []string{"--config", file}, want: 90 * time.Second},
		{name: "flag over env", args: []string{"--max-clock-skew", "2m"}, env: map[string]string{"HIGHWATER_MAX_CLOCK_SKEW": "30s"}, want: 2 * time.Minute},
		{name: "off, explicitly", args: []string{"--max-clock-skew", "876000h"}, want: 876000 * time.Hour},
		// Zero and negative values never turn the check off silently.
		{name: "zero", args: []string{"--max-clock-skew", "0s"}, err: "max-clock-skew 0s: want a positive duration"},
		{name: "negative", env: map[string]string{"HIGHWATER_MAX_CLOCK_SKEW": "-1m"}, err: "max-clock-skew -1m0s: want a positive duration"},
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
			if c.MaxClockSkew != tc.want {
				t.Fatalf("max_clock_skew = %s, want %s", c.MaxClockSkew, tc.want)
			}
		})
	}
}
