package schemas

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/big"
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

// budgetValueSchema has a column of each bounded type beside the key: a
// DECIMAL(10,2), a DECIMAL(38,10), a BIT(3), a VARBIT, a VARBIT(64) and an
// INT8[].
const budgetValueSchema = `{"type":"record","name":"b_envelope","fields":[{"type":["null",{"type":"record","name":"b","fields":[` +
	`{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"},` +
	`{"type":["null",{"type":"bytes","logicalType":"decimal","precision":10,"scale":2},"string"],"name":"d","default":null,"__crdb__":"d DECIMAL(10,2) NULL"},` +
	`{"type":["null",{"type":"bytes","logicalType":"decimal","precision":38,"scale":10},"string"],"name":"dbig","default":null,"__crdb__":"dbig DECIMAL(38,10) NULL"},` +
	`{"type":["null",{"type":"array","items":"long"}],"name":"bit","default":null,"__crdb__":"bit BIT(3) NULL"},` +
	`{"type":["null",{"type":"array","items":"long"}],"name":"vb","default":null,"__crdb__":"vb VARBIT NULL"},` +
	`{"type":["null",{"type":"array","items":"long"}],"name":"vb64","default":null,"__crdb__":"vb64 VARBIT(64) NULL"},` +
	`{"type":["null",{"type":"array","items":["null","long"]}],"name":"arr","default":null,"__crdb__":"arr INT8[] NULL"}` +
	`]}],"name":"after","default":null},{"type":["null","string"],"name":"updated","default":null}]}`

const idBudget = 41

// budgetRow encodes a row of budgetValueSchema with a = 1, the column at
// index col set to the encoded union branch and value enc, and every other
// column null.
func budgetRow(t testing.TB, col int, enc []byte) []byte {
	body := []byte{2, 2, 2} // after branch 1; a: branch 1, 1
	for i := 1; i < 7; i++ {
		if i == col {
			body = append(body, enc...)
		} else {
			body = append(body, 0)
		}
	}
	return frame(idBudget, body, hx(t, tsUpdated))
}

// avroDecimal encodes branch 1 of a DECIMAL union: bytes holding the
// unscaled value v (twosComplement).
func avroDecimal(v *big.Int) []byte {
	b := twosComplement(v)
	out := binary.AppendVarint([]byte{2}, int64(len(b)))
	return append(out, b...)
}

// avroPaddedDecimal is avroDecimal with n redundant sign bytes pad before
// the value's minimal bytes.
func avroPaddedDecimal(pad byte, n int, v *big.Int) []byte {
	b := append(bytes.Repeat([]byte{pad}, n), twosComplement(v)...)
	out := binary.AppendVarint([]byte{2}, int64(len(b)))
	return append(out, b...)
}

// twosComplement is the minimal big-endian two's complement of v, as goavro
// writes decimals.
func twosComplement(v *big.Int) []byte {
	if v.Sign() >= 0 {
		b := v.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	n := len(v.Bytes()) + 1
	m := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), uint(8*n)), v).Bytes()
	for len(m) > 1 && m[0] == 0xff && m[1]&0x80 != 0 {
		m = m[1:]
	}
	return m
}

// avroBits encodes branch 1 of a BIT union: one block of the used-bits
// element and the words.
func avroBits(used int64, words ...int64) []byte {
	out := binary.AppendVarint([]byte{2}, int64(len(words)+1))
	out = binary.AppendVarint(out, used)
	for _, w := range words {
		out = binary.AppendVarint(out, w)
	}
	return append(out, 0)
}

// avroNullItems encodes branch 1 of an INT8[] of n NULLs.
func avroNullItems(n int) []byte {
	out := binary.AppendVarint([]byte{2}, int64(n))
	out = append(out, make([]byte, n)...)
	return append(out, 0)
}

func decimalOf(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return v
}

// zeroWidthMessageSmall is zeroWidthMessage's shape with one inner array of
// n nulls.
func zeroWidthMessageSmall(t testing.TB, n int) []byte {
	body := hx(t, "02 "+rowBar+" 02")
	body = binary.AppendVarint(body, int64(n))
	body = append(body, 0, 0)
	return frame(idZeroWidth, body, hx(t, tsUpdated))
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

// BenchmarkHostileVarbitDecodeRow is DecodeRow of a VARBIT value of 2^20-1
// zero words, a 1 MB message that would decode into a 64 MB string.
func BenchmarkHostileVarbitDecodeRow(b *testing.B) {
	key := hx(b, goldenKey)
	value := budgetRow(b, 4, avroBits(64, make([]int64, 1<<20-1)...))
	_, reg := newSeededRegistry(b, map[int]string{idFooKey: schemaFile(b, "foo-key.avsc"), idBudget: budgetValueSchema})
	d := NewDecoder(reg)
	ctx := context.Background()
	_, _ = d.DecodeRow(ctx, key, value)
	b.SetBytes(int64(len(key) + len(value)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = d.DecodeRow(ctx, key, value)
	}
}

// BenchmarkHostileDecimalDecodeRow is DecodeRow of a DECIMAL(38,10) whose
// unscaled value takes 1 MB.
func BenchmarkHostileDecimalDecodeRow(b *testing.B) {
	key := hx(b, goldenKey)
	value := budgetRow(b, 2, avroDecimal(new(big.Int).Lsh(big.NewInt(1), 8<<20)))
	_, reg := newSeededRegistry(b, map[int]string{idFooKey: schemaFile(b, "foo-key.avsc"), idBudget: budgetValueSchema})
	d := NewDecoder(reg)
	ctx := context.Background()
	_, _ = d.DecodeRow(ctx, key, value)
	b.SetBytes(int64(len(key) + len(value)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = d.DecodeRow(ctx, key, value)
	}
}
