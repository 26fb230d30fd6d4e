package simulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/highwater-dev/highwater/hlc"
)

// Txn is one CockroachDB transaction in progress. All its writes share one
// HLC; for each row only the last write is emitted.
type Txn struct {
	s      *Sim
	ts     hlc.Timestamp
	writes []write
	idx    map[*table]map[string]int
	done   bool
}

type write struct {
	t    *table
	key  []any
	kb   []byte
	vals []any // nil: delete
}

// Txn runs fn as one transaction and, if it returns nil, commits and emits
// its writes. The transaction's HLC is taken before fn runs and is strictly
// later than every earlier HLC. fn must not call other Sim methods.
func (s *Sim) Txn(ctx context.Context, fn func(tx *Txn) error) (hlc.Timestamp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return hlc.Timestamp{}, err
	}
	tx := &Txn{s: s, ts: s.tick()}
	err := fn(tx)
	tx.done = true
	if err != nil {
		return hlc.Timestamp{}, err
	}
	return tx.ts, s.commit(ctx, tx)
}

// HLC returns the transaction's commit timestamp.
func (tx *Txn) HLC() hlc.Timestamp { return tx.ts }

// Upsert writes a whole row: columns missing from row are NULL, or their
// DEFAULT. Values use the Go types model.Kind documents.
func (tx *Txn) Upsert(table string, row map[string]any) error {
	if tx.done {
		return errors.New("simulator: transaction already finished")
	}
	t, err := tx.s.table(table)
	if err != nil {
		return err
	}
	vals, err := tx.s.rowValues(t, row, tx.ts)
	if err != nil {
		return fmt.Errorf("simulator: upsert into %q: %w", table, err)
	}
	sch := t.cur()
	key := make([]any, len(sch.key))
	for i, k := range sch.key {
		key[i] = vals[k]
	}
	return tx.add(t, key, vals)
}

// Delete deletes the row with the given primary key (in primary-index
// order). Deleting an absent row still emits a delete, as CockroachDB does.
func (tx *Txn) Delete(table string, key ...any) error {
	if tx.done {
		return errors.New("simulator: transaction already finished")
	}
	t, err := tx.s.table(table)
	if err != nil {
		return err
	}
	nk, err := t.normalizeKey(key)
	if err != nil {
		return fmt.Errorf("simulator: delete from %q: %w", table, err)
	}
	return tx.add(t, nk, nil)
}

func (tx *Txn) add(t *table, key []any, vals []any) error {
	kb, err := t.encodeKey(key)
	if err != nil {
		return fmt.Errorf("simulator: table %q: encode key: %w", t.name, err)
	}
	w := write{t: t, key: key, kb: kb, vals: vals}
	// Only the last write of a row is emitted. Small transactions find the
	// earlier write by scanning; large ones through an index.
	if len(tx.writes) < 16 {
		for i := range tx.writes {
			if tx.writes[i].t == t && bytes.Equal(tx.writes[i].kb, kb) {
				tx.writes[i] = w
				return nil
			}
		}
	} else {
		if tx.idx == nil {
			tx.idx = map[*table]map[string]int{}
			for i, o := range tx.writes {
				if tx.idx[o.t] == nil {
					tx.idx[o.t] = map[string]int{}
				}
				tx.idx[o.t][string(o.kb)] = i
			}
		}
		if i, ok := tx.idx[t][string(kb)]; ok {
			tx.writes[i] = w
			return nil
		}
		if tx.idx[t] == nil {
			tx.idx[t] = map[string]int{}
		}
		tx.idx[t][string(kb)] = len(tx.writes)
	}
	tx.writes = append(tx.writes, w)
	return nil
}

func (s *Sim) commit(ctx context.Context, tx *Txn) error {
	type ref struct {
		t  *table
		rs *rowState
		i  int
	}
	refs := make([]ref, 0, len(tx.writes))
	s.state.Lock()
	for _, w := range tx.writes {
		rs := w.t.row(w.key, w.kb)
		prev := previous(rs)
		rs.hist = append(rs.hist, rowVersion{ts: tx.ts, mvcc: tx.ts, vals: w.vals,
			schema: int32(w.t.cur().version), flags: flagEmitted})
		if w.t.families != nil {
			// The feed carries the families' KV writes (families.go).
			for _, f := range s.familyVersions(w.t, w.key, w.kb, prev, w.vals, tx.ts, flagEmitted) {
				refs = append(refs, ref{f.t, f.rs, f.i})
			}
			continue
		}
		refs = append(refs, ref{w.t, rs, len(rs.hist) - 1})
	}
	s.state.Unlock()
	for _, r := range refs {
		if err := s.emit(ctx, r.t, r.rs, r.i); err != nil {
			return err
		}
	}
	return nil
}

// Load sets table contents that exist before the feed starts. The rows get
// one HLC and are part of the oracle's state but are not emitted (use
// InitialScan to emit them).
func (s *Sim) Load(table string, rows ...map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	t, err := s.table(table)
	if err != nil {
		return err
	}
	ts := s.tick()
	type loaded struct {
		key, vals []any
		kb        []byte
	}
	ls := make([]loaded, 0, len(rows))
	for i, row := range rows {
		vals, err := s.rowValues(t, row, ts)
		if err != nil {
			return fmt.Errorf("simulator: load %q row %d: %w", table, i, err)
		}
		sch := t.cur()
		key := make([]any, len(sch.key))
		for j, k := range sch.key {
			key[j] = vals[k]
		}
		kb, err := t.encodeKey(key)
		if err != nil {
			return fmt.Errorf("simulator: load %q row %d: %w", table, i, err)
		}
		ls = append(ls, loaded{key, vals, kb})
	}
	s.state.Lock()
	defer s.state.Unlock()
	for _, l := range ls {
		rs := t.row(l.key, l.kb)
		if t.families != nil && len(rs.hist) > 0 && rs.hist[len(rs.hist)-1].ts == ts {
			return fmt.Errorf("simulator: load %q: a key appears twice", table)
		}
		if t.families != nil {
			s.familyVersions(t, l.key, l.kb, previous(rs), l.vals, ts, 0)
		}
		if n := len(rs.hist); n > 0 && rs.hist[n-1].ts == ts {
			rs.hist[n-1].vals = l.vals
			continue
		}
		rs.hist = append(rs.hist, rowVersion{ts: ts, mvcc: ts, vals: l.vals, schema: int32(t.cur().version)})
	}
	return nil
}
