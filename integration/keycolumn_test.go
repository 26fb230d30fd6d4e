package integration

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/simulator"
)

// TestKeyColumnRecordIsRefusedNamingTheOption plays an orders feed as
// CockroachDB writes it WITH key_column = 'status' (and unordered): every
// row message's key is a record of the nullable column status, registered
// under orders-key. Such a feed has no resolved timestamps, so its rows
// would never be applied; with --on-error=fail highwater must stop at the
// first row at once, with an error that names its topic[partition]@offset
// and key_column, and apply nothing.
func TestKeyColumnRecordIsRefusedNamingTheOption(t *testing.T) {
	wh := duckWarehouse()
	f := newFeed(t, simulator.Options{Partitions: 1, Seed: 79, KeyColumn: "status"}, feedTables()[0])
	ctx := context.Background()
	// The simulator still sends resolved messages, which CockroachDB would
	// not: highwater must stop before any window all the same.
	if err := f.sim.Run(ctx, simulator.Workload{Txns: 20, KeysPerTable: 10, RowsPerTxn: 2, ResolveEvery: 10}); err != nil {
		t.Fatal(err)
	}
	sinkURL := wh.url(t)
	m := startPolicyMember(t, f, wh, "g-keycolumn", sinkURL, processor.OnErrorFail)
	var runErr error
	select {
	case runErr = <-m.done:
	case <-time.After(time.Minute):
		m.stop()
		t.Fatal("the member did not stop on the key_column feed")
	}
	if runErr == nil || !regexp.MustCompile(`orders\[0\]@0 `).MatchString(runErr.Error()) || !strings.Contains(runErr.Error(), "WITH key_column") {
		t.Fatalf("error = %v, want it to name orders[0]@0 and key_column", runErr)
	}
	if n := m.proc.Stats().RowsApplied; n != 0 {
		t.Errorf("%d rows applied, want none", n)
	}
	t.Logf("stopped: %v", runErr)
}
