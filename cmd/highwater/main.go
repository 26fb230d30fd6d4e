// Command highwater turns CockroachDB changefeeds in Kafka into a clean,
// transactionally consistent copy of the source tables in a warehouse.
//
//	highwater run --brokers ... --registry ... --topics ... --sink duckdb:///path.duckdb
//	highwater demo
//	highwater simulate --brokers ... --registry ...
//	highwater version
//
// Exit codes: 0 success (and --help everywhere), 1 a runtime error, 2 a
// usage error (an unknown command or flag, a missing or extra argument).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=..."; without
// it, `highwater version` reads the module's build information.
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// HIGHWATER_CPUPROFILE=file writes a CPU profile of the whole run to file.PID, for
	// `go tool pprof`.
	if path := os.Getenv("HIGHWATER_CPUPROFILE"); path != "" {
		if f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid())); err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
		}
	}
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	pprof.StopCPUProfile()
	// HIGHWATER_MEMPROFILE=file writes the allocation profile of the whole run
	// (alloc_space, inuse_space at exit) to file.PID.
	if path := os.Getenv("HIGHWATER_MEMPROFILE"); path != "" {
		if f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid())); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "highwater:", err)
		var ue *usageError
		if errors.As(err, &ue) && ue.cmd != "" {
			fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", ue.cmd)
		}
		os.Exit(exitCode(err))
	}
}

// exitCode is 2 for usage errors and 1 for every other error.
func exitCode(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// usageError is a command line that cannot be run as given: an unknown
// command or flag, a missing or extra argument. It exits 2.
type usageError struct {
	err error
	cmd string // the command whose --help explains it, e.g. "highwater run"
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usage error of cmd.
func usagef(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...), cmd: cmd.CommandPath()}
}

// run executes the command line args (without the program name).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return execute(ctx, args, os.Getenv, stdout, stderr)
}

// execute is run with the environment given by getenv, for tests.
func execute(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	root := newRootCmd(getenv, stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRootCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "highwater",
		Short: "CockroachDB changefeeds -> a clean, transactionally consistent warehouse copy",
		Long: `highwater consumes CockroachDB changefeeds (Avro, Schema Registry) from Kafka,
buffers each row change until resolved timestamps close a window, and applies
the window deduplicated and in commit order to DuckDB, PostgreSQL or change
files on disk or S3, with its checkpoint in the same transaction.

Every setting of run, status and config check is also a YAML field of the
--config file and a HIGHWATER_* environment variable (--buffer-dir, buffer_dir,
HIGHWATER_BUFFER_DIR). Precedence: flags, then environment, then the file,
then defaults.`,
		// The command line is parsed before anything runs; a runtime error
		// is not a reason to print the usage.
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(stderr)
			_ = cmd.Usage()
			return usagef(cmd, "a command is required")
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{err: err, cmd: cmd.CommandPath()}
	})
	root.AddCommand(
		newRunCmd(getenv, stderr),
		newStatusCmd(getenv, stdout, stderr),
		newConfigCmd(getenv, stdout, stderr),
		newSQLCmd(getenv, stdout, stderr),
		newDemoCmd(stdout, stderr),
		newSimulateCmd(stdout, stderr),
		newBenchCmd(stdout, stderr),
		newSnowflakeCmd(stdout, stderr),
		newProbeCmd(getenv, stdout, stderr),
		newVersionCmd(stdout),
	)
	root.Version = versionString()
	root.SetVersionTemplate("highwater {{.Version}}\n")
	return root
}

// subcommandArgs rejects what is left of the command line of a command that
// only groups subcommands: it can only be a command that does not exist.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef(cmd, "unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return nil
}

// noArgs is cobra.NoArgs as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef(cmd, "%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
