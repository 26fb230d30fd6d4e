// Package memlimit finds how much memory a highwater process may use (its
// container's cgroup limit, or --memory-limit) and splits it between the
// consumers of memory that can be bounded: the Go heap, which holds
// decoding, fetch buffers and Badger's memtables, caches and table
// builders, and DuckDB, whose memory is outside Go's heap. While the
// warehouse is idle, a Lender lends the Go heap what DuckDB's share does
// not hold.
package memlimit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultGoSoftLimit is the Go soft memory limit when no memory limit is
// known (no --memory-limit, no cgroup limit) and GOMEMLIMIT is not set.
// Without a limit the Go heap grows to twice its live size (GOGC=100)
// before collecting; with millions of events buffered the live heap is
// ~200-300 MB (mostly Badger's memtables and pooled table builders), so
// the heap alone would reach 600 MB. The limit makes the GC collect earlier
// instead. It is soft: a live heap above it still grows (the GC then works
// harder, never fails). Measured with 2M buffered events: no limit
// 800-1035 MiB RSS; 384 MiB 527-561; 320 MiB 493-519; 300 MiB 453-471;
// 256 MiB 483-532 but ingest 3-5x slower, the GC running constantly (see
// docs/BENCHMARKS.md).
const DefaultGoSoftLimit = 300 << 20

// The split of a total limit. The Go share is the largest because the Go
// heap holds most of the live data (Badger, decoded events, fetches); it
// is soft, so the garbage collector keeps under it by working harder.
// DuckDB's share bounds its buffer manager (staging tables, the MERGE's
// hash join and sort), which spills to its temp directory beyond it. The
// rest is headroom for memory neither bounds: the Go runtime's own and
// goroutine stacks, DuckDB's allocations outside its buffer manager, and
// the file-backed pages of Badger's memory-mapped tables and logs (page
// cache, which a cgroup charges but the kernel reclaims under pressure).
const (
	goShare     = 0.60
	duckDBShare = 0.20
	// duckDBBytesPerThread: DuckDB's operators keep per-thread state (hash
	// table partitions, sort runs); one thread per 512 MiB of total limit
	// keeps a 512 MiB container at one DuckDB thread.
	duckDBBytesPerThread = 512 << 20
)

// Plan is how a total memory limit is split.
type Plan struct {
	// Total is the process's limit in bytes; 0 means none is known and the
	// other fields keep today's defaults (GoSoftLimit DefaultGoSoftLimit,
	// DuckDB's own defaults: 80% of RAM, one thread per core).
	Total int64
	// Source says where Total came from: "memory-limit", a cgroup file, or
	// "" when there is no limit.
	Source string
	// GoSoftLimit is for debug.SetMemoryLimit.
	GoSoftLimit int64
	// DuckDBMemory is DuckDB's memory_limit in bytes; 0 leaves DuckDB's
	// default.
	DuckDBMemory int64
	// DuckDBThreads is DuckDB's threads setting; 0 leaves DuckDB's default.
	DuckDBThreads int
	// DuckDBReturnFreed says that DuckDB's jemalloc returns the pages
	// DuckDB frees to the kernel at once (SetDuckDBDecay(DuckDBDecay))
	// rather than keeping them for a second, or, while DuckDB is idle,
	// indefinitely: under a limit that memory belongs to no share.
	DuckDBReturnFreed bool
}

// Split divides total bytes among the consumers of memory on a machine of
// cpus cores. A total of 0 (no limit) gives today's defaults.
func Split(total int64, cpus int) Plan {
	if total <= 0 {
		return Plan{GoSoftLimit: DefaultGoSoftLimit}
	}
	threads := int(total / duckDBBytesPerThread)
	threads = max(1, min(threads, cpus))
	return Plan{
		Total:         total,
		GoSoftLimit:   int64(float64(total) * goShare),
		DuckDBMemory:  int64(float64(total) * duckDBShare),
		DuckDBThreads: threads,

		DuckDBReturnFreed: true,
	}
}

// unlimitedV1 is the smallest value taken for "no limit" in cgroup v1's
// memory.limit_in_bytes, which reports no limit as the largest page-aligned
// int64 (9223372036854771712).
const unlimitedV1 = 1 << 62

// CgroupLimit returns the memory limit of the cgroup this process runs in
// and the file it was read from; 0 and "" when there is none. root is the
// file-system root holding proc/self/cgroup and sys/fs/cgroup ("/" in
// production, a fake tree in tests).
//
// cgroup v2 (a "0::/path" line) is read from sys/fs/cgroup/<path>/memory.max,
// cgroup v1 from sys/fs/cgroup/memory/<path>/memory.limit_in_bytes. The
// cgroup's ancestors limit it too, so every ancestor that exists under the
// mount is read and the smallest limit wins; this also covers a container
// whose /proc/self/cgroup names a host path while its own cgroup is mounted
// at the root of sys/fs/cgroup. v2 is preferred when both have a limit.
func CgroupLimit(root string) (int64, string, error) {
	data, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "", nil // not Linux, or no /proc
	}
	if err != nil {
		return 0, "", fmt.Errorf("cgroup memory limit: %w", err)
	}
	var v2, v1 string
	v2Found, v1Found := false, false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2, v2Found = parts[2], true
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1, v1Found = parts[2], true
			}
		}
	}
	if v2Found {
		limit, file, err := smallest(filepath.Join(root, "sys/fs/cgroup"), v2, "memory.max")
		if err != nil || limit > 0 {
			return limit, file, err
		}
	}
	if v1Found {
		return smallest(filepath.Join(root, "sys/fs/cgroup/memory"), v1, "memory.limit_in_bytes")
	}
	return 0, "", nil
}

// smallest reads name in the cgroup at cgPath under mount and in each of
// its ancestors that exists, and returns the smallest limit and its file.
func smallest(mount, cgPath, name string) (int64, string, error) {
	var best int64
	var bestFile string
	for p := path.Clean("/" + cgPath); ; p = path.Dir(p) {
		file := filepath.Join(mount, filepath.FromSlash(p), name)
		limit, err := readLimit(file)
		if err != nil {
			return 0, "", err
		}
		if limit > 0 && (best == 0 || limit < best) {
			best, bestFile = limit, file
		}
		if p == "/" {
			return best, bestFile, nil
		}
	}
}

// readLimit reads a cgroup memory limit file: a byte count, or "max" (v2)
// or a value of 2^62 or more (v1) for none, which, like a missing file,
// gives 0.
func readLimit(file string) (int64, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cgroup memory limit: %w", err)
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// A value above int64 is "no limit" too.
		if u, uerr := strconv.ParseUint(s, 10, 64); uerr == nil && u >= unlimitedV1 {
			return 0, nil
		}
		return 0, fmt.Errorf("cgroup memory limit: %s: %q is not a byte count", file, s)
	}
	if n <= 0 || n >= unlimitedV1 {
		return 0, nil
	}
	return n, nil
}
