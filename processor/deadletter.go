package processor

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// A poison record is one that can never be decoded or applied, however
// often it is retried: bytes that are not a Confluent frame, a schema id the
// registry does not know (404), a schema highwater cannot use, a truncated
// or malformed body, a value schema that does not belong to the key's
// table. It shows at ingest (Extract) or when its window is applied
// (DecodeRow). What happens to it is Config.OnError.
//
// Everything else is transient and is retried, never set aside: a registry
// that is unreachable or answers 5xx (the Registry retries those itself), a
// canceled context, a warehouse or broker outage.

// ErrorPolicy is what the processor does with a poison record.
type ErrorPolicy string

const (
	// OnErrorFail stops the feed with an error that names the record's
	// topic, partition, offset and schema id and the cause. The warehouse
	// stays as of the last applied window. The default.
	OnErrorFail ErrorPolicy = "fail"
	// OnErrorDLQ sets the record aside and goes on: its raw key and value,
	// with highwater.* headers saying where and why, go to the dead-letter
	// topic (acks=all, idempotent) before the record counts as handled,
	// and a row goes to the warehouse's sinks.DeadLetterTable in the same
	// transaction as the checkpoint that moves its partition past it.
	OnErrorDLQ ErrorPolicy = "dlq"
	// OnErrorSkip counts the record, logs its location at warn and goes on;
	// it is written nowhere.
	OnErrorSkip ErrorPolicy = "skip"
)

// ErrorPolicies returns every policy, in the order flag help and the docs
// list them. It is the one list of the words --on-error takes: config
// validates and documents the flag with it.
func ErrorPolicies() []ErrorPolicy {
	return []ErrorPolicy{OnErrorFail, OnErrorDLQ, OnErrorSkip}
}

// Summary is p's meaning in a few words, for flag help.
func (p ErrorPolicy) Summary() string {
	switch p {
	case OnErrorFail:
		return "stop, naming the record"
	case OnErrorDLQ:
		return "dead-letter topic + " + sinks.DeadLetterTable + " table, go on"
	case OnErrorSkip:
		return "count, log, go on"
	}
	return ""
}

// ParseErrorPolicy parses one of ErrorPolicies ("fail", "dlq" or "skip");
// "" is OnErrorFail.
func ParseErrorPolicy(s string) (ErrorPolicy, error) {
	if s == "" {
		return OnErrorFail, nil
	}
	all := ErrorPolicies()
	if slices.Contains(all, ErrorPolicy(s)) {
		return ErrorPolicy(s), nil
	}
	return "", fmt.Errorf("on-error %q: want %s", s, oneOf(all, func(p ErrorPolicy) string { return string(p) }))
}

// ErrorPolicyHelp is the help text of --on-error: every policy with its
// Summary.
func ErrorPolicyHelp() string {
	return "poison records: " + oneOf(ErrorPolicies(), func(p ErrorPolicy) string {
		return fmt.Sprintf("%s (%s)", p, p.Summary())
	})
}

// oneOf lists the items as "a, b or c".
func oneOf[T any](items []T, word func(T) string) string {
	var b strings.Builder
	for i, it := range items {
		switch {
		case i == 0:
		case i == len(items)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(word(it))
	}
	return b.String()
}

// Stages of a poison record, as recorded in dead letters, headers and the
// highwater_dead_letters_total metric.
const (
	// StageIngest is a record that failed when it was read from Kafka:
	// framing, schema lookup, envelope.
	StageIngest = "ingest"
	// StageApply is a record that failed when its window was applied:
	// typed decode, key and value schemas that do not belong together.
	StageApply = "apply"
)

// Headers of a record in the dead-letter topic.
const (
	HeaderError     = "highwater.error"
	HeaderStage     = "highwater.stage"
	HeaderTopic     = "highwater.topic"
	HeaderPartition = "highwater.partition"
	HeaderOffset    = "highwater.offset"
	HeaderSchemaID  = "highwater.schema_id"
	HeaderGroup     = "highwater.group"
)

// isPoison reports whether err condemns the record rather than the
// surroundings: a *schemas.DecodeError that is neither a canceled context
// nor a registry failure (schemas.ErrSchemaUnavailable). An id the registry answers 404
// for is poison: registry ids are never reused, so retrying cannot help.
func isPoison(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, schemas.ErrUnknownSchema) {
		return true
	}
	if errors.Is(err, schemas.ErrSchemaUnavailable) {
		return false
	}
	var de *schemas.DecodeError
	return errors.As(err, &de)
}

// schemaIDOf returns the schema id a decode error names, or -1.
func schemaIDOf(err error) int32 {
	var de *schemas.DecodeError
	if errors.As(err, &de) {
		return int32(de.SchemaID)
	}
	return -1
}

