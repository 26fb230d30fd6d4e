package files

import (
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
)

// compressor is a format's compression: a Parquet codec applied to pages,
// or a stream wrapper around a whole NDJSON file.
type compressor struct {
	name string
	// parquet is the page codec of Parquet files.
	parquet compress.Codec
	// ext is appended to NDJSON file names (".gz", ".zst").
	ext string
	// wrap compresses an NDJSON stream; nil for none.
	wrap func(io.Writer) (io.WriteCloser, error)
}

func newCompressor(f Format, name string) (compressor, error) {
	switch f {
	case Parquet:
		switch name {
		case "", "snappy":
			return compressor{name: "snappy", parquet: &parquet.Snappy}, nil
		case "zstd":
			return compressor{name: name, parquet: &parquet.Zstd}, nil
		case "gzip":
			return compressor{name: name, parquet: &parquet.Gzip}, nil
		case "lz4":
			return compressor{name: name, parquet: &parquet.Lz4Raw}, nil
		case "none", "uncompressed":
			return compressor{name: "none", parquet: &parquet.Uncompressed}, nil
		}
		return compressor{}, fmt.Errorf("files sink: compression %q is not one of snappy, zstd, gzip, lz4, none for parquet", name)
	case NDJSON:
		switch name {
		case "", "none", "uncompressed":
			return compressor{name: "none"}, nil
		case "gzip":
			return compressor{name: name, ext: ".gz", wrap: func(w io.Writer) (io.WriteCloser, error) {
				return gzip.NewWriterLevel(w, gzip.DefaultCompression)
			}}, nil
		case "zstd":
			return compressor{name: name, ext: ".zst", wrap: func(w io.Writer) (io.WriteCloser, error) {
				return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
			}}, nil
		}
		return compressor{}, fmt.Errorf("files sink: compression %q is not one of none, gzip, zstd for ndjson", name)
	}
	return compressor{}, fmt.Errorf("files sink: format %q is not parquet or ndjson", f)
}
