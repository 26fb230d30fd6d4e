// Package files is highwater's files and object-storage writer: it writes
// each resolved window's changes as clean, deduplicated, HLC-ordered change
// files (Parquet or NDJSON) to a local directory or an S3-compatible bucket,
// for Snowflake (Snowpipe), Databricks, BigQuery, DuckDB or Spark to ingest.
//
// A window's Write calls spill its changes, already converted, to local
// sort runs (memory stays bounded however large the window). Commit merges
// the runs per table in (HLC, key) order, keeps one row per (key, HLC), and
// writes the data files under deterministic names, rolling to a new part at
// a size limit; then the dead letters; then the window's manifest, which
// lists the files and the checkpoints; last a small per-partition-set
// checkpoint object that points at the manifest. A window is complete once
// its manifest exists. Before its data files, Commit records the names it is
// about to write in that checkpoint object, so that a window cut short by a
// crash is found and its files deleted before it is written again: a
// re-written window replaces, never adds.
//
// The layout is described in docs/SINK_FILES.md.
//
// # Files
//
//   - files.go: Config, ParseURL, Open, CheckURL, OpenConfig and the Writer; store.go and
//     conditional.go: the local directory or S3 bucket beneath it, with the
//     conditional writes the fence needs.
//   - tx.go: the window transaction (sinks.Tx); stage.go: Write's staging
//     of each change as a compact record (values.go: the values' encoding;
//     keyorder.go: the keys' order-preserving encoding) and the spill of
//     sorted runs past the memory limit; sort.go: the k-way merge of those
//     runs.
//   - commit.go: Commit in plain steps: plan, claim, mark pending, write the
//     data files (output.go, through an encoder: encode_parquet.go or
//     encode_ndjson.go; compress.go), publish; fence.go: the claim and
//     publish protocol over the group's fence object.
//   - checkpoints.go: the manifest and checkpoint objects, Checkpoints, and
//     the recovery of windows a crash cut short; catalog.go: the table
//     catalog (Tables, Manifests); names.go: table directories; groups.go:
//     the consumer groups a root holds.
package files
