package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/duckdb"
)

// writeCheckpoints commits cps to a new DuckDB warehouse, as a window
// would, and returns its sink URL.
func writeCheckpoints(t *testing.T, cps []sinks.Checkpoint) string {
	t.Helper()
	ctx := context.Background()
	sink := "duckdb://" + filepath.Join(t.TempDir(), "wh.duckdb")
	w, err := duckdb.Open(ctx, sink, sinks.Options{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Checkpoint(ctx, cps); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return sink
}

func TestStatusPrintsCheckpointsAndWatermark(t *testing.T) {
	wall := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	h := func(d time.Duration, logical int32) hlc.Timestamp {
		return hlc.Timestamp{WallTime: wall + int64(d), Logical: logical}
	}
	sink := writeCheckpoints(t, []sinks.Checkpoint{
		{Group: "g", Topic: "orders", Partition: 1, Resolved: h(0, 0), NextOffset: 5400},
		{Group: "g", Topic: "orders", Partition: 0, Resolved: h(10*time.Second, 2), NextOffset: 5512},
		{Group: "g", Topic: "nodes", Partition: 0, Resolved: h(10*time.Second, 2), NextOffset: 77},
		// Another group's progress is not ours.
		{Group: "other", Topic: "orders", Partition: 0, Resolved: h(-time.Hour, 0), NextOffset: 1},
	})
	statusOf := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := execute(context.Background(), append([]string{"status"}, args...), func(string) string { return "" }, &out, &errOut)
		return out.String() + errOut.String(), err
	}

	out, err := statusOf("--sink", sink, "--group", "g")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^nodes\s+0\s+` + regexp.QuoteMeta(h(10*time.Second, 2).String()) + `\s+2024-05-01T12:00:10Z\s+\S+\s+77$`),
		regexp.MustCompile(`(?m)^orders\s+0\s+` + regexp.QuoteMeta(h(10*time.Second, 2).String()) + `\s+2024-05-01T12:00:10Z\s+\S+\s+5512$`),
		regexp.MustCompile(`(?m)^orders\s+1\s+` + regexp.QuoteMeta(h(0, 0).String()) + `\s+2024-05-01T12:00:00Z\s+\S+\s+5400$`),
		regexp.MustCompile(`(?m)^topic\s+orders\s+` + regexp.QuoteMeta(h(0, 0).String())),
		regexp.MustCompile(`(?m)^topic\s+nodes\s+` + regexp.QuoteMeta(h(10*time.Second, 2).String())),
		regexp.MustCompile(`(?m)^feed\s+` + regexp.QuoteMeta(h(0, 0).String()) + `\s+2024-05-01T12:00:00Z`),
	} {
		if !want.MatchString(out) {
			t.Errorf("status output lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "-1h") || strings.Contains(out, "11:00:00") {
		t.Errorf("status shows another group's checkpoint:\n%s", out)
	}

	minAge := time.Since(time.Unix(0, wall)).Seconds()
	out, err = statusOf("--sink", sink, "--group", "g", "--json")
	if err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	var st struct {
		Group      string
		Partitions []struct {
			Topic      string
			Partition  int32
			Resolved   string
			WallTime   time.Time `json:"wall_time"`
			AgeSeconds float64   `json:"age_seconds"`
			NextOffset int64     `json:"next_offset"`
		}
		Topics []struct{ Topic, Resolved string }
		Feed   struct {
			Resolved   string
			AgeSeconds float64 `json:"age_seconds"`
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	if st.Group != "g" || len(st.Partitions) != 3 || len(st.Topics) != 2 {
		t.Fatalf("status --json = %+v", st)
	}
	p := st.Partitions[2]
	if p.Topic != "orders" || p.Partition != 1 || p.Resolved != h(0, 0).String() || p.NextOffset != 5400 ||
		!p.WallTime.Equal(time.Unix(0, wall)) {
		t.Errorf("orders[1] = %+v", p)
	}
	// The checkpoint is from 2024: its age is at least the time since.
	if p.AgeSeconds < minAge || st.Feed.AgeSeconds < minAge {
		t.Errorf("ages %v, %v; want >= %v", p.AgeSeconds, st.Feed.AgeSeconds, minAge)
	}
	if st.Feed.Resolved != h(0, 0).String() || st.Topics[0].Topic != "nodes" || st.Topics[1].Resolved != h(0, 0).String() {
		t.Errorf("watermarks = %+v, feed %+v", st.Topics, st.Feed)
	}
}

func TestStatusRegisteredPartitionHoldsTheWatermark(t *testing.T) {
	sink := writeCheckpoints(t, []sinks.Checkpoint{
		{Group: "g", Topic: "orders", Partition: 0, Resolved: hlc.Timestamp{WallTime: time.Now().UnixNano()}, NextOffset: 10},
		{Group: "g", Topic: "orders", Partition: 1}, // registered, never applied
	})
	var out bytes.Buffer
	if err := execute(context.Background(), []string{"status", "--sink", sink, "--group", "g"}, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^orders\s+1\s+\S+\s+-\s+-\s+0$`).MatchString(out.String()) ||
		!regexp.MustCompile(`(?m)^feed\s+\S+\s+-\s+-$`).MatchString(out.String()) {
		t.Errorf("a never-applied partition should show - and hold the feed watermark:\n%s", out.String())
	}
}

func TestStatusErrors(t *testing.T) {
	sink := writeCheckpoints(t, nil)
	others := writeCheckpoints(t, []sinks.Checkpoint{
		{Group: "highwater-demo", Topic: "features", Partition: 0}, {Group: "other", Topic: "nodes", Partition: 0}})
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no sink", nil, nil, "no warehouse: set --sink"},
		{"unknown group", []string{"--sink", sink, "--group", "nobody"}, nil, `no checkpoints for group "nobody"`},
		{"group from env", []string{"--sink", sink}, map[string]string{"HIGHWATER_GROUP": "envgroup"}, `no checkpoints for group "envgroup"`},
		// The demo's warehouse has group highwater-demo: status without
		// --group (default highwater) names the groups there are.
		{"default group, other groups stored", []string{"--sink", others}, nil,
			`no checkpoints for group "highwater" in ` + others + `; it has checkpoints for "highwater-demo", "other": use --group highwater-demo`},
		{"bad flag", []string{"--nope"}, nil, "unknown flag: --nope"},
		{"password in a bad sink stays hidden", []string{"--sink", "postgres://hw:pw-in-url-991@127.0.0.1:1/wh?reconnect_timeout=0s"}, nil, "REDACTED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := execute(context.Background(), append([]string{"status"}, tc.args...), func(k string) string { return tc.env[k] }, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error()+out.String(), "pw-in-url-991") {
				t.Fatalf("the sink password leaked: %v\n%s", err, out.String())
			}
		})
	}
}
