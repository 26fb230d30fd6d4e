// Package memsink is an in-memory sinks.Writer with fault injection, for
// unit tests that need a warehouse to fail at a precise point: Begin,
// Write, Fence, Checkpoint or Commit failing; a Commit that takes effect
// and then reports failure (a connection lost after the server committed);
// and checkpoints changed by "another member" between two windows (the
// fence). It keeps what a SQL warehouse keeps: mirror rows (newest version
// per key), a changelog (each key and version once), checkpoints that never
// move back and dead letters; and it records every commit, so that a test
// can tell a window applied twice from one applied once.
//
// It is a test double, never a warehouse: nothing is durable.
package memsink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// Op names a Writer or Tx method, for fault injection and hooks.
type Op string

// The operations that can be made to fail or be observed.
const (
	OpBegin      Op = "begin"
	OpFence      Op = "fence"
	OpWrite      Op = "write"
	OpCheckpoint Op = "checkpoint"
	OpCommit     Op = "commit"
)

// Version is one row version as stored: in the mirror (the newest per key)
// or in the changelog (every version once).
type Version struct {
	Op      sinks.Op
	Updated hlc.Timestamp
	Values  []any
}

// Commit is one committed transaction: the checkpoints it wrote and how
// many changes.
type Commit struct {
	Checkpoints []sinks.Checkpoint
	Changes     int
}

type cpKey struct {
	group, topic string
	partition    int32
}

type dlKey struct {
	cpKey
	offset int64
}

// Writer is the in-memory warehouse. Its methods are safe for concurrent
// use.
type Writer struct {
	mu      sync.Mutex
	mirror  map[string]map[string]Version // table -> key -> newest version
	changes map[string]map[string]Version // table -> key NUL updated -> version
	cps     map[cpKey]sinks.Checkpoint
	dead    map[dlKey]sinks.DeadLetter
	commits []Commit
	// fail holds one injected error per operation, used once.
	fail map[Op][]error
	// commitThenFail holds errors for Commits that take effect first.
	commitThenFail []error
	hook           func(context.Context, Op)
	// calls counts the calls of each operation (all transactions).
	calls map[Op]int
}

// New returns an empty Writer.
func New() *Writer {
	return &Writer{
		mirror:  map[string]map[string]Version{},
		changes: map[string]map[string]Version{},
		cps:     map[cpKey]sinks.Checkpoint{},
		dead:    map[dlKey]sinks.DeadLetter{},
		fail:    map[Op][]error{},
		calls:   map[Op]int{},
	}
}

var _ sinks.Writer = (*Writer)(nil)

// FailNext makes the next call of op (in any transaction) return err, with
// no effect. Several calls queue.
func (w *Writer) FailNext(op Op, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fail[op] = append(w.fail[op], err)
}

// CommitThenFail makes the next Commit take effect and then return err, as
// when the connection breaks after the server committed.
func (w *Writer) CommitThenFail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.commitThenFail = append(w.commitThenFail, err)
}

// SetHook makes fn be called at the start of every operation with the
// operation's context, outside the Writer's lock: a test can block there (a
// slow warehouse, until ctx ends) or change the warehouse (another member
// committing). nil removes it.
func (w *Writer) SetHook(fn func(context.Context, Op)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hook = fn
}

// SetCheckpoint stores cp as another member's committed window would: it
// replaces the stored checkpoint of its partition (moving it back too, as
// no real member would, if a test asks for it).
func (w *Writer) SetCheckpoint(cp sinks.Checkpoint) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cps[cpKey{cp.Group, cp.Topic, cp.Partition}] = cp
}

// Calls returns how many times op was called.
func (w *Writer) Calls(op Op) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[op]
}

// Commits returns the committed transactions, oldest first.
func (w *Writer) Commits() []Commit {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.commits)
}

// Mirror returns the mirror rows of table by key (the key columns' values
// formatted with %v), newest version each.
func (w *Writer) Mirror(table string) map[string]Version {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]Version, len(w.mirror[table]))
	for k, v := range w.mirror[table] {
		out[k] = v
	}
	return out
}

// Changelog returns every version of table, ordered by Updated then key.
func (w *Writer) Changelog(table string) []Version {
	w.mu.Lock()
	defer w.mu.Unlock()
	keys := make([]string, 0, len(w.changes[table]))
	for k := range w.changes[table] {
		keys = append(keys, k)
	}
	out := make([]Version, 0, len(keys))
	for _, k := range keys {
		out = append(out, w.changes[table][k])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Updated.Less(out[j].Updated) })
	return out
}

// DeadLetters returns the stored dead letters.
func (w *Writer) DeadLetters() []sinks.DeadLetter {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]sinks.DeadLetter, 0, len(w.dead))
	for _, dl := range w.dead {
		out = append(out, dl)
	}
	return out
}

