package sinks

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNameRuleMap(t *testing.T) {
	pg := TableRule(63, false)
	duck := TableRule(0, true)
	files := NameRule{MaxBytes: 248, Reserved: []string{"_highwater", "_dlq"}}
	long60 := strings.Repeat("t", 60)
	cases := []struct {
		name   string
		rule   NameRule
		source string
		taken  []string // folded names held by other sources
		want   string   // "" = mapped: Hashed(source, 0)
		keeps  bool
	}{
		{"short name kept", pg, "orders", nil, "orders", true},
		{"55 bytes fit with _changes", pg, strings.Repeat("a", 55), nil, strings.Repeat("a", 55), true},
		{"56 bytes plus _changes overflow", pg, strings.Repeat("a", 56), nil, "", false},
		{"60 bytes", pg, long60, nil, "", false},
		{"highwater_checkpoints", pg, "highwater_checkpoints", nil, "", false},
		{"highwater_dlq", pg, "highwater_dlq", nil, "", false},
		{"any highwater_ name", pg, "highwater_mine", nil, "", false},
		{"HIGHWATER_ folded in DuckDB", duck, "HighWater_Tables", nil, "", false},
		{"HIGHWATER_ reserved in PostgreSQL too", pg, "HIGHWATER_x", nil, "", false},
		{"highwater alone is kept", pg, "highwater", nil, "highwater", true},
		{"x_changes beside x", pg, "x_changes", []string{"x", "x_changes"}, "", true},
		{"x after x_changes", pg, "x", []string{"x_changes", "x_changes_changes"}, "", true},
		{"x_changes alone kept", pg, "x_changes", nil, "x_changes", true},
		{"x_asof beside x", pg, "x_asof", []string{"x", "x_changes", "x_asof"}, "", true},
		{"x after x_asof", pg, "x", []string{"x_asof", "x_asof_changes", "x_asof_asof"}, "", true},
		{"X_ASOF beside x in DuckDB", duck, "X_ASOF", []string{"x", "x_changes", "x_asof"}, "", true},
		{"x_asof alone kept", pg, "x_asof", nil, "x_asof", true},
		{"looks mapped with _asof", pg, "t_h0123abcd_asof", nil, "", false},
		{"Orders after orders in DuckDB", duck, "Orders", []string{"orders", "orders_changes"}, "", true},
		{"Orders beside orders in PostgreSQL", pg, "Orders", nil, "Orders", true},
		{"looks mapped", pg, "t_h0123abcd", nil, "", false},
		{"looks mapped with _changes", pg, "t_h0123abcd_changes", nil, "", false},
		{"looks mapped, folded", duck, "t_H0123ABCD", nil, "", false},
		{"not hex is kept", pg, "t_h0123abcg", nil, "t_h0123abcg", true},
		{"NUL", pg, "a\x00b", nil, "", false},
		{"invalid UTF-8", pg, "a\xffb", nil, "", false},
		{"files _highwater", files, "_highwater", nil, "", false},
		{"files _dlq", files, "_dlq", nil, "", false},
		{"files long", files, strings.Repeat("n", 249), nil, "", false},
		{"files 248 kept", files, strings.Repeat("n", 248), nil, strings.Repeat("n", 248), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.rule.Keeps(c.source); got != c.keeps {
				t.Errorf("Keeps(%q) = %v, want %v", c.source, got, c.keeps)
			}
			held := map[string]bool{}
			for _, n := range c.taken {
				held[n] = true
			}
			got, err := c.rule.Map(c.source, func(n string) (bool, error) { return held[n], nil })
			if err != nil {
				t.Fatal(err)
			}
			want := c.want
			if want == "" {
				want = c.rule.Hashed(c.source, 0)
			}
			if got != want {
				t.Fatalf("Map(%q) = %q, want %q", c.source, got, want)
			}
			checkHoldable(t, c.rule, got)
		})
	}
}

func TestNameRuleEmptyNameIsAnError(t *testing.T) {
	if n, err := TableRule(63, false).Map("", nil); err != ErrEmptyName {
		t.Fatalf("Map(\"\") = %q, %v; want ErrEmptyName", n, err)
	}
}

func checkHoldable(t *testing.T, r NameRule, n string) {
	t.Helper()
	for _, d := range r.derived(n) {
		if r.MaxBytes > 0 && len(d) > r.MaxBytes {
			t.Errorf("%q is %d bytes, more than %d", d, len(d), r.MaxBytes)
		}
		if !utf8.ValidString(d) || strings.IndexByte(d, 0) >= 0 {
			t.Errorf("%q is not valid UTF-8 without NUL", d)
		}
	}
}

func TestNameRuleHashedForm(t *testing.T) {
	r := TableRule(63, false)
	src := strings.Repeat("é", 40) // 80 bytes: the cut must not split a rune
	got := r.Hashed(src, 0)
	if len(got)+len(ChangesSuffix) > 63 || !utf8.ValidString(got) {
		t.Fatalf("Hashed = %q (%d bytes)", got, len(got))
	}
	if !strings.HasPrefix(got, "éé") || !looksMapped(got) {
		t.Fatalf("Hashed = %q: want the name's start and a hash suffix", got)
	}
	if again := r.Hashed(src, 0); again != got {
		t.Fatalf("Hashed is not deterministic: %q then %q", got, again)
	}
	if other := r.Hashed(src, 1); other == got || !looksMapped(other) {
		t.Fatalf("attempt 1 = %q, want another mapped name than %q", other, got)
	}
	if n := r.Hashed("a\x00b\xff", 0); strings.ContainsAny(n[:4], "\x00") || !utf8.ValidString(n) || !strings.HasPrefix(n, "a_b_") {
		t.Fatalf("Hashed of NUL and invalid bytes = %q", n)
	}
}

// TestNameRuleInjective maps a set of hostile names one after another, as a
// writer does, each seeing the names taken so far, and checks that no two
// share a warehouse name or a changelog name, folded; among them a name
// equal to another's mapped form, in both orders, and a forced hash
// collision.
func TestNameRuleInjective(t *testing.T) {
	for _, r := range []NameRule{TableRule(63, false), TableRule(0, true), TableRule(63, true)} {
		long := strings.Repeat("L", 70)
		sources := []string{
			"x", "x_changes", "x_changes_changes", "Orders", "orders", "ORDERS",
			long, long + "2", r.Hashed(long, 0), r.Hashed(long+"2", 0) + "_changes",
			"highwater_checkpoints", r.Hashed("highwater_checkpoints", 0),
			strings.Repeat("é", 40), strings.Repeat("é", 40) + "x",
		}
		for _, order := range [][]string{sources, reversed(sources)} {
			held := map[string]string{}
			for _, s := range order {
				n, err := r.Map(s, func(f string) (bool, error) { _, ok := held[f]; return ok, nil })
				if err != nil {
					t.Fatal(err)
				}
				checkHoldable(t, r, n)
				for _, d := range r.derived(r.Fold(n)) {
					if other, ok := held[d]; ok {
						t.Fatalf("%+v: %q maps to %q, already held by %q", r, s, d, other)
					}
					held[d] = s
				}
			}
		}
		// A taken first hash (as a 32-bit collision would leave it) moves
		// on to the next attempt.
		first := r.Hashed("highwater_x", 0)
		n, err := r.Map("highwater_x", func(f string) (bool, error) { return f == r.Fold(first), nil })
		if err != nil || n != r.Hashed("highwater_x", 1) {
			t.Fatalf("Map with the first hash taken = %q, %v; want attempt 1 %q", n, err, r.Hashed("highwater_x", 1))
		}
	}
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}
