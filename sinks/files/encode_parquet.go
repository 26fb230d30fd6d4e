package files

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"

	"github.com/parquet-go/parquet-go"

	"github.com/highwater-dev/highwater/schemas"
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

func (e *parquetEncoder) writeRow(h schemas.HLC, op sinks.Op, r *reader) error {
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
func hlcDecimal(b []byte, h schemas.HLC) []byte {
	hi, lo := bits.Mul64(uint64(h.WallTime), 10_000_000_000)
	var carry uint64
	lo, carry = bits.Add64(lo, uint64(h.Logical), 0)
	hi += carry
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:16], lo)
	return b[:16]
}
