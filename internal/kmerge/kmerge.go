// Package kmerge is the heap of a k-way merge: k sorted sources, each
// positioned on its current item, of which the merge repeatedly takes the
// smallest. The buffer's window scan merges one Badger iterator per
// partition with it, and the files writer the sorted runs it spilled.
//
// It is container/heap's algorithm without the interface: no boxing of
// items, so a merge step allocates nothing.
package kmerge

// Heap holds the sources that still have an item, smallest first by less.
// A source is typically a pointer to a cursor; less compares the cursors'
// current items and must be a strict weak order (break ties, for example
// by source number, where the merge's output must be deterministic).
type Heap[T any] struct {
	s    []T
	less func(a, b T) bool
}

// New returns a heap of sources (which it takes over) ordered by less.
func New[T any](sources []T, less func(a, b T) bool) *Heap[T] {
	h := &Heap[T]{s: sources, less: less}
	for i := len(h.s)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	return h
}

// Len is the number of sources in the heap.
func (h *Heap[T]) Len() int { return len(h.s) }

// Top is the source with the smallest current item. The heap must not be
// empty.
func (h *Heap[T]) Top() T { return h.s[0] }

// Fixed restores the order after Top's source moved to its next item.
func (h *Heap[T]) Fixed() { h.down(0) }

// Pop removes and returns Top, a source that has no item left.
func (h *Heap[T]) Pop() T {
	n := len(h.s) - 1
	top := h.s[0]
	h.s[0] = h.s[n]
	var zero T
	h.s[n] = zero
	h.s = h.s[:n]
	h.down(0)
	return top
}

func (h *Heap[T]) down(i int) {
	n := len(h.s)
	for {
		l := 2*i + 1
		if l >= n || l < 0 {
			return
		}
		j := l
		if r := l + 1; r < n && h.less(h.s[r], h.s[l]) {
			j = r
		}
		if !h.less(h.s[j], h.s[i]) {
			return
		}
		h.s[i], h.s[j] = h.s[j], h.s[i]
		i = j
	}
}
