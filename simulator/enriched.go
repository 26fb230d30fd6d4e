package simulator

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"

	"github.com/highwater-dev/highwater/model"
)

// This file mimics CockroachDB's envelope = 'enriched' (v25.2+) with
// format = avro (CHANGEFEED.md §2.5): the value record is named like the
// wrapped one and holds before (diff), after, source (enriched_properties =
// 'source'), ts_ns and op, in that order (avro.go NewEnvelopeRecord, with
// the options encoder_avro.go EncodeValue sets for OptEnvelopeEnriched). No
// top-level updated or mvcc_timestamp: with `updated` the source record
// carries ts_ns and ts_hlc, with mvcc_timestamp its mvcc_timestamp
// (enriched_source_provider.go). Resolved messages are the same as for
// every envelope (EncodeResolvedTimestamp).

// Envelopes the simulator plays (Options.Envelope).
const (
	EnvelopeWrapped  = "wrapped"
	EnvelopeEnriched = "enriched"
)

// validateEnvelope checks Options.Envelope and Options.EnrichedProperties
// as CockroachDB's changefeedbase EncodingOptions.Validate would, and says
// whether the source record is on.
func validateEnvelope(o Options) (enriched, source bool, err error) {
	switch o.Envelope {
	case "", EnvelopeWrapped:
	case EnvelopeEnriched:
		enriched = true
	default:
		return false, false, fmt.Errorf("envelope %q: the simulator plays %q and %q", o.Envelope, EnvelopeWrapped, EnvelopeEnriched)
	}
	if o.EnrichedProperties == "" {
		return enriched, false, nil
	}
	if !enriched {
		return false, false, fmt.Errorf("enriched_properties is only usable with envelope=%s", EnvelopeEnriched)
	}
	for _, p := range strings.Split(o.EnrichedProperties, ",") {
		switch strings.TrimSpace(p) {
		case "source":
			source = true
		case "schema":
			// Only the JSON encoder writes a schema; the Avro encoder
			// ignores it (encoder_avro.go reads only "source").
		default:
			return false, false, fmt.Errorf("enriched_properties %q: valid values are: source, schema", p)
		}
	}
	return enriched, source, nil
}

// sourceFieldNames are the source record's fields (enriched_source_provider.go
// allFieldInfo). CockroachDB lists them ranging over a Go map, so their
// order differs from one node process to the next; the simulator shuffles
// them once per Sim, from the seed.
var sourceFieldNames = []string{
	"origin", "changefeed_sink", "job_id", "db_version", "cluster_name", "cluster_id",
	"source_node_locality", "node_name", "node_id", "mvcc_timestamp", "ts_ns", "ts_hlc",
	"database_name", "schema_name", "table_name", "primary_keys", "crdb_internal_table_id",
}

// sourceRecord is the source record's schema: every field ["null", T] with
// default null (the Avro schema lists all of them whatever the options;
// ts_ns, ts_hlc and mvcc_timestamp are then null).
func sourceRecord(prefix string, seed int64) *avroRecord {
	names := slices.Clone(sourceFieldNames)
	rand.New(rand.NewSource(seed)).Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	fs := make([]*avroField, len(names))
	for i, n := range names {
		var t any = "string"
		switch n {
		case "ts_ns":
			t = "long"
		case "crdb_internal_table_id":
			t = "int"
		case "primary_keys":
			t = map[string]any{"type": "array", "items": "string"}
		}
		fs[i] = &avroField{SchemaType: []any{"null", t}, Name: n}
	}
	return &avroRecord{SchemaType: "record", Name: "source", Fields: fs, Namespace: prefix}
}

