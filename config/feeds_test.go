package config

import (
	"fmt"
	"strings"
	"testing"
)

// TestFeedsAndFrontierSpellings: feeds and frontier have the three
// spellings; the YAML file takes feeds as {name, topics} mappings or
// "NAME=TOPIC,TOPIC" strings; topics default to the feeds' topics; and the
// mistakes are refused with what to fix.
func TestFeedsAndFrontierSpellings(t *testing.T) {
	feeds := func(want, frontier string) func(*testing.T, Config) {
		return func(t *testing.T, c Config) {
			got, err := c.ResolvedFeeds()
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, f := range got {
				fmt.Fprintf(&b, "%s=%s;", f.Name, strings.Join(f.Topics, ","))
			}
			if b.String() != want || c.Frontier != frontier {
				t.Fatalf("feeds %s frontier %s; want %s %s", b.String(), c.Frontier, want, frontier)
			}
		}
	}
	testSpellings(t, "frontier: independent\nfeeds:\n  - name: orders\n    topics: [orders, order_items]\n  - users=users,roles\n", []spelling{
		{name: "default: one shared feed", check: feeds("default=t;", "shared")},
		{name: "flag", args: []string{"--topics", "a,b,c", "--feeds", "x=a,b", "--frontier", "independent"}, check: feeds("x=a,b;c=c;", "independent")},
		{name: "env", args: []string{"--topics", "a,b"}, env: map[string]string{"HIGHWATER_FEEDS": "x=a;y=b", "HIGHWATER_FRONTIER": "shared"}, check: feeds("x=a;y=b;", "shared")},
		{name: "file: topics from the feeds", args: []string{"--config", "@file", "--topics", ""}, check: feeds("orders=orders,order_items;users=users,roles;", "independent")},
		{name: "flag over file", args: []string{"--config", "@file", "--topics", "", "--frontier", "shared"}, check: feeds("orders=orders,order_items;users=users,roles;", "shared")},
		{name: "independent without feeds: a feed per topic", args: []string{"--topics", "a,b", "--frontier", "independent"}, check: feeds("a=a;b=b;", "independent")},
		{name: "unknown mode", args: []string{"--frontier", "split"}, err: `frontier "split": want shared or independent`},
		{name: "a topic in two feeds", args: []string{"--topics", "a", "--feeds", "x=a;y=a"}, err: `feeds: topic "a" is in feeds "x" and "y"`},
		{name: "a feed topic not consumed", args: []string{"--topics", "a", "--feeds", "x=a,z"}, err: `feeds: feed "x": topic "z" is not one of the topics`},
		{name: "no name", args: []string{"--feeds", "a,b"}, err: `feed "a,b": want NAME=TOPIC,TOPIC`},
	})
	testSpellings(t, "feeds:\n  - name: x\n    topic: [a]\n", []spelling{
		{name: "unknown key in a feed", args: []string{"--config", "@file"}, err: `feed: unknown key "topic"`},
	})
}
