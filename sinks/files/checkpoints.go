package files

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// Manifest is the record of one complete window, written after its data
// files: readers that need exactly the complete windows read these.
type Manifest struct {
	FormatVersion int               `json:"format_version"`
	Group         string            `json:"group"`
	PartitionSet  string            `json:"partition_set"`
	Resolved      string            `json:"resolved"`
	Checkpoints   []CheckpointEntry `json:"checkpoints"`
	Files         []FileEntry       `json:"files"`
	DeadLetters   []string          `json:"dead_letters,omitempty"`
	WrittenAt     time.Time         `json:"written_at"`
}

// CheckpointEntry is one partition's checkpoint in a manifest.
type CheckpointEntry struct {
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	Resolved   string `json:"resolved"`
	NextOffset int64  `json:"next_offset"`
}

// FileEntry is one data file of a window.
type FileEntry struct {
	// Path is relative to the root.
	Path       string `json:"path"`
	Table      string `json:"table"`
	Rows       int64  `json:"rows"`
	Bytes      int64  `json:"bytes"`
	MinUpdated string `json:"min_updated"`
	MaxUpdated string `json:"max_updated"`
}

// stateObject is the checkpoint object of one partition set of a group.
type stateObject struct {
	Group        string            `json:"group"`
	PartitionSet string            `json:"partition_set"`
	Partitions   []CheckpointEntry `json:"partitions"`
	// Manifest and Checkpoints are the last complete window.
	Manifest    string            `json:"manifest,omitempty"`
	Checkpoints []CheckpointEntry `json:"checkpoints,omitempty"`
	// Pending is the window being written, until its manifest is.
	Pending *pendingWindow `json:"pending,omitempty"`

	key string
}

// pendingWindow names what a window in progress writes: every object under
// the prefixes, then the manifest.
type pendingWindow struct {
	Manifest string   `json:"manifest"`
	Prefixes []string `json:"prefixes"`
}

func toEntries(cps []sinks.Checkpoint) []CheckpointEntry {
	out := make([]CheckpointEntry, len(cps))
	for i, cp := range cps {
		out[i] = CheckpointEntry{Topic: cp.Topic, Partition: cp.Partition, Resolved: cp.Resolved.String(), NextOffset: cp.NextOffset}
	}
	return out
}

func (w *Writer) readJSON(ctx context.Context, key string, v any) error {
	b, err := w.st.get(ctx, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", w.st.location(key), err)
	}
	return nil
}

func (w *Writer) writeJSON(ctx context.Context, key string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return w.st.put(ctx, key, append(b, '\n'))
}

// Checkpoints returns, per partition of group, the checkpoint of the newest
// complete window. It lists only the group's checkpoint objects (one per
// partition set the group's members ever had), not the data.
func (w *Writer) Checkpoints(ctx context.Context, group string) ([]sinks.Checkpoint, error) {
	// The fence object first: a manifest it names that a crash kept from
	// being written is restored before the checkpoint objects are judged.
	f, err := w.installManifests(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints of group %q: %w", group, err)
	}
	best, stale, others, err := w.readCheckpoints(ctx, group)
	if err != nil {
		return nil, err
	}
	for i := range f.Partitions {
		cp, err := f.Partitions[i].checkpoint(group)
		if err != nil {
			return nil, err
		}
		k := partKey{group, cp.Topic, cp.Partition}
		if old, ok := best[k]; !ok || old.Resolved.Less(cp.Resolved) {
			best[k] = cp
		}
	}
	out := make([]sinks.Checkpoint, 0, len(best))
	w.mu.Lock()
	for _, cp := range best {
		out = append(out, cp)
		w.learn(cp)
	}
	for k, st := range others {
		w.others[k] = st
	}
	for k, st := range stale {
		w.stale[k] = st
	}
	w.mu.Unlock()
	slices.SortFunc(out, func(a, b sinks.Checkpoint) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out, nil
}

// readCheckpoints reads the group's checkpoint objects: the newest
// complete checkpoint per partition, the objects with a window a crash cut
// short (stale) and the others.
func (w *Writer) readCheckpoints(ctx context.Context, group string) (map[partKey]sinks.Checkpoint, map[string]*stateObject, map[string]*stateObject, error) {
	prefix := internalDir + "/checkpoints/" + escape(group) + "/"
	keys, err := w.st.list(ctx, prefix)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read checkpoints of group %q: %w", group, err)
	}
	best := map[partKey]sinks.Checkpoint{}
	stale := map[string]*stateObject{}
	others := map[string]*stateObject{}
	for _, key := range keys {
		if !strings.HasSuffix(key, ".json") {
			continue
		}
		st := &stateObject{key: key}
		if err := w.readJSON(ctx, key, st); err != nil {
			if errors.Is(err, errNotFound) {
				continue
			}
			return nil, nil, nil, fmt.Errorf("read checkpoints of group %q: %w", group, err)
		}
		if st.Group != group {
			continue
		}
		entries := st.Checkpoints
		if st.Pending == nil {
			others[key] = st
		} else {
			var m Manifest
			switch err := w.readJSON(ctx, st.Pending.Manifest, &m); {
			case err == nil:
				// The crash came after the manifest: the window is
				// complete.
				entries = m.Checkpoints
			case errors.Is(err, errNotFound):
				stale[key] = st
			default:
				return nil, nil, nil, fmt.Errorf("read checkpoints of group %q: %w", group, err)
			}
		}
		for _, e := range entries {
			h, err := hlc.Parse(e.Resolved)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("read checkpoints of group %q: %s: topic %q partition %d: %w", group, w.st.location(key), e.Topic, e.Partition, err)
			}
			k := partKey{group, e.Topic, e.Partition}
			cp := sinks.Checkpoint{Group: group, Topic: e.Topic, Partition: e.Partition, Resolved: h, NextOffset: e.NextOffset}
			if old, ok := best[k]; !ok || old.Resolved.Less(h) || (old.Resolved == h && old.NextOffset < cp.NextOffset) {
				best[k] = cp
			}
		}
	}
	return best, stale, others, nil
}

// learn records cp as stored, unless a newer checkpoint of its partition
// is known. The caller holds w.mu.
func (w *Writer) learn(cp sinks.Checkpoint) {
	k := partKey{cp.Group, cp.Topic, cp.Partition}
	if old, ok := w.applied[k]; !ok || old.Resolved.Less(cp.Resolved) {
		w.applied[k] = cp
	}
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
	mine := make(map[partKey]hlc.Timestamp, len(cps))
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
			h, err := hlc.Parse(e.Resolved)
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
