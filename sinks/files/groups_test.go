package files

import (
	"context"
	"slices"
	"testing"

	"github.com/highwater-dev/highwater/sinks"
)

func TestGroupsListsEveryGroupWithCheckpoints(t *testing.T) {
	w := openDir(t, t.TempDir(), Config{})
	ctx := context.Background()
	if gs, err := w.Groups(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("Groups of an empty sink = %q, %v", gs, err)
	}
	// A registered group (zero checkpoints, no fence yet) and a group that
	// applied a fenced window.
	commit(t, w, []sinks.Checkpoint{{Group: "registered only", Topic: "t", Partition: 0}})
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := []sinks.Checkpoint{{Group: "g", Topic: "t", Partition: 0}}
	if err := tx.Fence(ctx, held); err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, kv("kv"), []sinks.Change{ch(sinks.OpInsert, h(1), int64(1), "a", int64(2))}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Checkpoint(ctx, []sinks.Checkpoint{cp(0, h(1), 5)}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	gs, err := w.Groups(ctx)
	if err != nil || !slices.Equal(gs, []string{"g", "registered only"}) {
		t.Fatalf("Groups = %q, %v; want [g, registered only]", gs, err)
	}
}
