package files

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/parquet-go/parquet-go"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// Tx is one window. It implements sinks.Tx. Nothing it writes is visible
// as complete before Commit writes the window's manifest.
type Tx struct {
	w    *Writer
	err  error
	done bool

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
	maxHLC schemas.HLC
	rec    []byte
}

var _ sinks.Tx = (*Tx)(nil)

// version is one table version (schema) seen in a window.
type version struct {
	table *schemas.Table
	cols  []*column
	// id names the version in file names: a hash of its columns, so that
	// the same schema gives the same name in any window.
	id     string
	schema *parquet.Schema
}

// tableWindow is what a window holds of one table.
type tableWindow struct {
	name string
	// dir is the table's directory under the root (names.go).
	dir      string
	versions []*version
	byTable  map[*schemas.Table]int
	// recs are the records held in memory, each a slice of a chunk.
	recs  [][]byte
	chunk []byte
	runs  []string
	rows  int64
}

// A record is one row version:
//
//	HLC (12 bytes, schemas.HLC.AppendBinary) | key length (4 bytes) | key |
//	sequence (8 bytes) | version index (uvarint) | op (1 byte) | values
//
// The key is the primary-key values in an order-preserving encoding
// (keyorder.go). Records compare with compareRecords in (HLC, key by value,
// arrival) order, and a (key, HLC) group is adjacent.
const recHeader = schemas.HLCSize + 4

func recIdentity(rec []byte) []byte {
	return rec[:recHeader+int(binary.BigEndian.Uint32(rec[schemas.HLCSize:]))]
}

const chunkSize = 1 << 20

func (tx *Tx) usable() error {
	if tx.done {
		return errors.New("window transaction already finished")
	}
	if tx.err != nil {
		return fmt.Errorf("window transaction failed earlier: %w", tx.err)
	}
	return nil
}

func (tx *Tx) fail(err error) error {
	if tx.err == nil {
		tx.err = err
	}
	return err
}

// Write adds changes of one table version to the window.
func (tx *Tx) Write(ctx context.Context, table *schemas.Table, changes []sinks.Change) error {
	if err := tx.usable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return tx.fail(fmt.Errorf("write: %w", err))
	}
	if table == nil {
		return tx.fail(errors.New("write: nil table"))
	}
	if table.Name == "" {
		return tx.fail(errors.New("write: table without a name"))
	}
	tw := tx.tables[table.Name]
	if tw == nil {
		dir, err := tx.w.tableDir(ctx, table.Name)
		if err != nil {
			return tx.fail(err)
		}
		tw = &tableWindow{name: table.Name, dir: dir, byTable: map[*schemas.Table]int{}}
		tx.tables[table.Name] = tw
		tx.order = append(tx.order, tw)
	}
	vi, err := tw.version(table)
	if err != nil {
		return tx.fail(fmt.Errorf("write table %q: %w", table.Name, err))
	}
	if err := tx.stage(tw, vi, changes); err != nil {
		return tx.fail(fmt.Errorf("write table %q: %w", table.Name, err))
	}
	return nil
}

// version returns the index of table's version in the window, adding it.
func (tw *tableWindow) version(table *schemas.Table) (int, error) {
	if i, ok := tw.byTable[table]; ok {
		return i, nil
	}
	if len(table.Key) == 0 {
		return 0, errors.New("table has no primary key")
	}
	v := &version{table: table}
	isKey := make([]bool, len(table.Columns))
	for _, k := range table.Key {
		if k < 0 || k >= len(table.Columns) {
			return 0, fmt.Errorf("primary-key index %d out of range", k)
		}
		isKey[k] = true
	}
	h := sha256.New()
	seen := map[string]bool{}
	for i, c := range table.Columns {
		if c.Name == sinks.UpdatedColumn || c.Name == sinks.OpColumn {
			return 0, fmt.Errorf("column %q collides with highwater's own column", c.Name)
		}
		if seen[c.Name] {
			return 0, fmt.Errorf("duplicate column %q", c.Name)
		}
		seen[c.Name] = true
		col, err := newColumn(c.Name, c.Type, isKey[i])
		if err != nil {
			return 0, err
		}
		v.cols = append(v.cols, col)
		fmt.Fprintf(h, "%s\x00%s\x00%t\x00", c.Name, c.Type, isKey[i])
	}
	fmt.Fprintf(h, "%v", table.Key)
	v.id = "v" + hex.EncodeToString(h.Sum(nil)[:4])
	// Another *schemas.Table with the same schema is the same version.
	for i, o := range tw.versions {
		if o.id == v.id {
			tw.byTable[table] = i
			return i, nil
		}
	}
	tw.versions = append(tw.versions, v)
	tw.byTable[table] = len(tw.versions) - 1
	return len(tw.versions) - 1, nil
}

