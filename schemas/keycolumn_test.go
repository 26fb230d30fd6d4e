package schemas

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestKeyColumnIsRefusedAtIngest checks that a row whose key schema is a
// nullable column, as CockroachDB writes it WITH key_column, is refused by
// Extract (ingest: such a feed has no resolved timestamps, so no window
// would ever decode it) with an error naming the record and key_column,
// while a primary-key key schema, and rows after the first, pass.
// DecodeRow refuses it too.
func TestKeyColumnIsRefusedAtIngest(t *testing.T) {
	const idCustomKey, idNotNullKey = 90, 91
	_, reg := newSeededRegistry(t, map[int]string{
		idFooUpdated: schemaFile(t, "foo-value-updated.avsc"),
		idFooKey:     schemaFile(t, "foo-key.avsc"),
		idCustomKey:  `{"type":"record","name":"foo","fields":[{"type":["null","string"],"name":"b","default":null,"__crdb__":"b STRING NULL"}]}`,
		idNotNullKey: `{"type":"record","name":"foo","fields":[{"type":["null","string"],"name":"b","default":null,"__crdb__":"b STRING NOT NULL"}]}`,
	})
	d := NewDecoder(reg)
	ctx := context.Background()
	value := frame(idFooUpdated, hx(t, "02 "+rowBar+" "+tsUpdated))
	for i := 0; i < 2; i++ {
		if _, err := d.Extract(ctx, "foo", 0, int64(i), hx(t, goldenKey), value); err != nil {
			t.Fatalf("primary key: %v", err)
		}
	}
	_, err := d.Extract(ctx, "foo", 0, 5, frame(idCustomKey, hx(t, "02 06 'bar'")), value)
	var de *DecodeError
	if !errors.As(err, &de) || !errors.Is(err, ErrKeyColumn) || de.SchemaID != idCustomKey {
		t.Fatalf("custom key: error %v, want a *DecodeError for schema %d wrapping ErrKeyColumn", err, idCustomKey)
	}
	for _, want := range []string{"foo[0]@5", "key_column", `"b"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	// DecodeRow refuses it the same way: what a window decodes, ingest
	// accepted.
	if _, err := d.DecodeRow(ctx, frame(idCustomKey, hx(t, "02 06 'bar'")), value); !errors.Is(err, ErrKeyColumn) {
		t.Errorf("custom key, DecodeRow: error %v, want one wrapping ErrKeyColumn", err)
	}
	// A key schema id the registry does not have is refused at ingest too.
	if _, err := d.Extract(ctx, "foo", 0, 7, frame(999, hx(t, "02 06 'bar'")), value); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("unknown key schema: error %v, want ErrUnknownSchema", err)
	}
	// A NOT NULL key_column looks like a primary key: it passes.
	if _, err := d.Extract(ctx, "foo", 0, 6, frame(idNotNullKey, hx(t, "02 06 'bar'")), value); err != nil {
		t.Errorf("NOT NULL custom key: %v", err)
	}
}

func TestDeclaresNull(t *testing.T) {
	for hint, want := range map[string]bool{
		"b STRING NULL":                   true,
		"b STRING NULL DEFAULT 'x'":       true,
		`"my col" STRING COLLATE de NULL`: true,
		"a INT8 NOT NULL":                 false,
		"rowid INT8 NOT VISIBLE NOT NULL DEFAULT unique_rowid()": false,
		`"NULL" STRING NOT NULL`:                                 false,
		"a INT8":                                                 false,
		"a":                                                      false,
		"n INT8 NULL AS (a + 1) STORED":                          true,
		"b STRING NULLS":                                         false,
	} {
		if got := declaresNull(hint); got != want {
			t.Errorf("declaresNull(%q) = %v, want %v", hint, got, want)
		}
	}
}
