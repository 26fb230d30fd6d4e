package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionDescribesTheBuild(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/highwater-dev/highwater", Version: "v0.0.0-20261202135555-b581e11d0c3a+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "b581e11d0c3a5f0e1c2d3b4a5f6e7d8c9b0a1f2e"}, {Key: "vcs.time", Value: "2026-12-02T13:55:55Z"}, {Key: "vcs.modified", Value: "true"}}}
	for _, c := range []struct {
		name, linked string
		bi           *debug.BuildInfo
		want         string
	}{
		{"go build in a checkout", "", bi, "v0.0.0-20261202135555-b581e11d0c3a+dirty (revision b581e11d0c3a of 2026-12-02T13:55:55Z, modified; go1.26.8)"},
		{"make build links a version", "v1.2.0", bi, "v1.2.0 (revision b581e11d0c3a of 2026-12-02T13:55:55Z, modified; go1.26.8)"},
		{"no VCS information", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "devel (go1.26.8)"},
	} {
		if got := describeBuild(c.linked, c.bi); got != c.want {
			t.Errorf("%s: describeBuild = %q, want %q", c.name, got, c.want)
		}
	}
	// The test binary itself has build information: the version line names
	// the Go version it was built with, never a bare "dev".
	out, err := runArgs(t, "version")
	if err != nil || !strings.HasPrefix(out, "highwater ") || !strings.Contains(out, "go1.") {
		t.Fatalf("highwater version = %q, %v", out, err)
	}
}
