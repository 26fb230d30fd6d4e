package files

import (
	"fmt"
	"io"

	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// ndjsonEncoder writes one NDJSON file of a table version, a JSON object
// per line with the version's columns, _hw_updated (the HLC as text) and
// _hw_op, through the writer's compressor if it has one.
type ndjsonEncoder struct {
	v     *version
	count *countingWriter
	jw    io.WriteCloser
	line  []byte
}

func newNDJSONEncoder(v *version, cw *countingWriter, codec compressor) (*ndjsonEncoder, error) {
	e := &ndjsonEncoder{v: v, count: cw, jw: nopCloser{cw}}
	if codec.wrap != nil {
		var err error
		if e.jw, err = codec.wrap(cw); err != nil {
			return nil, fmt.Errorf("create data file: %w", err)
		}
	}
	return e, nil
}

func (e *ndjsonEncoder) writeRow(h schemas.HLC, op sinks.Op, r *reader) error {
	b := append(e.line[:0], '{')
	for j, c := range e.v.cols {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, c.name)
		b = append(b, ':')
		b = c.appendJSON(b, r)
	}
	b = append(b, `,"`+sinks.UpdatedColumn+`":"`...)
	b = h.AppendText(b)
	b = append(b, `","`+sinks.OpColumn+`":"`...)
	b = append(b, op.String()...)
	b = append(b, "\"}\n"...)
	e.line = b
	if r.err != nil {
		return r.err
	}
	if _, err := e.jw.Write(b); err != nil {
		return fmt.Errorf("write ndjson row: %w", err)
	}
	return nil
}

// size is the bytes written to the file, after compression.
func (e *ndjsonEncoder) size() int64 { return e.count.n }

func (e *ndjsonEncoder) close() error { return e.jw.Close() }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
