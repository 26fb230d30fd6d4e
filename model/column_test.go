package model

import (
	"math/big"
	"testing"
)

func TestDecimalRescale(t *testing.T) {
	dec := func(unscaled int64, scale int) Decimal { return Decimal{Unscaled: big.NewInt(unscaled), Scale: scale} }
	cases := []struct {
		name  string
		d     Decimal
		scale int
		want  string // unscaled result, or "" for an error
	}{
		{"same scale", dec(1234, 2), 2, "1234"},
		{"scale up", dec(1234, 2), 4, "123400"},
		{"scale down exact", dec(123400, 4), 2, "1234"},
		{"scale down loses digits", dec(123401, 4), 2, ""},
		{"negative", dec(-5, 0), 3, "-5000"},
		{"negative scale", dec(12, -2), 0, "1200"},
		{"nil unscaled is zero", Decimal{Scale: 1}, 3, "0"},
		{"NaN", Decimal{Special: "NaN"}, 2, ""},
		{"Infinity", Decimal{Special: "-Infinity"}, 2, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before string
			if c.d.Unscaled != nil {
				before = c.d.Unscaled.String()
			}
			got, err := c.d.Rescale(c.scale)
			if c.want == "" {
				if err == nil {
					t.Fatalf("Rescale(%s, %d) = %s, want an error", c.d, c.scale, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Rescale(%s, %d): %v", c.d, c.scale, err)
			}
			if got.String() != c.want {
				t.Fatalf("Rescale(%s, %d) = %s, want %s", c.d, c.scale, got, c.want)
			}
			if c.d.Unscaled != nil && c.d.Unscaled.String() != before {
				t.Fatalf("Rescale modified its receiver: %s -> %s", before, c.d.Unscaled)
			}
		})
	}
}
