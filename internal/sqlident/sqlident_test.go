package sqlident

import "testing"

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"t", `"t"`},
		{"Mixed Case", `"Mixed Case"`},
		{`a"b`, `"a""b"`},
		{`""`, `""""""`},
		{"select", `"select"`},
		{"naïve.名前", `"naïve.名前"`},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
