package simulator

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fnv32a is the hash CockroachDB's Kafka sinks partition by.
// It is hash/fnv's New32a, inlined to avoid an allocation per record.
func fnv32a(b []byte) uint32 {
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	for _, c := range b {
		h ^= uint32(c)
		h *= prime32
	}
	return h
}

// Partition returns the partition CockroachDB's Kafka sinks choose for a row
// with the Confluent-framed key among n partitions: sarama's hash
// partitioner, p = int32(fnv1a32(key)) % n, negated when negative (§5).
func Partition(key []byte, n int) int32 {
	return int32(kgo.SaramaCompatHasher(fnv32a)(key, n))
}

// NewPartitioner returns the kgo partitioner of CockroachDB's v2 Kafka sink
// (sink_kafka_v2.go): records with a key are hashed with
// kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a)); records with a
// nil key (resolved messages) go to the partition set in Record.Partition.
func NewPartitioner() kgo.Partitioner {
	return &changefeedPartitioner{inner: kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a))}
}

type changefeedPartitioner struct{ inner kgo.Partitioner }

func (p *changefeedPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return &changefeedTopicPartitioner{inner: p.inner.ForTopic(topic)}
}

type changefeedTopicPartitioner struct{ inner kgo.TopicPartitioner }

// RequiresConsistency is true: a key must always land on its hash partition.
func (p *changefeedTopicPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (p *changefeedTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Key == nil {
		return int(r.Partition)
	}
	return p.inner.Partition(r, n)
}

// newProducer builds the franz-go client: idempotent (franz-go's default)
// with acks from all in-sync replicas, CockroachDB's partitioner, no
// compression, and a large buffer so that Produce rarely blocks.
func newProducer(brokers []string, extra ...kgo.Opt) (*kgo.Client, error) {
	if len(brokers) == 0 {
		return nil, fmt.Errorf("no Kafka brokers given")
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(NewPartitioner()),
		kgo.MaxBufferedRecords(1 << 18),
		kgo.ProducerBatchMaxBytes(4 << 20),
		kgo.ProducerLinger(0),
		kgo.RecordRetries(5),
		// CockroachDB's default kafka_sink_config Compression is NONE (§7.1).
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	}, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("create Kafka client: %w", err)
	}
	return cl, nil
}

// ensureTopics creates missing topics with partitions partitions each
// (broker-default replication) and returns every topic's partition count.
func ensureTopics(ctx context.Context, cl *kgo.Client, partitions int, topics []string) (map[string]int, error) {
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	out := make(map[string]int, len(topics))
	var missing []string
	for _, t := range topics {
		d, ok := details[t]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			missing = append(missing, t)
			continue
		}
		out[t] = len(d.Partitions)
	}
	if len(missing) == 0 {
		return out, nil
	}
	resp, err := adm.CreateTopics(ctx, int32(partitions), -1, nil, missing...)
	if err != nil {
		return nil, fmt.Errorf("create topics %v: %w", missing, err)
	}
	var raced []string
	for _, r := range resp.Sorted() {
		switch {
		case errors.Is(r.Err, kerr.TopicAlreadyExists):
			raced = append(raced, r.Topic) // created by someone else meanwhile
		case r.Err != nil:
			return nil, fmt.Errorf("create topic %s: %w %s", r.Topic, r.Err, r.ErrMessage)
		case r.NumPartitions > 0:
			out[r.Topic] = int(r.NumPartitions)
		default: // brokers before Kafka 2.4 do not echo the count
			out[r.Topic] = partitions
		}
	}
	if len(raced) > 0 {
		// Metadata answers may lag; the client's cache is bypassed by a
		// fresh request per call, so ask once more.
		if details, err = adm.ListTopics(ctx, raced...); err != nil {
			return nil, fmt.Errorf("list topics: %w", err)
		}
		for _, t := range raced {
			d, ok := details[t]
			if !ok || d.Err != nil || len(d.Partitions) == 0 {
				return nil, fmt.Errorf("topic %s exists but has no partitions in metadata", t)
			}
			out[t] = len(d.Partitions)
		}
	}
	return out, nil
}
