package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOnErrorAndDLQTopicSpellings(t *testing.T) {
	base := []string{"--brokers", "b:9092", "--registry", "http://r:8081", "--topics", "t", "--sink", "duckdb:///tmp/x.duckdb"}
	file := filepath.Join(t.TempDir(), "hw.yaml")
	if err := os.WriteFile(file, []byte("on_error: skip\ndlq_topic: from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		args           []string
		env            map[string]string
		onError, topic string
		err            string
	}{
		{name: "default", onError: "fail"},
		{name: "flag", args: []string{"--on-error", "dlq", "--dlq-topic", "poison"}, onError: "dlq", topic: "poison"},
		{name: "env", env: map[string]string{"HIGHWATER_ON_ERROR": "skip", "HIGHWATER_DLQ_TOPIC": "p2"}, onError: "skip", topic: "p2"},
		{name: "file", args: []string{"--config", file}, onError: "skip", topic: "from-file"},
		{name: "flag over env", args: []string{"--on-error", "fail"}, env: map[string]string{"HIGHWATER_ON_ERROR": "dlq"}, onError: "fail"},
		{name: "unknown policy", args: []string{"--on-error", "ignore"}, err: `on-error "ignore": want fail, dlq or skip`},
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
			if c.OnError != tc.onError || c.DLQTopic != tc.topic {
				t.Fatalf("on_error = %q, dlq_topic = %q; want %q, %q", c.OnError, c.DLQTopic, tc.onError, tc.topic)
			}
		})
	}
}
