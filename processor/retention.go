package processor

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/sinks"
)

// RetentionGapError reports that Kafka's retention deleted records of a
// partition that the warehouse never applied: the offset the member needs
// next is below the partition's log start. The records in between are
// gone; so may be row versions in them (and, if the partition had no
// checkpoint, part of the changefeed's initial scan). franz-go would
// silently resume at the log start, so the member stops instead, unless
// Config.AllowRetentionGap accepts the loss. Test for it with errors.As.
type RetentionGapError struct {
	Topic     string
	Partition int32
	// Checkpoint is the partition's warehouse checkpoint; its Resolved is
	// zero when nothing of the partition was applied yet. Its NextOffset is
	// zero when the gap opened while the member consumed the partition.
	Checkpoint sinks.Checkpoint
	// Resume is the offset the member needed next: the checkpoint's
	// NextOffset, the offset after what the member's buffer already held
	// beyond it, or 0 without a checkpoint.
	Resume int64
	// LogStart is the oldest offset the partition still holds; offsets
	// Resume through LogStart-1 were deleted unread.
	LogStart int64
}

// Error names the partition, the checkpoint, the offsets lost and the way
// out.
func (e *RetentionGapError) Error() string {
	cp := "no warehouse checkpoint yet, nothing of the partition applied"
	if !e.Checkpoint.Resolved.IsZero() {
		cp = fmt.Sprintf("warehouse checkpoint resolved %s", e.Checkpoint.Resolved)
		if e.Checkpoint.NextOffset > 0 {
			cp += fmt.Sprintf(", next offset %d", e.Checkpoint.NextOffset)
		}
	}
	return fmt.Sprintf("retention gap on %s[%d]: the next offset to read is %d (%s) but the partition's log starts at %d: "+
		"Kafka's retention deleted offsets %d..%d before highwater applied them, so changes in them are missing from the warehouse; "+
		"see \"Retention gaps\" in docs/OPERATIONS.md: re-read the changes from CockroachDB (a new changefeed with a cursor or an initial scan), or accept the loss with --allow-retention-gap",
		e.Topic, e.Partition, e.Resume, cp, e.LogStart, e.Resume, e.LogStart-1)
}

// logStarts lists the log start offset of every partition in offsets,
// retrying while Kafka does not answer for all of them: a partition cannot
// be checked for a retention gap without it.
func (p *Processor) logStarts(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[buffer.Partition]int64, error) {
	topics := make([]string, 0, len(offsets))
	for t, ps := range offsets {
		if len(ps) > 0 {
			topics = append(topics, t)
		}
	}
	if len(topics) == 0 {
		return nil, nil
	}
	// A client of its own: the consumer's is busy in this rebalance, and
	// Run has not necessarily stored it yet when the first one runs.
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.cfg.Brokers...), kgo.WithLogger(kgoLogger{p.log})}, p.cfg.KafkaOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	backoff := 100 * time.Millisecond
	for {
		listed, err := adm.ListStartOffsets(ctx, topics...)
		starts := make(map[buffer.Partition]int64)
		if err == nil {
		check:
			for t, ps := range offsets {
				for n := range ps {
					o, ok := listed.Lookup(t, n)
					switch {
					case !ok:
						err = fmt.Errorf("no log start offset listed for %s[%d]", t, n)
					case o.Err != nil:
						err = fmt.Errorf("log start offset of %s[%d]: %w", t, n, o.Err)
					}
					if err != nil {
						break check
					}
					starts[buffer.Partition{Topic: t, Partition: n}] = o.Offset
				}
			}
		}
		if err == nil {
			return starts, nil
		}
		p.log.Warn("listing the partitions' log start offsets failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list log start offsets: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// retentionGap checks a partition being resumed at offset resume against
// its log start. Without a gap, or with a gap that Config.AllowRetentionGap
// accepts (logged at error level and counted), it returns the offset the
// partition's next record is expected at. Otherwise it counts the gap and
// returns it as a *RetentionGapError.
func (p *Processor) retentionGap(bp buffer.Partition, cp sinks.Checkpoint, resume, logStart int64) (int64, error) {
	if resume >= logStart {
		return resume, nil
	}
	gap := &RetentionGapError{Topic: bp.Topic, Partition: bp.Partition, Checkpoint: cp, Resume: resume, LogStart: logStart}
	return logStart, p.gapFound(gap)
}

// gapFound counts and logs a retention gap; it returns nil if
// Config.AllowRetentionGap accepts it, the gap otherwise.
func (p *Processor) gapFound(gap *RetentionGapError) error {
	p.stats.retentionGaps.Add(1)
	fields := []zap.Field{
		zap.String("topic", gap.Topic), zap.Int32("partition", gap.Partition),
		zap.Stringer("checkpoint_resolved", gap.Checkpoint.Resolved), zap.Int64("checkpoint_offset", gap.Checkpoint.NextOffset),
		zap.Int64("resume_offset", gap.Resume), zap.Int64("log_start_offset", gap.LogStart),
		zap.Int64("deleted_offsets", gap.LogStart-gap.Resume),
	}
	if !p.cfg.AllowRetentionGap {
		p.log.Error("retention gap: records were deleted before they were applied; stopping (see --allow-retention-gap)", append(fields, zap.Error(gap))...)
		return gap
	}
	p.log.Error("RETENTION GAP ACCEPTED (--allow-retention-gap): continuing from the log start; changes in the deleted offsets are missing from the warehouse until their rows are written again",
		append(fields, zap.Error(gap))...)
	return nil
}

// fetchGap catches a gap that opens while the member consumes a partition
// (retention deleted records the member had not read yet, or between the
// check on assignment and the first fetch): franz-go then resumes at the
// log start without telling. A fetch whose first record is past the offset
// expected next, while the log now starts past that offset too, skipped
// deleted records. It records the offset expected after this fetch.
func (p *Processor) fetchGap(st *partState, fp kgo.FetchTopicPartition) error {
	if len(fp.Records) == 0 {
		return nil
	}
	expect := st.expect
	st.expect = fp.Records[len(fp.Records)-1].Offset + 1
	if fp.Records[0].Offset <= expect || fp.LogStartOffset <= expect {
		return nil
	}
	// The checkpoint's offset is not kept in memory; its resolved is.
	gap := &RetentionGapError{
		Topic: st.p.Topic, Partition: st.p.Partition,
		Checkpoint: sinks.Checkpoint{Topic: st.p.Topic, Partition: st.p.Partition, Resolved: st.applied},
		Resume:     expect, LogStart: fp.LogStartOffset,
	}
	return p.gapFound(gap)
}
