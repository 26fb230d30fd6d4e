package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/simulator"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestProtobufRecordIsRefusedNamingFormatAvro puts a record as a changefeed
// WITH format = protobuf (v25.4) or format = json writes it, without the
// Confluent header, among the rows of an Avro feed. With --on-error=fail
// highwater must stop at that record with an error that names its
// topic[partition]@offset and says to create the changefeed WITH
// format = avro.
func TestProtobufRecordIsRefusedNamingFormatAvro(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		// changefeedpb.Message: field 1, a length-delimited submessage.
		{"protobuf", "\x0a\x0c\x0a\x03foo\x12\x05\x0a\x03bar"},
		{"json", `{"after": {"id": 1}, "updated": "1.0000000000"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wh := duckWarehouse()
			f := newFeed(t, simulator.Options{Partitions: 2, Seed: 73}, feedTables()[0])
			ctx := context.Background()
			w := simulator.Workload{Txns: 20, KeysPerTable: 10, RowsPerTxn: 2, ResolveEvery: 10}
			if err := f.sim.Run(ctx, w); err != nil {
				t.Fatal(err)
			}
			prod, err := kgo.NewClient(kgo.SeedBrokers(f.stack.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			topic := f.sim.Topics()[0]
			res := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 1, Key: []byte("\x0a\x02\x08\x01"), Value: []byte(tc.value)})
			if err := res.FirstErr(); err != nil {
				t.Fatal(err)
			}
			where := fmt.Sprintf("%s[1]@%d", topic, res[0].Record.Offset)
			if err := f.sim.Run(ctx, w); err != nil {
				t.Fatal(err)
			}
			m := startPolicyMember(t, f, wh, "g-format", wh.url(t), processor.OnErrorFail)
			var runErr error
			select {
			case runErr = <-m.done:
			case <-time.After(time.Minute):
				m.stop()
				t.Fatal("the member did not stop on the non-Avro record")
			}
			if runErr == nil || !strings.Contains(runErr.Error(), where) || !strings.Contains(runErr.Error(), "WITH format = avro") {
				t.Fatalf("error = %v, want it to name %s and say WITH format = avro", runErr, where)
			}
			t.Logf("stopped: %v", runErr)
		})
	}
}
