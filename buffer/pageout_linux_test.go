//go:build linux

package buffer

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestTableMappingParsesOnlyTablesOfTheDirectory(t *testing.T) {
	prefix := []byte("/data/buf/")
	for _, c := range []struct {
		line   string
		lo, hi uintptr
		ok     bool
	}{
		{"7f0000000000-7f0000200000 r--s 00000000 fd:01 1234                       /data/buf/000012.sst", 0x7f0000000000, 0x7f0000200000, true},
		{"7f0000000000-7f0000200000 r--s 00000000 fd:01 1234                       /data/buf/000012.sst (deleted)", 0x7f0000000000, 0x7f0000200000, true},
		{"7f0000000000-7f0000200000 rw-s 00000000 fd:01 1234                       /data/buf/00001.mem", 0, 0, false},
		{"7f0000000000-7f0000200000 rw-s 00000000 fd:01 1234                       /data/buf/000001.vlog", 0, 0, false},
		{"7f0000000000-7f0000200000 r--s 00000000 fd:01 1234                       /data/bufx/000012.sst", 0, 0, false},
		{"7f0000000000-7f0000200000 r--s 00000000 fd:01 1234                       /data/buf/sub/000012.sst", 0, 0, false},
		{"7f0000000000-7f0000200000 rw-p 00000000 00:00 0 ", 0, 0, false},
		{"garbage /data/buf/1.sst", 0, 0, false},
	} {
		lo, hi, ok := tableMapping([]byte(c.line), prefix)
		if lo != c.lo || hi != c.hi || ok != c.ok {
			t.Errorf("%q: got %x-%x %v, want %x-%x %v", c.line, lo, hi, ok, c.lo, c.hi, c.ok)
		}
	}
}

// TestPageoutDropsTablePagesKeepsContents maps a table file and another
// file of the same directory, reads both, sweeps, and checks that the
// table's pages left the process (its resident size in /proc/self/smaps)
// while the other's stayed, and that the table still reads the same.
func TestPageoutDropsTablePagesKeepsContents(t *testing.T) {
	dir := t.TempDir()
	const size = 4 << 20
	data := bytes.Repeat([]byte("highwater table page "), size/21+1)[:size]
	mapFile := func(name string) []byte {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Munmap(m) })
		if !bytes.Equal(m, data) { // faults every page in
			t.Fatalf("%s: mapping differs from the file", name)
		}
		return m
	}
	table := mapFile("000001.sst")
	wal := mapFile("00001.mem")
	if r := mappingRSS(t, "000001.sst"); r < size/2 {
		t.Skipf("table mapping resident %d bytes after reading it whole: cannot observe the sweep", r)
	}

	abs, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := &pageout{prefix: []byte(abs + "/"), pageSize: int64(os.Getpagesize())}
	p.sweep()

	if r := mappingRSS(t, "000001.sst"); r > size/4 {
		t.Errorf("table mapping still %d bytes resident after the sweep, want (almost) none of %d", r, size)
	}
	if r := mappingRSS(t, "00001.mem"); r < size/2 {
		t.Errorf("memtable log mapping %d bytes resident after the sweep: it must be left alone", r)
	}
	if !bytes.Equal(table, data) || !bytes.Equal(wal, data) {
		t.Fatal("contents changed by the sweep")
	}
}

// mappingRSS returns the Rss of the mapping of the file named name in
// /proc/self/smaps.
func mappingRSS(t *testing.T, name string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = strings.HasSuffix(f[5], "/"+name)
			continue
		}
		if in && len(f) == 3 && f[0] == "Rss:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no mapping of %s in /proc/self/smaps", name)
	return 0
}
