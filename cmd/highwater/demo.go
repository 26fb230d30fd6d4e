package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // database/sql driver "duckdb" for the summary queries
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/simulator"
)

// newDemoCmd runs the whole pipeline with no setup: an in-process Kafka broker
// and Schema Registry, the changefeed simulator playing a product-telemetry
// feed with updates, deletes and duplicates, and highwater applying it to a
// DuckDB file.
func newDemoCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on an embedded broker, registry and DuckDB file",
		Args:  noArgs,
	}
	fs := cmd.Flags()
	dir := fs.String("dir", "highwater-demo", "working directory (recreated on every run)")
	txns := fs.Int("txns", 20000, "source transactions to simulate")
	keys := fs.Int("keys", 2000, "distinct rows per table")
	partitions := fs.Int("partitions", 4, "partitions per changefeed topic")
	dupProb := fs.Float64("duplicates", 0.05, "probability that the changefeed re-sends a row message")
	verbose := fs.Bool("v", false, "log highwater's own messages to stderr")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()

		abs, err := filepath.Abs(*dir)
		if err != nil {
			return err
		}
		if err := os.RemoveAll(abs); err != nil {
			return fmt.Errorf("clean %s: %w", abs, err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return err
		}
		dbPath := filepath.Join(abs, "demo.duckdb")

		log := zap.NewNop()
		if *verbose {
			if log, err = newLogger("info", "console", stderr); err != nil {
				return err
			}
		}

		fmt.Fprintf(stdout, "highwater demo: CockroachDB-style changefeed -> Kafka -> highwater -> DuckDB (%s)\n", dbPath)
		stack, err := devstack.Start(devstack.Options{DataDir: filepath.Join(abs, "kafka")})
		if err != nil {
			return err
		}
		defer stack.Close()

		sim, err := simulator.New(ctx, simulator.Options{
			Brokers:       stack.Brokers(),
			RegistryURL:   stack.RegistryURL(),
			Partitions:    *partitions,
			Diff:          true,
			DuplicateProb: *dupProb,
			Reorder:       true,
			Seed:          time.Now().UnixNano(),
			Live:          true, // timestamps never ahead of the local clock (--max-clock-skew)
			Logger:        log,
		}, simulator.TelemetryTables()...)
		if err != nil {
			return fmt.Errorf("simulator: %w", err)
		}
		defer sim.Close()
		fmt.Fprintf(stdout, "  broker %s, registry %s, topics %s\n", stack.Brokers()[0], stack.RegistryURL(), strings.Join(sim.Topics(), ", "))

		cfg := config.Defaults()
		cfg.Brokers = stack.Brokers()
		cfg.Registry = stack.RegistryURL()
		cfg.Topics = sim.Topics()
		cfg.Group = "highwater-demo"
		cfg.Sink = "duckdb://" + dbPath
		cfg.BufferDir = filepath.Join(abs, "buffer")
		cfg.Changelog = true

		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		procCh := make(chan *processor.Processor, 1)
		pipeErr := make(chan error, 1)
		start := time.Now()
		go func() {
			pipeErr <- runPipeline(ctx, cfg, log, memoryHooks{}, func(p *processor.Processor) { procCh <- p })
		}()

		simErr := make(chan error, 1)
		finalCh := make(chan hlc.Timestamp, 1)
		go func() {
			err := sim.RunTelemetry(ctx, simulator.Workload{Txns: *txns, KeysPerTable: *keys, RowsPerTxn: 4, DeleteProb: 0.05, ResolveEvery: 500, RestartEvery: 5000, GapProb: 0.3})
			if err == nil {
				var final hlc.Timestamp
				if final, err = sim.Resolve(ctx); err == nil {
					finalCh <- final
				}
			}
			simErr <- err
		}()

		var proc *processor.Processor
		select {
		case proc = <-procCh:
		case err := <-pipeErr:
			return fmt.Errorf("pipeline: %w", err)
		}
		tty := isTerminal(stdout)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		var final hlc.Timestamp
		for done := false; !done; {
			select {
			case err := <-simErr:
				if err != nil {
					cancel()
					return fmt.Errorf("simulator: %w", err)
				}
			case final = <-finalCh:
				proc.SetStopAt(final)
			case err := <-pipeErr:
				if err != nil {
					return fmt.Errorf("pipeline: %w", err)
				}
				done = true
			case <-tick.C:
				if tty {
					fmt.Fprintf(stdout, "\r  %s", progress(proc.Stats()))
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		took := time.Since(start)
		st := proc.Stats()
		if tty {
			fmt.Fprintf(stdout, "\r  %s\n", progress(st))
		}
		fmt.Fprintf(stdout, "\ndone in %s: %d records consumed (%.0f/s): %d row messages and %d resolved timestamps; %d changes applied in %d windows\n",
			took.Round(time.Millisecond), st.Consumed, float64(st.Consumed)/took.Seconds(), st.Consumed-st.ResolvedMsgs, st.ResolvedMsgs, st.RowsApplied, st.Windows)
		fmt.Fprintf(stdout, "watermark (complete through) HLC %s (%s)\n\n", final, final.Time().Format(time.RFC3339Nano))

		if err := demoSummary(ctx, stdout, dbPath, sim.Oracle(), final, st.Consumed-st.ResolvedMsgs); err != nil {
			return err
		}
		fmt.Fprintf(stdout, `
Query it further (the file is free again now that the demo has stopped):
  %[1]s sql --sink %[2]s "SELECT * FROM features ORDER BY uses DESC LIMIT 10"
  %[1]s sql --sink %[2]s "SELECT * FROM highwater_watermark"
  %[1]s sql --sink %[2]s "SELECT * FROM features_changes ORDER BY _hw_updated DESC LIMIT 5"
  %[1]s status --sink %[2]s --group %[3]s
`, selfCommand(), shellQuote("duckdb://"+dbPath), cfg.Group)
		return nil
	}
	return cmd
}

// selfCommand is how the user can run this binary again: its path as
// invoked, or `go run ./cmd/highwater` when `go run` built it into a
// temporary directory that is gone once it exits.
func selfCommand() string {
	exe := os.Args[0]
	if abs, err := filepath.Abs(exe); err == nil && strings.HasPrefix(abs, filepath.Clean(os.TempDir())+string(filepath.Separator)) {
		return "go run ./cmd/highwater"
	}
	return shellQuote(exe)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func progress(s processor.Stats) string {
	lag := "-"
	if !s.Frontier.IsZero() {
		lag = time.Since(s.Frontier.Time()).Round(10 * time.Millisecond).String()
	}
	return fmt.Sprintf("consumed %-9d buffered %-8d watermark lag %-8s applied %-9d windows %-5d", s.Consumed, s.Buffered, lag, s.RowsApplied, s.Windows)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// demoSummary compares the mirror with the simulator's oracle and prints a
// sample query.
func demoSummary(ctx context.Context, w io.Writer, dbPath string, oracle *simulator.Oracle, final hlc.Timestamp, rowMessages int64) error {
	db, err := sql.Open("duckdb", dbPath+"?access_mode=read_only")
	if err != nil {
		return err
	}
	defer db.Close()
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "table\trows in DuckDB\trows in source AS OF the watermark\tchangelog versions\t")
	var mismatch []string
	var allVersions int64
	for _, t := range oracle.Tables() {
		var got, versions int
		q := fmt.Sprintf(`SELECT count(*) FROM %s`, sqlident.Quote(t))
		if err := db.QueryRowContext(ctx, q).Scan(&got); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		q = fmt.Sprintf(`SELECT count(*) FROM %s`, sqlident.Quote(t+"_changes"))
		if err := db.QueryRowContext(ctx, q).Scan(&versions); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		allVersions += int64(versions)
		want := len(oracle.Rows(t, final))
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", t, got, want, versions)
		if got != want {
			mismatch = append(mismatch, t)
		}
	}
	tw.Flush()
	if len(mismatch) > 0 {
		return errors.New("the warehouse does not match the source for " + strings.Join(mismatch, ", "))
	}
	fmt.Fprintf(w, "\nThe changefeed sent %d row messages for %d distinct row versions: %d duplicates and restart\nre-emissions were removed, and every table equals the source AS OF the watermark.\n",
		rowMessages, allVersions, rowMessages-allVersions)

	const sample = `SELECT feature, count(*) AS nodes, sum(uses) AS uses, max(version) AS newest_version
FROM features GROUP BY feature ORDER BY uses DESC LIMIT 5`
	fmt.Fprintf(w, "\n%s\n\n", sample)
	rows, err := db.QueryContext(ctx, sample)
	if err != nil {
		return fmt.Errorf("sample query: %w", err)
	}
	defer rows.Close()
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "feature\tnodes\tuses\tnewest_version\t")
	for rows.Next() {
		var feature, version sql.NullString
		var nodes int64
		var uses sql.NullFloat64
		if err := rows.Scan(&feature, &nodes, &uses, &version); err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t\n", feature.String, nodes, uses.Float64, version.String)
	}
	tw.Flush()
	return rows.Err()
}
