package files

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// output writes one table version's rows of a window into numbered parts:
// each part is a temporary file, encoded by the format's encoder
// (encode.go), put in the store when it reaches --max-file-size or the
// window ends.
type output struct {
	tx   *Tx
	v    *version
	base string
	part int

	file  *os.File
	count *countingWriter
	bw    *bufio.Writer
	enc   encoder

	key        string
	rows       int64
	minH, maxH hlc.Timestamp
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

// open starts the next part.
func (o *output) open() error {
	w := o.tx.w
	o.key = fmt.Sprintf("%s-%04d%s", o.base, o.part, w.extension())
	f, err := os.CreateTemp(w.tmp, "part-*.tmp")
	if err != nil {
		return fmt.Errorf("create data file: %w", err)
	}
	o.file = f
	o.bw = bufio.NewWriterSize(f, 1<<20)
	o.count = &countingWriter{w: o.bw}
	o.rows, o.minH, o.maxH = 0, hlc.Timestamp{}, hlc.Timestamp{}
	if o.enc, err = w.newEncoder(o.v, o.count); err != nil {
		return err
	}
	return nil
}

// write adds one row (values in the staged encoding) to the current part,
// and closes the part when it has reached --max-file-size.
func (o *output) write(ctx context.Context, h hlc.Timestamp, op sinks.Op, values []byte) error {
	if o.file == nil {
		if err := o.open(); err != nil {
			return err
		}
	}
	r := reader{b: values}
	if err := o.enc.writeRow(h, op, &r); err != nil {
		return err
	}
	if o.rows == 0 {
		o.minH = h
	}
	o.rows++
	o.maxH = h
	if o.enc.size() >= o.tx.w.cfg.MaxFileSize {
		return o.close(ctx)
	}
	return nil
}

// close finishes the current part and puts it in the store.
func (o *output) close(ctx context.Context) error {
	if o.file == nil {
		return nil
	}
	err := o.enc.close()
	o.enc = nil
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
