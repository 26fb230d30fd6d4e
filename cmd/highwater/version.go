package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the VCS revision it was built from and the Go version",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(stdout, "highwater", versionString())
			return nil
		},
	}
}

// versionString is the version linked in with -ldflags "-X main.version=..."
// (make build), else what the Go toolchain recorded in the binary: the
// module version (a pseudo-version from the VCS for a plain `go build` in a
// checkout), the revision, whether the tree was modified, and the Go
// version.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if version != "" {
			return version
		}
		return "unknown (no build information)"
	}
	return describeBuild(version, bi)
}

// describeBuild formats the version from linked and bi.
func describeBuild(linked string, bi *debug.BuildInfo) string {
	v := linked
	if v == "" {
		v = bi.Main.Version
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev, when, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	var details []string
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		r := "revision " + rev
		if when != "" {
			r += " of " + when
		}
		if modified == "true" {
			r += ", modified"
		}
		details = append(details, r)
	}
	details = append(details, bi.GoVersion)
	return v + " (" + strings.Join(details, "; ") + ")"
}
