package buffer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// removeEmptyMemtableWALs deletes zero-length memtable write-ahead logs
// (*.mem) from a Badger directory before it is opened. Badger deletes a
// flushed memtable's WAL by truncating it to zero and then removing it; a
// kill -9 in between leaves an empty file behind, and badger.Open then
// fails on it with "while opening memtables ... Create a new file" for
// good (dgraph-io/badger#2207). A real WAL is preallocated at twice the
// memtable size, so an empty one holds nothing.
func removeEmptyMemtableWALs(dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if fi.Size() == 0 {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove the empty memtable log %s left by a crash: %w", e.Name(), err)
			}
		}
	}
	return nil
}
