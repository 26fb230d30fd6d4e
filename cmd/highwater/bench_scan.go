package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/internal/scanfeed"
	"github.com/highwater-dev/highwater/simulator"
)

// scanFigures is the initial scan phase (issue 12 item 4): a table's
// initial scan, every row at one HLC and no resolved timestamp until its
// end, bigger than the member's --buffer-budget.
type scanFigures struct {
	rows   int64
	budget int64 // --buffer-budget of the member
	// scanBytes are the keys and values of the scan's records in Kafka;
	// rawConsume the records/s of a plain consumer of its topics.
	scanBytes  int64
	rawConsume float64
	took       time.Duration // the member's run, start to exit
	// failure is why the member did not complete (the first line of its
	// error); empty if it applied the whole scan and stopped at --stop-at.
	failure string
	// peakBuffer is the largest highwater_buffer_bytes sampled (the size
	// --buffer-budget bounds), peakDisk and peakApparent the buffer
	// directory's allocated blocks and apparent size.
	peakBuffer, peakDisk, peakApparent int64
	hwm                                int64 // VmHWM of the member
	earlyGroups                        int64 // groups applied ahead of the scan's resolved timestamp
	// compared: the mirror was compared with the simulator's oracle once
	// the member had exited; mirrorOK if it held exactly the oracle's rows
	// and its checkpoints were at the final resolved timestamp; mirror
	// says what the comparison found.
	compared, mirrorOK bool
	mirror             string
}

// runScanPhase plays an initial scan of rows rows (internal/scanfeed,
// the same as the integration tests') into the broker, then runs
// `highwater run --buffer-budget budget --stop-at <the resolved timestamp
// after the scan>` as its own process, and compares the mirror with the
// simulator's oracle after the process has exited. A member that fails is
// a figure (the scan did not complete), not an error of the bench.
func runScanPhase(ctx context.Context, self string, stack *devstack.Stack, work, logLevel, memoryLimit string, rows int, budget int64, stdout io.Writer) (*scanFigures, error) {
	f := &scanFigures{rows: int64(rows), budget: budget}
	t0 := time.Now()
	topics, scan, final, want, err := produceScan(ctx, stack, rows)
	if err != nil {
		return nil, err
	}
	produced := time.Since(t0)
	debug.FreeOSMemory() // the simulator, now unreachable
	n, size, took, err := rawConsume(ctx, stack.Brokers(), topics)
	if err != nil {
		return nil, err
	}
	f.scanBytes, f.rawConsume = size, float64(n)/took.Seconds()
	fmt.Fprintf(stdout, "  initial scan: %d rows at %s produced in %s (%d records, %.1f MiB of keys and values = %.2fx the %s budget; raw consume %.0f records/s)\n",
		rows, scan, produced.Round(time.Millisecond), n, float64(size)/(1<<20), float64(size)/float64(budget), mib(budget), f.rawConsume)

	res, err := runBenchProcess(ctx, self, stack, benchSpec{name: "scan", topics: topics, logLevel: logLevel, stopAt: final, memoryLimit: memoryLimit, budget: budget}, work)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	f.took, f.hwm, f.peakBuffer, f.peakDisk, f.peakApparent, f.earlyGroups = res.wall, res.hwm, res.peakBuffer, res.peakDisk, res.peakApparent, res.earlyGroups
	if err != nil {
		f.failure = strings.SplitN(err.Error(), "\n", 2)[0]
		fmt.Fprintf(stdout, "    did NOT complete after %s (%d groups applied early): %s\n", f.took.Round(time.Millisecond), f.earlyGroups, f.failure)
	} else {
		fmt.Fprintf(stdout, "    applied in %s: %.0f rows/s, %d groups applied early\n", f.took.Round(time.Millisecond), float64(rows)/f.took.Seconds(), f.earlyGroups)
	}
	fmt.Fprintf(stdout, "    buffer peak %.1f MiB = %.2fx the budget; buffer disk peak %.1f MiB allocated = %.2fx (apparent size %.1f MiB)\n",
		float64(f.peakBuffer)/(1<<20), float64(f.peakBuffer)/float64(budget), float64(f.peakDisk)/(1<<20), float64(f.peakDisk)/float64(budget), float64(f.peakApparent)/(1<<20))
	res.printMemory(stdout)
	dropTopics(ctx, stack, topics, stdout)
	if f.failure != "" {
		return f, nil
	}
	t0 = time.Now()
	if err := f.compare(ctx, filepath.Join(work, "scan.duckdb"), want, final.String()); err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "    mirror against the oracle (%s): %s\n", time.Since(t0).Round(time.Millisecond), f.mirror)
	return f, nil
}