// enrichedValueSchema is the enriched envelope: before? (diff), after,
// source? (enriched_properties = 'source'), ts_ns, op.
func enrichedValueSchema(tableName, bare string, o envelopeOpts, before, after *tableSchema) string {
	inner := model.SQLNameToAvroName(bare)
	var fs []*avroField
	if o.diff {
		rec := &avroRecord{SchemaType: "record", Name: inner + "_before", Fields: before.fields(), Namespace: o.prefix}
		fs = append(fs, &avroField{SchemaType: []any{"null", rec}, Name: "before"})
	}
	rec := &avroRecord{SchemaType: "record", Name: inner, Fields: after.fields(), Namespace: o.prefix}
	fs = append(fs, &avroField{SchemaType: []any{"null", rec}, Name: "after"})
	if o.source {
		fs = append(fs, &avroField{SchemaType: []any{"null", sourceRecord(o.prefix, o.seed)}, Name: "source"})
	}
	fs = append(fs, &avroField{SchemaType: []any{"null", "long"}, Name: "ts_ns"},
		&avroField{SchemaType: []any{"null", "string"}, Name: "op"})
	return marshalSchema(&avroRecord{SchemaType: "record", Name: model.SQLNameToAvroName(o.prefix+tableName) + "_envelope", Fields: fs, Namespace: o.prefix})
}

// enrichedCodec is what the encoder needs for one enriched value codec.
type enrichedCodec struct {
	source     bool
	updated    bool
	sourceName string         // the source record's union branch name
	fixed      map[string]any // the source fields that do not change per row
}

// newEnrichedCodec returns the enriched encoding data of table t (the
// idx-th table), or nil for a wrapped feed.
func (s *Sim) newEnrichedCodec(t *table, idx int) *enrichedCodec {
	if !s.env.enriched {
		return nil
	}
	ec := &enrichedCodec{source: s.env.source, updated: s.env.updated, sourceName: fullName(s.opts.SchemaPrefix, "source")}
	if !ec.source {
		return ec
	}
	keys := make([]any, len(t.cur().key))
	for i, k := range t.cur().key {
		keys[i] = t.cur().cols[k].name
	}
	str := func(v string) map[string]any { return map[string]any{"string": v} }
	ec.fixed = map[string]any{
		"origin": str("cockroachdb"), "changefeed_sink": str("kafka"),
		"job_id": str(fmt.Sprint(1066457644516704257 + uint64(s.opts.Seed&0xffff))), "db_version": str("v25.4.0"),
		"cluster_name": str(""), "cluster_id": str("38269e9c-9823-4568-875e-d867e12156f2"),
		"source_node_locality": str(""), "node_name": str("localhost"), "node_id": str("1"),
		"database_name": str(t.database), "schema_name": str("public"), "table_name": str(t.bare),
		"primary_keys": map[string]any{"array": keys}, "crdb_internal_table_id": map[string]any{"int": int32(104 + idx)},
	}
	return ec
}

// enrichedOp is the op CockroachDB's deduceOp gives version i of rs: "d"
// for a delete, "u" when the row existed before (as `before` would show
// with diff), "c" otherwise (an insert, or a row of an initial scan).
func enrichedOp(rs *rowState, i int) string {
	switch v := rs.hist[i]; {
	case v.vals == nil:
		return "d"
	case i > 0 && v.flags&flagScan == 0 && rs.hist[i-1].vals != nil:
		return "u"
	}
	return "c"
}

// fill sets the enriched fields of native for job: source, ts_ns (the
// processing time, played as the commit's wall time plus 1ms) and op.
func (ec *enrichedCodec) fill(w *encWorker, native map[string]any, mvcc bool, job *encJob) {
	native["ts_ns"] = map[string]any{"long": job.v.ts.WallTime + 1_000_000}
	native["op"] = map[string]any{"string": job.op}
	if !ec.source {
		return
	}
	src := make(map[string]any, len(ec.fixed)+3)
	for k, v := range ec.fixed {
		src[k] = v
	}
	src["ts_ns"], src["ts_hlc"], src["mvcc_timestamp"] = nil, nil, nil
	if ec.updated {
		src["ts_ns"] = map[string]any{"long": job.v.ts.WallTime}
		src["ts_hlc"] = map[string]any{"string": w.hlcText(job.v.ts)}
	}
	if mvcc {
		src["mvcc_timestamp"] = map[string]any{"string": job.v.mvcc.String()}
	}
	native["source"] = map[string]any{ec.sourceName: src}
}
