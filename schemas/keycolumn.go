package schemas

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"
)

// ErrKeyColumn is wrapped by the error for a row whose Kafka key is not the
// table's primary key: a changefeed created WITH key_column (which
// CockroachDB accepts only with unordered, itself incompatible with
// resolved). Versions of one row would then travel under other keys and to
// other partitions, so highwater could keep neither their order nor one row
// per key.
var ErrKeyColumn = errors.New("the Kafka key is not the table's primary key " +
	"(changefeed created WITH key_column?): highwater needs the primary key as the message key; " +
	"create the changefeed without key_column and unordered, WITH updated, resolved")

// checkPrimaryKey refuses a key schema with a field whose __crdb__ hint
// declares the column NULL: every primary-key column is NOT NULL in
// CockroachDB (the hidden rowid too), so such a key was chosen with
// key_column (encoder_avro.go EncodeKey builds it from the custom column
// with avro.NewSchemaForRow, hint and all). A key_column that is NOT NULL
// cannot be told from a primary key.
func checkPrimaryKey(s avro.Schema) error {
	rec, ok := s.(*avro.RecordSchema)
	if !ok {
		return nil // the compiler reports a key schema that is no record
	}
	for _, f := range rec.Fields() {
		hint, ok := crdbHint(f)
		if !ok || !declaresNull(hint) {
			continue
		}
		return fmt.Errorf("key field %q is the nullable column %q, which no primary key has: %w", f.Name(), hint, ErrKeyColumn)
	}
	return nil
}

// declaresNull reports whether a __crdb__ hint says NULL in so many words
// ("email STRING NULL"), not by default: parseCRDBHint takes a hint
// without either word as nullable.
func declaresNull(hint string) bool {
	typ, nullable := parseCRDBHint(hint)
	if !nullable || typ == "" {
		return false
	}
	i := strings.Index(hint, typ+" NULL")
	if i < 0 {
		return false
	}
	rest := hint[i+len(typ)+len(" NULL"):]
	return rest == "" || rest[0] == ' '
}

// checkKeySchema refuses, at ingest, a row whose key schema is not the
// table's primary key (ErrKeyColumn). A changefeed WITH key_column has no
// resolved timestamps, so the refusal must come here rather than when a
// window is applied, which would never happen. It compiles the key plan
// once per key schema id and then costs one atomic load per record. Other
// problems of the key schema are left to DecodeRow, as before; a key schema
// the registry does not have is refused here already.
func (d *Decoder) checkKeySchema(ctx context.Context, p *valuePlan, kid int) error {
	if p.keyChecked.Load() == int64(kid)+1 {
		return nil
	}
	kp, err := d.keyPlan(ctx, kid)
	if err != nil {
		return fmt.Errorf("key schema: %w", err)
	}
	if kp.notPrimary != nil {
		return fmt.Errorf("key schema: %w", kp.notPrimary)
	}
	p.keyChecked.Store(int64(kid) + 1)
	return nil
}
