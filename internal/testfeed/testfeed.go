// Package testfeed sets up the simulated changefeed that the end-to-end
// tests of several packages (cmd/highwater, processor, integration) read:
// an in-process broker and registry (internal/devstack) and a simulator
// writing CockroachDB's changefeed records to them. Each helper fails the
// test on error and registers its own cleanup, so that a test states only
// what differs: the options, the tables and the workload.
package testfeed

import (
	"context"
	"testing"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/devstack"
	"github.com/highwater-dev/highwater/simulator"
)

// Stack starts a broker and a registry for t and stops them when t ends.
func Stack(t testing.TB, opts devstack.Options) *devstack.Stack {
	t.Helper()
	stack, err := devstack.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.Close)
	return stack
}

// Sim starts a simulator of tables with opts and closes it when t ends.
// opts names the broker and registry; On fills them from a Stack.
func Sim(t testing.TB, ctx context.Context, opts simulator.Options, tables ...simulator.TableDef) *simulator.Sim {
	t.Helper()
	sim, err := simulator.New(ctx, opts, tables...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

// On starts a simulator of tables on stack: opts.Brokers and
// opts.RegistryURL are set to stack's.
func On(t testing.TB, ctx context.Context, stack *devstack.Stack, opts simulator.Options, tables ...simulator.TableDef) *simulator.Sim {
	t.Helper()
	opts.Brokers = stack.Brokers()
	opts.RegistryURL = stack.RegistryURL()
	return Sim(t, ctx, opts, tables...)
}

// Telemetry writes the telemetry workload w through sim (whose tables are
// simulator.TelemetryTables) and then resolves every partition, returning
// the final resolved timestamp: a consumer that has applied through it
// has applied the whole feed.
func Telemetry(t testing.TB, ctx context.Context, sim *simulator.Sim, w simulator.Workload) hlc.Timestamp {
	t.Helper()
	if err := sim.RunTelemetry(ctx, w); err != nil {
		t.Fatal(err)
	}
	final, err := sim.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return final
}
