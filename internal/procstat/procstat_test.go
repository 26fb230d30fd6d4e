package procstat

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMemoryOfThisProcess(t *testing.T) {
	ballast := make([]byte, 64<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	m := Memory(os.Getpid())
	if m.Anon < 64<<20 || m.RSS < m.Anon || m.HWM < m.RSS {
		t.Errorf("Memory = %+v: want anon >= the 64 MiB touched, rss >= anon, hwm >= rss", m)
	}
	_ = ballast[len(ballast)-1]
	if got := Memory(-1); got != (Mem{}) {
		t.Errorf("Memory of no process = %+v, want zeros", got)
	}
}

func TestDirSizeCountsAllocatedBlocks(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	// 64 KiB written, then a 16 MiB hole: the apparent size counts the
	// hole, the disk does not.
	if _, err := f.Write(make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(16 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	disk, apparent := DirSize(dir)
	if apparent != 16<<20 || disk < 64<<10 || disk >= 1<<20 {
		t.Errorf("DirSize = disk %d, apparent %d; want apparent 16 MiB and disk about the 64 KiB written", disk, apparent)
	}
}

func TestCgroupFiles(t *testing.T) {
	for _, c := range []struct {
		name         string
		files        map[string]string
		peak, killed int64
	}{
		{"v2", map[string]string{"memory.peak": "536870912\n", "memory.events": "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n"}, 512 << 20, 1},
		{"v1", map[string]string{"memory.max_usage_in_bytes": "1048576\n", "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"}, 1 << 20, 3},
		{"none", nil, 0, 0},
	} {
		dir := t.TempDir()
		for n, v := range c.files {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := CgroupPeak(dir); got != c.peak {
			t.Errorf("%s: CgroupPeak = %d, want %d", c.name, got, c.peak)
		}
		if got := CgroupOOMKills(dir); got != c.killed {
			t.Errorf("%s: CgroupOOMKills = %d, want %d", c.name, got, c.killed)
		}
	}
}
