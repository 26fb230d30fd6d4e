// Command highwater turns CockroachDB changefeeds in Kafka into a clean,
// transactionally consistent copy of the source tables in a warehouse.
//
//	highwater run --brokers ... --registry ... --topics ... --sink duckdb:///path.duckdb
//	highwater demo
//	highwater simulate --brokers ... --registry ...
//	highwater version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `highwater: CockroachDB changefeeds -> a clean, transactionally consistent warehouse copy

Usage:
  highwater run [flags]        consume a changefeed and apply it to a warehouse (run -h for flags)
  highwater status [flags]     print the warehouse checkpoints and watermark of a group (--sink, --group, --json)
  highwater config check [flags]  validate a configuration and print it, secrets redacted
  highwater demo [flags]       the whole pipeline on an embedded broker, registry and DuckDB
  highwater simulate [flags]   play a CockroachDB-like changefeed into any Kafka + Schema Registry
  highwater bench [flags]      measure the pipeline end to end (make bench)
  highwater snowflake-sql      print the Snowflake stage, pipe and MERGE task SQL for a files sink
  highwater probe [URL]        exit 0 if URL (default: this host's /healthz) answers 2xx; the container health check
  highwater version            print the version
`

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
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "highwater:", err)
		}
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:], stderr)
	case "demo":
		return demoCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "probe":
		return probeCmd(ctx, args[1:], os.Getenv, stdout, stderr)
	case "status":
		return statusCmd(ctx, args[1:], os.Getenv, stdout, stderr)
	case "config":
		return configCmd(ctx, args[1:], os.Getenv, stdout, stderr)
	case "simulate":
		return simulateCmd(ctx, args[1:], stdout, stderr)
	case "snowflake-sql":
		return snowflakeCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "highwater", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q: %w", args[0], errUsage)
}
