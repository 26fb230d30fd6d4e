package processor

import (
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
)

func TestClosedAtIsWhenTheResolvedFirstReachedTheFrontier(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := func(n int64) hlc.Timestamp { return hlc.Timestamp{WallTime: n} }
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	cases := []struct {
		name  string
		marks []int64 // resolved timestamps, ingested at 1s, 2s, ...
		f     int64
		want  time.Time
		left  int // marks kept (above f)
	}{
		{"exact mark", []int64{10, 20, 30}, 20, at(2), 1},
		{"backlog: the first of several later marks", []int64{10, 20, 30, 40}, 10, at(1), 3},
		{"frontier between marks: the first above it", []int64{10, 30}, 20, at(2), 1},
		{"all at or below", []int64{10, 20}, 20, at(2), 0},
		{"no marks (buffer reused after a restart)", nil, 20, time.Time{}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &partState{}
			for i, m := range c.marks {
				st.mark(h(m), at(i+1))
			}
			if got := st.closedAt(h(c.f)); !got.Equal(c.want) {
				t.Fatalf("closedAt(%d) = %v, want %v", c.f, got, c.want)
			}
			if len(st.marks) != c.left {
				t.Fatalf("%d marks left, want %d", len(st.marks), c.left)
			}
		})
	}
}

func TestMarksStayBounded(t *testing.T) {
	st := &partState{}
	for i := range 10 * maxMarks {
		st.mark(hlc.Timestamp{WallTime: int64(i + 1)}, time.Unix(int64(i), 0))
	}
	if len(st.marks) > maxMarks {
		t.Fatalf("%d marks kept, want at most %d", len(st.marks), maxMarks)
	}
	// The newest survive: a window through the last resolved closes at its time.
	last := hlc.Timestamp{WallTime: int64(10 * maxMarks)}
	if got := st.closedAt(last); !got.Equal(time.Unix(int64(10*maxMarks-1), 0)) {
		t.Fatalf("closedAt(last) = %v", got)
	}
}
