package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// TestStatusShowsEachFeedAndTheHolder: with feeds configured, status
// prints each feed's watermark (the min over its topics' partitions) and
// names the feed and partition holding the group's watermark back.
func TestStatusShowsEachFeedAndTheHolder(t *testing.T) {
	wall := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	h := func(d time.Duration) hlc.Timestamp { return hlc.Timestamp{WallTime: wall + int64(d)} }
	sink := writeCheckpoints(t, []sinks.Checkpoint{
		{Group: "g", Topic: "orders", Partition: 0, Resolved: h(50 * time.Second), NextOffset: 10},
		{Group: "g", Topic: "order_items", Partition: 0, Resolved: h(40 * time.Second), NextOffset: 20},
		{Group: "g", Topic: "users", Partition: 0, Resolved: h(30 * time.Second), NextOffset: 30},
		{Group: "g", Topic: "users", Partition: 1, Resolved: h(0), NextOffset: 31},
	})
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		args = append([]string{"status", "--sink", sink, "--group", "g", "--feeds", "sales=orders,order_items;people=users", "--frontier", "independent"}, args...)
		if err := execute(context.Background(), args, func(string) string { return "" }, &out, &out); err != nil {
			t.Fatalf("status: %v\n%s", err, out.String())
		}
		return out.String()
	}
	out := run()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^feeds \(independent frontier\)$`),
		regexp.MustCompile(`(?m)^sales\s+orders,order_items\s+` + regexp.QuoteMeta(h(40*time.Second).String()) + `\s+2024-05-01T12:00:40Z`),
		regexp.MustCompile(`(?m)^people\s+users\s+` + regexp.QuoteMeta(h(0).String()) + `\s+2024-05-01T12:00:00Z`),
		regexp.MustCompile(`(?m)^watermark held back by feed people, users\[1\] \(the lowest checkpoint\)$`),
		// The group-wide row keeps its meaning: the min over everything.
		regexp.MustCompile(`(?m)^feed\s+` + regexp.QuoteMeta(h(0).String())),
	} {
		if !want.MatchString(out) {
			t.Errorf("status output lacks %s:\n%s", want, out)
		}
	}
	var st struct {
		Frontier string
		Feeds    []struct {
			Feed     string
			Topics   []string
			Resolved string
		}
		HeldBy struct {
			Feed, Topic string
			Partition   int32
		} `json:"held_by"`
	}
	if err := json.Unmarshal([]byte(run("--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Frontier != "independent" || len(st.Feeds) != 2 || st.Feeds[0].Feed != "sales" || st.Feeds[0].Resolved != h(40*time.Second).String() ||
		st.Feeds[1].Feed != "people" || st.HeldBy.Feed != "people" || st.HeldBy.Topic != "users" || st.HeldBy.Partition != 1 {
		t.Errorf("status --json = %+v", st)
	}
}
