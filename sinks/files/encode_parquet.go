package files

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"

	"github.com/parquet-go/parquet-go"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// rowGroupBytes bounds a Parquet row group held in memory while written.
const rowGroupBytes = 32 << 20

// parquetEncoder writes one Parquet file of a table version: the version's
// columns (parquetSchema), then _hw_updated as DECIMAL(38,10) and _hw_op.
type parquetEncoder struct {
	v       *version
	pw      *parquet.Writer
	row     parquet.Row
	flushed int64
	hw      [16]byte
}

func newParquetEncoder(v *version, out io.Writer, codec compressor) *parquetEncoder {
	if v.schema == nil {
		v.schema = parquetSchema(v)
	}
	pk := make([]string, len(v.table.Key))
	for i, k := range v.table.Key {
		pk[i] = v.table.Columns[k].Name
	}
	pkJSON, _ := json.Marshal(pk)
	pw := parquet.NewWriter(out, v.schema,
		parquet.Compression(codec.parquet),
		// Version 1 data pages: the widest reader support (Snowflake,
		// BigQuery, older Spark and Hive).
		parquet.DataPageVersion(1),
		parquet.KeyValueMetadata("highwater.table", v.table.Name),
		parquet.KeyValueMetadata("highwater.primary_key", string(pkJSON)),
	)
	return &parquetEncoder{v: v, pw: pw}
}

func (e *parquetEncoder) writeRow(h hlc.Timestamp, op sinks.Op, r *reader) error {
	row := e.row[:0]
	for j, c := range e.v.cols {
		row = c.appendParquet(row, r, j)
	}
	n := len(e.v.cols)
	row = append(row,
		parquet.FixedLenByteArrayValue(hlcDecimal(e.hw[:], h)).Level(0, 0, n),
		parquet.ByteArrayValue([]byte(op.String())).Level(0, 0, n+1))
	e.row = row
	if r.err != nil {
		return r.err
	}
	if _, err := e.pw.WriteRows([]parquet.Row{row}); err != nil {
		return fmt.Errorf("write parquet row: %w", err)
	}
	if e.pw.Size()-e.flushed >= rowGroupBytes {
		if err := e.pw.Flush(); err != nil {
			return fmt.Errorf("write parquet row group: %w", err)
		}
		e.flushed = e.pw.Size()
	}
	return nil
}

// size is the Parquet writer's estimate, which counts the row group still
// in memory: the bytes written so far would undercount it.
func (e *parquetEncoder) size() int64 { return e.pw.Size() }

func (e *parquetEncoder) close() error { return e.pw.Close() }

// hlcDecimal renders h as _hw_updated's DECIMAL(38,10) unscaled value,
// WallTime*10^10 + Logical, in 16 bytes of big-endian two's complement.
func hlcDecimal(b []byte, h hlc.Timestamp) []byte {
	hi, lo := bits.Mul64(uint64(h.WallTime), 10_000_000_000)
	var carry uint64
	lo, carry = bits.Add64(lo, uint64(h.Logical), 0)
	hi += carry
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:16], lo)
	return b[:16]
}

// parquetSchema is the Parquet schema of a table version: its columns in
// table order, then _hw_updated and _hw_op.
func parquetSchema(v *version) *parquet.Schema {
	g := parquet.Group{}
	order := make([]string, 0, len(v.cols)+2)
	for _, c := range v.cols {
		n := c.node()
		if !c.key {
			n = parquet.Optional(n)
		}
		g[c.name] = n
		order = append(order, c.name)
	}
	g[sinks.UpdatedColumn] = parquet.Decimal(10, 38, parquet.FixedLenByteArrayType(16))
	g[sinks.OpColumn] = parquet.String()
	order = append(order, sinks.UpdatedColumn, sinks.OpColumn)
	return parquet.NewSchema(escape(v.table.Name), orderedGroup{Group: g, order: order})
}

// orderedGroup is a parquet.Group whose fields keep the table's column
// order (parquet.Group sorts them by name), so that readers show the
// columns as the source table has them.
type orderedGroup struct {
	parquet.Group
	order []string
}

// Fields returns the group's fields in column order.
func (g orderedGroup) Fields() []parquet.Field {
	fields := g.Group.Fields()
	rank := make(map[string]int, len(g.order))
	for i, n := range g.order {
		rank[n] = i
	}
	out := slices.Clone(fields)
	slices.SortFunc(out, func(a, b parquet.Field) int { return cmp.Compare(rank[a.Name()], rank[b.Name()]) })
	return out
}

// appendParquet appends the Parquet values of one encoded column value to
// row, as leaf column col with definition levels for a top-level optional
// (or, for key columns, required) column.
func (c *column) appendParquet(row parquet.Row, r *reader, col int) parquet.Row {
	top := 1 // definition level of a present top-level value
	if c.key {
		top = 0
	}
	if r.byte() == 0 {
		return append(row, parquet.NullValue().Level(0, 0, col))
	}
	if c.codec != codecList {
		return append(row, c.leafValue(r).Level(0, top, col))
	}
	n := int(r.uvarint())
	if n == 0 {
		return append(row, parquet.NullValue().Level(0, top, col))
	}
	if n > len(r.b) {
		r.err = errCorrupt
		return row
	}
	for i := 0; i < n && r.err == nil; i++ {
		rep := 1
		if i == 0 {
			rep = 0
		}
		if r.byte() == 0 {
			row = append(row, parquet.NullValue().Level(rep, top+1, col))
			continue
		}
		row = append(row, c.elem.leafValue(r).Level(rep, top+2, col))
	}
	return row
}

func (c *column) leafValue(r *reader) parquet.Value {
	switch c.codec {
	case codecInt64:
		v := r.varint()
		switch c.t.Kind {
		case model.KindDate:
			return parquet.Int32Value(int32(v))
		case model.KindDecimal:
			if c.t.Precision <= 9 {
				return parquet.Int32Value(int32(v))
			}
		}
		return parquet.Int64Value(v)
	case codecDouble:
		b := r.bytes(8)
		if r.err != nil {
			return parquet.Value{}
		}
		return parquet.DoubleValue(math.Float64frombits(binary.LittleEndian.Uint64(b)))
	case codecBool:
		return parquet.BooleanValue(r.byte() == 1)
	case codecDecimal128:
		return parquet.FixedLenByteArrayValue(r.bytes(16))
	}
	return parquet.ByteArrayValue(r.bytes(int(r.uvarint())))
}
