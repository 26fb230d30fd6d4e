package schemas

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/highwater-dev/highwater/hlc"
)

// Schema ids of the enriched goldens (testdata/*enriched*.avsc, the texts
// CockroachDB v25.2+ registers for envelope = enriched with format = avro;
// docs/CHANGEFEED.md §2.5). The source record's fields are in the order of
// the docs' v25.2 example, which is Go map order, not the declaration's.
const (
	idEnrichedDiffSource = 30 // diff, enriched_properties = 'source'
	idEnrichedBare       = 31 // no enriched_properties
	idEnrichedSuper      = 32 // avro_schema_prefix = 'super', source
)

func enrichedDecoder(t testing.TB) *Decoder {
	t.Helper()
	_, reg := newSeededRegistry(t, map[int]string{
		idFooKey:             schemaFile(t, "foo-key.avsc"),
		idSuperKey:           schemaFile(t, "superfoo-key.avsc"),
		idEnrichedDiffSource: schemaFile(t, "foo-value-enriched-diff-source.avsc"),
		idEnrichedBare:       schemaFile(t, "foo-value-enriched.avsc"),
		idEnrichedSuper:      schemaFile(t, "superfoo-value-enriched-source.avsc"),
	})
	return NewDecoder(reg)
}

// avroLong is a zig-zag varint; avroStr a string; opt* the branch 1 of a
// ["null", T] union, null its branch 0.
func avroLong(v int64) []byte { return binary.AppendVarint(nil, v) }
func avroStr(s string) []byte { return append(avroLong(int64(len(s))), s...) }
func optStr(s string) []byte  { return append([]byte{2}, avroStr(s)...) }
func optLong(v int64) []byte  { return append([]byte{2}, avroLong(v)...) }

var null = []byte{0}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// enrichedSource encodes the source record in the goldens' field order.
// tsHLC and mvcc are "" for null (no updated / no mvcc_timestamp option).
func enrichedSource(tsHLC, mvcc string, tsNS int64) []byte {
	f := map[string][]byte{
		"table_name": optStr("foo"), "origin": optStr("cockroachdb"), "cluster_id": optStr("38269e9c-9823-4568-875e-d867e12156f2"),
		"node_id": optStr("1"), "changefeed_sink": optStr("kafka"), "schema_name": optStr("public"), "node_name": optStr("localhost"),
		"database_name": optStr("defaultdb"), "source_node_locality": optStr("region=us-east1"),
		"primary_keys": cat([]byte{2}, avroLong(1), avroStr("a"), []byte{0}), // one block of one item, then the end
		"job_id":       optStr("1066457644516704257"), "db_version": optStr("v25.4.0"), "cluster_name": optStr(""),
		"crdb_internal_table_id": optLong(104),
		"mvcc_timestamp":         null, "ts_ns": null, "ts_hlc": null,
	}
	if tsHLC != "" {
		f["ts_hlc"], f["ts_ns"] = optStr(tsHLC), optLong(tsNS)
	}
	if mvcc != "" {
		f["mvcc_timestamp"] = optStr(mvcc)
	}
	var b []byte
	for _, n := range []string{"mvcc_timestamp", "ts_ns", "ts_hlc", "table_name", "origin", "cluster_id", "node_id", "changefeed_sink",
		"schema_name", "node_name", "database_name", "source_node_locality", "primary_keys", "job_id", "db_version", "cluster_name",
		"crdb_internal_table_id"} {
		b = append(b, f[n]...)
	}
	return append([]byte{2}, b...)
}

func fooRow(a int64, b string) []byte { return cat([]byte{2}, optLong(a), optStr(b)) }

