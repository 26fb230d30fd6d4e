// Package buffer is highwater's embedded event store: a Badger database that
// holds every unresolved changefeed event per Kafka partition, ordered by
// (updated HLC, table, key), until a resolved window is flushed to the
// warehouse and trimmed.
//
// The store also keeps, per partition, the metadata the processor resumes
// from after a restart (the applied base, the latest resolved timestamp and
// the next offset to fetch), a disk budget for backpressure, and an offset
// index that answers "where may the checkpoint resume" cheaply.
//
// See docs/BUFFER.md for the key layout, the crash-safety argument and the
// tuning choices.
//
// # Files
//
//   - store.go: Options, Open (which, after a crash, recounts the buffered
//     events from the store itself), the Store and its per-partition state.
//   - batch.go: the ingest side: a Batch of events, dead letters and
//     partition metadata, and Store.Write, which stores it durably in
//     named steps (order, events without duplicates, offset index,
//     metadata, counters).
//   - scan.go: Scan, the flush side: the events of some partitions up to a
//     resolved timestamp, merged in (HLC, table, key) order.
//   - trim.go: LowOffset (where a checkpoint resumes), Trim after a window
//     is applied, Reset and Drop when a partition's owner changes.
//   - deadletter.go: dead letters set aside at ingest, held until the
//     window that checkpoints past them.
//   - early.go: groups of events at one HLC applied ahead of their
//     resolved timestamp (an initial scan bigger than the budget):
//     LowestAbove, TakeGroup, ScanGroup, TrimGroup.
//   - keys.go: the key layout; limits.go: what one event may hold.
//   - headers.go: PackHeaders and SplitHeaders, the payload that keeps a
//     record's Kafka headers with its value (headers_json_column_name).
package buffer
