package files

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// The fence of a group is one object, _highwater/fence/<group>.json, that
// holds every partition's checkpoint and is only ever replaced by a
// conditional write (compare and swap: S3 If-Match / If-None-Match, or a
// locked compare and rename on a directory). A window that fences
// partitions commits in two steps:
//
//  1. claim: it reads the fence object, checks that each held partition is
//     still at the resolved the window was built on, and writes its claim
//     token on them; a later window over the same checkpoint replaces the
//     claim.
//  2. publish, after its data files and a staged copy of its manifest:
//     it moves the partitions' checkpoints, if each still carries its
//     claim. Then it writes the manifest, which makes the window complete
//     for readers.
//
// Of two windows built on one checkpoint, only one can publish: the one
// that claimed last, unless the other published before that claim, in
// which case the later claim sees the moved checkpoint and is fenced.
// A crash between publish and manifest leaves the checkpoint moved and the
// manifest staged: the next Checkpoints or Commit of the group writes the
// manifest from the staged copy.

// fenceObject is the fence of one group.
type fenceObject struct {
	Group      string       `json:"group"`
	Partitions []fenceEntry `json:"partitions"`
}

// fenceEntry is one partition's checkpoint in the fence object.
type fenceEntry struct {
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	Resolved   string `json:"resolved"`
	NextOffset int64  `json:"next_offset"`
	// Manifest is the window that moved the checkpoint here; Staged is a
	// copy of it written before the fence object, from which a manifest
	// that a crash kept from being written is restored.
	Manifest string `json:"manifest,omitempty"`
	Staged   string `json:"staged,omitempty"`
	// Claim is the token of the window that fenced the partition last and
	// has not published yet.
	Claim string `json:"claim,omitempty"`
}

func fenceKey(group string) string {
	return internalDir + "/fence/" + escape(group) + ".json"
}

func stagedKey(group, base, token string) string {
	return internalDir + "/staged/" + escape(group) + "/" + base + "-" + token + ".json"
}

func (e *fenceEntry) checkpoint(group string) (sinks.Checkpoint, error) {
	cp := sinks.Checkpoint{Group: group, Topic: e.Topic, Partition: e.Partition, NextOffset: e.NextOffset}
	h, err := hlc.Parse(e.Resolved)
	if err != nil {
		return cp, fmt.Errorf("fence object of group %q: %s[%d]: resolved %q: %w", group, e.Topic, e.Partition, e.Resolved, err)
	}
	cp.Resolved = h
	return cp, nil
}

// entry returns the entry of a partition, or nil.
func (f *fenceObject) entry(topic string, partition int32) *fenceEntry {
	for i := range f.Partitions {
		if e := &f.Partitions[i]; e.Topic == topic && e.Partition == partition {
			return e
		}
	}
	return nil
}

// add appends an entry for cp and returns it.
func (f *fenceObject) add(cp sinks.Checkpoint) *fenceEntry {
	f.Partitions = append(f.Partitions, fenceEntry{Topic: cp.Topic, Partition: cp.Partition, Resolved: cp.Resolved.String(), NextOffset: cp.NextOffset})
	return &f.Partitions[len(f.Partitions)-1]
}

// readFence returns the group's fence object and its version tag; an
// absent one is empty, with tag "".
func (w *Writer) readFence(ctx context.Context, group string) (*fenceObject, string, error) {
	f := &fenceObject{Group: group}
	b, tag, err := w.st.getTagged(ctx, fenceKey(group))
	if errors.Is(err, errNotFound) {
		return f, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read the fence of group %q: %w", group, err)
	}
	if err := json.Unmarshal(b, f); err != nil {
		return nil, "", fmt.Errorf("read %s: %w", w.st.location(fenceKey(group)), err)
	}
	return f, tag, nil
}

// writeFence replaces the fence object if it is still version tag.
func (w *Writer) writeFence(ctx context.Context, f *fenceObject, tag string) error {
	slices.SortFunc(f.Partitions, func(a, b fenceEntry) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the fence of group %q: %w", f.Group, err)
	}
	return w.st.putIf(ctx, fenceKey(f.Group), append(b, '\n'), tag)
}

// maxFenceAttempts bounds the compare-and-swap retries of one claim or
// publish; each retry means another window of the group wrote the fence
// object in between.
const maxFenceAttempts = 100