func TestEnrichedEnvelopeDecodes(t *testing.T) {
	d := enrichedDecoder(t)
	ctx := context.Background()
	key := frame(idFooKey, optLong(1))
	const commit, processed = "1746045115619002000.0000000003", int64(1746045115679811000)
	commitHLC := hlc.Timestamp{WallTime: 1746045115619002000, Logical: 3}
	mvccHLC := hlc.Timestamp{WallTime: 1746045115619002000}
	for _, tc := range []struct {
		name          string
		before, after []byte
		op            string
		wantOp        EnrichedOp
		wantBefore    []any
		wantAfter     []any
	}{
		{"insert", null, fooRow(1, "bar"), "c", OpCreate, nil, []any{int64(1), "bar"}},
		{"update", fooRow(1, "bar"), fooRow(1, "baz"), "u", OpUpdate, []any{int64(1), "bar"}, []any{int64(1), "baz"}},
		{"delete", fooRow(1, "baz"), null, "d", OpDelete, []any{int64(1), "baz"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			value := frame(idEnrichedDiffSource, tc.before, tc.after, enrichedSource(commit, "1746045115619002000.0000000000", commitHLC.WallTime),
				optLong(processed), optStr(tc.op))
			rec, err := d.Extract(ctx, "foo", 0, 7, key, value)
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if rec.Table != "foo" || rec.Updated != commitHLC || rec.Delete != (tc.after[0] == 0) || rec.Resolved {
				t.Fatalf("Extract = %+v, want table foo, updated %v (source.ts_hlc, not ts_ns), delete %v", rec, commitHLC, tc.after[0] == 0)
			}
			row, err := d.DecodeRow(ctx, key, value)
			if err != nil {
				t.Fatalf("DecodeRow: %v", err)
			}
			if row.Updated != commitHLC || row.MVCC != mvccHLC || row.Op != tc.wantOp || !row.Diff || row.Table.Name != "foo" {
				t.Errorf("DecodeRow: updated %v mvcc %v op %v diff %v table %q; want %v %v %v true foo",
					row.Updated, row.MVCC, row.Op, row.Diff, row.Table.Name, commitHLC, mvccHLC, tc.wantOp)
			}
			if !sameValue(row.After, tc.wantAfter) || !sameValue(row.Before, tc.wantBefore) {
				t.Errorf("after %#v before %#v; want %#v %#v", row.After, row.Before, tc.wantAfter, tc.wantBefore)
			}
			if !row.Table.Columns[0].PrimaryKey {
				t.Error("primary key not set from the key schema")
			}
			if n := testing.AllocsPerRun(50, func() { _, _ = d.Extract(ctx, "foo", 0, 7, key, value) }); n != 0 {
				t.Errorf("Extract allocates %v times per enriched record, want 0", n)
			}
		})
	}
}

func TestEnrichedWithSchemaPrefix(t *testing.T) {
	d := enrichedDecoder(t)
	ctx := context.Background()
	key := frame(idSuperKey, optLong(1))
	value := frame(idEnrichedSuper, fooRow(1, "bar"), enrichedSource("5.0000000001", "", 5), optLong(9), optStr("c"))
	rec, err := d.Extract(ctx, "superfoo", 0, 1, key, value)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Table != "foo" || rec.Updated != (hlc.Timestamp{WallTime: 5, Logical: 1}) {
		t.Fatalf("Extract = %+v", rec)
	}
	row, err := d.DecodeRow(ctx, key, value)
	if err != nil {
		t.Fatal(err)
	}
	if row.Op != OpCreate || row.MVCC != (hlc.Timestamp{}) || row.Diff {
		t.Errorf("DecodeRow = op %v mvcc %v diff %v; want c, zero (no mvcc_timestamp option), false", row.Op, row.MVCC, row.Diff)
	}
}

