package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/highwater-dev/highwater/internal/redact"
	"github.com/highwater-dev/highwater/simulator"
)

// newSimulateCmd plays a CockroachDB-like changefeed into any Kafka and Schema
// Registry, and prints the final resolved timestamp (for run --stop-at).
func newSimulateCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Play a CockroachDB-like changefeed into any Kafka and Schema Registry",
		Args:  noArgs,
	}
	fs := cmd.Flags()
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, comma separated")
	registry := fs.String("registry", "http://127.0.0.1:8081", "Schema Registry URL")
	partitions := fs.Int("partitions", 4, "partitions per topic (created if missing)")
	txns := fs.Int("txns", 10000, "transactions to run")
	keys := fs.Int("keys", 1000, "distinct rows per table")
	rowsPerTxn := fs.Int("rows-per-txn", 4, "rows written per transaction")
	deleteProb := fs.Float64("deletes", 0.05, "probability that a write is a delete")
	resolveEvery := fs.Int("resolve-every", 500, "emit resolved timestamps every N transactions")
	dupProb := fs.Float64("duplicates", 0, "probability that a row message is re-sent")
	reorder := fs.Bool("reorder", false, "interleave rows across keys between resolved timestamps")
	diff := fs.Bool("diff", true, "include the before image (WITH diff)")
	prefix := fs.String("topic-prefix", "", "topic name prefix")
	schemaPrefix := fs.String("avro-schema-prefix", "", "mimic the changefeed option avro_schema_prefix (subjects, record names, namespace)")
	fullName := fs.Bool("full-table-name", false, "mimic the changefeed option full_table_name: topics, subjects and envelopes named defaultdb.public.<table>")
	envelope := fs.String("envelope", simulator.EnvelopeWrapped, "mimic the changefeed option envelope: wrapped or enriched (v25.2+)")
	enrichedProps := fs.String("enriched-properties", "", "mimic the changefeed option enriched_properties (source, schema) with --envelope enriched; highwater needs source")
	families := fs.Bool("split-column-families", false, "mimic the changefeed option split_column_families: the tables get two column families each, one topic <table>.<family> per family")
	seed := fs.Int64("seed", 1, "random seed (0: time-based)")
	keyCol := fs.String("key-column", "", "mimic the changefeed option key_column (with unordered): the Kafka key is this column of both tables (node or version) instead of the primary key; highwater refuses it when the column is nullable (version)")
	headersCol := fs.String("headers-json-column", "", "mimic the changefeed option headers_json_column_name: this JSONB column (nodes.labels; added to tables without it) goes to Kafka headers instead of the values")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		if *seed == 0 {
			*seed = time.Now().UnixNano()
		}
		tables := simulator.TelemetryTables()
		if *families {
			tables = simulator.TelemetryFamilies()
		}
		if *headersCol != "" {
			tables = simulator.WithHeadersColumn(tables, *headersCol)
		}
		sim, err := simulator.New(ctx, simulator.Options{
			Brokers:             strings.Split(*brokers, ","),
			RegistryURL:         *registry,
			Partitions:          *partitions,
			Diff:                *diff,
			TopicPrefix:         *prefix,
			SchemaPrefix:        *schemaPrefix,
			FullTableName:       *fullName,
			SplitColumnFamilies: *families,
			Seed:                *seed,
			DuplicateProb:       *dupProb,
			Reorder:             *reorder,

			Envelope:           *envelope,
			EnrichedProperties: *enrichedProps,
			HeadersJSONColumn:  *headersCol,
			KeyColumn:          *keyCol,
		}, tables...)
		if err != nil {
			// The registry URL may carry a password.
			return redact.Error(err, *registry)
		}
		defer sim.Close()
		start := time.Now()
		if err := sim.RunTelemetry(ctx, simulator.Workload{Txns: *txns, KeysPerTable: *keys, RowsPerTxn: *rowsPerTxn, DeleteProb: *deleteProb, ResolveEvery: *resolveEvery}); err != nil {
			return redact.Error(err, *registry)
		}
		final, err := sim.Resolve(ctx)
		if err != nil {
			return redact.Error(err, *registry)
		}
		fmt.Fprintf(stderr, "simulated %d transactions on topics %s in %s\n", *txns, strings.Join(sim.Topics(), ","), time.Since(start).Round(time.Millisecond))
		fmt.Fprintln(stdout, final)
		return nil
	}
	return cmd
}
