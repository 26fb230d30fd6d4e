package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/highwater-dev/highwater/internal/procstat"
)

// benchCgroup is a memory cgroup made for one measured process: a child of
// the bench's own cgroup with a hard limit, the way a container runtime
// limits a container. The kernel OOM-kills the process if its charged
// memory (anonymous memory and the page cache it dirties or maps; clean
// cache is reclaimed first) cannot be kept under the limit.
//
// RLIMIT_AS (prlimit) is no substitute: it caps virtual address space,
// which the Go runtime and Badger's memory maps reserve far beyond what
// they use, so it fails allocations of a healthy process and says nothing
// about resident memory.
type benchCgroup struct {
	dir string
	v2  bool
}

// newBenchCgroup creates a child cgroup limited to limit bytes, under the
// cgroup of this process (cgroup v2 where the memory controller is
// available there, else cgroup v1's memory hierarchy). It needs the right
// to create cgroups (root, or a delegated subtree); the error says why it
// could not.
func newBenchCgroup(limit int64) (*benchCgroup, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("memory cgroup: %w", err)
	}
	name := fmt.Sprintf("highwater-bench-%d", os.Getpid())
	var v2Path, v1Path string
	for _, line := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2Path = parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1Path = parts[2]
			}
		}
	}
	var errs []error
	if v2Path != "" {
		parent := filepath.Join("/sys/fs/cgroup", v2Path)
		ctrl, err := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
		if err == nil && !strings.Contains(string(ctrl), "memory") {
			// Fails (EBUSY) if the parent holds processes itself: cgroup
			// v2 keeps processes in leaves only.
			err = os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory"), 0)
		}
		if err == nil {
			cg := &benchCgroup{dir: filepath.Join(parent, name), v2: true}
			if err = cg.create("memory.max", limit); err == nil {
				return cg, nil
			}
		}
		errs = append(errs, fmt.Errorf("cgroup v2 under %s: %w", parent, err))
	}
	if v1Path != "" {
		parent := filepath.Join("/sys/fs/cgroup/memory", v1Path)
		cg := &benchCgroup{dir: filepath.Join(parent, name)}
		err := cg.create("memory.limit_in_bytes", limit)
		if err == nil {
			// Without swap accounting a swapping host could hide memory
			// from the limit; where it exists, limit memory+swap alike.
			if _, serr := os.Stat(filepath.Join(cg.dir, "memory.memsw.limit_in_bytes")); serr == nil {
				err = os.WriteFile(filepath.Join(cg.dir, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0)
			}
		}
		if err == nil {
			return cg, nil
		}
		cg.remove()
		errs = append(errs, fmt.Errorf("cgroup v1 under %s: %w", parent, err))
	}
	if len(errs) == 0 {
		return nil, errors.New("memory cgroup: this process is in no memory cgroup")
	}
	return nil, fmt.Errorf("memory cgroup: %w", errors.Join(errs...))
}

func (c *benchCgroup) create(limitFile string, limit int64) error {
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0)
}

// command returns a command running self with args inside the cgroup: a
// shell moves itself into the cgroup and execs, so that the process is
// limited (and sees the limit in /proc/self/cgroup) from its first
// instruction.
func (c *benchCgroup) command(self string, args ...string) *exec.Cmd {
	script := `echo $$ > "$0" && exec "$@"`
	return exec.Command("/bin/sh", append([]string{"-c", script, filepath.Join(c.dir, "cgroup.procs"), self}, args...)...)
}

// peak is the cgroup's peak charged memory; 0 if unknown.
func (c *benchCgroup) peak() int64 { return procstat.CgroupPeak(c.dir) }

// oomKills is how many processes the kernel killed in the cgroup for
// exceeding its limit.
func (c *benchCgroup) oomKills() int64 { return procstat.CgroupOOMKills(c.dir) }

// remove deletes the cgroup (it must have no processes left).
func (c *benchCgroup) remove() { _ = os.Remove(c.dir) }
