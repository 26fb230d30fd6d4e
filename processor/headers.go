package processor

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/schemas"
)

// headersColumn puts back the JSONB column that a changefeed created WITH
// headers_json_column_name leaves out of its values and sends as Kafka
// record headers instead (CockroachDB v25.2+). Nothing in the Avro says the
// column existed, so the operator names it (Config.HeadersJSONColumn).
//
// The headers travel through the buffer with the value (buffer.PackHeaders)
// and become the column when the row is decoded: a JSON object of the
// headers, every value a JSON string. CockroachDB writes a string member's
// text and any other member as JSON text, so `{"n": 1}` comes back as
// `{"n": "1"}`. A record without headers (the column was NULL or `{}`, or the
// row is deleted) gives NULL.
type headersColumn struct {
	name string

	mu sync.Mutex
	// tables maps a decoder's column model to the one with the column
	// appended, so that the pointer stays one per schema version.
	tables map[*model.Table]*model.Table
}

func newHeadersColumn(name string) *headersColumn {
	if name == "" {
		return nil
	}
	return &headersColumn{name: name, tables: map[*model.Table]*model.Table{}}
}

// bufferValue is the payload ingest buffers for r: its value, with its
// headers when the column is to be restored.
func (h *headersColumn) bufferValue(r *kgo.Record) []byte {
	if h == nil || len(r.Headers) == 0 {
		return r.Value
	}
	hdrs := make([]buffer.Header, len(r.Headers))
	for i, rh := range r.Headers {
		hdrs[i] = buffer.Header{Key: rh.Key, Value: rh.Value}
	}
	return buffer.PackHeaders(hdrs, r.Value)
}

// splitEvent separates a buffered event's headers from its Kafka value. It
// runs whether or not the column is configured, so that events buffered
// with headers stay decodable after the flag is removed.
func splitEvent(ev buffer.Event) (buffer.Event, []buffer.Header, error) {
	hdrs, value, err := buffer.SplitHeaders(ev.Value)
	if err != nil {
		return ev, nil, &schemas.DecodeError{SchemaID: -1, Err: err}
	}
	ev.Value = value
	return ev, hdrs, nil
}

// restore appends the column to row. A value schema that has a column of
// that name already (a feed created without headers_json_column_name) is
// left as it is.
func (h *headersColumn) restore(row schemas.Row, hdrs []buffer.Header) schemas.Row {
	if h == nil || row.Table == nil {
		return row
	}
	t := h.table(row.Table)
	if t == row.Table {
		return row
	}
	row.Table = t
	if row.After != nil {
		var v any
		if len(hdrs) > 0 {
			s := headersJSON(hdrs)
			v = s
			row.Size += len(s) + 16
		}
		row.After = append(row.After[:len(row.After):len(row.After)], v)
	}
	if row.BeforeTable != nil {
		row.BeforeTable = h.table(row.BeforeTable)
		if row.Before != nil && len(row.Before) < len(row.BeforeTable.Columns) {
			// The previous image's headers were never sent: unknown.
			row.Before = append(row.Before[:len(row.Before):len(row.Before)], nil)
		}
	}
	return row
}

// table returns t with the column appended (t itself when it has a column
// of that name).
func (h *headersColumn) table(t *model.Table) *model.Table {
	h.mu.Lock()
	defer h.mu.Unlock()
	if out, ok := h.tables[t]; ok {
		return out
	}
	out := t
	if _, has := t.Column(h.name); !has {
		out = &model.Table{Name: t.Name, Key: t.Key, Columns: append(slices.Clip(t.Columns), model.Column{
			Name: h.name, AvroName: model.SQLNameToAvroName(h.name), Type: model.Type{Kind: model.KindJSON},
			SQLType: "JSONB", Nullable: true,
		})}
	}
	h.tables[t] = out
	return out
}

// headersJSON renders headers as CockroachDB prints a JSONB object: keys
// sorted, ", " and ": " between members, every value a string (null for a
// null header value). A key sent twice keeps its last value, as a JSON
// object holds a key once. Bytes that are not UTF-8 become U+FFFD.
func headersJSON(hdrs []buffer.Header) string {
	last := make(map[string][]byte, len(hdrs))
	keys := make([]string, 0, len(hdrs))
	for _, hd := range hdrs {
		if _, seen := last[hd.Key]; !seen {
			keys = append(keys, hd.Key)
		}
		last[hd.Key] = hd.Value
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		writeJSONString(&b, k)
		b.WriteString(": ")
		if v := last[k]; v == nil {
			b.WriteString("null")
		} else {
			writeJSONString(&b, string(v))
		}
	}
	b.WriteByte('}')
	return b.String()
}

func writeJSONString(b *strings.Builder, s string) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a Go string always encodes
	b.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}
