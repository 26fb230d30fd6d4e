package files

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// commitPlan is what a window's commit writes and under which names, all
// decided before anything is written.
type commitPlan struct {
	// cps are the window's checkpoints in (topic, partition) order, each
	// kept at the stored one where that is further; held are the
	// checkpoints Fence was given.
	cps, held []sinks.Checkpoint
	// group and partset name the checkpoint object and the manifest; a
	// window without checkpoints has a unique partset and no group.
	group, partset string
	// resolved is the window's HLC: the newest checkpoint's resolved, or
	// the newest row's without checkpoints.
	resolved hlc.Timestamp
	// floor is the HLC at or below which rows were already written
	// (Tx.floor).
	floor hlc.Timestamp
	// base and date place the window's files: <table dir>/<date>/<base>-*
	// and the dead letters' dlqKey.
	base, date, dlqKey string
	// manifest is the manifest's key; pending names it and the files'
	// prefixes in the checkpoint object while the window is written.
	manifest string
	pending  *pendingWindow
	// token is this commit's claim on the held partitions.
	token string
}

// commit writes the window in plain steps:
//
//  1. plan: the checkpoints, names and floor, from what this writer knows;
//  2. claim the held partitions (fence.go), so that a window of another
//     member built on the same checkpoints supersedes this one;
//  3. record the window as pending in the checkpoint object, after
//     finishing what a crash left (recover), so that a crash from here on
//     is cleaned up by the next window over these partitions;
//  4. write the data files, table catalogs and dead letters;
//  5. publish: a staged manifest, the fence's checkpoints (if no other
//     window claimed the partitions since), the manifest, the checkpoint
//     object.
//
// The window is complete when its manifest exists.
func (tx *Tx) commit(ctx context.Context) error {
	if tx.empty() {
		return nil
	}
	p := tx.plan()
	if err := tx.claim(ctx, p); err != nil {
		return err
	}
	state, err := tx.markPending(ctx, p)
	if err != nil {
		return err
	}
	m, err := tx.writeFiles(ctx, p)
	if err != nil {
		return err
	}
	return tx.publish(ctx, p, state, m)
}

// empty reports whether the window has nothing to write: no rows, no
// checkpoints, no dead letters.
func (tx *Tx) empty() bool {
	rows := int64(0)
	for _, tw := range tx.order {
		rows += tw.rows
	}
	return rows == 0 && len(tx.cps) == 0 && len(tx.dls) == 0
}

// plan decides the window's checkpoints and names, and drops the dead
// letters an earlier window already wrote.
func (tx *Tx) plan() *commitPlan {
	w := tx.w
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
	p := &commitPlan{cps: cps, resolved: tx.maxHLC}
	if len(cps) > 0 {
		p.group, p.partset = cps[0].Group, partsetID(cps)
		p.resolved = cps[0].Resolved
		for _, cp := range cps {
			if p.resolved.Less(cp.Resolved) {
				p.resolved = cp.Resolved
			}
		}
	} else {
		// No checkpoint, so nothing to resume from: a unique name.
		var b [6]byte
		_, _ = rand.Read(b[:])
		p.partset = "x" + hex.EncodeToString(b[:])
	}
	p.floor = tx.floor(cps)
	p.base = hlcName(p.resolved) + "-" + p.partset
	p.date = datePath(p.resolved)
	p.dlqKey = DeadLetterDir + "/" + escape(p.group) + "/" + p.date + "/" + p.base + ".ndjson"
	p.manifest = manifestKey(p.group, p.partset, p.resolved)
	p.pending = &pendingWindow{Manifest: p.manifest, Prefixes: []string{p.dlqKey}}
	for _, tw := range tx.order {
		if tw.rows > 0 {
			p.pending.Prefixes = append(p.pending.Prefixes, tw.dir+"/"+p.date+"/"+p.base+"-")
		}
	}
	p.held = tx.heldList()
	p.token = newToken()
	return p
}

// claim claims the held partitions before anything is written: from
// here, a window of another member built on the same checkpoints takes
// the claim over and this one cannot publish. It learns the fence's
// checkpoints on the way, so it computes the floor again.
func (tx *Tx) claim(ctx context.Context, p *commitPlan) error {
	held := p.held
	if len(held) > 0 && len(p.cps) > 0 && held[0].Group != p.group {
		return fmt.Errorf("commit window through %s: fenced group %q, checkpointed group %q", p.resolved, held[0].Group, p.group)
	}
	if len(held) == 0 {
		return nil
	}
	if _, err := tx.w.installManifests(ctx, held[0].Group); err != nil {
		return fmt.Errorf("commit window through %s: %w", p.resolved, err)
	}
	if err := tx.w.claim(ctx, held[0].Group, p.token, held); err != nil {
		if errors.Is(err, sinks.ErrFenced) {
			return err
		}
		return fmt.Errorf("commit window through %s: %w", p.resolved, err)
	}
	p.floor = tx.floor(p.cps)
	return nil
}

