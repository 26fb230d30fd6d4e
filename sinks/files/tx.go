package files

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/txguard"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// Tx is one window. It implements sinks.Tx. Nothing it writes is visible
// as complete before Commit writes the window's manifest.
type Tx struct {
	w *Writer
	// guard holds the first failure and whether the window ended.
	guard txguard.Guard

	tables map[string]*tableWindow
	order  []*tableWindow
	cps    map[partKey]sinks.Checkpoint
	// held are the checkpoints Fence was given.
	held map[partKey]sinks.Checkpoint
	dls  []sinks.DeadLetter
	// seq numbers rows in arrival order, so that of two versions with the
	// same key and HLC the later written one wins.
	seq uint64
	// mem is the size of the records held in memory, over all tables.
	mem int64
	// spill is the window's directory of sort runs, created on first use.
	spill  string
	nspill int
	maxHLC hlc.Timestamp
	rec    []byte
}

var _ sinks.Tx = (*Tx)(nil)

// Write adds changes of one table version to the window.
func (tx *Tx) Write(ctx context.Context, table *model.Table, changes []sinks.Change) error {
	if err := tx.guard.Check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return tx.guard.Fail(fmt.Errorf("write: %w", err))
	}
	if table == nil {
		return tx.guard.Fail(errors.New("write: nil table"))
	}
	if table.Name == "" {
		return tx.guard.Fail(errors.New("write: table without a name"))
	}
	tw := tx.tables[table.Name]
	if tw == nil {
		dir, err := tx.w.tableDir(ctx, table.Name)
		if err != nil {
			return tx.guard.Fail(err)
		}
		tw = &tableWindow{name: table.Name, dir: dir, byTable: map[*model.Table]int{}}
		tx.tables[table.Name] = tw
		tx.order = append(tx.order, tw)
	}
	vi, err := tw.version(table)
	if err != nil {
		return tx.guard.Fail(fmt.Errorf("write table %q: %w", table.Name, err))
	}
	if err := tx.stage(tw, vi, changes); err != nil {
		return tx.guard.Fail(fmt.Errorf("write table %q: %w", table.Name, err))
	}
	return nil
}

// Checkpoint records partitions' progress in the window's manifest.
func (tx *Tx) Checkpoint(ctx context.Context, cps []sinks.Checkpoint) error {
	if err := tx.guard.Check(); err != nil {
		return err
	}
	for _, cp := range cps {
		if cp.Group == "" || cp.Topic == "" {
			return tx.guard.Fail(fmt.Errorf("checkpoint: empty group or topic in %+v", cp))
		}
		for k := range tx.cps {
			if k.group != cp.Group {
				return tx.guard.Fail(fmt.Errorf("checkpoint: one window holds groups %q and %q", k.group, cp.Group))
			}
			break
		}
		tx.cps[partKey{cp.Group, cp.Topic, cp.Partition}] = cp
	}
	return nil
}

// DeadLetters adds records set aside by the decoder to the window; Commit
// writes them as NDJSON under _dlq/ before the manifest.
func (tx *Tx) DeadLetters(ctx context.Context, dls []sinks.DeadLetter) error {
	if err := tx.guard.Check(); err != nil {
		return err
	}
	for _, dl := range dls {
		dl.Key, dl.Value = slices.Clone(dl.Key), slices.Clone(dl.Value)
		tx.dls = append(tx.dls, dl)
	}
	return nil
}

// Rollback abandons the window; it is a no-op after Commit. Files a failed
// Commit already wrote are not complete (no manifest names them) and are
// replaced or deleted when the window is written again.
func (tx *Tx) Rollback(ctx context.Context) error {
	if tx.guard.Ended() {
		return nil
	}
	tx.guard.End()
	tx.cleanup()
	return nil
}

func (tx *Tx) cleanup() {
	if tx.spill != "" {
		_ = os.RemoveAll(tx.spill)
		tx.spill = ""
	}
	for _, tw := range tx.order {
		tw.recs, tw.chunk = nil, nil
	}
}

// Commit writes the window: data files, dead letters, table catalog, the
// manifest, then the checkpoint object.
func (tx *Tx) Commit(ctx context.Context) error {
	if err := tx.guard.Check(); err != nil {
		return err
	}
	tx.guard.End()
	defer tx.cleanup()
	if err := tx.commit(ctx); err != nil {
		tx.guard.Set(err)
		return err
	}
	return nil
}
