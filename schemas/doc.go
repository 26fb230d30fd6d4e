// Package schemas decodes CockroachDB Avro changefeed messages as they
// arrive from Kafka: the Confluent wire format, writer schemas by id from a
// schema registry (Registry), and the changefeed envelopes and resolved
// messages. What it produces lives in packages of their own, so that the
// buffer and the writers use it without depending on Avro or the registry:
// timestamps are hlc.Timestamp, each table version's columns a
// *model.Table, and column values the Go types model.Kind documents.
//
// Decoder has two speeds: Extract, for ingest, reads only the table, the
// key bytes, `updated` and the delete flag without materialising the row
// (and refuses a key that is no primary key, keycolumn.go);
// DecodeRow, for flushing to a warehouse, decodes typed column values. Both
// compile a plan per schema id once and are safe for concurrent use: the
// writer schema is parsed with hamba/avro/v2 (a named-type cache of its own
// per id, avroschema.go), its tree compiled into plan nodes (plan.go) that
// hand-written loops read (reader.go, decoder.go). See docs/DECODING.md.
package schemas
