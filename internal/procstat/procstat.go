// Package procstat reads what Linux reports of a process's memory, of a
// memory cgroup, and of a directory's disk use: the figures `highwater
// bench` and the large end-to-end tests measure. Every reader returns
// zeros for what it cannot read, since a figure missing is reported as
// such by its caller, not as an error.
package procstat

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Mem is a process's resident memory from /proc/<pid>/status, in bytes.
type Mem struct {
	RSS  int64 // VmRSS
	HWM  int64 // VmHWM: the kernel's high-water mark of RSS
	Anon int64 // RssAnon
	File int64 // RssFile + RssShmem: page cache mapped by the process
}

// Memory returns pid's resident memory.
func Memory(pid int) Mem {
	var m Mem
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = kb << 10
		case "VmHWM:":
			m.HWM = kb << 10
		case "RssAnon:":
			m.Anon = kb << 10
		case "RssFile:", "RssShmem:":
			m.File += kb << 10
		}
	}
	return m
}

// CgroupPeak returns the peak memory charged to the memory cgroup in dir
// (v2 memory.peak, v1 memory.max_usage_in_bytes).
func CgroupPeak(dir string) int64 {
	for _, name := range []string{"memory.peak", "memory.max_usage_in_bytes"} {
		if data, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
			return n
		}
	}
	return 0
}

// CgroupOOMKills returns how many processes the kernel killed in the
// memory cgroup in dir for exceeding its limit (the oom_kill line of v2
// memory.events, v1 memory.oom_control).
func CgroupOOMKills(dir string) int64 {
	for _, name := range []string{"memory.events", "memory.oom_control"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}

// DirSize returns the disk dir's files take, in allocated blocks as du
// counts them, and their apparent size. Badger preallocates files sparse
// (a memtable's WAL at twice the memtable, the value log's file), so the
// apparent size overstates the disk by their unwritten tails.
func DirSize(dir string) (disk, apparent int64) {
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		apparent += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			disk += st.Blocks * 512 // st_blocks is in 512-byte units (stat(2))
		} else {
			disk += fi.Size()
		}
		return nil
	})
	return disk, apparent
}
