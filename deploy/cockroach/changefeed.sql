-- The changefeed highwater consumes: Avro in Confluent wire format with the
-- schemas in Redpanda's Schema Registry; `updated` and `resolved` are what
-- highwater needs, `diff` lets the changelog tell inserts from updates, and
-- both intervals at 10s make windows close every ~10s instead of every 30s.
-- Topics: topic_prefix + table name = telemetry.features, telemetry.nodes
-- (created with 4 partitions each by the redpanda-topics job).
CREATE CHANGEFEED FOR TABLE telemetry.features, telemetry.nodes
    INTO 'kafka://redpanda:9092?topic_prefix=telemetry.'
    WITH format = avro,
         confluent_schema_registry = 'http://redpanda:8081',
         updated,
         resolved = '10s',
         min_checkpoint_frequency = '10s',
         diff,
         kafka_sink_config = '{"RequiredAcks": "ALL"}';
