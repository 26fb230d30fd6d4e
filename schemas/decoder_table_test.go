package schemas

import (
	"context"
	"errors"
	"testing"
)

func TestTableIsTheModelDecodeRowUses(t *testing.T) {
	d := goldenDecoder(t)
	ctx := context.Background()
	tbl, err := d.Table(ctx, idFooKey, idFooUpdated)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Name != "foo" || len(tbl.Columns) != 2 || len(tbl.Key) != 1 || tbl.Columns[tbl.Key[0]].Name != "a" {
		t.Fatalf("Table = %+v", tbl)
	}
	// key (1), value: after (1,'bar'), updated "1.0000000002"
	key := frame(idFooKey, []byte{2, 2})
	value := frame(idFooUpdated, []byte{2, 2, 2, 2, 6, 'b', 'a', 'r', 2, 24}, []byte("1.0000000002"))
	row, err := d.DecodeRow(ctx, key, value)
	if err != nil {
		t.Fatal(err)
	}
	if row.Table != tbl {
		t.Fatal("DecodeRow and Table return different *Table for the same schema ids")
	}
	var de *DecodeError
	if _, err := d.Table(ctx, idFooKey, idResolvedV2); !errors.As(err, &de) || de.SchemaID != idResolvedV2 {
		t.Fatalf("Table of a resolved schema: %v, want a DecodeError naming its id", err)
	}
	if _, err := d.Table(ctx, 9999, idFooUpdated); !errors.As(err, &de) || de.SchemaID != 9999 || !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("Table with an unknown key id: %v", err)
	}
}
