package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestClearBenchDirRemovesOnlyTheBenchsFiles: a second bench in the same
// --dir must not find the first one's warehouses, buffers or raw table,
// and a file of the user's in that directory survives.
func TestClearBenchDirRemovesOnlyTheBenchsFiles(t *testing.T) {
	work := t.TempDir()
	var left []string
	for _, p := range benchPhases {
		left = append(left, p+".duckdb", p+".duckdb.wal", p+".log")
		if err := os.MkdirAll(filepath.Join(work, p+"-buffer"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, p+"-buffer", "000001.sst"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	left = append(left, "raw.duckdb", "notes.txt")
	for _, n := range left {
		if err := os.WriteFile(filepath.Join(work, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := clearBenchDir(work); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, []string{"notes.txt"}) {
		t.Errorf("after clearing: %v, want only the user's notes.txt", got)
	}
}
