package sinks

import (
	"testing"

	"github.com/highwater-dev/highwater/model"
)

func TestDecimalAsText(t *testing.T) {
	for _, tc := range []struct {
		p, s int
		text bool
	}{
		{0, 0, true},    // no declared precision
		{1, 0, false},   // narrowest
		{38, 38, false}, // widest 128-bit decimal, all fraction
		{38, 0, false},
		{39, 0, true}, // wider than 128 bits hold
		{10, 11, true},
		{10, -1, true},
	} {
		typ := model.Type{Kind: model.KindDecimal, Precision: tc.p, Scale: tc.s}
		if got := DecimalAsText(typ); got != tc.text {
			t.Errorf("DecimalAsText(DECIMAL(%d,%d)) = %v, want %v", tc.p, tc.s, got, tc.text)
		}
	}
}