// produceScan plays the scan of rows rows and the resolved timestamp
// after it into the broker (topic prefix scan_), and returns the topics,
// the scan's HLC, the resolved timestamp and the oracle's digest of the
// table at it. The simulator, whose oracle holds every row, is closed and
// unreachable once it returns, so that the member does not run beside it.
func produceScan(ctx context.Context, stack *devstack.Stack, rows int) (topics []string, scan, final hlc.Timestamp, want scanfeed.Digest, err error) {
	opts := scanfeed.Options(47, 0)
	opts.Brokers, opts.RegistryURL, opts.TopicPrefix, opts.Logger = stack.Brokers(), stack.RegistryURL(), "scan_", zap.NewNop()
	// The simulator's oracle and the broker hold every row in this
	// process: a heap of ~1 GB per million rows, which the collector
	// would let grow to twice that.
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	sim, err := simulator.New(ctx, opts, scanfeed.Table())
	if err != nil {
		return nil, scan, final, want, err
	}
	defer sim.Close()
	if scan, err = scanfeed.Load(ctx, sim, rows); err != nil {
		return nil, scan, final, want, err
	}
	if final, err = sim.Resolve(ctx); err != nil {
		return nil, scan, final, want, err
	}
	if want, err = scanfeed.Expect(sim.Oracle(), final); err != nil {
		return nil, scan, final, want, err
	}
	return sim.Topics(), scan, final, want, nil
}

// compare reads the mirror in the warehouse file path and compares it
// with want, the oracle's digest, and its checkpoints with final.
func (f *scanFigures) compare(ctx context.Context, path string, want scanfeed.Digest, final string) error {
	connector, err := duckdb.NewConnector(path, nil)
	if err != nil {
		return fmt.Errorf("open the scan's mirror: %w", err)
	}
	defer connector.Close()
	db := sql.OpenDB(connector)
	defer db.Close()
	got, err := scanfeed.Mirror(ctx, db)
	if err != nil {
		return err
	}
	var lo, hi sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT CAST(min(resolved) AS VARCHAR), CAST(max(resolved) AS VARCHAR) FROM highwater_checkpoints`).Scan(&lo, &hi); err != nil {
		return fmt.Errorf("read the scan's checkpoints: %w", err)
	}
	f.compared = true
	f.mirrorOK = got == want && lo.String == final && hi.String == final
	switch {
	case got.Rows != want.Rows:
		f.mirror = fmt.Sprintf("%d rows, the oracle %d", got.Rows, want.Rows)
	case got.Sum != want.Sum:
		f.mirror = fmt.Sprintf("%s rows, checksum differs", count(got.Rows))
	default:
		f.mirror = fmt.Sprintf("%s rows, checksum equal", count(got.Rows))
	}
	if lo.String != final || hi.String != final {
		f.mirror += fmt.Sprintf("; checkpoints at %s..%s, not %s", lo.String, hi.String, final)
	} else {
		f.mirror += "; checkpoints at the end"
	}
	return nil
}

// dropTopics deletes a finished phase's topics: the in-process broker
// holds every record in this process's memory, which the next phases'
// feeds then reuse instead of adding to (a 5M-row scan is ~1.2 GB of
// records). A failure only costs memory, so it is printed, not returned.
func dropTopics(ctx context.Context, stack *devstack.Stack, topics []string, stdout io.Writer) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.Brokers()...))
	if err == nil {
		defer cl.Close()
		var resp kadm.DeleteTopicResponses
		resp, err = kadm.NewClient(cl).DeleteTopics(ctx, topics...)
		if err == nil {
			err = resp.Error()
		}
	}
	if err != nil {
		fmt.Fprintf(stdout, "  (could not delete the topics %v of the phase: %v)\n", topics, err)
	}
}