func TestEnrichedWithoutCommitHLCIsRefused(t *testing.T) {
	d := enrichedDecoder(t)
	ctx := context.Background()
	key := frame(idFooKey, optLong(1))
	for _, tc := range []struct {
		name, hint string
		value      []byte
	}{
		{"no enriched_properties = 'source'", "without enriched_properties = 'source'",
			frame(idEnrichedBare, fooRow(1, "bar"), optLong(9), optStr("c"))},
		{"source without updated (ts_hlc null)", "source.ts_hlc is null",
			frame(idEnrichedDiffSource, null, fooRow(1, "bar"), enrichedSource("", "", 0), optLong(9), optStr("c"))},
		{"source without updated but with mvcc_timestamp", "source.ts_hlc is null",
			frame(idEnrichedDiffSource, null, fooRow(1, "bar"), enrichedSource("", "7.0000000000", 0), optLong(9), optStr("c"))},
		{"null source", "source is null",
			frame(idEnrichedDiffSource, null, fooRow(1, "bar"), null, optLong(9), optStr("c"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Extract(ctx, "foo", 2, 3, key, tc.value)
			if !errors.Is(err, ErrEnrichedNoCommitHLC) || !errors.Is(err, ErrNoUpdated) {
				t.Fatalf("Extract error %v, want ErrEnrichedNoCommitHLC (and ErrNoUpdated)", err)
			}
			for _, want := range []string{"foo[2]@3", tc.hint, "WITH envelope = enriched, enriched_properties = 'source', updated, resolved"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if _, err := d.DecodeRow(ctx, key, tc.value); !errors.Is(err, ErrEnrichedNoCommitHLC) {
				t.Errorf("DecodeRow error %v, want ErrEnrichedNoCommitHLC", err)
			}
		})
	}
}

func TestEnrichedOpMustAgreeWithAfter(t *testing.T) {
	d := enrichedDecoder(t)
	ctx := context.Background()
	key := frame(idFooKey, optLong(1))
	src := enrichedSource("5.0000000000", "", 5)
	for _, tc := range []struct {
		name, want string
		value      []byte
	}{
		{"d with an after image", `op is "d" but after is not null`, frame(idEnrichedDiffSource, null, fooRow(1, "x"), src, optLong(9), optStr("d"))},
		{"u without an after image", `op is "u" but after is null`, frame(idEnrichedDiffSource, null, null, src, optLong(9), optStr("u"))},
		{"unknown op", `op "r" is none of`, frame(idEnrichedDiffSource, null, fooRow(1, "x"), src, optLong(9), optStr("r"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.DecodeRow(ctx, key, tc.value)
			var de *DecodeError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeRow error %v, want a DecodeError saying %q", err, tc.want)
			}
		})
	}
	// A null op (not written by CockroachDB, but allowed by the schema) is
	// no op: the row is read like a wrapped one.
	row, err := d.DecodeRow(ctx, key, frame(idEnrichedDiffSource, null, fooRow(1, "x"), src, optLong(9), null))
	if err != nil || row.Op != OpNone {
		t.Fatalf("null op: %v, op %v", err, row.Op)
	}
}

// addEnrichedSeeds adds envelope = enriched messages to a fuzz corpus
// (FuzzDecoder's decoder serves their schemas).
func addEnrichedSeeds(f *testing.F) {
	key := frame(idFooKey, optLong(1))
	src := enrichedSource("1746045115619002000.0000000003", "1746045115619002000.0000000000", 1746045115619002000)
	f.Add(key, frame(idEnrichedDiffSource, fooRow(1, "bar"), fooRow(1, "baz"), src, optLong(9), optStr("u")))
	f.Add(key, frame(idEnrichedDiffSource, fooRow(1, "baz"), null, src, optLong(9), optStr("d")))
	f.Add(key, frame(idEnrichedDiffSource, null, fooRow(1, "bar"), enrichedSource("", "", 0), optLong(9), optStr("c")))
	f.Add(key, frame(idEnrichedBare, fooRow(1, "bar"), optLong(9), optStr("c")))
}

// seedEnrichedSchemas adds the enriched goldens to a fuzz target's registry.
func seedEnrichedSchemas(t testing.TB, fake *srfake.Registry) {
	for id, name := range map[int]string{idEnrichedDiffSource: "foo-value-enriched-diff-source.avsc", idEnrichedBare: "foo-value-enriched.avsc"} {
		fake.SeedSchema(fmt.Sprintf("subject%d-value", id), 1, id, sr.Schema{Schema: schemaFile(t, name), Type: sr.TypeAvro})
	}
}

// A pre-release enriched envelope also had a top-level updated (before
// source): that is the commit HLC then, like in wrapped, and source.ts_hlc
// is not needed.
func TestEnrichedWithTopLevelUpdated(t *testing.T) {
	text := strings.Replace(schemaFile(t, "foo-value-enriched-diff-source.avsc"), `{"type":["null",{"type":"record","name":"source"`,
		`{"type":["null","string"],"name":"updated","default":null},{"type":["null",{"type":"record","name":"source"`, 1)
	_, reg := newSeededRegistry(t, map[int]string{idFooKey: schemaFile(t, "foo-key.avsc"), 40: text})
	d := NewDecoder(reg)
	ctx := context.Background()
	key := frame(idFooKey, optLong(1))
	value := frame(40, null, fooRow(1, "bar"), optStr("3.0000000001"), enrichedSource("", "", 0), optLong(9), optStr("c"))
	rec, err := d.Extract(ctx, "foo", 0, 1, key, value)
	if err != nil || rec.Updated != (hlc.Timestamp{WallTime: 3, Logical: 1}) {
		t.Fatalf("Extract = %+v, %v; want updated 3.0000000001", rec, err)
	}
	row, err := d.DecodeRow(ctx, key, value)
	if err != nil || row.Updated != rec.Updated || row.Op != OpCreate {
		t.Fatalf("DecodeRow = updated %v op %v, %v", row.Updated, row.Op, err)
	}
}
