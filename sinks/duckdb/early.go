package duckdb

import (
	"context"

	"github.com/highwater-dev/highwater/internal/bytesize"
)

// AppliesEarly reports that the writer may be given row versions ahead of
// the resolved timestamp, in a transaction without a checkpoint, and the
// same versions again later (processor.EarlyApplier): the mirror's MERGE
// keeps the newest _hw_updated of each key, whatever the order of the
// transactions, and the changelog each (key, _hw_updated) once. It is how
// an initial scan bigger than the buffer's disk budget is applied before
// its resolved timestamp arrives (docs/BUFFER.md).
func (w *Writer) AppliesEarly() bool { return true }

// earlyChunkShare: a transaction of a group applied early holds at most
// 1/earlyChunkShare of DuckDB's memory_limit in rows. Rows inserted by a
// transaction stay in memory until it commits when they fill less than a
// row group (122,880 rows), and the staging table, the MERGE's sort and
// hash join need about as much again. Measured with ~230-byte rows and a
// 5M-row mirror (one thread): 120k rows (~27 MiB) in one transaction fail
// with 48 MiB ("could not allocate block") and pass with 64 MiB; 50k-row
// transactions under 102 MiB spill nothing, while 1M-row ones spill ~800
// MB to the temp directory each and took 17% more CPU.
const earlyChunkShare = 4

// EarlyChunkBytes returns the most rows, in bytes, that one transaction of
// a group applied early should hold (processor.EarlyChunker): a quarter of
// DuckDB's memory_limit (25 MiB with `--memory-limit 512MiB`), 0 if the
// setting cannot be read.
func (w *Writer) EarlyChunkBytes() int64 {
	var s string
	if err := w.db.QueryRowContext(context.Background(), `SELECT current_setting('memory_limit')`).Scan(&s); err != nil {
		return 0
	}
	n, err := bytesize.Parse(s) // "102.0 MiB", "1.5 GiB", "512 bytes"
	if err != nil || n <= 0 {
		return 0
	}
	return n / earlyChunkShare
}
