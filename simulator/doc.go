// Package simulator is a CockroachDB changefeed simulator: it writes to any
// Kafka and Confluent Schema Registry exactly what a CockroachDB changefeed
// created with
//
//	format=avro, confluent_schema_registry=..., updated, resolved[, diff][, mvcc_timestamp]
//
// writes, and keeps an Oracle of the source tables to check consumers
// against.
//
// What matches CockroachDB (section numbers refer to
// docs/CHANGEFEED.md; see also docs/SIMULATOR.md):
//
//   - Schemas are built as avro.go builds them and registered as compact
//     json.Marshal text with POST /subjects/{subject}/versions (§1.2, §1.3,
//     §2.1, §3, §8.2); resolved messages use the v2 sink's "_envelope" schema
//     under subject "-value", or the v1 sink's per-topic schema (§4.2).
//   - Keys and values are encoded by goavro (CockroachDB's encoder) behind
//     the Confluent header (§1.1, §8.3).
//   - Rows are partitioned by sarama-compatible FNV-1a over the framed key
//     with the v2 sink's franz-go partitioner; resolved messages go to every
//     partition of every topic after all earlier rows are acknowledged (§4.1,
//     §5). The producer is idempotent with acks=all.
//   - Transactions share one HLC and emit only the last write per row;
//     deletes of absent rows are emitted (§2.3).
//   - Faults: duplicates (a retried batch), reordering across keys between
//     resolved messages, restarts from a checkpoint with re-emission and
//     gaps, initial scans and schema-change backfills (§5, §6), all within
//     the rules of CockroachDB's orderValidator (§9).
//
// Everything is deterministic for a given Options.Seed (and Options.Start).
//
// # Files
//
//   - sim.go: Options, the Sim, New (tables, topics, schema registration)
//     and the HLC clock (tick).
//   - table.go: the source tables' state, every version of every row;
//     oracle.go reads it for consumers' checks.
//   - txn.go: transactions (Txn, Upsert, Delete) and Load.
//   - emit.go: what the changefeed emits and when: a committed row version
//     queued for encoding (emit; encode.go encodes in batches on a few
//     workers), InitialScan, Resolve and Flush.
//   - faults.go: duplicates and reordering as rows are sent, and Restart.
//   - ddl.go: schema changes with their backfills (AddColumn, DropColumn).
//   - schema.go: the Avro schemas as CockroachDB builds them and their
//     registration (registry.go is the Schema Registry client);
//     producer.go: the Kafka producer and CockroachDB's partitioner.
//   - types.go: the CockroachDB column types and their Avro form;
//     normalize.go: a Go value checked and made canonical for its column;
//     defaults.go: DEFAULT expressions.
//   - random.go: random values of every type and the random Workload (Run);
//     telemetry.go: the demo's telemetry tables and workload.
//   - headers.go: headers_json_column_name (Options.HeadersJSONColumn): the
//     column left out of the values and sent as Kafka headers;
//     keycolumn.go: key_column (Options.KeyColumn), a key of one column.
package simulator
