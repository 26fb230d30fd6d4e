package schemas

import (
	"context"
	"math/big"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

// A realistic orders row: 8 columns, about 150 bytes framed, as CockroachDB
// writes it WITH updated, resolved.
const (
	benchKeySchema   = `{"type":"record","name":"orders","fields":[{"type":["null","long"],"name":"id","default":null,"__crdb__":"id INT8 NOT NULL"}]}`
	benchValueSchema = `{"type":"record","name":"orders_envelope","fields":[{"type":["null",{"type":"record","name":"orders","fields":[` +
		`{"type":["null","long"],"name":"id","default":null,"__crdb__":"id INT8 NOT NULL"},` +
		`{"type":["null","long"],"name":"customer_id","default":null,"__crdb__":"customer_id INT8 NOT NULL"},` +
		`{"type":["null","string"],"name":"status","default":null,"__crdb__":"status public.order_status NOT NULL"},` +
		`{"type":["null",{"type":"bytes","logicalType":"decimal","precision":12,"scale":2},"string"],"name":"amount","default":null,"__crdb__":"amount DECIMAL(12,2) NOT NULL"},` +
		`{"type":["null","string"],"name":"note","default":null,"__crdb__":"note STRING NULL"},` +
		`{"type":["null",{"type":"long","logicalType":"timestamp-micros"}],"name":"created_at","default":null,"__crdb__":"created_at TIMESTAMPTZ NOT NULL DEFAULT now()"},` +
		`{"type":["null","boolean"],"name":"paid","default":null,"__crdb__":"paid BOOL NOT NULL"},` +
		`{"type":["null","string"],"name":"region","default":null,"__crdb__":"region STRING NOT NULL"}` +
		`]}],"name":"after","default":null},{"type":["null","string"],"name":"updated","default":null}]}`
)

func benchMessage(tb testing.TB) (key, value []byte, d *Decoder) {
	kc, err := goavro.NewCodec(benchKeySchema)
	if err != nil {
		tb.Fatal(err)
	}
	vc, err := goavro.NewCodec(benchValueSchema)
	if err != nil {
		tb.Fatal(err)
	}
	kb, err := kc.BinaryFromNative(nil, map[string]any{"id": u("long", int64(982451653))})
	if err != nil {
		tb.Fatal(err)
	}
	after := map[string]any{
		"id":          u("long", int64(982451653)),
		"customer_id": u("long", int64(1234567)),
		"status":      u("string", "shipped"),
		"amount":      u("bytes.decimal", big.NewRat(1234599, 100)),
		"note":        u("string", "leave at the back door, ring twice; fragile items inside"),
		"created_at":  u("long.timestamp-micros", time.Date(2026, 11, 22, 4, 45, 0, 123456000, time.UTC)),
		"paid":        u("boolean", true),
		"region":      u("string", "europe-west1"),
	}
	vb, err := vc.BinaryFromNative(nil, map[string]any{"after": u("orders", after), "updated": u("string", "1763786700123456789.0000000003")})
	if err != nil {
		tb.Fatal(err)
	}
	_, reg := newSeededRegistry(tb, map[int]string{1: benchKeySchema, 2: benchValueSchema})
	return frame(1, kb), frame(2, vb), NewDecoder(reg)
}

func BenchmarkExtract(b *testing.B) {
	key, value, d := benchMessage(b)
	ctx := context.Background()
	if _, err := d.Extract(ctx, "orders", 0, 0, key, value); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(key) + len(value)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rec, err := d.Extract(ctx, "orders", 0, int64(i), key, value)
		if err != nil || rec.Delete {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkDecodeRow(b *testing.B) {
	key, value, d := benchMessage(b)
	ctx := context.Background()
	if _, err := d.DecodeRow(ctx, key, value); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(key) + len(value)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		row, err := d.DecodeRow(ctx, key, value)
		if err != nil || len(row.After) != 8 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkGoavroNative is the reference point: goavro (CockroachDB's own
// library) decoding the same value into maps.
func BenchmarkGoavroNative(b *testing.B) {
	_, value, _ := benchMessage(b)
	vc, err := goavro.NewCodec(benchValueSchema)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := vc.NativeFromBinary(value[5:]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
