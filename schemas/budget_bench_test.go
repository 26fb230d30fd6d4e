package schemas

import (
	"context"
	"encoding/binary"
	"testing"
)

// zeroWidthValueSchema is foo's envelope with one more field, as enriched
// envelopes have (`source`), whose type is an array of arrays of null: every
// inner item takes zero bytes, so a 5-byte inner array can claim 2^20 items.
const zeroWidthValueSchema = `{"type":"record","name":"foo_envelope","fields":[` +
	`{"type":["null",{"type":"record","name":"foo","fields":[{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"},{"type":["null","string"],"name":"b","default":null,"__crdb__":"b STRING NULL"}]}],"name":"after","default":null},` +
	`{"type":{"type":"array","items":{"type":"array","items":"null"}},"name":"source"},` +
	`{"type":["null","string"],"name":"updated","default":null}]}`

const idZeroWidth = 40

// zeroWidthMessage is a row of foo, about size bytes framed, whose source
// field holds as many inner arrays of 2^20 nulls as fit.
func zeroWidthMessage(tb testing.TB, size int) (key, value []byte) {
	inner := binary.AppendVarint(nil, 1<<20)
	inner = append(inner, 0)
	head := hx(tb, "02 "+rowBar)
	tail := hx(tb, tsUpdated)
	n := (size - 5 - len(head) - len(tail) - 4) / len(inner)
	body := append([]byte(nil), head...)
	body = binary.AppendVarint(body, int64(n))
	for range n {
		body = append(body, inner...)
	}
	body = append(body, 0)
	body = append(body, tail...)
	return hx(tb, goldenKey), frame(idZeroWidth, body)
}

func zeroWidthDecoder(tb testing.TB) *Decoder {
	_, reg := newSeededRegistry(tb, map[int]string{idFooKey: schemaFile(tb, "foo-key.avsc"), idZeroWidth: zeroWidthValueSchema})
	return NewDecoder(reg)
}

// BenchmarkHostileZeroWidthExtract is Extract of a 2 KB message of nested
// arrays of zero-width items (issue 11 item 4).
func BenchmarkHostileZeroWidthExtract(b *testing.B) {
	key, value := zeroWidthMessage(b, 2048)
	d := zeroWidthDecoder(b)
	ctx := context.Background()
	_, _ = d.Extract(ctx, "t", 0, 0, key, value)
	b.SetBytes(int64(len(key) + len(value)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = d.Extract(ctx, "t", 0, 0, key, value)
	}
}

// BenchmarkHostileZeroWidthDecodeRow is DecodeRow of the same message.
func BenchmarkHostileZeroWidthDecodeRow(b *testing.B) {
	key, value := zeroWidthMessage(b, 2048)
	d := zeroWidthDecoder(b)
	ctx := context.Background()
	_, _ = d.DecodeRow(ctx, key, value)
	b.SetBytes(int64(len(key) + len(value)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = d.DecodeRow(ctx, key, value)
	}
}
