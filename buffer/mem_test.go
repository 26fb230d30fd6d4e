package buffer

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// envTestMemory runs the package's tests with the memory front on, with the
// MemoryBudget it names (TestSuiteWithMemoryFront sets it).
const envTestMemory = "HIGHWATER_BUFFER_TEST_MEMORY"

// withTestMemory sets o.MemoryBudget from envTestMemory, if set.
func withTestMemory(o Options) Options {
	if v := os.Getenv(envTestMemory); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			panic("bad " + envTestMemory + ": " + v)
		}
		o.MemoryBudget = n
	}
	return o
}

// TestSuiteWithMemoryFront runs every test of the package again with the
// memory front on: with a budget so small that nearly every Write spills
// (the spill path, memory and Badger mixed in every Scan), and with one so
// large that nothing spills (everything in memory, trims without Badger).
func TestSuiteWithMemoryFront(t *testing.T) {
	if os.Getenv(envTestMemory) != "" {
		t.Skip("running with the memory front already")
	}
	for _, budget := range []int64{4 << 10, 1 << 30} {
		t.Run(strconv.FormatInt(budget, 10), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^Test", "-test.count=1")
			cmd.Env = append(os.Environ(), envTestMemory+"="+strconv.FormatInt(budget, 10))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the package's tests with MemoryBudget %d: %v\n%s", budget, err, out)
			}
		})
	}
}

// memEvents is how many events of p the memory front holds.
func memEvents(s *Store, p Partition) int {
	s.smu.RLock()
	defer s.smu.RUnlock()
	if pt := s.parts[p]; pt != nil {
		return int(pt.memEvents)
	}
	return 0
}

// skipWithMemoryFront skips a test of Badger's own paths (it corrupts or
// inspects Badger's keys directly) when the memory front is on.
func skipWithMemoryFront(t *testing.T, s *Store) {
	t.Helper()
	if s.memBudget > 0 {
		t.Skip("tests Badger's write path; the memory front keeps these events out of Badger")
	}
}
