package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

func newStatusCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	l := config.NewLoader("status", getenv)
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the warehouse checkpoints and watermark of a consumer group",
		Long: `Reads the warehouse checkpoints of a consumer group and prints, per topic and
partition, the applied resolved HLC, its wall time, its age and the next
offset, then the watermark ("complete through") per topic and for the feed,
each feed's watermark when feeds or --frontier independent group the
topics, and the partition holding the watermark back.
--sink, --group, --feeds and --frontier come from flags, HIGHWATER_* env or
the --config file, as for run; the other run settings are accepted and
ignored.`,
		Example: `  highwater status --sink duckdb:///var/lib/highwater/warehouse.duckdb --group highwater
  highwater status --config highwater.yaml --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return statusRun(cmd.Context(), l, jsonOut, stdout, stderr)
		},
	}
	cmd.Flags().SortFlags = false
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON instead of tables")
	cmd.Flags().AddFlagSet(l.FlagSet())
	return cmd
}

func statusRun(ctx context.Context, l *config.Loader, jsonOut bool, stdout, stderr io.Writer) error {
	cfg, err := l.Merge()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if cfg.Sink == "" {
		return errors.New("status: no warehouse: set --sink (env HIGHWATER_SINK)")
	}
	if cfg.Group == "" {
		return errors.New("status: empty --group")
	}
	// The writer logs routine work at info; status prints its own result.
	log, err := newLogger("warn", cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	w, err := openWriter(ctx, cfg.Sink, sinks.Options{}, log)
	if err != nil {
		return err
	}
	defer w.Close()
	cps, err := w.Checkpoints(ctx, cfg.Group)
	if err != nil {
		return fmt.Errorf("read checkpoints of group %q from %s: %w", cfg.Group, config.RedactURL(cfg.Sink), err)
	}
	if len(cps) == 0 {
		return noCheckpoints(ctx, w, cfg)
	}
	st := newStatus(cfg.Group, cps, time.Now())
	if err := st.addFeeds(cfg, cps, st.Now); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	if err := st.writeTables(stdout); err != nil {
		return err
	}
	return st.writeFeeds(stdout)
}

// status is what `highwater status` reports; its JSON form is --json's.
type status struct {
	Group      string            `json:"group"`
	Now        time.Time         `json:"now"`
	Partitions []partitionStatus `json:"partitions"`
	Topics     []watermark       `json:"topics"`
	// Feed is the min over every partition: the warehouse is complete
	// through it.
	Feed watermark `json:"feed"`
	// Frontier and Feeds are the feeds' watermarks when the configuration
	// groups the topics (status_feeds.go); HeldBy the partition holding
	// Feed back, when one checkpoint is below another.
	Frontier string          `json:"frontier,omitempty"`
	Feeds    []feedWatermark `json:"feeds,omitempty"`
	HeldBy   *heldBy         `json:"held_by,omitempty"`
}

type partitionStatus struct {
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	NextOffset int64  `json:"next_offset"`
	point
}

type watermark struct {
	Topic string `json:"topic,omitempty"`
	point
}

// point is a resolved HLC with its wall time and age; the zero HLC (a
// partition registered but never applied) has neither.
type point struct {
	Resolved   string     `json:"resolved"`
	WallTime   *time.Time `json:"wall_time"`
	AgeSeconds *float64   `json:"age_seconds"`
	hlc        hlc.Timestamp
}

func newPoint(h hlc.Timestamp, now time.Time) point {
	p := point{Resolved: h.String(), hlc: h}
	if !h.IsZero() {
		wall := h.Time().UTC()
		age := now.Sub(wall).Seconds()
		p.WallTime, p.AgeSeconds = &wall, &age
	}
	return p
}

func newStatus(group string, cps []sinks.Checkpoint, now time.Time) status {
	cps = append([]sinks.Checkpoint(nil), cps...)
	sort.Slice(cps, func(i, j int) bool {
		if cps[i].Topic != cps[j].Topic {
			return cps[i].Topic < cps[j].Topic
		}
		return cps[i].Partition < cps[j].Partition
	})
	st := status{Group: group, Now: now.UTC()}
	var feed hlc.Timestamp
	for i, cp := range cps {
		st.Partitions = append(st.Partitions, partitionStatus{Topic: cp.Topic, Partition: cp.Partition, NextOffset: cp.NextOffset, point: newPoint(cp.Resolved, now)})
		if i == 0 || cp.Resolved.Less(feed) {
			feed = cp.Resolved
		}
		if n := len(st.Topics); n == 0 || st.Topics[n-1].Topic != cp.Topic {
			st.Topics = append(st.Topics, watermark{Topic: cp.Topic, point: point{hlc: cp.Resolved}})
		} else if cp.Resolved.Less(st.Topics[n-1].hlc) {
			st.Topics[n-1].hlc = cp.Resolved
		}
	}
	for i := range st.Topics {
		st.Topics[i].point = newPoint(st.Topics[i].hlc, now)
	}
	st.Feed = watermark{point: newPoint(feed, now)}
	return st
}

func (p point) cells() (wall, age string) {
	if p.WallTime == nil {
		return "-", "-"
	}
	d := time.Duration(*p.AgeSeconds * float64(time.Second))
	if d > time.Second || d < -time.Second {
		d = d.Round(time.Second)
	} else {
		d = d.Round(time.Millisecond)
	}
	return p.WallTime.Format(time.RFC3339Nano), d.String()
}

func (st status) writeTables(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "group %s\n\n", st.Group)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tAPPLIED RESOLVED HLC\tWALL TIME (UTC)\tAGE\tNEXT OFFSET")
	for _, p := range st.Partitions {
		wall, age := p.cells()
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\n", p.Topic, p.Partition, p.Resolved, wall, age, p.NextOffset)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "WATERMARK\tTOPIC\tHLC\tWALL TIME (UTC)\tAGE")
	for _, t := range st.Topics {
		wall, age := t.cells()
		fmt.Fprintf(tw, "topic\t%s\t%s\t%s\t%s\n", t.Topic, t.Resolved, wall, age)
	}
	wall, age := st.Feed.cells()
	fmt.Fprintf(tw, "feed\t\t%s\t%s\t%s\n", st.Feed.Resolved, wall, age)
	return tw.Flush()
}

// groupLister is a writer that can list the consumer groups it holds
// checkpoints for.
type groupLister interface {
	Groups(ctx context.Context) ([]string, error)
}

// noCheckpoints explains an empty status: the groups that the warehouse
// does have, or that none has run against it yet.
func noCheckpoints(ctx context.Context, w sinks.Writer, cfg config.Config) error {
	where := config.RedactURL(cfg.Sink)
	if gl, ok := w.(groupLister); ok {
		groups, err := gl.Groups(ctx)
		if err == nil && len(groups) > 0 {
			quoted := make([]string, len(groups))
			for i, g := range groups {
				quoted[i] = strconv.Quote(g)
			}
			return fmt.Errorf("no checkpoints for group %q in %s; it has checkpoints for %s: use --group %s",
				cfg.Group, where, strings.Join(quoted, ", "), shellQuote(groups[0]))
		}
	}
	return fmt.Errorf("no checkpoints for group %q in %s: has `highwater run --group %s` run against this warehouse?",
		cfg.Group, where, shellQuote(cfg.Group))
}
