package hlc

import (
	"bytes"
	"testing"
	"time"
)

func TestParseHLCRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Timestamp
		text string
	}{
		{"1.0000000002", Timestamp{1, 2}, "1.0000000002"},
		{"1659643584586630201.0000000000", Timestamp{1659643584586630201, 0}, "1659643584586630201.0000000000"},
		{"1659643584586630201.0000000007?", Timestamp{1659643584586630201, 7}, "1659643584586630201.0000000007"},
		{"5", Timestamp{5, 0}, "5.0000000000"},
		{"5.1", Timestamp{5, 1000000000}, "5.1000000000"},
		{"0.0000000000", Timestamp{}, "0.0000000000"},
	} {
		got, err := Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		if got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.text {
			t.Errorf("String() = %q, want %q", got.String(), tc.text)
		}
		u, err := FromUnscaled(got.Unscaled())
		if err != nil || u != got {
			t.Errorf("unscaled round trip of %v: %v, %v", got, u, err)
		}
	}
}

func TestParseHLCRejects(t *testing.T) {
	for _, in := range []string{"", "?", ".5", "abc", "1.2.3", "1.00000000001", "-1.0", "1.-5", "99999999999999999999.0", "1.9999999999"} {
		if h, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want error", in, h)
		}
	}
}

func TestHLCOrderAndBinary(t *testing.T) {
	hs := []Timestamp{{}, {0, 1}, {1, 0}, {1, 2}, {1, 1<<31 - 1}, {2, 0}, {1659643584586630201, 3}}
	for i := range hs {
		for j := range hs {
			c := hs[i].Compare(hs[j])
			bc := bytes.Compare(hs[i].AppendBinary(nil), hs[j].AppendBinary(nil))
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if c != want || bc != want {
				t.Errorf("compare %v %v = %d (binary %d), want %d", hs[i], hs[j], c, bc, want)
			}
		}
		d, err := Decode(hs[i].AppendBinary(nil))
		if err != nil || d != hs[i] {
			t.Errorf("binary round trip %v -> %v, %v", hs[i], d, err)
		}
	}
	if got := (Timestamp{1, 1<<31 - 1}).Next(); got != (Timestamp{2, 0}) {
		t.Errorf("Next overflow = %v", got)
	}
	if got := (Timestamp{WallTime: 1659643584586630201}).Time(); !got.Equal(time.Unix(0, 1659643584586630201)) {
		t.Errorf("Time() = %v", got)
	}
}
