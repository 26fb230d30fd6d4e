package files

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/highwater-dev/highwater/internal/kmerge"
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
	h *kmerge.Heap[*runReader]
	// last is the run of the record next returned last; next advances it.
	last *runReader
	all  []*runReader
}

// before orders runs by their current records.
func (a *runReader) before(b *runReader) bool { return compareRecords(a.cur, b.cur) < 0 }

func newMergeSource(runs []string) (*mergeSource, error) {
	ms := &mergeSource{}
	var live []*runReader
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
			live = append(live, r)
		}
	}
	ms.h = kmerge.New(live, (*runReader).before)
	return ms, nil
}

// next returns the smallest record; it stays valid until the next call.
func (ms *mergeSource) next() ([]byte, error) {
	if ms.last != nil {
		// last is the heap's top: advance it in place.
		ok, err := ms.last.advance()
		if err != nil {
			return nil, err
		}
		if ok {
			ms.h.Fixed()
		} else {
			ms.h.Pop()
		}
		ms.last = nil
	}
	if ms.h.Len() == 0 {
		return nil, nil
	}
	r := ms.h.Top()
	ms.last = r
	return r.cur, nil
}

func (ms *mergeSource) close() {
	for _, r := range ms.all {
		r.f.Close()
	}
}
