package simulator

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The changefeed option headers_json_column_name (CockroachDB v25.2+,
// Options.HeadersJSONColumn): the named JSONB column is left out of every
// row record of the value schema (avro.TableToAvroSchema's omitColumn) and
// each row message carries the members of its JSON object as Kafka headers
// instead: a string member as its text, any other member as its JSON text
// (event_processing.go, cockroachdb/cockroach#142092). A NULL column, a
// value that is not an object and a delete send no headers. Resolved
// messages never carry headers (FlushResolvedPayload).
//
// A consumer can only get back what the headers hold, so the simulator
// stores the column in its rows (and Oracle) as it survives that trip: a
// JSON object of strings, NULL for no headers (headerRoundTrip).

// checkHeadersColumn refuses a table without the column, or with a column
// of that name that is not JSONB, as CREATE CHANGEFEED does ("required
// column ... not present on table ...", "column ... does not match required
// type json").
func (s *Sim) checkHeadersColumn(t *table) error {
	name := s.opts.HeadersJSONColumn
	if name == "" {
		return nil
	}
	sch := t.cur()
	i, ok := sch.byName[name]
	if !ok {
		return fmt.Errorf("headers_json_column_name: required column %s not present on table %s", name, t.name)
	}
	if c := sch.cols[i]; c.typ.fam != famJSON {
		return fmt.Errorf("headers_json_column_name: column %s of type %s does not match required type json", name, c.typ.sql)
	}
	return nil
}

// WithHeadersColumn returns defs with a nullable JSONB column named name
// appended to every table that has no column of that name, so that a
// changefeed WITH headers_json_column_name = name can cover them all
// (CockroachDB requires the column in every target table). `highwater
// simulate --headers-json-column` uses it on the TelemetryTables.
func WithHeadersColumn(defs []TableDef, name string) []TableDef {
	out := slices.Clone(defs)
	for i, d := range out {
		if !slices.ContainsFunc(d.Columns, func(c ColumnDef) bool { return c.Name == name }) {
			out[i].Columns = append(slices.Clip(d.Columns), ColumnDef{Name: name, Type: "JSONB"})
		}
	}
	return out
}

// withoutHeadersColumn is ts without the headers column: the columns of its
// row records. It is ts itself when the option is off or ts lacks the
// column.
func (s *Sim) withoutHeadersColumn(ts *tableSchema) *tableSchema {
	i, ok := ts.byName[s.opts.HeadersJSONColumn]
	if s.opts.HeadersJSONColumn == "" || !ok {
		return ts
	}
	out := &tableSchema{version: ts.version, since: ts.since, byName: make(map[string]int, len(ts.cols)-1)}
	for j, c := range ts.cols {
		if j == i {
			continue
		}
		out.byName[c.name] = len(out.cols)
		out.cols = append(out.cols, c)
	}
	for _, k := range ts.key {
		out.key = append(out.key, out.byName[ts.cols[k].name])
	}
	allCols(out)
	return out
}

// headersOf returns the headers CockroachDB sends for a headers column
// holding v (canonical JSON text or nil), sorted by key.
func headersOf(v any) []kgo.RecordHeader {
	s, ok := v.(string)
	if !ok {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || len(obj) == 0 {
		return nil // not an object (the column is canonical JSON), or empty
	}
	out := make([]kgo.RecordHeader, 0, len(obj))
	for k, m := range obj {
		var text string
		if str, isString := m.(string); isString {
			text = str
		} else {
			var b strings.Builder
			writeJSON(&b, m)
			text = b.String()
		}
		out = append(out, kgo.RecordHeader{Key: k, Value: []byte(text)})
	}
	slices.SortFunc(out, func(a, b kgo.RecordHeader) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// headersRoundTrip replaces the headers column of vals, a row of sch, by
// what a consumer can restore of it (headerRoundTrip), so that the rows and
// the Oracle hold that.
func (s *Sim) headersRoundTrip(sch *tableSchema, vals []any) {
	if i, ok := sch.byName[s.opts.HeadersJSONColumn]; ok && s.opts.HeadersJSONColumn != "" {
		vals[i] = headerRoundTrip(vals[i])
	}
}

// headerRoundTrip is the headers column's value as a consumer can restore
// it from headersOf(v): a JSON object of strings, or nil when no headers
// are sent.
func headerRoundTrip(v any) any {
	hdrs := headersOf(v)
	if len(hdrs) == 0 {
		return nil
	}
	obj := make(map[string]any, len(hdrs))
	for _, h := range hdrs {
		obj[h.Key] = string(h.Value)
	}
	var b strings.Builder
	writeJSON(&b, obj)
	return b.String()
}
