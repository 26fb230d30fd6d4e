package schemas

import (
	"context"
	"errors"

	"github.com/highwater-dev/highwater/model"
)

// Table returns the column model that DecodeRow gives rows written with
// these key and value schema ids (the same pointer), without a record: for
// tools that prepare a warehouse table, and for tests that write an oracle.
func (d *Decoder) Table(ctx context.Context, keySchemaID, valueSchemaID int) (*model.Table, error) {
	p, err := d.valuePlan(ctx, valueSchemaID)
	if err != nil {
		return nil, &DecodeError{SchemaID: valueSchemaID, Err: err}
	}
	if p.err != nil {
		return nil, &DecodeError{SchemaID: valueSchemaID, Err: p.err}
	}
	if p.resolved {
		return nil, &DecodeError{SchemaID: valueSchemaID, Err: errors.New("a resolved-message schema has no table")}
	}
	_, tables, err := d.rowTables(ctx, p, keySchemaID)
	if err != nil {
		return nil, &DecodeError{SchemaID: keySchemaID, Err: err}
	}
	return tables.table, nil
}
