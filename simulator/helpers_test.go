package simulator

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// env is an in-process Kafka cluster and schema registry.
type env struct {
	kafka *kfake.Cluster
	reg   *srfake.Registry
}

func newEnv(t testing.TB) *env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	r := srfake.New()
	t.Cleanup(func() { c.Close(); r.Close() })
	return &env{kafka: c, reg: r}
}

func (e *env) opts(partitions int) Options {
	return Options{Brokers: e.kafka.ListenAddrs(), RegistryURL: e.reg.URL(), Partitions: partitions, Seed: 1}
}

func newSim(t testing.TB, opts Options, tables ...TableDef) *Sim {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, opts, tables...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func fooTable() TableDef {
	return TableDef{Name: "foo", Columns: []ColumnDef{{Name: "a", Type: "INT"}, {Name: "b", Type: "STRING"}}, PrimaryKey: []string{"a"}}
}

// consumeAll reads every record of topics up to the current end offsets.
func consumeAll(t testing.TB, brokers []string, topics ...string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[int32]int64{}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if want[o.Topic] == nil {
			want[o.Topic] = map[int32]int64{}
		}
		want[o.Topic][o.Partition] = o.Offset
		total += o.Offset
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), total, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < want[r.Topic][r.Partition] {
				out = append(out, r)
			}
		})
	}
	return out
}

// decoder decodes Confluent-framed Avro with goavro and writer schemas
// fetched from the registry by id, as CockroachDB's cdctest does.
type decoder struct {
	url    string
	mu     sync.Mutex
	codecs map[uint32]*goavro.Codec
	texts  map[uint32]string
}

func newDecoder(url string) *decoder {
	return &decoder{url: url, codecs: map[uint32]*goavro.Codec{}, texts: map[uint32]string{}}
}

func (d *decoder) codec(t testing.TB, id uint32) *goavro.Codec {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.codecs[id]; ok {
		return c
	}
	resp, err := http.Get(fmt.Sprintf("%s/schemas/ids/%d", d.url, id))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Schema string `json:"schema"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("schema %d: %v", id, err)
	}
	c, err := goavro.NewCodec(body.Schema)
	if err != nil {
		t.Fatalf("schema %d: %v", id, err)
	}
	d.codecs[id] = c
	d.texts[id] = body.Schema
	return c
}

func (d *decoder) decode(t testing.TB, b []byte) (uint32, map[string]any) {
	t.Helper()
	if len(b) < 5 || b[0] != 0 {
		t.Fatalf("not Confluent framed: % x", b)
	}
	id := binary.BigEndian.Uint32(b[1:5])
	native, rest, err := d.codec(t, id).NativeFromBinary(b[5:])
	if err != nil {
		t.Fatalf("decode with schema %d: %v", id, err)
	}
	if len(rest) != 0 {
		t.Fatalf("%d trailing bytes", len(rest))
	}
	return id, native.(map[string]any)
}
