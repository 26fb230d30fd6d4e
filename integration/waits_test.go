package integration

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/hlc"
)

// waitGroupSettled waits until the broker reports group Stable with
// exactly members members that together own every partition of f's
// topics, failing t after timeout. It is what a test means by "the group
// has settled": a wait on what the broker says rather than a fixed sleep,
// which is too short on a loaded machine and too long on an idle one.
func waitGroupSettled(t *testing.T, f *feed, group string, members int, timeout time.Duration) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.stack.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	want := len(f.sim.Topics()) * f.opts.Partitions
	deadline := time.Now().Add(timeout)
	last := "not described yet"
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		described, err := adm.DescribeGroups(ctx, group)
		cancel()
		if err == nil {
			if g, ok := described[group]; ok && g.Err == nil {
				owned := 0
				for _, ps := range described.AssignedPartitions() {
					owned += len(ps)
				}
				if g.State == "Stable" && len(g.Members) == members && owned == want {
					return
				}
				last = g.State
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s did not settle with %d members owning all %d partitions within %s (last state %s)", group, members, want, timeout, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitResolvedPast waits until the feed has resolved a timestamp above
// than, failing t after timeout: with than read after some event (a cut,
// a backlog written), the next resolved timestamp covers everything
// written before it. A steady feed resolves several times a second.
func waitResolvedPast(t *testing.T, f *feed, than hlc.Timestamp, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !than.Less(f.sim.LastResolved()) {
		if time.Now().After(deadline) {
			t.Fatalf("the feed resolved nothing past %s within %s", than, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