// enter runs the hook and counts op, then returns the injected failure for
// op, if any.
func (w *Writer) enter(ctx context.Context, op Op) error {
	w.mu.Lock()
	hook := w.hook
	w.mu.Unlock()
	if hook != nil {
		hook(ctx, op)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls[op]++
	if q := w.fail[op]; len(q) > 0 {
		w.fail[op] = q[1:]
		return q[0]
	}
	return nil
}

// Checkpoints implements sinks.Writer.
func (w *Writer) Checkpoints(_ context.Context, group string) ([]sinks.Checkpoint, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []sinks.Checkpoint
	for k, cp := range w.cps {
		if k.group == group {
			out = append(out, cp)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out, nil
}

// Begin implements sinks.Writer.
func (w *Writer) Begin(ctx context.Context) (sinks.Tx, error) {
	if err := w.enter(ctx, OpBegin); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &Tx{w: w}, nil
}

// Close implements sinks.Writer.
func (w *Writer) Close() error { return nil }

// Tx is one transaction: nothing of it is visible before Commit.
type Tx struct {
	w       *Writer
	held    []sinks.Checkpoint
	changes []tableChange
	cps     []sinks.Checkpoint
	dead    []sinks.DeadLetter
	done    bool
}

type tableChange struct {
	table  *model.Table
	change sinks.Change
}

var errDone = errors.New("memsink: transaction already ended")

// Fence implements sinks.Tx. The check is made here and again at Commit,
// under the Writer's lock, which is what the SQL writers' row lock amounts
// to for a test: of two transactions fenced on one checkpoint, only the
// first to commit does.
func (x *Tx) Fence(ctx context.Context, held []sinks.Checkpoint) error {
	if x.done {
		return errDone
	}
	if err := x.w.enter(ctx, OpFence); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	x.held = append(x.held, held...)
	x.w.mu.Lock()
	defer x.w.mu.Unlock()
	if err := x.w.fenceLocked(x.held); err != nil {
		x.done = true
		return err
	}
	return nil
}

// fenceLocked returns a *sinks.FencedError if a held checkpoint differs
// from the stored one. The caller holds w.mu.
func (w *Writer) fenceLocked(held []sinks.Checkpoint) error {
	var differ []sinks.Checkpoint
	for _, h := range held {
		k := cpKey{h.Group, h.Topic, h.Partition}
		s, ok := w.cps[k]
		if !ok {
			s = sinks.Checkpoint{Group: h.Group, Topic: h.Topic, Partition: h.Partition}
		}
		if s.Resolved != h.Resolved {
			differ = append(differ, s)
		}
	}
	if len(differ) > 0 {
		return &sinks.FencedError{Stored: differ}
	}
	return nil
}

// Write implements sinks.Tx; it copies the changes.
func (x *Tx) Write(ctx context.Context, table *model.Table, changes []sinks.Change) error {
	if x.done {
		return errDone
	}
	if err := x.w.enter(ctx, OpWrite); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, c := range changes {
		c.Values = slices.Clone(c.Values)
		x.changes = append(x.changes, tableChange{table, c})
	}
	return nil
}

// Checkpoint implements sinks.Tx.
func (x *Tx) Checkpoint(ctx context.Context, cps []sinks.Checkpoint) error {
	if x.done {
		return errDone
	}
	if err := x.w.enter(ctx, OpCheckpoint); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	x.cps = append(x.cps, cps...)
	return nil
}

// DeadLetters implements sinks.Tx; it copies the dead letters.
func (x *Tx) DeadLetters(ctx context.Context, dls []sinks.DeadLetter) error {
	if x.done {
		return errDone
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, dl := range dls {
		dl.Key, dl.Value = slices.Clone(dl.Key), slices.Clone(dl.Value)
		x.dead = append(x.dead, dl)
	}
	return nil
}

// Commit implements sinks.Tx.
func (x *Tx) Commit(ctx context.Context) error {
	if x.done {
		return errDone
	}
	x.done = true
	if err := x.w.enter(ctx, OpCommit); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w := x.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.fenceLocked(x.held); err != nil {
		return err
	}
	sort.SliceStable(x.changes, func(i, j int) bool { return x.changes[i].change.Updated.Less(x.changes[j].change.Updated) })
	for _, tc := range x.changes {
		w.apply(tc.table, tc.change)
	}
	for _, cp := range x.cps {
		k := cpKey{cp.Group, cp.Topic, cp.Partition}
		if s, ok := w.cps[k]; !ok || s.Resolved.Less(cp.Resolved) {
			w.cps[k] = cp
		}
	}
	for _, dl := range x.dead {
		k := dlKey{cpKey{dl.Group, dl.Topic, dl.Partition}, dl.Offset}
		if _, ok := w.dead[k]; !ok {
			w.dead[k] = dl
		}
	}
	w.commits = append(w.commits, Commit{Checkpoints: slices.Clone(x.cps), Changes: len(x.changes)})
	if q := w.commitThenFail; len(q) > 0 {
		w.commitThenFail = q[1:]
		return q[0]
	}
	return nil
}

// apply stores one change: in the changelog once per (key, Updated), and
// in the mirror unless the stored row is newer. The caller holds w.mu.
func (w *Writer) apply(table *model.Table, c sinks.Change) {
	kv := make([]any, len(table.Key))
	for i, k := range table.Key {
		kv[i] = c.Values[k]
	}
	key := fmt.Sprint(kv...)
	if w.changes[table.Name] == nil {
		w.changes[table.Name] = map[string]Version{}
		w.mirror[table.Name] = map[string]Version{}
	}
	v := Version{Op: c.Op, Updated: c.Updated, Values: c.Values}
	ck := key + "\x00" + c.Updated.String()
	if _, ok := w.changes[table.Name][ck]; !ok {
		w.changes[table.Name][ck] = v
	}
	if old, ok := w.mirror[table.Name][key]; ok && c.Updated.Less(old.Updated) {
		return
	}
	if c.Op == sinks.OpDelete {
		delete(w.mirror[table.Name], key)
		return
	}
	w.mirror[table.Name][key] = v
}

// Rollback implements sinks.Tx.
func (x *Tx) Rollback(context.Context) error {
	x.done = true
	return nil
}