func (tx *Tx) stage(tw *tableWindow, vi int, changes []sinks.Change) error {
	v := tw.versions[vi]
	nonFinite := 0
	for ci := range changes {
		ch := &changes[ci]
		if len(ch.Values) != len(v.cols) {
			return fmt.Errorf("change %d (%s at %s): %d values for %d columns", ci, ch.Op, ch.Updated, len(ch.Values), len(v.cols))
		}
		if ch.Op > sinks.OpDelete {
			return fmt.Errorf("change %d: unknown op %d", ci, ch.Op)
		}
		if ch.Updated.WallTime < 0 || ch.Updated.Logical < 0 {
			return fmt.Errorf("change %d: negative HLC %s", ci, ch.Updated)
		}
		rec := ch.Updated.AppendBinary(tx.rec[:0])
		rec = append(rec, 0, 0, 0, 0)
		var err error
		for _, k := range v.table.Key {
			if ch.Values[k] == nil {
				return fmt.Errorf("change %d (%s at %s): primary-key column %q is NULL", ci, ch.Op, ch.Updated, v.cols[k].name)
			}
			if rec, err = v.cols[k].appendKey(rec, ch.Values[k]); err != nil {
				return fmt.Errorf("change %d (%s at %s): column %q: %w", ci, ch.Op, ch.Updated, v.cols[k].name, err)
			}
		}
		binary.BigEndian.PutUint32(rec[schemas.HLCSize:], uint32(len(rec)-recHeader))
		tx.seq++
		rec = binary.BigEndian.AppendUint64(rec, tx.seq)
		rec = binary.AppendUvarint(rec, uint64(vi))
		rec = append(rec, byte(ch.Op))
		del := ch.Op == sinks.OpDelete
		for i, c := range v.cols {
			if del && !c.key {
				// A delete carries only its key.
				rec = append(rec, 0)
				continue
			}
			var nf int
			if rec, nf, err = c.appendValue(rec, ch.Values[i]); err != nil {
				return fmt.Errorf("change %d (%s at %s): column %q: %w", ci, ch.Op, ch.Updated, c.name, err)
			}
			nonFinite += nf
		}
		tx.rec = rec
		if tx.maxHLC.Less(ch.Updated) {
			tx.maxHLC = ch.Updated
		}
		tw.add(rec)
		tx.mem += int64(len(rec)) + 24
		if tx.mem >= tx.w.cfg.MemoryLimit {
			if err := tx.spillAll(); err != nil {
				return err
			}
		}
	}
	if nonFinite > 0 {
		tx.w.logger.Warn("DECIMAL NaN or Infinity written as NULL: Parquet DECIMAL cannot hold it",
			zap.String("table", v.table.Name), zap.Int("values", nonFinite))
	}
	return nil
}

// add copies rec into the table's memory.
func (tw *tableWindow) add(rec []byte) {
	if len(rec) > chunkSize/4 {
		tw.recs = append(tw.recs, slices.Clone(rec))
	} else {
		if cap(tw.chunk)-len(tw.chunk) < len(rec) {
			tw.chunk = make([]byte, 0, chunkSize)
		}
		start := len(tw.chunk)
		tw.chunk = append(tw.chunk, rec...)
		tw.recs = append(tw.recs, tw.chunk[start:len(tw.chunk):len(tw.chunk)])
	}
	tw.rows++
}

// spillAll writes every table's records in memory as a sorted run.
func (tx *Tx) spillAll() error {
	for _, tw := range tx.order {
		if err := tx.spillTable(tw); err != nil {
			return err
		}
	}
	tx.mem = 0
	return nil
}