// casFence reads the group's fence object, lets update change it (or
// return an error, which ends the attempt), and writes it back if no
// other writer replaced it in between; otherwise it tries again.
func (w *Writer) casFence(ctx context.Context, group string, update func(f *fenceObject) error) error {
	for attempt := 1; ; attempt++ {
		f, tag, err := w.readFence(ctx, group)
		if err != nil {
			return err
		}
		if err := update(f); err != nil {
			return err
		}
		err = w.writeFence(ctx, f, tag)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errConflict) {
			return err
		}
		if attempt == maxFenceAttempts {
			return fmt.Errorf("the fence of group %q changed under %d attempts to update it", group, attempt)
		}
		if err := sleepCtx(ctx, min(attempt, 20)); err != nil {
			return err
		}
	}
}

// legacyStored returns the stored checkpoints of partitions that the fence
// object does not list yet (a sink written before it existed): those of
// the checkpoint objects.
func (w *Writer) legacyStored(ctx context.Context, group string) (map[partKey]sinks.Checkpoint, error) {
	best, _, _, err := w.readCheckpoints(ctx, group)
	return best, err
}

// fenceEntryOf returns the entry of cp's partition in f, adding one from
// the checkpoint objects (or zero) when f has none. legacy is read once,
// on first need.
func (w *Writer) fenceEntryOf(ctx context.Context, f *fenceObject, cp sinks.Checkpoint, legacy *map[partKey]sinks.Checkpoint) (*fenceEntry, error) {
	if e := f.entry(cp.Topic, cp.Partition); e != nil {
		return e, nil
	}
	if *legacy == nil {
		l, err := w.legacyStored(ctx, f.Group)
		if err != nil {
			return nil, err
		}
		*legacy = l
	}
	s, ok := (*legacy)[partKey{cp.Group, cp.Topic, cp.Partition}]
	if !ok {
		s = sinks.Checkpoint{Group: cp.Group, Topic: cp.Topic, Partition: cp.Partition}
	}
	return f.add(s), nil
}

