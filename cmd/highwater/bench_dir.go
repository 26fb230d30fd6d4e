package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// benchPhases names the `highwater run` processes of a bench; each keeps
// <name>.duckdb, <name>-buffer and <name>.log in the working directory.
var benchPhases = []string{"throughput", "hardlimit", "memory", "live", "scan"}

// clearBenchDir removes what an earlier bench left in work (--dir), and
// nothing else: a warehouse or buffer left from an earlier run would hold
// checkpoints of the same consumer groups and topic names, so the member
// would resume past the new feed (or the raw append would find its table)
// and the figures would be wrong.
func clearBenchDir(work string) error {
	names := []string{"raw.duckdb", "raw.duckdb.wal"}
	for _, p := range benchPhases {
		names = append(names, p+".duckdb", p+".duckdb.wal", p+".duckdb.tmp", p+"-buffer", p+".log")
	}
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(work, n)); err != nil {
			return fmt.Errorf("clear the earlier bench in %s: %w", work, err)
		}
	}
	return nil
}
