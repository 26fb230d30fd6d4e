package buffer

import (
	"context"
	"fmt"
	"testing"
)

// TestGroupIsWhatWasBufferedWhenTaken takes a group of scan rows at one
// HLC, writes more rows at the same HLC (the scan streaming on) and above
// it, and trims the group: exactly the group's events go, those written
// after it was taken stay (with their offset index, so a checkpoint still
// resumes at them), Base does not move, and the counters match the store.
func TestGroupIsWhatWasBufferedWhenTaken(t *testing.T) {
	ctx := context.Background()
	s := openMem(t, 0)
	p, q := Partition{"t", 0}, Partition{"t", 1}
	scanAt, later := at(100, 0), at(200, 0)
	var first []Event
	for i := range 300 {
		first = append(first, ev(scanAt, "orders", fmt.Sprintf("k%04d", i), int64(i)))
	}
	write(t, s, p, first...)
	write(t, s, q, ev(scanAt, "orders", "q1", 0))

	if h, ok, err := s.LowestAbove(p, at(0, 0)); err != nil || !ok || h != scanAt {
		t.Fatalf("LowestAbove = %s, %v, %v; want %s", h, ok, err, scanAt)
	}
	g := s.TakeGroup([]Partition{p, q, {"t", 9}}, scanAt)
	if len(g.Parts) != 2 || g.Below[0] != 300 || g.Below[1] != 1 {
		t.Fatalf("group %+v: want partitions 0 and 1 below offsets 300 and 1", g)
	}
	// The scan goes on at the same HLC (a re-sent copy of a group row
	// among them), and an update above it arrives.
	var more []Event
	for i := 300; i < 350; i++ {
		more = append(more, ev(scanAt, "orders", fmt.Sprintf("k%04d", i), int64(i)))
	}
	more = append(more, ev(scanAt, "orders", "k0005", 350), ev(later, "orders", "k0001", 351))
	write(t, s, p, more...)

	n, _, err := s.GroupSize(ctx, g)
	if err != nil || n != 301 {
		t.Fatalf("GroupSize = %d, %v; want 301", n, err)
	}
	var got []rec
	if err := s.ScanGroup(ctx, g, func(bp Partition, e Event) error {
		got = append(got, rec{bp, e.Updated, e.Table, string(e.Key), e.Offset, string(e.Value)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 301 || got[0].Key != "k0000" || got[299].Key != "k0299" || got[300].P != q {
		t.Fatalf("ScanGroup gave %d events (%v ... %v), want the 300 of p then q's", len(got), got[0], got[len(got)-1])
	}
	for _, r := range got {
		if r.Offset >= 300 && r.P == p {
			t.Fatalf("ScanGroup gave %v, written after the group was taken", r)
		}
	}

	if err := s.TrimGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	rest := scan(t, s, []Partition{p, q}, maxHLC, false)
	if len(rest) != 51 {
		t.Fatalf("after TrimGroup %d events are buffered, want the 50 written after the group and the update: %v", len(rest), rest)
	}
	for _, r := range rest {
		if r.Offset < 300 {
			t.Errorf("event %v of the group is still buffered", r)
		}
	}
	st := mustState(t, s, p)
	if st.Events != 51 || !st.Base.IsZero() {
		t.Errorf("state %+v: want 51 events and Base unmoved", st)
	}
	if u := s.Usage(); u.Events != 51 {
		t.Errorf("usage %+v, want 51 events", u)
	}
	// The checkpoint resumes at the first event still to apply, not at
	// the trimmed group's first offset (its index runs are gone) and not
	// beyond the rows that arrived after it.
	if low, err := s.LowOffset(p, at(0, 0)); err != nil || low != 300 {
		t.Errorf("LowOffset = %d, %v; want 300", low, err)
	}
	if low, err := s.LowOffset(q, at(0, 0)); err != nil || low != 1 {
		t.Errorf("LowOffset(q) = %d, %v; want 1 (Consumed)", low, err)
	}
	// The next group at the same HLC is the rest of the scan.
	g2 := s.TakeGroup([]Partition{p}, scanAt)
	if n, _, err := s.GroupSize(ctx, g2); err != nil || n != 50 {
		t.Errorf("second group: %d events, %v; want 50", n, err)
	}
	if h, ok, err := s.LowestAbove(p, scanAt); err != nil || !ok || h != later {
		t.Errorf("LowestAbove(scan) = %s, %v, %v; want %s", h, ok, err, later)
	}
}

// TestGroupsBesideWritesLoseNothing applies groups (take, scan, trim) over
// and over while another goroutine keeps writing rows at the same HLC, as
// a scan streams in while its groups are applied: every row written is
// scanned by exactly one group or still buffered at the end.
func TestGroupsBesideWritesLoseNothing(t *testing.T) {
	ctx := context.Background()
	s := openMem(t, 0)
	p := Partition{"t", 0}
	scanAt := at(100, 0)
	const batches, per = 200, 50
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range batches {
			evs := make([]Event, per)
			for i := range evs {
				off := int64(b*per + i)
				evs[i] = ev(scanAt, "orders", fmt.Sprintf("k%06d", (off*7919)%(batches*per)), off)
			}
			write(t, s, p, evs...)
		}
	}()
	seen := map[int64]bool{}
	applyGroup := func() {
		g := s.TakeGroup([]Partition{p}, scanAt)
		if err := s.ScanGroup(ctx, g, func(_ Partition, e Event) error {
			if seen[e.Offset] {
				t.Errorf("offset %d applied by two groups", e.Offset)
			}
			seen[e.Offset] = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.TrimGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		applyGroup()
	}
	rest := scan(t, s, []Partition{p}, maxHLC, false)
	for _, r := range rest {
		if seen[r.Offset] {
			t.Errorf("offset %d both applied and still buffered", r.Offset)
		}
		seen[r.Offset] = true
	}
	if len(seen) != batches*per {
		t.Errorf("%d of %d rows were applied or are buffered: some were lost", len(seen), batches*per)
	}
	if st := mustState(t, s, p); st.Events != int64(len(rest)) {
		t.Errorf("state counts %d events, %d are buffered", st.Events, len(rest))
	}
	first := int64(batches * per)
	for _, r := range rest {
		first = min(first, r.Offset)
	}
	if low, err := s.LowOffset(p, at(0, 0)); err != nil || low > first {
		t.Errorf("LowOffset = %d, %v: beyond the buffered event at offset %d", low, err, first)
	}
}
