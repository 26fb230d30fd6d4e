package schemas

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/highwater-dev/highwater/model"
)

// fuzzDecoder serves the golden schemas and the all-types schemas from an
// in-process registry.
func fuzzDecoder(f *testing.F) *Decoder {
	keyText, valueText := typesSchemas()
	fake, reg := newSeededRegistry(f, map[int]string{
		idFooKey:         schemaFile(f, "foo-key.avsc"),
		idFooValue:       schemaFile(f, "foo-value.avsc"),
		idFooUpdated:     schemaFile(f, "foo-value-updated.avsc"),
		idFooDiffUpdated: schemaFile(f, "foo-value-diff-updated.avsc"),
		idFooDiffMVCC:    schemaFile(f, "foo-value-diff-updated-mvcc.avsc"),
		idFooBare:        schemaFile(f, "foo-value-bare-updated.avsc"),
		idResolvedV1:     schemaFile(f, "resolved-v1.avsc"),
		idResolvedV2:     schemaFile(f, "resolved-v2.avsc"),
		idSnowmanKey:     schemaFile(f, "snowman-key.avsc"),
		idSnowmanValue:   schemaFile(f, "snowman-value-updated.avsc"),
		21:               keyText,
		22:               valueText,
	})
	seedEnrichedSchemas(f, fake)
	return NewDecoder(reg, WithMaxArrayItems(1000))
}

// addSeeds adds the golden messages and one all-types row to the corpus.
func addSeeds(f *testing.F) {
	for _, tc := range goldenCases {
		var key []byte
		if tc.key != "" {
			key = hx(f, tc.key)
		}
		f.Add(key, hx(f, tc.value))
	}
	keyText, valueText := typesSchemas()
	kc, _ := goavro.NewCodec(keyText)
	vc, err := goavro.NewCodec(strings.Replace(valueText, `"precision":5}`, `"precision":5,"scale":0}`, 1))
	if err != nil {
		f.Fatal(err)
	}
	row := typeRows[0]
	after := map[string]any{}
	for _, c := range typeCols {
		after[model.SQLNameToAvroName(c.name)] = row.native[c.name]
	}
	kb, err := kc.BinaryFromNative(nil, map[string]any{"a": row.native["a"]})
	if err != nil {
		f.Fatal(err)
	}
	vb, err := vc.BinaryFromNative(nil, map[string]any{"after": u("types", after), "updated": u("string", "1.0000000001")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(frame(21, kb), frame(22, vb))
	addEnrichedSeeds(f)
}

// valueMatchesType reports whether v has the Go type documented for t.Kind.
func valueMatchesType(v any, t model.Type) bool {
	if v == nil {
		return true
	}
	switch t.Kind {
	case model.KindInt:
		_, ok := v.(int64)
		return ok
	case model.KindFloat:
		_, ok := v.(float64)
		return ok
	case model.KindBool:
		_, ok := v.(bool)
		return ok
	case model.KindString, model.KindUUID, model.KindJSON:
		_, ok := v.(string)
		return ok
	case model.KindBytes:
		_, ok := v.([]byte)
		return ok
	case model.KindDecimal:
		d, ok := v.(model.Decimal)
		return ok && (d.Special != "") != (d.Unscaled != nil)
	case model.KindDate, model.KindTimestamp, model.KindTimestampTZ:
		tm, ok := v.(time.Time)
		return ok && tm.Location() == time.UTC
	case model.KindTime:
		_, ok := v.(time.Duration)
		return ok
	case model.KindInterval:
		_, ok := v.(model.Interval)
		return ok
	case model.KindArray:
		a, ok := v.([]any)
		if !ok {
			return false
		}
		for _, e := range a {
			if !valueMatchesType(e, *t.Elem) {
				return false
			}
		}
		return true
	}
	return false
}

func FuzzExtract(f *testing.F) {
	addSeeds(f)
	d := fuzzDecoder(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, key, value []byte) {
		rec, err := d.Extract(ctx, "t", 1, 2, key, value)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Extract error %T is not *DecodeError: %v", err, err)
			}
			return
		}
		if rec.Resolved {
			if rec.Table != "" || rec.Key != nil || len(key) != 0 {
				t.Fatalf("resolved record %+v", rec)
			}
			return
		}
		if rec.Table == "" || len(key) < 5 || len(rec.Key) != len(key)-5 {
			t.Fatalf("row record %+v from key %x", rec, key)
		}
		// Whatever DecodeRow accepts must agree with Extract.
		row, err := d.DecodeRow(ctx, key, value)
		if err != nil {
			return
		}
		if row.Updated != rec.Updated || row.Delete() != rec.Delete || row.Table.Name != rec.Table {
			t.Fatalf("DecodeRow %+v disagrees with Extract %+v", row, rec)
		}
	})
}

func FuzzDecodeRow(f *testing.F) {
	addSeeds(f)
	d := fuzzDecoder(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, key, value []byte) {
		row, err := d.DecodeRow(ctx, key, value)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("DecodeRow error %T is not *DecodeError: %v", err, err)
			}
			return
		}
		// DecodeRow validates strictly more than Extract, so Extract must
		// accept it too and agree.
		rec, err := d.Extract(ctx, "t", 0, 0, key, value)
		if err != nil {
			t.Fatalf("DecodeRow accepted what Extract refused: %v", err)
		}
		if rec.Updated != row.Updated || rec.Delete != row.Delete() || rec.Table != row.Table.Name {
			t.Fatalf("Extract %+v disagrees with DecodeRow %+v", rec, row)
		}
		if row.After != nil && len(row.After) != len(row.Table.Columns) {
			t.Fatalf("%d values for %d columns", len(row.After), len(row.Table.Columns))
		}
		if vals := row.Values(); len(vals) != len(row.Table.Columns) {
			t.Fatalf("Values() has %d values for %d columns", len(vals), len(row.Table.Columns))
		}
		for i, v := range row.After {
			if c := row.Table.Columns[i]; !valueMatchesType(v, c.Type) {
				t.Fatalf("column %q (%s) decoded as %T", c.Name, c.Type, v)
			}
		}
		for i, v := range row.Before {
			if c := row.BeforeTable.Columns[i]; !valueMatchesType(v, c.Type) {
				t.Fatalf("before column %q (%s) decoded as %T", c.Name, c.Type, v)
			}
		}
	})
}
