package model

import "testing"

func TestParseInterval(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Interval
		ok   bool
	}{
		{"P1Y2M3DT4H5M6S", Interval{Months: 14, Days: 3, Micros: (4*3600 + 5*60 + 6) * 1e6}, true},
		{"P1YT-0.006S", Interval{Months: 12, Micros: -6000}, true},
		{"PT0S", Interval{}, true},
		{"P-1Y-2M-3DT-4H-5M-6.5S", Interval{Months: -14, Days: -3, Micros: -(4*3600+5*60+6)*1e6 - 500000}, true},
		{"PT1.000001S", Interval{Micros: 1000001}, true},
		{"P2W", Interval{Days: 14}, true},
		{"-P1D", Interval{Days: -1}, true},
		{"P", Interval{}, false},
		{"1Y", Interval{}, false},
		{"P1X", Interval{}, false},
		{"P1.5Y", Interval{}, false},
		{"PT99999999999999999999H", Interval{}, false},
		{"P3000000000Y", Interval{}, false},
	} {
		got, err := ParseInterval(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseInterval(%q) = %+v, %v; want %+v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok {
			back, err := ParseInterval(got.String())
			if err != nil || back != got {
				t.Errorf("ParseInterval(%q.String()=%q) = %+v, %v", tc.in, got.String(), back, err)
			}
		}
	}
}