func (tx *Tx) spillTable(tw *tableWindow) error {
	if len(tw.recs) == 0 {
		return nil
	}
	if tx.spill == "" {
		dir, err := os.MkdirTemp(tx.w.tmp, "window-")
		if err != nil {
			return fmt.Errorf("spill: %w", err)
		}
		tx.spill = dir
	}
	slices.SortFunc(tw.recs, compareRecords)
	tx.nspill++
	name := filepath.Join(tx.spill, fmt.Sprintf("run-%06d", tx.nspill))
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	var lb [binary.MaxVarintLen64]byte
	for _, r := range tw.recs {
		bw.Write(lb[:binary.PutUvarint(lb[:], uint64(len(r)))])
		bw.Write(r)
	}
	err = bw.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spill %s: %w", name, err)
	}
	tw.runs = append(tw.runs, name)
	clear(tw.recs)
	tw.recs, tw.chunk = tw.recs[:0], nil
	return nil
}

// Checkpoint records partitions' progress in the window's manifest.
func (tx *Tx) Checkpoint(ctx context.Context, cps []sinks.Checkpoint) error {
	if err := tx.usable(); err != nil {
		return err
	}
	for _, cp := range cps {
		if cp.Group == "" || cp.Topic == "" {
			return tx.fail(fmt.Errorf("checkpoint: empty group or topic in %+v", cp))
		}
		for k := range tx.cps {
			if k.group != cp.Group {
				return tx.fail(fmt.Errorf("checkpoint: one window holds groups %q and %q", k.group, cp.Group))
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
	if err := tx.usable(); err != nil {
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
	if tx.done {
		return nil
	}
	tx.done = true
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
	if err := tx.usable(); err != nil {
		return err
	}
	tx.done = true
	defer tx.cleanup()
	if err := tx.commit(ctx); err != nil {
		tx.err = err
		return err
	}
	return nil
}

func (tx *Tx) commit(ctx context.Context) error {
	w := tx.w
	rows := int64(0)
	for _, tw := range tx.order {
		rows += tw.rows
	}
	if rows == 0 && len(tx.cps) == 0 && len(tx.dls) == 0 {
		return nil
	}
	cps := make([]sinks.Checkpoint, 0, len(tx.cps))
	w.mu.Lock()
	for k, cp := range tx.cps {
		// A partition stored further (by another member, or a window
		// written again) keeps its checkpoint: never moved back.
		if stored, ok := w.applied[k]; ok && cp.Resolved.Less(stored.Resolved) {
			cp = stored
		}
		cps = append(cps, cp)
	}
	// Dead letters below a stored checkpoint's offset were written by the
	// window that moved the partition past them.
	dls := tx.dls[:0:0]
	for _, dl := range tx.dls {
		if stored, ok := w.applied[partKey{dl.Group, dl.Topic, dl.Partition}]; ok && dl.Offset < stored.NextOffset {
			continue
		}
		dls = append(dls, dl)
	}
	tx.dls = dls
	w.mu.Unlock()
	slices.SortFunc(cps, func(a, b sinks.Checkpoint) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	var group, partset string
	resolved := tx.maxHLC
	if len(cps) > 0 {
		group, partset = cps[0].Group, partsetID(cps)
		resolved = cps[0].Resolved
		for _, cp := range cps {
			if resolved.Less(cp.Resolved) {
				resolved = cp.Resolved
			}
		}
	} else {
		// No checkpoint, so nothing to resume from: a unique name.
		var b [6]byte
		_, _ = rand.Read(b[:])
		partset = "x" + hex.EncodeToString(b[:])
	}
	floor := tx.floor(cps)
	base := hlcName(resolved) + "-" + partset
	date := datePath(resolved)
	dlqKey := DeadLetterDir + "/" + escape(group) + "/" + date + "/" + base + ".ndjson"
	mKey := manifestKey(group, partset, resolved)
	pending := &pendingWindow{Manifest: mKey, Prefixes: []string{dlqKey}}
	for _, tw := range tx.order {
		if tw.rows > 0 {
			pending.Prefixes = append(pending.Prefixes, tw.dir+"/"+date+"/"+base+"-")
		}
	}

	held := tx.heldList()
	if len(held) > 0 && len(cps) > 0 && held[0].Group != group {
		return fmt.Errorf("commit window through %s: fenced group %q, checkpointed group %q", resolved, held[0].Group, group)
	}
	token := newToken()
	if len(held) > 0 {
		// Claim the partitions before anything is written: from here, a
		// window of another member built on the same checkpoints takes
		// the claim over and this one cannot publish.
		if _, err := w.installManifests(ctx, held[0].Group); err != nil {
			return fmt.Errorf("commit window through %s: %w", resolved, err)
		}
		if err := w.claim(ctx, held[0].Group, token, held); err != nil {
			if errors.Is(err, sinks.ErrFenced) {
				return err
			}
			return fmt.Errorf("commit window through %s: %w", resolved, err)
		}
		floor = tx.floor(cps)
	}

	var state *stateObject
	if len(cps) > 0 {
		var err error
		if state, err = w.recover(ctx, group, partset, cps); err != nil {
			return fmt.Errorf("commit window through %s: %w", resolved, err)
		}
		state.Pending = pending
		if err := w.writeJSON(ctx, state.key, state); err != nil {
			return fmt.Errorf("commit window through %s: %w", resolved, err)
		}
	}

	m := Manifest{FormatVersion: 1, Group: group, PartitionSet: partset, Resolved: resolved.String(), Checkpoints: toEntries(cps)}
	for _, tw := range tx.order {
		if tw.rows == 0 {
			continue
		}
		entries, err := tx.writeTable(ctx, tw, tw.dir+"/"+date+"/"+base, floor)
		if err != nil {
			return fmt.Errorf("commit window through %s: table %q: %w", resolved, tw.name, err)
		}
		m.Files = append(m.Files, entries...)
		if err := tx.writeCatalog(ctx, tw, resolved); err != nil {
			return fmt.Errorf("commit window through %s: %w", resolved, err)
		}
	}
	if len(tx.dls) > 0 {
		if err := w.st.put(ctx, dlqKey, deadLetterLines(tx.dls)); err != nil {
			return fmt.Errorf("commit window through %s: dead letters: %w", resolved, err)
		}
		m.DeadLetters = []string{dlqKey}
	}
	m.WrittenAt = time.Now().UTC()
	if len(held) > 0 || len(cps) > 0 {
		// The checkpoints move in the fence object, if no other window
		// claimed the held partitions since; the manifest is staged first
		// so that a crash right after cannot lose the window.
		fg := group
		if fg == "" {
			fg = held[0].Group
		}
		staged := stagedKey(fg, base, token)
		if err := w.writeJSON(ctx, staged, m); err != nil {
			return fmt.Errorf("commit window through %s: staged manifest: %w", resolved, err)
		}
		if err := w.publish(ctx, fg, token, held, cps, mKey, staged); err != nil {
			_ = w.st.remove(ctx, []string{staged})
			if errors.Is(err, sinks.ErrFenced) {
				return err
			}
			return fmt.Errorf("commit window through %s: %w", resolved, err)
		}
		defer func() {
			// Only once the manifest is written: until then the staged
			// copy is what restores it.
			if _, err := w.st.get(context.WithoutCancel(ctx), mKey); err == nil {
				_ = w.st.remove(context.WithoutCancel(ctx), []string{staged})
			}
		}()
	}
	if err := w.writeJSON(ctx, mKey, m); err != nil {
		return fmt.Errorf("commit window through %s: manifest: %w", resolved, err)
	}
	if state != nil {
		state.Pending = nil
		state.Manifest, state.Checkpoints = mKey, m.Checkpoints
		if err := w.writeJSON(ctx, state.key, state); err != nil {
			// The manifest is written: the window is complete, and
			// Checkpoints finds it through the pending entry.
			w.logger.Warn("files sink: updating the checkpoint object after the manifest failed", zap.String("object", w.st.location(state.key)), zap.Error(err))
		}
		w.mu.Lock()
		for _, cp := range cps {
			w.learn(cp)
		}
		w.mu.Unlock()
		w.dropSuperseded(ctx, state, cps)
	}
	return nil
}

// floor is the HLC at or below which a row of this window was already
// written by an earlier window: the oldest previous checkpoint among the
// window's partitions. By CockroachDB's resolved guarantee every row with
// updated <= a partition's resolved was in the window through it, so rows
// the changefeed re-sent at exactly the frontier are not written twice.
func (tx *Tx) floor(cps []sinks.Checkpoint) schemas.HLC {
	if len(cps) == 0 {
		return schemas.HLC{}
	}
	tx.w.mu.Lock()
	defer tx.w.mu.Unlock()
	var floor schemas.HLC
	for i, cp := range cps {
		stored, ok := tx.w.applied[partKey{cp.Group, cp.Topic, cp.Partition}]
		if !ok {
			return schemas.HLC{}
		}
		h := stored.Resolved
		if i == 0 || h.Less(floor) {
			floor = h
		}
	}
	return floor
}

// recover returns the checkpoint object of (group, partset), after
// finishing what a crash left of this or another partition set's window
// over these partitions: a window whose manifest exists is complete, one
// without has its files deleted, so that writing it again adds nothing.
// A partition set that shares partitions with this window has lost them to
// this member, so no live member is still writing its window.
func (w *Writer) recover(ctx context.Context, group, partset string, cps []sinks.Checkpoint) (*stateObject, error) {
	own := &stateObject{key: stateKey(group, partset)}
	if err := w.readJSON(ctx, own.key, own); err != nil && !errors.Is(err, errNotFound) {
		return nil, err
	}
	own.Group, own.PartitionSet, own.Partitions = group, partset, toEntries(cps)
	for i := range own.Partitions {
		own.Partitions[i].Resolved, own.Partitions[i].NextOffset = "", 0
	}
	mine := map[partKey]bool{}
	for _, cp := range cps {
		mine[partKey{group, cp.Topic, cp.Partition}] = true
	}
	todo := []*stateObject{}
	if own.Pending != nil {
		todo = append(todo, own)
	}
	w.mu.Lock()
	for k, st := range w.stale {
		if k == own.key || st.Group != group {
			continue
		}
		for _, p := range st.Partitions {
			if mine[partKey{group, p.Topic, p.Partition}] {
				todo = append(todo, st)
				break
			}
		}
	}
	w.mu.Unlock()
	for _, st := range todo {
		if st != own {
			fresh := &stateObject{key: st.key}
			if err := w.readJSON(ctx, st.key, fresh); err != nil && !errors.Is(err, errNotFound) {
				return nil, err
			}
			st = fresh
		}
		if st.Pending != nil {
			var m Manifest
			switch err := w.readJSON(ctx, st.Pending.Manifest, &m); {
			case err == nil:
				st.Manifest, st.Checkpoints = st.Pending.Manifest, m.Checkpoints
			case errors.Is(err, errNotFound):
				n := 0
				for _, prefix := range st.Pending.Prefixes {
					keys, err := w.st.list(ctx, prefix)
					if err != nil {
						return nil, err
					}
					if err := w.st.remove(ctx, keys); err != nil {
						return nil, err
					}
					n += len(keys)
				}
				w.logger.Warn("files sink: deleted the files of a window a crash cut short", zap.String("manifest", st.Pending.Manifest), zap.Int("files", n))
			default:
				return nil, err
			}
			st.Pending = nil
			if st.key != own.key {
				if err := w.writeJSON(ctx, st.key, st); err != nil {
					return nil, err
				}
			}
		}
		w.mu.Lock()
		delete(w.stale, st.key)
		w.mu.Unlock()
	}
	return own, nil
}

// dropSuperseded deletes the checkpoint objects of other partition sets
// of the group whose every partition this window checkpointed at least as
// far: they can no longer change what Checkpoints returns. A failure only
// leaves an object behind.
func (w *Writer) dropSuperseded(ctx context.Context, own *stateObject, cps []sinks.Checkpoint) {
	mine := make(map[partKey]schemas.HLC, len(cps))
	for _, cp := range cps {
		mine[partKey{cp.Group, cp.Topic, cp.Partition}] = cp.Resolved
	}
	w.mu.Lock()
	var drop []*stateObject
	for k, st := range w.others {
		if k == own.key || st.Group != own.Group || st.Pending != nil {
			continue
		}
		superseded := len(st.Checkpoints) > 0
		for _, e := range st.Checkpoints {
			h, err := schemas.ParseHLC(e.Resolved)
			r, ok := mine[partKey{st.Group, e.Topic, e.Partition}]
			if err != nil || !ok || r.Less(h) {
				superseded = false
				break
			}
		}
		if superseded {
			drop = append(drop, st)
			delete(w.others, k)
		}
	}
	w.mu.Unlock()
	for _, st := range drop {
		if err := w.st.remove(ctx, []string{st.key}); err != nil {
			w.logger.Warn("files sink: deleting a superseded checkpoint object failed", zap.String("object", w.st.location(st.key)), zap.Error(err))
		}
	}
}

// writeCatalog records the table's newest version under _highwater/tables
// when it differs from what this writer last recorded.
func (tx *Tx) writeCatalog(ctx context.Context, tw *tableWindow, resolved schemas.HLC) error {
	v := tw.versions[len(tw.versions)-1]
	ti := tableInfo(v, tw.dir, tx.w.cfg.Format, resolved)
	if tx.w.catalog[tw.name] == v.id {
		return nil
	}
	if err := tx.w.writeJSON(ctx, catalogKey(tw.dir), ti); err != nil {
		return fmt.Errorf("table catalog: %w", err)
	}
	tx.w.catalog[tw.name] = v.id
	return nil
}

func deadLetterLines(dls []sinks.DeadLetter) []byte {
	type line struct {
		Group     string    `json:"group"`
		Topic     string    `json:"topic"`
		Partition int32     `json:"partition"`
		Offset    int64     `json:"offset"`
		Timestamp time.Time `json:"timestamp"`
		Key       string    `json:"key"`
		Value     string    `json:"value"`
		SchemaID  int32     `json:"schema_id"`
		Stage     string    `json:"stage"`
		Error     string    `json:"error"`
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, dl := range dls {
		_ = enc.Encode(line{dl.Group, dl.Topic, dl.Partition, dl.Offset, dl.Timestamp.UTC(),
			base64.StdEncoding.EncodeToString(dl.Key), base64.StdEncoding.EncodeToString(dl.Value), dl.SchemaID, dl.Stage, dl.Error})
	}
	return buf.Bytes()
}

// writeTable merges the table's runs in (HLC, key) order, keeps the last
// arrival of each (key, HLC), drops rows at or below floor, and writes each
// row to its version's files.
func (tx *Tx) writeTable(ctx context.Context, tw *tableWindow, base string, floor schemas.HLC) ([]FileEntry, error) {
	var src recordSource
	if len(tw.runs) == 0 {
		slices.SortFunc(tw.recs, compareRecords)
		src = &memSource{recs: tw.recs}
	} else {
		if err := tx.spillTable(tw); err != nil {
			return nil, err
		}
		ms, err := newMergeSource(tw.runs)
		if err != nil {
			return nil, err
		}
		defer ms.close()
		src = ms
	}
	outs := make([]*output, len(tw.versions))
	defer func() {
		for _, o := range outs {
			if o != nil {
				o.abort()
			}
		}
	}()
	var floorKey []byte
	if !floor.IsZero() {
		floorKey = floor.AppendBinary(nil)
	}
	var held []byte
	have := false
	emit := func(rec []byte) error {
		if floorKey != nil && bytes.Compare(rec[:schemas.HLCSize], floorKey) <= 0 {
			return nil
		}
		id := recIdentity(rec)
		r := reader{b: rec[len(id)+8:]}
		vi := int(r.uvarint())
		op := sinks.Op(r.byte())
		if r.err != nil || vi >= len(tw.versions) {
			return errCorrupt
		}
		o := outs[vi]
		if o == nil {
			o = &output{tx: tx, v: tw.versions[vi], base: base + "-" + tw.versions[vi].id}
			outs[vi] = o
		}
		h, err := schemas.DecodeHLC(rec)
		if err != nil {
			return err
		}
		return o.write(ctx, h, op, r.b)
	}
	n := 0
	for {
		rec, err := src.next()
		if err != nil {
			return nil, err
		}
		if rec == nil {
			break
		}
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if have && !bytes.Equal(recIdentity(held), recIdentity(rec)) {
			if err := emit(held); err != nil {
				return nil, err
			}
		}
		// The later arrival of a (key, HLC) replaces the earlier.
		held, have = append(held[:0], rec...), true
	}
	if have {
		if err := emit(held); err != nil {
			return nil, err
		}
	}
	var entries []FileEntry
	for i, o := range outs {
		if o == nil {
			continue
		}
		if err := o.finish(ctx); err != nil {
			return nil, err
		}
		entries = append(entries, o.entries...)
		outs[i] = nil
	}
	return entries, nil
}

// recordSource yields records in order; nil at the end.
type recordSource interface {
	next() ([]byte, error)
}

type memSource struct {
	recs [][]byte
	i    int
}

func (s *memSource) next() ([]byte, error) {
	if s.i >= len(s.recs) {
		return nil, nil
	}
	s.i++
	return s.recs[s.i-1], nil
}

// runReader reads one sorted run.
type runReader struct {
	f   *os.File
	br  *bufio.Reader
	cur []byte
}

func (r *runReader) advance() (bool, error) {
	n, err := binary.ReadUvarint(r.br)
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read sort run: %w", err)
	}
	if n > 1<<30 {
		return false, errCorrupt
	}
	if uint64(cap(r.cur)) < n {
		r.cur = make([]byte, n)
	}
	r.cur = r.cur[:n]
	if _, err := io.ReadFull(r.br, r.cur); err != nil {
		return false, fmt.Errorf("read sort run: %w", err)
	}
	return true, nil
}

// mergeSource is a k-way merge of sorted runs.
type mergeSource struct {
	h    runHeap
	last *runReader
	all  []*runReader
}

type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return compareRecords(h[i].cur, h[j].cur) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newMergeSource(runs []string) (*mergeSource, error) {
	ms := &mergeSource{}
	for _, name := range runs {
		f, err := os.Open(name)
		if err != nil {
			ms.close()
			return nil, fmt.Errorf("open sort run: %w", err)
		}
		r := &runReader{f: f, br: bufio.NewReaderSize(f, 256<<10)}
		ms.all = append(ms.all, r)
		ok, err := r.advance()
		if err != nil {
			ms.close()
			return nil, err
		}
		if ok {
			ms.h = append(ms.h, r)
		}
	}
	heap.Init(&ms.h)
	return ms, nil
}

// next returns the smallest record; it stays valid until the next call.
func (ms *mergeSource) next() ([]byte, error) {
	if ms.last != nil {
		ok, err := ms.last.advance()
		if err != nil {
			return nil, err
		}
		if ok {
			heap.Push(&ms.h, ms.last)
		}
		ms.last = nil
	}
	if len(ms.h) == 0 {
		return nil, nil
	}
	r := heap.Pop(&ms.h).(*runReader)
	ms.last = r
	return r.cur, nil
}

func (ms *mergeSource) close() {
	for _, r := range ms.all {
		r.f.Close()
	}
}

// output writes one table version's rows of a window into numbered parts.
type output struct {
	tx   *Tx
	v    *version
	base string
	part int

	file    *os.File
	count   *countingWriter
	bw      *bufio.Writer
	pw      *parquet.Writer
	row     parquet.Row
	flushed int64
	jw      io.WriteCloser
	line    []byte
	hw      [16]byte

	key        string
	rows       int64
	minH, maxH schemas.HLC
	entries    []FileEntry
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// rowGroupBytes bounds a Parquet row group held in memory while written.
const rowGroupBytes = 32 << 20

func (o *output) open() error {
	w := o.tx.w
	ext := ".parquet"
	if w.cfg.Format == NDJSON {
		ext = ".ndjson" + w.codec.ext
	}
	o.key = fmt.Sprintf("%s-%04d%s", o.base, o.part, ext)
	f, err := os.CreateTemp(w.tmp, "part-*.tmp")
	if err != nil {
		return fmt.Errorf("create data file: %w", err)
	}
	o.file = f
	o.bw = bufio.NewWriterSize(f, 1<<20)
	o.count = &countingWriter{w: o.bw}
	o.rows, o.minH, o.maxH = 0, schemas.HLC{}, schemas.HLC{}
	if w.cfg.Format == NDJSON {
		o.jw = nopCloser{o.count}
		if w.codec.wrap != nil {
			if o.jw, err = w.codec.wrap(o.count); err != nil {
				return fmt.Errorf("create data file: %w", err)
			}
		}
		return nil
	}
	if o.v.schema == nil {
		o.v.schema = parquetSchema(o.v)
	}
	pk := make([]string, len(o.v.table.Key))
	for i, k := range o.v.table.Key {
		pk[i] = o.v.table.Columns[k].Name
	}
	pkJSON, _ := json.Marshal(pk)
	o.pw = parquet.NewWriter(o.count, o.v.schema,
		parquet.Compression(w.codec.parquet),
		// Version 1 data pages: the widest reader support (Snowflake,
		// BigQuery, older Spark and Hive).
		parquet.DataPageVersion(1),
		parquet.KeyValueMetadata("highwater.table", o.v.table.Name),
		parquet.KeyValueMetadata("highwater.primary_key", string(pkJSON)),
	)
	o.flushed = 0
	return nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func (o *output) write(ctx context.Context, h schemas.HLC, op sinks.Op, values []byte) error {
	if o.file == nil {
		if err := o.open(); err != nil {
			return err
		}
	}
	r := reader{b: values}
	if o.pw != nil {
		row := o.row[:0]
		for j, c := range o.v.cols {
			row = c.appendParquet(row, &r, j)
		}
		n := len(o.v.cols)
		row = append(row,
			parquet.FixedLenByteArrayValue(hlcDecimal(o.hw[:], h)).Level(0, 0, n),
			parquet.ByteArrayValue([]byte(op.String())).Level(0, 0, n+1))
		o.row = row
		if r.err != nil {
			return r.err
		}
		if _, err := o.pw.WriteRows([]parquet.Row{row}); err != nil {
			return fmt.Errorf("write parquet row: %w", err)
		}
	} else {
		b := append(o.line[:0], '{')
		for j, c := range o.v.cols {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, c.name)
			b = append(b, ':')
			b = c.appendJSON(b, &r)
		}
		b = append(b, `,"`+sinks.UpdatedColumn+`":"`...)
		b = h.AppendText(b)
		b = append(b, `","`+sinks.OpColumn+`":"`...)
		b = append(b, op.String()...)
		b = append(b, "\"}\n"...)
		o.line = b
		if r.err != nil {
			return r.err
		}
		if _, err := o.jw.Write(b); err != nil {
			return fmt.Errorf("write ndjson row: %w", err)
		}
	}
	if o.rows == 0 {
		o.minH = h
	}
	o.rows++
	o.maxH = h
	size := o.count.n
	if o.pw != nil {
		size = o.pw.Size()
		if size-o.flushed >= rowGroupBytes {
			if err := o.pw.Flush(); err != nil {
				return fmt.Errorf("write parquet row group: %w", err)
			}
			o.flushed = o.pw.Size()
		}
	}
	if size >= o.tx.w.cfg.MaxFileSize {
		return o.close(ctx)
	}
	return nil
}

// hlcDecimal renders h as _hw_updated's DECIMAL(38,10) unscaled value,
// WallTime*10^10 + Logical, in 16 bytes of big-endian two's complement.
func hlcDecimal(b []byte, h schemas.HLC) []byte {
	hi, lo := bits.Mul64(uint64(h.WallTime), 10_000_000_000)
	var carry uint64
	lo, carry = bits.Add64(lo, uint64(h.Logical), 0)
	hi += carry
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:16], lo)
	return b[:16]
}

// close finishes the current part and puts it in the store.
func (o *output) close(ctx context.Context) error {
	if o.file == nil {
		return nil
	}
	var err error
	if o.pw != nil {
		err = o.pw.Close()
		o.pw = nil
	} else {
		err = o.jw.Close()
	}
	if err == nil {
		err = o.bw.Flush()
	}
	if cerr := o.file.Close(); err == nil {
		err = cerr
	}
	name := o.file.Name()
	o.file = nil
	if err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("write data file %s: %w", o.key, err)
	}
	if err := o.tx.w.st.putFile(ctx, o.key, name); err != nil {
		_ = os.Remove(name)
		return err
	}
	o.entries = append(o.entries, FileEntry{Path: o.key, Table: o.v.table.Name, Rows: o.rows, Bytes: o.count.n,
		MinUpdated: o.minH.String(), MaxUpdated: o.maxH.String()})
	o.part++
	return nil
}

func (o *output) finish(ctx context.Context) error { return o.close(ctx) }

// abort drops an unfinished part.
func (o *output) abort() {
	if o.file != nil {
		name := o.file.Name()
		o.file.Close()
		_ = os.Remove(name)
		o.file = nil
	}
}
