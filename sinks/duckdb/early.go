package duckdb

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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
	n, err := parseMemory(s)
	if err != nil || n <= 0 {
		return 0
	}
	return n / earlyChunkShare
}

// parseMemory parses a DuckDB memory setting as current_setting shows it
// ("102.0 MiB", "1.5 GiB", "512 bytes"; decimal units too).
func parseMemory(s string) (int64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), " ")
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("memory setting %q: %w", s, err)
	}
	mult := map[string]float64{
		"": 1, "bytes": 1, "b": 1,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	}[strings.ToLower(strings.TrimSpace(unit))]
	if mult == 0 {
		return 0, fmt.Errorf("memory setting %q: unknown unit", s)
	}
	return int64(f * mult), nil
}