// hexPrefix renders at most the first 16 bytes of b: enough to recognise
// a frame, never a whole payload in a log line.
func hexPrefix(b []byte) string {
	if len(b) > 16 {
		return hex.EncodeToString(b[:16]) + "..."
	}
	return hex.EncodeToString(b)
}

func poisonFields(dl sinks.DeadLetter, cause error) []zap.Field {
	return []zap.Field{
		zap.String("topic", dl.Topic), zap.Int32("partition", dl.Partition), zap.Int64("offset", dl.Offset),
		zap.Int32("schema_id", dl.SchemaID), zap.String("stage", dl.Stage),
		zap.String("key_prefix", hexPrefix(dl.Key)), zap.String("value_prefix", hexPrefix(dl.Value)),
		zap.Int("value_bytes", len(dl.Value)), zap.Error(cause),
	}
}

// poisonIngest handles a record Extract rejected with err. It returns nil
// when the policy let the record go (skipped, or dead-lettered into batch
// and the dead-letter topic), else the error that stops the feed.
func (p *Processor) poisonIngest(ctx context.Context, batch *buffer.Batch, bp buffer.Partition, r *kgo.Record, err error) error {
	if !isPoison(err) || p.cfg.OnError == OnErrorFail {
		return err
	}
	dl := sinks.DeadLetter{
		Group: p.cfg.Group, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		Key: r.Key, Value: r.Value, SchemaID: schemaIDOf(err), Stage: StageIngest, Error: err.Error(),
	}
	if p.cfg.OnError == OnErrorSkip {
		p.stats.skipped.Add(1)
		p.log.Warn("skipping a poison record (--on-error=skip)", poisonFields(dl, err)...)
		return nil
	}
	if err := p.dlq.produce(ctx, dl); err != nil {
		return err
	}
	batch.AddDeadLetter(bp, buffer.DeadLetter{
		Offset: dl.Offset, Timestamp: dl.Timestamp, Key: dl.Key, Value: dl.Value,
		SchemaID: dl.SchemaID, Stage: dl.Stage, Error: dl.Error,
	})
	p.stats.deadIngest.Add(1)
	p.log.Warn("poison record dead-lettered (--on-error=dlq)", append(poisonFields(dl, err), zap.String("dlq_topic", p.dlq.topic))...)
	return nil
}

// windowPoison collects what a window set aside at apply time; the counts
// become the processor's figures only once the window commits.
type windowPoison struct {
	dead    []sinks.DeadLetter
	skipped int64
}

// poisonApply handles a buffered event that failed to decode or check with
// err (located). It returns nil when the policy let the event go (recorded
// in wp), else the error that fails the window.
func (p *Processor) poisonApply(ctx context.Context, wp *windowPoison, bp buffer.Partition, ev buffer.Event, err error) error {
	if !isPoison(err) || p.cfg.OnError == OnErrorFail || wp == nil {
		return err
	}
	dl := sinks.DeadLetter{
		Group: p.cfg.Group, Topic: bp.Topic, Partition: bp.Partition, Offset: ev.Offset,
		// The event's slices are only valid during the scan callback.
		Key: append([]byte{}, ev.Key...), Value: append([]byte{}, ev.Value...),
		SchemaID: schemaIDOf(err), Stage: StageApply, Error: err.Error(),
	}
	if p.cfg.OnError == OnErrorSkip {
		wp.skipped++
		p.log.Warn("skipping a poison record (--on-error=skip)", poisonFields(dl, err)...)
		return nil
	}
	// The buffer holds the raw Kafka key and value, so the dead letter is
	// the record as it was in Kafka (without its Kafka timestamp, which the
	// buffer does not keep).
	if err := p.dlq.produce(ctx, dl); err != nil {
		return err
	}
	wp.dead = append(wp.dead, dl)
	p.log.Warn("poison record dead-lettered (--on-error=dlq)", append(poisonFields(dl, err), zap.String("dlq_topic", p.dlq.topic))...)
	return nil
}

// deadLetterProducer writes dead letters to the dead-letter topic.
type deadLetterProducer struct {
	cl    *kgo.Client
	topic string
	log   *zap.Logger
}

// newDeadLetterProducer connects an idempotent, acks=all producer and
// creates the dead-letter topic if it is missing (with the brokers'
// default partitions and replication).
func newDeadLetterProducer(ctx context.Context, cfg *Config, log *zap.Logger) (*deadLetterProducer, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Idempotence is franz-go's default with acks=all; said here
		// because a dead letter must not be written twice by a retry.
		kgo.ProducerLinger(0),
		kgo.WithLogger(kgoLogger{log}),
	}
	cl, err := kgo.NewClient(append(opts, cfg.KafkaOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("dead-letter producer: %w", err)
	}
	d := &deadLetterProducer{cl: cl, topic: cfg.DeadLetterTopic, log: log}
	if err := d.ensureTopic(ctx, cfg.StartupTimeout); err != nil {
		cl.Close()
		return nil, err
	}
	return d, nil
}

