package memlimit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRoot writes files (path relative to the root -> content) into a
// temporary directory standing for "/".
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestCgroupLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
		file  string // suffix of the file the limit came from
	}{
		{
			name: "v2 limit on the process's cgroup",
			files: map[string]string{
				"proc/self/cgroup":                             "0::/kubepods/pod1/ctr\n",
				"sys/fs/cgroup/kubepods/pod1/ctr/memory.max":   "536870912\n",
				"sys/fs/cgroup/kubepods/pod1/memory.max":       "max\n",
				"sys/fs/cgroup/kubepods/memory.max":            "max\n",
				"sys/fs/cgroup/kubepods/pod1/ctr/memory.high":  "max\n",
				"sys/fs/cgroup/kubepods/pod1/ctr/cgroup.procs": "1\n",
			},
			want: 512 * mib, file: "kubepods/pod1/ctr/memory.max",
		},
		{
			name: "v2 parent's limit is smaller",
			files: map[string]string{
				"proc/self/cgroup":                           "0::/kubepods/pod1/ctr\n",
				"sys/fs/cgroup/kubepods/pod1/ctr/memory.max": "1073741824\n",
				"sys/fs/cgroup/kubepods/pod1/memory.max":     "402653184\n",
			},
			want: 384 * mib, file: "kubepods/pod1/memory.max",
		},
		{
			name: "v2 with a cgroup namespace: the container is the root",
			files: map[string]string{
				"proc/self/cgroup":         "0::/\n",
				"sys/fs/cgroup/memory.max": "268435456\n",
			},
			want: 256 * mib, file: "sys/fs/cgroup/memory.max",
		},
		{
			name: "v2 without a limit",
			files: map[string]string{
				"proc/self/cgroup":                    "0::/user.slice/session-1.scope\n",
				"sys/fs/cgroup/user.slice/memory.max": "max\n",
			},
		},
		{
			name: "v1 limit",
			files: map[string]string{
				"proc/self/cgroup": "9:name=systemd:/\n5:devices:/\n4:memory:/docker/abc\n0::/\n",
				"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "536870912\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes":            "9223372036854771712\n",
			},
			want: 512 * mib, file: "memory/docker/abc/memory.limit_in_bytes",
		},
		{
			name: "v1 without a cgroup namespace: the host path is not mounted, the root is the container",
			files: map[string]string{
				"proc/self/cgroup":                           "4:memory:/docker/abc\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes": "805306368\n",
			},
			want: 768 * mib, file: "sys/fs/cgroup/memory/memory.limit_in_bytes",
		},
		{
			name: "v1 unlimited",
			files: map[string]string{
				"proc/self/cgroup": "4:memory:/process_api/x\n",
				"sys/fs/cgroup/memory/process_api/x/memory.limit_in_bytes": "9223372036854771712\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes":               "9223372036854775807\n",
			},
		},
		{
			name: "v1 memory controller mounted with others",
			files: map[string]string{
				"proc/self/cgroup": "3:cpu,memory:/a\n",
				"sys/fs/cgroup/memory/a/memory.limit_in_bytes": "1073741824\n",
			},
			want: 1024 * mib, file: "memory/a/memory.limit_in_bytes",
		},
		{
			name: "hybrid: v2 without the memory controller, v1 has the limit",
			files: map[string]string{
				"proc/self/cgroup": "4:memory:/a\n0::/a\n",
				"sys/fs/cgroup/memory/a/memory.limit_in_bytes": "536870912\n",
			},
			want: 512 * mib, file: "memory/a/memory.limit_in_bytes",
		},
		{name: "no /proc", files: map[string]string{"etc/hostname": "x\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, file, err := CgroupLimit(fakeRoot(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("limit %d, want %d (from %s)", got, tc.want, file)
			}
			if tc.want > 0 && !strings.HasSuffix(filepath.ToSlash(file), tc.file) {
				t.Fatalf("limit read from %s, want .../%s", file, tc.file)
			}
		})
	}
}

// TestCgroupLimitGarbage: a limit file that is not a number is an error
// naming the file, not "no limit".
func TestCgroupLimitGarbage(t *testing.T) {
	root := fakeRoot(t, map[string]string{
		"proc/self/cgroup":           "0::/a\n",
		"sys/fs/cgroup/a/memory.max": "lots\n",
	})
	_, _, err := CgroupLimit(root)
	if err == nil || !strings.Contains(err.Error(), "memory.max") {
		t.Fatalf("err = %v, want one naming memory.max", err)
	}
}

func TestSplit(t *testing.T) {
	const mib = 1 << 20
	// No limit: today's behaviour.
	if p := Split(0, 8); p != (Plan{GoSoftLimit: DefaultGoSoftLimit}) {
		t.Fatalf("Split(0) = %+v", p)
	}
	for _, tc := range []struct {
		total   int64
		cpus    int
		threads int
	}{
		{256 * mib, 2, 1},
		{512 * mib, 2, 1},
		{1024 * mib, 2, 2},
		{8192 * mib, 2, 2},
		{8192 * mib, 64, 16},
	} {
		p := Split(tc.total, tc.cpus)
		if !p.DuckDBReturnFreed {
			t.Errorf("Split(%d MiB): DuckDB's allocator keeps freed pages outside every share", tc.total/mib)
		}
		if p.DuckDBThreads != tc.threads {
			t.Errorf("Split(%d MiB, %d cpus): %d DuckDB threads, want %d", tc.total/mib, tc.cpus, p.DuckDBThreads, tc.threads)
		}
		// The bounded shares leave a fifth of the total as headroom.
		if head := p.Total - p.GoSoftLimit - p.DuckDBMemory; head < p.Total/5-1 || p.GoSoftLimit <= p.DuckDBMemory || p.DuckDBMemory <= 0 {
			t.Errorf("Split(%d MiB): Go %d MiB, DuckDB %d MiB, headroom %d MiB", tc.total/mib, p.GoSoftLimit/mib, p.DuckDBMemory/mib, head/mib)
		}
	}
	// A 512 MiB container keeps the Go soft limit near the measured sweet
	// spot of 300 MiB (see DefaultGoSoftLimit) and gives DuckDB ~100 MiB.
	p := Split(512*mib, 2)
	if p.GoSoftLimit < 300*mib || p.GoSoftLimit > 320*mib || p.DuckDBMemory < 96*mib || p.DuckDBMemory > 110*mib {
		t.Fatalf("Split(512 MiB) = Go %d MiB, DuckDB %d MiB", p.GoSoftLimit/mib, p.DuckDBMemory/mib)
	}
}
