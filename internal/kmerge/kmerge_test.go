package kmerge

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// source is a sorted slice and a position in it.
type source struct {
	items []int
	pos   int
	id    int
}

func merge(sources []*source) []int {
	var live []*source
	for _, s := range sources {
		if len(s.items) > 0 {
			live = append(live, s)
		}
	}
	h := New(live, func(a, b *source) bool {
		x, y := a.items[a.pos], b.items[b.pos]
		if x != y {
			return x < y
		}
		return a.id < b.id
	})
	var out []int
	for h.Len() > 0 {
		s := h.Top()
		out = append(out, s.items[s.pos])
		if s.pos++; s.pos < len(s.items) {
			h.Fixed()
		} else if h.Pop() != s {
			panic("Pop returned another source than Top")
		}
	}
	return out
}

func TestMergeIsSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for k := 0; k <= 9; k++ {
		for trial := 0; trial < 50; trial++ {
			var sources []*source
			var want []int
			for i := 0; i < k; i++ {
				items := make([]int, r.IntN(20))
				for j := range items {
					items[j] = r.IntN(30)
				}
				slices.Sort(items)
				want = append(want, items...)
				sources = append(sources, &source{items: items, id: i})
			}
			slices.Sort(want)
			if got := merge(sources); !slices.Equal(got, want) {
				t.Fatalf("k=%d: merged %v, want %v", k, got, want)
			}
		}
	}
}

func TestMergeStepAllocatesNothing(t *testing.T) {
	sources := make([]*source, 8)
	for i := range sources {
		sources[i] = &source{items: make([]int, 1000), id: i}
	}
	h := New(slices.Clone(sources), func(a, b *source) bool { return a.id < b.id })
	if n := testing.AllocsPerRun(100, func() {
		s := h.Top()
		s.id += len(sources)
		h.Fixed()
	}); n != 0 {
		t.Fatalf("a merge step allocates %v times", n)
	}
}