func (d *deadLetterProducer) ensureTopic(ctx context.Context, timeout time.Duration) error {
	adm := kadm.NewClient(d.cl)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	details, err := adm.ListTopics(tctx, d.topic)
	if err == nil {
		if td, ok := details[d.topic]; ok && td.Err == nil && len(td.Partitions) > 0 {
			return nil
		}
	}
	_, err = adm.CreateTopic(tctx, -1, -1, nil, d.topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("dead-letter topic %q does not exist and cannot be created (create it, or set --dlq-topic): %w", d.topic, err)
	}
	if err == nil {
		d.log.Info("created the dead-letter topic", zap.String("topic", d.topic))
	}
	return nil
}

func (d *deadLetterProducer) close() {
	if d != nil {
		d.cl.Close()
	}
}

// produceTimeout bounds one produce attempt, so that a stuck broker shows
// in the log as retries instead of a silent stall.
const produceTimeout = 30 * time.Second

// produce writes dl to the dead-letter topic and waits for the brokers'
// acknowledgement, retrying while the failure may heal; only a rejection
// that cannot (record too large, not authorised) or the end of ctx stops
// it. A retry after a timeout may write the record twice: the topic is
// at-least-once, the highwater.* headers identify the record.
func (d *deadLetterProducer) produce(ctx context.Context, dl sinks.DeadLetter) error {
	if d == nil {
		return errors.New("dead-letter producer not started")
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		rec := &kgo.Record{
			Topic: d.topic, Key: dl.Key, Value: dl.Value, Timestamp: dl.Timestamp,
			Headers: []kgo.RecordHeader{
				{Key: HeaderError, Value: []byte(dl.Error)},
				{Key: HeaderStage, Value: []byte(dl.Stage)},
				{Key: HeaderTopic, Value: []byte(dl.Topic)},
				{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(dl.Partition), 10)},
				{Key: HeaderOffset, Value: strconv.AppendInt(nil, dl.Offset, 10)},
				{Key: HeaderSchemaID, Value: strconv.AppendInt(nil, int64(dl.SchemaID), 10)},
				{Key: HeaderGroup, Value: []byte(dl.Group)},
			},
		}
		pctx, cancel := context.WithTimeout(ctx, produceTimeout)
		err := d.cl.ProduceSync(pctx, rec).FirstErr()
		cancel()
		if err == nil {
			return nil
		}
		where := fmt.Sprintf("%s[%d]@%d", dl.Topic, dl.Partition, dl.Offset)
		if ctx.Err() != nil {
			return fmt.Errorf("dead-letter %s to topic %q: %w", where, d.topic, ctx.Err())
		}
		var ke *kerr.Error
		if errors.As(err, &ke) && !ke.Retriable {
			return fmt.Errorf("dead-letter %s to topic %q: %w", where, d.topic, err)
		}
		d.log.Warn("producing a dead letter failed; retrying (the record is not handled until it is written)",
			zap.String("record", where), zap.String("dlq_topic", d.topic), zap.Int("attempt", attempt),
			zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("dead-letter %s to topic %q: %w", where, d.topic, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// bufferedDeadLetters returns the dead letters that ingest buffered for the
// checkpoints' partitions below each checkpoint's resume offset: they
// belong to the window that writes those checkpoints.
func (p *Processor) bufferedDeadLetters(cps []sinks.Checkpoint) ([]sinks.DeadLetter, error) {
	var out []sinks.DeadLetter
	for _, cp := range cps {
		bp := buffer.Partition{Topic: cp.Topic, Partition: cp.Partition}
		err := p.cfg.Buffer.DeadLetters(bp, cp.NextOffset, func(dl buffer.DeadLetter) error {
			out = append(out, sinks.DeadLetter{
				Group: p.cfg.Group, Topic: bp.Topic, Partition: bp.Partition, Offset: dl.Offset, Timestamp: dl.Timestamp,
				Key: dl.Key, Value: dl.Value, SchemaID: dl.SchemaID, Stage: dl.Stage, Error: dl.Error,
			})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// trimDeadLetters drops the buffered dead letters a committed window wrote.
func (p *Processor) trimDeadLetters(cps []sinks.Checkpoint) {
	for _, cp := range cps {
		if err := p.cfg.Buffer.TrimDeadLetters(buffer.Partition{Topic: cp.Topic, Partition: cp.Partition}, cp.NextOffset); err != nil {
			// Harmless: the warehouse ignores a dead letter it holds.
			p.log.Warn("trimming written dead letters from the buffer failed", zap.Error(err))
		}
	}
}
