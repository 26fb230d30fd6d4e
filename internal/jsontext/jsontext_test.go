package jsontext

import "testing"

func TestEscapes(t *testing.T) {
	for _, c := range []struct {
		s          string
		nul, alone bool
	}{
		{`{"a":"x"}`, false, false},
		{`{"a":"x\u0000y"}`, true, false},
		{`{"\u0000":1}`, true, false},
		{`"\\u0000"`, false, false}, // an escaped backslash, then text
		{`"\\\u0000"`, true, false}, // an escaped backslash, then the escape
		{`"\U0000"`, false, false},  // not an escape JSON knows
		{`"\ud83d\ude00"`, false, false},
		{`"\ud800"`, false, true},
		{`"\ud800\u0041"`, false, true},
		{`"\udc00"`, false, true},
		{`"\ud800\ud800\udc00"`, false, true},
		{`"\u00e9\u0000"`, true, false},
		{`"\u12"`, false, false},
		{`\`, false, false},
		{`"\ud800\`, false, true},
	} {
		nul, alone := Escapes(c.s)
		if nul != c.nul || alone != c.alone {
			t.Errorf("Escapes(%s) = %v, %v; want %v, %v", c.s, nul, alone, c.nul, c.alone)
		}
	}
}