// markPending records the window as pending in its checkpoint object,
// after recover finished what a crash left; nil without checkpoints.
func (tx *Tx) markPending(ctx context.Context, p *commitPlan) (*stateObject, error) {
	if len(p.cps) == 0 {
		return nil, nil
	}
	state, err := tx.w.recover(ctx, p.group, p.partset, p.cps)
	if err != nil {
		return nil, fmt.Errorf("commit window through %s: %w", p.resolved, err)
	}
	state.Pending = p.pending
	if err := tx.w.writeJSON(ctx, state.key, state); err != nil {
		return nil, fmt.Errorf("commit window through %s: %w", p.resolved, err)
	}
	return state, nil
}

// writeFiles writes every table's data files and catalog entry and the
// dead letters, and returns the manifest that names them.
func (tx *Tx) writeFiles(ctx context.Context, p *commitPlan) (Manifest, error) {
	m := Manifest{FormatVersion: 1, Group: p.group, PartitionSet: p.partset, Resolved: p.resolved.String(), Checkpoints: toEntries(p.cps)}
	for _, tw := range tx.order {
		if tw.rows == 0 {
			continue
		}
		entries, err := tx.writeTable(ctx, tw, tw.dir+"/"+p.date+"/"+p.base, p.floor)
		if err != nil {
			return m, fmt.Errorf("commit window through %s: table %q: %w", p.resolved, tw.name, err)
		}
		m.Files = append(m.Files, entries...)
		if err := tx.writeCatalog(ctx, tw, p.resolved); err != nil {
			return m, fmt.Errorf("commit window through %s: %w", p.resolved, err)
		}
	}
	if len(tx.dls) > 0 {
		if err := tx.w.st.put(ctx, p.dlqKey, deadLetterLines(tx.dls)); err != nil {
			return m, fmt.Errorf("commit window through %s: dead letters: %w", p.resolved, err)
		}
		m.DeadLetters = []string{p.dlqKey}
	}
	m.WrittenAt = time.Now().UTC()
	return m, nil
}

// publish makes the written window complete: it moves the checkpoints in
// the fence object, writes the manifest, and updates the checkpoint
// object (state, nil without checkpoints).
func (tx *Tx) publish(ctx context.Context, p *commitPlan, state *stateObject, m Manifest) error {
	w := tx.w
	held, cps := p.held, p.cps
	if len(held) > 0 || len(cps) > 0 {
		// The checkpoints move in the fence object, if no other window
		// claimed the held partitions since; the manifest is staged first
		// so that a crash right after cannot lose the window.
		fg := p.group
		if fg == "" {
			fg = held[0].Group
		}
		staged := stagedKey(fg, p.base, p.token)
		if err := w.writeJSON(ctx, staged, m); err != nil {
			return fmt.Errorf("commit window through %s: staged manifest: %w", p.resolved, err)
		}
		if err := w.publish(ctx, fg, p.token, held, cps, p.manifest, staged); err != nil {
			_ = w.st.remove(ctx, []string{staged})
			if errors.Is(err, sinks.ErrFenced) {
				return err
			}
			return fmt.Errorf("commit window through %s: %w", p.resolved, err)
		}
		defer func() {
			// Only once the manifest is written: until then the staged
			// copy is what restores it.
			if _, err := w.st.get(context.WithoutCancel(ctx), p.manifest); err == nil {
				_ = w.st.remove(context.WithoutCancel(ctx), []string{staged})
			}
		}()
	}
	if err := w.writeJSON(ctx, p.manifest, m); err != nil {
		return fmt.Errorf("commit window through %s: manifest: %w", p.resolved, err)
	}
	if state != nil {
		state.Pending = nil
		state.Manifest, state.Checkpoints = p.manifest, m.Checkpoints
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
func (tx *Tx) floor(cps []sinks.Checkpoint) hlc.Timestamp {
	if len(cps) == 0 {
		return hlc.Timestamp{}
	}
	tx.w.mu.Lock()
	defer tx.w.mu.Unlock()
	var floor hlc.Timestamp
	for i, cp := range cps {
		stored, ok := tx.w.applied[partKey{cp.Group, cp.Topic, cp.Partition}]
		if !ok {
			return hlc.Timestamp{}
		}
		h := stored.Resolved
		if i == 0 || h.Less(floor) {
			floor = h
		}
	}
	return floor
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
func (tx *Tx) writeTable(ctx context.Context, tw *tableWindow, base string, floor hlc.Timestamp) ([]FileEntry, error) {
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
		if floorKey != nil && bytes.Compare(rec[:hlc.Size], floorKey) <= 0 {
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
		h, err := hlc.Decode(rec)
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
