// Package processor runs highwater's pipeline for one consumer-group member:
// it consumes a changefeed's topics, buffers row events until resolved
// timestamps close a window, and applies each window to the warehouse in one
// transaction together with the partitions' checkpoints.
//
// The warehouse checkpoint is the truth for where a partition resumes; Kafka
// committed offsets are written afterwards for lag tooling only.
//
// # A tour of highwater, starting here
//
// The data path is Kafka -> schemas -> processor -> buffer -> processor ->
// sinks. A newcomer reads this package first, in this order, and follows
// the links into the others:
//
//   - processor.go: Config (every knob, with its default), the Processor,
//     and Run and its poll loop: fetch, ingest, maybe start a flush, commit
//     advisory offsets, until the context ends or StopAt is reached.
//   - group.go: what the member knows of each partition it owns (partState)
//     and the group protocol's callbacks: on assignment the warehouse's
//     checkpoints (sinks.Writer.Checkpoints) set where each partition
//     resumes, and the partition's buffer is reset to them unless it
//     already continues them; on revocation or loss the partitions are
//     forgotten. frontier is the window's upper bound: the smallest latest
//     resolved timestamp over the owned partitions.
//   - decode.go: the ingest path. Each fetched record is decoded only as
//     far as its table, key and HLC (Decoder.Extract, package schemas),
//     checked on its own (clock.go: a timestamp from the future; limits.go:
//     an event the buffer, or later a row the warehouse, cannot hold), and
//     added to one buffer.Batch per fetch (package buffer: a Badger store
//     ordered by HLC per partition, durable before the offsets move).
//     Resolved messages move the partition's resolved timestamp. At apply
//     time the same file's checkRowKey and locate check a decoded row and
//     name its topic[partition]@offset.
//   - flush.go: when the frontier passes what the warehouse holds, one
//     window at a time is applied in the background (flushJob): begin,
//     write, dead letters, checkpoints, commit, trim the buffer. It is
//     retried with a backoff, and reaped by the poll loop, which then
//     moves the partitions' applied frontier.
//   - feeds.go: named groups of topics (Config.Feeds) and whether they
//     share one frontier, a consistent cut over every table, or each have
//     their own (Config.Frontier); which partitions the next window takes
//     (nextWindow) and which feed holds the cut back (FrontierStats).
//   - window.go: how a window becomes warehouse writes: the buffer's events
//     up to the frontier, decoded into rows (Decoder.DecodeRow), reduced to
//     the newest version per key unless the writer keeps a changelog
//     (newestVersions), queued per table and handed to the sinks.Tx in
//     batches (windowWriter).
//   - pipeline.go: a window's Tx.Write calls run in a goroutine of their
//     own (writeStage) while the window pass decodes the next batch. The
//     warehouse writers are in package sinks and below it (sinks/duckdb,
//     sinks/postgres, sinks/files).
//   - headers.go: with Config.HeadersJSONColumn, a record's Kafka headers
//     ride with its value through the buffer and become that JSONB column
//     of the decoded row again (headers_json_column_name).
//   - fence.go: each window's transaction is fenced with the checkpoints it
//     builds on, so that a member that stalled past its session cannot
//     overwrite another member's later window.
//   - deadletter.go: the poison policy (Config.OnError: fail, dlq, skip)
//     for records that can never be decoded or applied, and the dead-letter
//     producer.
//   - retention.go: records Kafka's retention deleted before they were
//     applied (RetentionGapError).
//   - backpressure.go: fetches pause while the buffer is over its disk
//     budget, except for the partitions holding the frontier back.
//   - early.go: an initial scan bigger than the budget, which no resolved
//     timestamp closes until it ends, is applied in groups of rows at one
//     HLC ahead of its resolved timestamp, with no checkpoint.
//   - stats.go, observe.go, lasterror.go: the running totals (Stats), the
//     per-partition view (PartitionStats) and the Observer that package
//     metrics builds on.
//
// The other packages' docs continue the tour: schemas (changefeed records,
// the Avro decoder and the schema registry), model (the column model and
// value types schemas produces and the writers consume), hlc (CockroachDB's
// timestamps), buffer, sinks and its writers,
// simulator (a CockroachDB changefeed for tests and the demo) and config
// and cmd/highwater (flags and commands).
package processor
