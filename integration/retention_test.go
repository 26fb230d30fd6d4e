package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/simulator"
	"github.com/highwater-dev/highwater/sinks"
)

// TestRetentionGapStopsTheMember applies some windows, stops, lets Kafka's
// retention delete records past the warehouse checkpoints (DeleteRecords
// moves the log start), and restarts: the member must stop with an error
// naming topic, partition, checkpoint and log start instead of quietly
// resuming at the log start. A new group (no checkpoint) on the truncated
// topic must stop the same way. With --allow-retention-gap the member goes
// on from the log start and counts the gaps.
func TestRetentionGapStopsTheMember(t *testing.T) {
	ctx := context.Background()
	wh := duckWarehouse()
	f := newFeed(t, simulator.Options{Partitions: 2, Seed: 23}, feedTables()[0])
	w := simulator.Workload{Txns: 60, KeysPerTable: 20, RowsPerTxn: 2, ResolveEvery: 10}
	if err := f.sim.Run(ctx, w); err != nil {
		t.Fatal(err)
	}
	first, err := f.sim.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sinkURL := wh.url(t)
	m := startMember(t, f, wh, memberConfig{group: "g-gap", sinkURL: sinkURL, stopAt: first})
	m.wait(t, time.Minute)

	// Windows the stopped member never reads.
	if err := f.sim.Run(ctx, w); err != nil {
		t.Fatal(err)
	}
	final, err := f.sim.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cps := readCheckpoints(t, wh, sinkURL, "g-gap")
	if len(cps) != 2 {
		t.Fatalf("want checkpoints of 2 partitions after the first run, have %v", cps)
	}

	// Retention deletes half of what the member has not applied yet.
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.stack.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := f.sim.Topics()[0]
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	cut := kadm.Offsets{}
	logStart := map[int32]int64{}
	for bp, cp := range cps {
		end, _ := ends.Lookup(bp.Topic, bp.Partition)
		if end.Offset <= cp.NextOffset+1 {
			t.Fatalf("%s[%d]: nothing past the checkpoint (next %d, end %d) to delete", bp.Topic, bp.Partition, cp.NextOffset, end.Offset)
		}
		to := (cp.NextOffset + end.Offset) / 2
		cut.AddOffset(bp.Topic, bp.Partition, to, -1)
		logStart[bp.Partition] = to
	}
	deleted, err := adm.DeleteRecords(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	if err := deleted.Error(); err != nil {
		t.Fatal(err)
	}
	t.Logf("checkpoints %v; retention moved the log starts to %v", cps, logStart)

	t.Run("checkpoint below the log start", func(t *testing.T) {
		gap := runUntilGap(t, f, wh, memberConfig{group: "g-gap", sinkURL: sinkURL, stopAt: final})
		cp := cps[buffer.Partition{Topic: gap.Topic, Partition: gap.Partition}]
		if gap.Topic != topic || gap.Resume != cp.NextOffset || gap.Checkpoint.NextOffset != cp.NextOffset ||
			gap.Checkpoint.Resolved != cp.Resolved || gap.LogStart != logStart[gap.Partition] {
			t.Errorf("gap %+v, want %s[%d] checkpoint %+v and log start %d", gap, topic, gap.Partition, cp, logStart[gap.Partition])
		}
		msg := gap.Error()
		for _, want := range []string{
			fmt.Sprintf("%s[%d]", topic, gap.Partition), cp.Resolved.String(),
			fmt.Sprintf("next offset %d", cp.NextOffset), fmt.Sprintf("log starts at %d", gap.LogStart), "--allow-retention-gap",
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not say %q", msg, want)
			}
		}
		// Nothing moved: the member applied nothing past the gap.
		if after := readCheckpoints(t, wh, sinkURL, "g-gap"); fmt.Sprint(after) != fmt.Sprint(cps) {
			t.Errorf("checkpoints moved from %v to %v although the member stopped at the gap", cps, after)
		}
	})

	t.Run("no checkpoint and a log start above 0", func(t *testing.T) {
		gap := runUntilGap(t, f, wh, memberConfig{group: "g-fresh", sinkURL: wh.url(t), stopAt: final})
		if gap.Resume != 0 || !gap.Checkpoint.Resolved.IsZero() || gap.LogStart != logStart[gap.Partition] {
			t.Errorf("gap %+v, want resume 0 without a checkpoint and log start %d", gap, logStart[gap.Partition])
		}
		if !strings.Contains(gap.Error(), "no warehouse checkpoint") {
			t.Errorf("error %q does not say that the partition had no checkpoint", gap)
		}
	})

	t.Run("allowed", func(t *testing.T) {
		m := startMember(t, f, wh, memberConfig{group: "g-gap", sinkURL: sinkURL, stopAt: final, allowRetentionGap: true})
		m.wait(t, time.Minute)
		if got := m.proc.Stats().RetentionGaps; got != 2 {
			t.Errorf("RetentionGaps = %d, want 2 (both partitions)", got)
		}
		for bp, cp := range readCheckpoints(t, wh, sinkURL, "g-gap") {
			if cp.Resolved.Less(final) || cp.NextOffset <= logStart[bp.Partition] {
				t.Errorf("%s[%d]: checkpoint %+v, want through %s and past the log start %d", bp.Topic, bp.Partition, cp, final, logStart[bp.Partition])
			}
		}
	})
}

// runUntilGap runs a member that must stop with a retention gap.
func runUntilGap(t *testing.T, f *feed, wh warehouse, mc memberConfig) *processor.RetentionGapError {
	t.Helper()
	m := startMember(t, f, wh, mc)
	err := m.stopped(t, time.Minute, "the retention gap")
	var gap *processor.RetentionGapError
	if !errors.As(err, &gap) {
		t.Fatalf("member stopped with %v, want a retention gap error", err)
	}
	if got := m.proc.Stats().RetentionGaps; got < 1 {
		t.Errorf("RetentionGaps = %d after a gap", got)
	}
	t.Logf("member stopped: %v", err)
	return gap
}

// readCheckpoints returns the warehouse checkpoints of group.
func readCheckpoints(t *testing.T, wh warehouse, sinkURL, group string) map[buffer.Partition]sinks.Checkpoint {
	t.Helper()
	w := wh.open(t, sinkURL, sinks.Options{})
	defer w.Close()
	cps, err := w.Checkpoints(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[buffer.Partition]sinks.Checkpoint, len(cps))
	for _, cp := range cps {
		out[buffer.Partition{Topic: cp.Topic, Partition: cp.Partition}] = cp
	}
	return out
}