// claim checks that each held partition is at its held resolved and marks
// it with token, in one conditional write of the fence object.
func (w *Writer) claim(ctx context.Context, group, token string, held []sinks.Checkpoint) error {
	var legacy map[partKey]sinks.Checkpoint
	var stored []sinks.Checkpoint
	err := w.casFence(ctx, group, func(f *fenceObject) error {
		stored = stored[:0]
		var differ []sinks.Checkpoint
		for _, h := range held {
			e, err := w.fenceEntryOf(ctx, f, h, &legacy)
			if err != nil {
				return err
			}
			s, err := e.checkpoint(group)
			if err != nil {
				return err
			}
			if s.Resolved != h.Resolved {
				differ = append(differ, s)
			}
			e.Claim = token
			stored = append(stored, s)
		}
		if len(differ) > 0 {
			return &sinks.FencedError{Stored: differ}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The window's floor is the checkpoints it was built on, whatever this
	// writer saw before.
	w.mu.Lock()
	for _, s := range stored {
		w.learn(s)
	}
	w.mu.Unlock()
	return nil
}

// publish moves the checkpoints of cps to the window's, if every held
// partition still carries token, and records the window's manifest and its
// staged copy on them. A checkpoint never moves back.
func (w *Writer) publish(ctx context.Context, group, token string, held, cps []sinks.Checkpoint, manifest, staged string) error {
	var legacy map[partKey]sinks.Checkpoint
	return w.casFence(ctx, group, func(f *fenceObject) error {
		var lost []sinks.Checkpoint
		for _, h := range held {
			e := f.entry(h.Topic, h.Partition)
			if e != nil && e.Claim == token {
				e.Claim = ""
				continue
			}
			var s sinks.Checkpoint
			if e != nil {
				var err error
				if s, err = e.checkpoint(group); err != nil {
					return err
				}
			} else {
				s = sinks.Checkpoint{Group: group, Topic: h.Topic, Partition: h.Partition}
			}
			lost = append(lost, s)
		}
		if len(lost) > 0 {
			// Another window over these partitions claimed them since:
			// the one that published, or that will, is not this one.
			return &sinks.FencedError{Stored: lost}
		}
		for _, cp := range cps {
			e, err := w.fenceEntryOf(ctx, f, cp, &legacy)
			if err != nil {
				return err
			}
			s, err := e.checkpoint(group)
			if err != nil {
				return err
			}
			if cp.Resolved.Less(s.Resolved) {
				continue
			}
			e.Resolved, e.NextOffset = cp.Resolved.String(), cp.NextOffset
			e.Manifest, e.Staged = manifest, staged
		}
		return nil
	})
}

// installManifests writes, from their staged copies, the manifests of
// windows that published their checkpoints to the fence object but whose
// manifest a crash kept from being written; it returns the fence object.
func (w *Writer) installManifests(ctx context.Context, group string) (*fenceObject, error) {
	f, _, err := w.readFence(ctx, group)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, e := range f.Partitions {
		if e.Manifest == "" || e.Staged == "" || seen[e.Manifest] {
			continue
		}
		seen[e.Manifest] = true
		if _, err := w.st.get(ctx, e.Manifest); err == nil {
			continue
		} else if !errors.Is(err, errNotFound) {
			return nil, err
		}
		b, err := w.st.get(ctx, e.Staged)
		if err != nil {
			return nil, fmt.Errorf("restore manifest %s from %s: %w", w.st.location(e.Manifest), w.st.location(e.Staged), err)
		}
		if err := w.st.put(ctx, e.Manifest, b); err != nil {
			return nil, fmt.Errorf("restore manifest %s: %w", w.st.location(e.Manifest), err)
		}
		w.logger.Warn("files sink: wrote the manifest of a window a crash cut short after its checkpoint", zap.String("manifest", w.st.location(e.Manifest)))
	}
	return f, nil
}

// Fence records the checkpoints the window was built on and compares them
// with the stored ones now, so that a stale window fails before its work.
// The comparison that counts is Commit's: a conditional write claims the
// partitions before the window's files are written, and a second one
// publishes its checkpoints only if no other window claimed them since.
func (tx *Tx) Fence(ctx context.Context, held []sinks.Checkpoint) error {
	if err := tx.guard.Check(); err != nil {
		return err
	}
	if len(held) == 0 {
		return nil
	}
	want, err := fenceSet(held)
	if err != nil {
		return tx.guard.Fail(err)
	}
	if tx.held == nil {
		tx.held = map[partKey]sinks.Checkpoint{}
	}
	for _, cp := range want {
		for k := range tx.held {
			if k.group != cp.Group {
				return tx.guard.Fail(fmt.Errorf("fence: one window holds groups %q and %q", k.group, cp.Group))
			}
		}
		tx.held[partKey{cp.Group, cp.Topic, cp.Partition}] = cp
	}
	f, _, err := tx.w.readFence(ctx, want[0].Group)
	if err != nil {
		return tx.guard.Fail(fmt.Errorf("fence: %w", err))
	}
	var legacy map[partKey]sinks.Checkpoint
	var differ []sinks.Checkpoint
	for _, cp := range want {
		e, err := tx.w.fenceEntryOf(ctx, f, cp, &legacy)
		if err != nil {
			return tx.guard.Fail(fmt.Errorf("fence: %w", err))
		}
		s, err := e.checkpoint(cp.Group)
		if err != nil {
			return tx.guard.Fail(fmt.Errorf("fence: %w", err))
		}
		if s.Resolved != cp.Resolved {
			differ = append(differ, s)
		}
	}
	if len(differ) > 0 {
		return tx.guard.Fail(&sinks.FencedError{Stored: differ})
	}
	return nil
}

// heldList returns the fenced partitions, sorted.
func (tx *Tx) heldList() []sinks.Checkpoint {
	out := make([]sinks.Checkpoint, 0, len(tx.held))
	for _, cp := range tx.held {
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b sinks.Checkpoint) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out
}

// newToken returns a random claim token.
func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fenceSet returns held sorted by (group, topic, partition), one entry per
// partition; two entries for one partition must agree.
func fenceSet(held []sinks.Checkpoint) ([]sinks.Checkpoint, error) {
	out := slices.Clone(held)
	slices.SortFunc(out, func(a, b sinks.Checkpoint) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	j := 0
	for i, cp := range out {
		if cp.Group == "" || cp.Topic == "" {
			return nil, fmt.Errorf("fence: empty group or topic in %s[%d]", cp.Topic, cp.Partition)
		}
		if i > 0 && out[j-1].Group == cp.Group && out[j-1].Topic == cp.Topic && out[j-1].Partition == cp.Partition {
			if out[j-1].Resolved != cp.Resolved {
				return nil, fmt.Errorf("fence: %s[%d] held at both %s and %s", cp.Topic, cp.Partition, out[j-1].Resolved, cp.Resolved)
			}
			continue
		}
		out[j] = cp
		j++
	}
	return out[:j], nil
}
