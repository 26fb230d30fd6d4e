package files

import (
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// An encoder writes the rows of one data file in one format: Parquet
// (encode_parquet.go) or NDJSON (encode_ndjson.go). An output (output.go)
// owns the file, its name and its parts; the encoder only turns staged
// values into the format's bytes.
type encoder interface {
	// writeRow writes one row: the version's column values as staged
	// (values.go's encoding, read through r), then _hw_updated = h and
	// _hw_op = op.
	writeRow(h hlc.Timestamp, op sinks.Op, r *reader) error
	// size is how large the file is so far, for --max-file-size.
	size() int64
	// close writes what the format holds back (Parquet's footer, a
	// compressor's last block); the file is complete after it.
	close() error
}

// extension is the data file name's ending for the writer's format and
// compression.
func (w *Writer) extension() string {
	if w.cfg.Format == NDJSON {
		return ".ndjson" + w.codec.ext
	}
	return ".parquet"
}

// newEncoder starts a data file of version v in the writer's format,
// writing to cw.
func (w *Writer) newEncoder(v *version, cw *countingWriter) (encoder, error) {
	if w.cfg.Format == NDJSON {
		return newNDJSONEncoder(v, cw, w.codec)
	}
	return newParquetEncoder(v, cw, w.codec), nil
}
