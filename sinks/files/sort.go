package files

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// recordSource yields records in order; nil at the end.
type recordSource interface {
	next() ([]byte, error)
}

type memSource struct {
	recs [][]byte
	i    int
}

func (s *memSource) next() ([]byte, error) {
	if s.i >= len(s.recs) {
		return nil, nil
	}
	s.i++
	return s.recs[s.i-1], nil
}

// runReader reads one sorted run.
type runReader struct {
	f   *os.File
	br  *bufio.Reader
	cur []byte
}

func (r *runReader) advance() (bool, error) {
	n, err := binary.ReadUvarint(r.br)
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read sort run: %w", err)
	}
	if n > 1<<30 {
		return false, errCorrupt
	}
	if uint64(cap(r.cur)) < n {
		r.cur = make([]byte, n)
	}
	r.cur = r.cur[:n]
	if _, err := io.ReadFull(r.br, r.cur); err != nil {
		return false, fmt.Errorf("read sort run: %w", err)
	}
	return true, nil
}

// mergeSource is a k-way merge of sorted runs.
type mergeSource struct {
	h    runHeap
	last *runReader
	all  []*runReader
}

type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return compareRecords(h[i].cur, h[j].cur) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newMergeSource(runs []string) (*mergeSource, error) {
	ms := &mergeSource{}
	for _, name := range runs {
		f, err := os.Open(name)
		if err != nil {
			ms.close()
			return nil, fmt.Errorf("open sort run: %w", err)
		}
		r := &runReader{f: f, br: bufio.NewReaderSize(f, 256<<10)}
		ms.all = append(ms.all, r)
		ok, err := r.advance()
		if err != nil {
			ms.close()
			return nil, err
		}
		if ok {
			ms.h = append(ms.h, r)
		}
	}
	heap.Init(&ms.h)
	return ms, nil
}

// next returns the smallest record; it stays valid until the next call.
func (ms *mergeSource) next() ([]byte, error) {
	if ms.last != nil {
		ok, err := ms.last.advance()
		if err != nil {
			return nil, err
		}
		if ok {
			heap.Push(&ms.h, ms.last)
		}
		ms.last = nil
	}
	if len(ms.h) == 0 {
		return nil, nil
	}
	r := heap.Pop(&ms.h).(*runReader)
	ms.last = r
	return r.cur, nil
}

func (ms *mergeSource) close() {
	for _, r := range ms.all {
		r.f.Close()
	}
}
