//go:build linux

package buffer

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Badger v4 memory-maps every table file and reads it through the mapping:
// the window scan and the duplicate lookup read a few tables, but a
// compaction reads every table it merges, so with millions of buffered
// events the clean page cache of the whole LSM tree ends up mapped into
// the process and counts in its resident memory (10M unresolved events:
// 876 MiB file-backed beside 431 MiB anonymous). The kernel reclaims such
// pages under pressure, but a container's limit, an operator's dashboard
// and VmHWM count them. RocksDB avoids the same with direct I/O for its
// flushes and compactions; Badger has no such option, so a sweeper hands
// the tables' pages back after Badger has used them.
//
// The sweeper watches the process's file-backed resident memory
// (/proc/self/statm, one small read) and, when it has grown by
// pageoutSlack since the last sweep, reads /proc/self/maps and advises
// MADV_PAGEOUT on every mapping of a table file (*.sst) of the buffer's
// directory: the kernel unmaps those pages from the process and drops the
// clean ones from the page cache (dirty ones, a table still being
// written, are left alone). A later read of the table faults its pages
// back from disk, which a table read once per compaction or window scan
// rarely needs.
//
// Never MADV_DONTNEED or MADV_FREE here: between reading the maps and the
// madvise, Badger may unmap a table and the Go heap or DuckDB's allocator
// may reuse the addresses, and those would zero live memory. MADV_PAGEOUT
// never changes contents: on anonymous memory it at worst swaps pages out.
// The memtable logs (*.mem) are left alone: they are written through the
// mapping (dirty pages that pageout cannot drop), bounded by
// numMemtables, and deleted after their flush.
const (
	// pageoutCheck is how often the sweeper reads /proc/self/statm.
	pageoutCheck = 50 * time.Millisecond
	// pageoutSlack is how much file-backed resident memory may be added
	// since the last sweep before the next one: the process's binary and
	// the memtable logs are file-backed too, so the trigger is growth, not
	// a level.
	pageoutSlack = 16 << 20
)

// startPageout starts the sweeper of dir's table pages; it stops when done
// is closed, and the Store waits for it with bg.
func (s *Store) startPageout(dir string) {
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		s.log.Warn("buffer: not sweeping table pages out of memory", zap.Error(err))
		return
	}
	p := &pageout{prefix: []byte(abs + string(filepath.Separator)), pageSize: int64(os.Getpagesize())}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		t := time.NewTicker(pageoutCheck)
		defer t.Stop()
		base := p.fileResident()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
			}
			if rss := p.fileResident(); rss >= 0 && rss < base+pageoutSlack {
				continue
			}
			p.sweep()
			base = p.fileResident()
		}
	}()
}

// pageout is the sweeper's state: reused buffers, nothing shared.
type pageout struct {
	prefix   []byte // the buffer directory, absolute, with a trailing separator
	pageSize int64
	statm    bytes.Buffer
	maps     bytes.Buffer
}

// fileResident returns the process's resident shared (file-backed and
// shmem) memory in bytes from /proc/self/statm, or -1 if it cannot be
// read (then every check sweeps).
func (p *pageout) fileResident() int64 {
	b, err := readInto(&p.statm, "/proc/self/statm")
	if err != nil {
		return -1
	}
	// size resident shared text lib data dt, in pages.
	f := bytes.Fields(b)
	if len(f) < 3 {
		return -1
	}
	n, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil {
		return -1
	}
	return n * p.pageSize
}

// sweep advises MADV_PAGEOUT on every mapping of a table file under the
// buffer directory. Errors are ignored: a mapping that went away between
// the read of the maps and the madvise (ENOMEM) is what the sweep wanted
// anyway, and a kernel without MADV_PAGEOUT (before 5.4) refuses it
// harmlessly (EINVAL).
func (p *pageout) sweep() {
	b, err := readInto(&p.maps, "/proc/self/maps")
	if err != nil {
		return
	}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		lo, hi, ok := tableMapping(line, p.prefix)
		if !ok {
			continue
		}
		// The raw system call: the range is an address, not Go memory.
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, unix.MADV_PAGEOUT)
	}
}

// tableMapping parses one line of /proc/self/maps ("lo-hi perms offset
// dev inode path") and reports the range of a mapping of a *.sst file
// under prefix (a deleted file's path ends in " (deleted)").
func tableMapping(line, prefix []byte) (lo, hi uintptr, ok bool) {
	i := bytes.Index(line, prefix)
	if i < 0 {
		return 0, 0, false
	}
	path := bytes.TrimSuffix(line[i:], []byte(" (deleted)"))
	if !bytes.HasSuffix(path, []byte(".sst")) || bytes.IndexByte(path[len(prefix):], '/') >= 0 {
		return 0, 0, false
	}
	sp := bytes.IndexByte(line, ' ')
	dash := bytes.IndexByte(line, '-')
	if sp < 0 || dash < 0 || dash > sp {
		return 0, 0, false
	}
	l, err1 := strconv.ParseUint(string(line[:dash]), 16, 64)
	h, err2 := strconv.ParseUint(string(line[dash+1:sp]), 16, 64)
	if err1 != nil || err2 != nil || h <= l {
		return 0, 0, false
	}
	return uintptr(l), uintptr(h), true
}

// readInto reads a /proc file whole into buf, reusing its memory (proc
// files report no size, so os.ReadFile would allocate afresh each time).
func readInto(buf *bytes.Buffer, name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
