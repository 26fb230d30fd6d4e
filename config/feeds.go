package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/highwater-dev/highwater/processor"
)

// Feed is a named group of topics, typically the topics of one CockroachDB
// changefeed. In YAML it is {name: orders, topics: [orders, order_items]}
// or the string "orders=orders,order_items".
type Feed struct {
	Name   string   `yaml:"name"`
	Topics []string `yaml:"topics"`
}

// FeedList is the feeds setting. In a flag or the environment it is
// "NAME=TOPIC,TOPIC;NAME=TOPIC": feeds separated by semicolons, each a name,
// '=' and its comma-separated topics; each use replaces the list, as for
// the other lists.
type FeedList []Feed

// String is the flag form of the list.
func (l *FeedList) String() string {
	parts := make([]string, len(*l))
	for i, f := range *l {
		parts[i] = f.Name + "=" + strings.Join(f.Topics, ",")
	}
	return strings.Join(parts, ";")
}

// Set parses the flag form.
func (l *FeedList) Set(s string) error {
	var out FeedList
	for _, part := range strings.Split(s, ";") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		f, err := parseFeed(part)
		if err != nil {
			return err
		}
		out = append(out, f)
	}
	*l = out
	return nil
}

// Type names the flag's value in the help.
func (l *FeedList) Type() string { return "feeds" }

func parseFeed(s string) (Feed, error) {
	name, topics, ok := strings.Cut(s, "=")
	if !ok {
		return Feed{}, fmt.Errorf("feed %q: want NAME=TOPIC,TOPIC", s)
	}
	return Feed{Name: strings.TrimSpace(name), Topics: splitList(topics)}, nil
}

// UnmarshalYAML takes each feed as a mapping {name, topics} or as a string
// "NAME=TOPIC,TOPIC".
func (l *FeedList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: feeds: want a list of {name, topics}", n.Line)
	}
	var out FeedList
	for _, item := range n.Content {
		switch item.Kind {
		case yaml.ScalarNode:
			f, err := parseFeed(item.Value)
			if err != nil {
				return fmt.Errorf("line %d: %w", item.Line, err)
			}
			out = append(out, f)
		case yaml.MappingNode:
			var f Feed
			if err := item.Decode(&f); err != nil {
				return err
			}
			// item.Decode does not refuse unknown keys as the file's
			// decoder does.
			for i := 0; i+1 < len(item.Content); i += 2 {
				if k := item.Content[i].Value; k != "name" && k != "topics" {
					return fmt.Errorf("line %d: feed: unknown key %q (want name and topics)", item.Content[i].Line, k)
				}
			}
			out = append(out, f)
		default:
			return fmt.Errorf("line %d: feeds: want a list of {name, topics}", item.Line)
		}
	}
	*l = out
	return nil
}

// Processor returns the feeds as the processor takes them.
func (l FeedList) Processor() []processor.Feed {
	out := make([]processor.Feed, len(l))
	for i, f := range l {
		out[i] = processor.Feed{Name: f.Name, Topics: f.Topics}
	}
	return out
}

// fillTopics makes the feeds' topics the topics when no topics are given.
func (c *Config) fillTopics() {
	if len(c.Topics) > 0 {
		return
	}
	for _, f := range c.Feeds {
		c.Topics = append(c.Topics, f.Topics...)
	}
}

// FrontierMode parses Frontier.
func (c *Config) FrontierMode() (processor.FrontierMode, error) {
	return processor.ParseFrontierMode(c.Frontier)
}

// ResolvedFeeds returns the feeds the topics fall into
// (processor.ResolveFeeds): with no feeds set, one feed "default" of every
// topic for a shared frontier, a feed per topic for independent ones.
func (c *Config) ResolvedFeeds() ([]processor.Feed, error) {
	mode, err := c.FrontierMode()
	if err != nil {
		return nil, err
	}
	return processor.ResolveFeeds(c.Topics, c.Feeds.Processor(), mode)
}

// validateFeeds checks frontier and feeds.
func (c *Config) validateFeeds() []error {
	if _, err := c.FrontierMode(); err != nil {
		return []error{err}
	}
	if len(c.Topics) == 0 {
		return nil // reported as "no topics"
	}
	if _, err := c.ResolvedFeeds(); err != nil {
		var errs []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		} else {
			errs = []error{err}
		}
		for i, e := range errs {
			errs[i] = fmt.Errorf("feeds: %w", e)
		}
		return errs
	}
	return nil
}
