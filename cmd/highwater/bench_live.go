package main

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/simulator"
)

// liveFeed produces a feed in real time, as a changefeed of a busy cluster
// does: rate events a second over keys, a resolved timestamp every second,
// on a clock that follows the local one.
type liveFeed struct {
	sim        *simulator.Sim
	rate, keys int
	dur        time.Duration
	// produced and took say what the feed achieved (the producer shares the
	// machine with the measured process).
	produced int
	took     time.Duration
}

// newLiveFeed creates the live feed's topics (prefix live_) and registers
// its schemas; nothing is produced until run.
func newLiveFeed(ctx context.Context, stack *devstack.Stack, partitions, rate, keys int, dur time.Duration) (*liveFeed, error) {
	sim, err := simulator.New(ctx, simulator.Options{
		Brokers: stack.Brokers(), RegistryURL: stack.RegistryURL(), Partitions: partitions,
		TopicPrefix: "live_", Seed: 7, Logger: zap.NewNop(), Live: true,
	}, benchTable)
	if err != nil {
		return nil, err
	}
	return &liveFeed{sim: sim, rate: rate, keys: keys, dur: dur}, nil
}

// stopAt is an HLC that the feed's last resolved timestamp passes: the
// measured process runs with --stop-at it and exits once it has applied
// the whole feed.
func (f *liveFeed) stopAt(start time.Time) hlc.Timestamp {
	return hlc.Timestamp{WallTime: start.Add(f.dur).UnixNano()}
}

// run produces for the feed's duration from start, paced to the rate, a
// resolved timestamp every second, and a last one after start+dur.
func (f *liveFeed) run(ctx context.Context, start time.Time) error {
	defer f.sim.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	const perTxn = 4
	end := start.Add(f.dur)
	nextResolve := start.Add(time.Second)
	for now := time.Now(); now.Before(end); now = time.Now() {
		// Catch up to the rate, in transactions of four rows.
		for target := int(float64(f.rate) * now.Sub(start).Seconds()); f.produced < target; f.produced += perTxn {
			if _, err := f.sim.Txn(ctx, func(tx *simulator.Txn) error {
				for j := 0; j < perTxn; j++ {
					if err := tx.Upsert(benchTable.Name, map[string]any{
						"id": int64(rng.IntN(f.keys)), "feature": "changefeeds", "internal": rng.IntN(2) == 0,
						"node": int64(rng.IntN(64)), "timestamp": now.UTC().Truncate(time.Microsecond),
						"uptime": int64(rng.IntN(1 << 30)), "uses": int64(rng.IntN(1 << 20)), "version": "v25.2." + strconv.Itoa(rng.IntN(9)),
					}); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if !now.Before(nextResolve) {
			if _, err := f.sim.Resolve(ctx); err != nil {
				return err
			}
			nextResolve = nextResolve.Add(time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	// The clock follows the local one, so this resolved timestamp is past
	// stopAt.
	if _, err := f.sim.Resolve(ctx); err != nil {
		return err
	}
	f.took = time.Since(start)
	return nil
}
