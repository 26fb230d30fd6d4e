package files

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"os"

	"github.com/parquet-go/parquet-go"

	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// output writes one table version's rows of a window into numbered parts.
type output struct {
	tx   *Tx
	v    *version
	base string
	part int

	file    *os.File
	count   *countingWriter
	bw      *bufio.Writer
	pw      *parquet.Writer
	row     parquet.Row
	flushed int64
	jw      io.WriteCloser
	line    []byte
	hw      [16]byte

	key        string
	rows       int64
	minH, maxH schemas.HLC
	entries    []FileEntry
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// rowGroupBytes bounds a Parquet row group held in memory while written.
const rowGroupBytes = 32 << 20

func (o *output) open() error {
	w := o.tx.w
	ext := ".parquet"
	if w.cfg.Format == NDJSON {
		ext = ".ndjson" + w.codec.ext
	}
	o.key = fmt.Sprintf("%s-%04d%s", o.base, o.part, ext)
	f, err := os.CreateTemp(w.tmp, "part-*.tmp")
	if err != nil {
		return fmt.Errorf("create data file: %w", err)
	}
	o.file = f
	o.bw = bufio.NewWriterSize(f, 1<<20)
	o.count = &countingWriter{w: o.bw}
	o.rows, o.minH, o.maxH = 0, schemas.HLC{}, schemas.HLC{}
	if w.cfg.Format == NDJSON {
		o.jw = nopCloser{o.count}
		if w.codec.wrap != nil {
			if o.jw, err = w.codec.wrap(o.count); err != nil {
				return fmt.Errorf("create data file: %w", err)
			}
		}
		return nil
	}
	if o.v.schema == nil {
		o.v.schema = parquetSchema(o.v)
	}
	pk := make([]string, len(o.v.table.Key))
	for i, k := range o.v.table.Key {
		pk[i] = o.v.table.Columns[k].Name
	}
	pkJSON, _ := json.Marshal(pk)
	o.pw = parquet.NewWriter(o.count, o.v.schema,
		parquet.Compression(w.codec.parquet),
		// Version 1 data pages: the widest reader support (Snowflake,
		// BigQuery, older Spark and Hive).
		parquet.DataPageVersion(1),
		parquet.KeyValueMetadata("highwater.table", o.v.table.Name),
		parquet.KeyValueMetadata("highwater.primary_key", string(pkJSON)),
	)
	o.flushed = 0
	return nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func (o *output) write(ctx context.Context, h schemas.HLC, op sinks.Op, values []byte) error {
	if o.file == nil {
		if err := o.open(); err != nil {
			return err
		}
	}
	r := reader{b: values}
	if o.pw != nil {
		row := o.row[:0]
		for j, c := range o.v.cols {
			row = c.appendParquet(row, &r, j)
		}
		n := len(o.v.cols)
		row = append(row,
			parquet.FixedLenByteArrayValue(hlcDecimal(o.hw[:], h)).Level(0, 0, n),
			parquet.ByteArrayValue([]byte(op.String())).Level(0, 0, n+1))
		o.row = row
		if r.err != nil {
			return r.err
		}
		if _, err := o.pw.WriteRows([]parquet.Row{row}); err != nil {
			return fmt.Errorf("write parquet row: %w", err)
		}
	} else {
		b := append(o.line[:0], '{')
		for j, c := range o.v.cols {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, c.name)
			b = append(b, ':')
			b = c.appendJSON(b, &r)
		}
		b = append(b, `,"`+sinks.UpdatedColumn+`":"`...)
		b = h.AppendText(b)
		b = append(b, `","`+sinks.OpColumn+`":"`...)
		b = append(b, op.String()...)
		b = append(b, "\"}\n"...)
		o.line = b
		if r.err != nil {
			return r.err
		}
		if _, err := o.jw.Write(b); err != nil {
			return fmt.Errorf("write ndjson row: %w", err)
		}
	}
	if o.rows == 0 {
		o.minH = h
	}
	o.rows++
	o.maxH = h
	size := o.count.n
	if o.pw != nil {
		size = o.pw.Size()
		if size-o.flushed >= rowGroupBytes {
			if err := o.pw.Flush(); err != nil {
				return fmt.Errorf("write parquet row group: %w", err)
			}
			o.flushed = o.pw.Size()
		}
	}
	if size >= o.tx.w.cfg.MaxFileSize {
		return o.close(ctx)
	}
	return nil
}

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

// close finishes the current part and puts it in the store.
func (o *output) close(ctx context.Context) error {
	if o.file == nil {
		return nil
	}
	var err error
	if o.pw != nil {
		err = o.pw.Close()
		o.pw = nil
	} else {
		err = o.jw.Close()
	}
	if err == nil {
		err = o.bw.Flush()
	}
	if cerr := o.file.Close(); err == nil {
		err = cerr
	}
	name := o.file.Name()
	o.file = nil
	if err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("write data file %s: %w", o.key, err)
	}
	if err := o.tx.w.st.putFile(ctx, o.key, name); err != nil {
		_ = os.Remove(name)
		return err
	}
	o.entries = append(o.entries, FileEntry{Path: o.key, Table: o.v.table.Name, Rows: o.rows, Bytes: o.count.n,
		MinUpdated: o.minH.String(), MaxUpdated: o.maxH.String()})
	o.part++
	return nil
}

func (o *output) finish(ctx context.Context) error { return o.close(ctx) }

// abort drops an unfinished part.
func (o *output) abort() {
	if o.file != nil {
		name := o.file.Name()
		o.file.Close()
		_ = os.Remove(name)
		o.file = nil
	}
}
