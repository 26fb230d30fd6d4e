// Package schemas decodes CockroachDB Avro changefeed messages as they
// arrive from Kafka: the Confluent wire format, writer schemas by id from a
// schema registry (Registry), the changefeed envelopes and resolved
// messages, CockroachDB's HLC timestamps and name escaping, and the column
// model of each table version.
//
// Decoder has two speeds: Extract, for ingest, reads only the table, the
// key bytes, `updated` and the delete flag without materialising the row;
// DecodeRow, for flushing to a warehouse, decodes typed column values. Both
// compile a plan per schema id once and are safe for concurrent use: the
// writer schema is parsed with hamba/avro/v2 (a named-type cache of its own
// per id, avroschema.go), its tree compiled into plan nodes (plan.go) that
// hand-written loops read (reader.go, decoder.go). See docs/DECODING.md.
package schemas
