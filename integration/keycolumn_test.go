package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/simulator"
)

// TestKeyColumnRecordIsRefusedNamingTheOption puts among the rows of an
// orders feed a row message as CockroachDB writes it WITH key_column =
// 'status' (and unordered): the value as usual, the key a record of the
// nullable column status, registered under the table's key subject. Such a
// feed has no resolved timestamps, so the row would never be applied; with
// --on-error=fail highwater must stop at it at once with an error that names
// its topic[partition]@offset and key_column.
func TestKeyColumnRecordIsRefusedNamingTheOption(t *testing.T) {
	wh := duckWarehouse()
	f := newFeed(t, simulator.Options{Partitions: 2, Seed: 79}, feedTables()[0])
	ctx := context.Background()
	w := simulator.Workload{Txns: 20, KeysPerTable: 10, RowsPerTxn: 2, ResolveEvery: 10}
	if err := f.sim.Run(ctx, w); err != nil {
		t.Fatal(err)
	}
	topic := f.sim.Topics()[0]
	value := firstRowValue(t, f, topic)
	keySchema := `{"type":"record","name":"orders","fields":[{"type":["null","string"],"name":"status","default":null,"__crdb__":"status STRING NULL"}]}`
	keyID, _, err := f.stack.Registry.RegisterSchema("orders-key", sr.Schema{Schema: keySchema, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	// Confluent frame, then the union's string branch and "new".
	key := []byte{0, byte(keyID >> 24), byte(keyID >> 16), byte(keyID >> 8), byte(keyID), 0x02, 0x06, 'n', 'e', 'w'}
	prod, err := kgo.NewClient(kgo.SeedBrokers(f.stack.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	res := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 1, Key: key, Value: value})
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	where := fmt.Sprintf("%s[1]@%d", topic, res[0].Record.Offset)
	if err := f.sim.Run(ctx, w); err != nil {
		t.Fatal(err)
	}
	m := startPolicyMember(t, f, wh, "g-keycolumn", wh.url(t), processor.OnErrorFail)
	var runErr error
	select {
	case runErr = <-m.done:
	case <-time.After(time.Minute):
		m.stop()
		t.Fatal("the member did not stop on the key_column record")
	}
	if runErr == nil || !strings.Contains(runErr.Error(), where) || !strings.Contains(runErr.Error(), "WITH key_column") {
		t.Fatalf("error = %v, want it to name %s and key_column", runErr, where)
	}
	t.Logf("stopped: %v", runErr)
}

// firstRowValue returns the value of the first row message (a non-null key)
// of topic.
func firstRowValue(t *testing.T, f *feed, topic string) []byte {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.stack.Brokers()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no row message in %s: %v", topic, err)
		}
		var value []byte
		fs.EachRecord(func(r *kgo.Record) {
			if value == nil && len(r.Key) > 0 {
				value = r.Value
			}
		})
		if value != nil {
			return value
		}
	}
}
