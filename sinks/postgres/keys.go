package postgres

import (
	"encoding/binary"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// stagedKeys tracks the primary keys one transaction staged for one table,
// so that Commit knows whether every key is staged at most once. Then the
// merge reads the staging table as it is, without the DISTINCT ON sort that
// picks each key's newest version.
//
// A key is tracked exactly only where Go equality is PostgreSQL equality:
// BIGINT and TEXT columns. A key with a column of any other type (UUID
// text forms, ±0.0, NUMERIC scales, time zones), or a key seen twice, marks
// the table as possibly repeated, and the merge sorts as before.
//
// The set is bounded: past maxStagedKeys keys the table is taken as
// possibly repeated and the set is dropped, so that a huge window costs the
// sort, not unbounded memory.
type stagedKeys struct {
	repeated bool
	ints     map[int64]struct{}
	strs     map[string]struct{}
	buf      []byte
}

// maxStagedKeys bounds stagedKeys: about 40 bytes a BIGINT key.
const maxStagedKeys = 1 << 20

// add records the key of ch, a change of table version v.
func (s *stagedKeys) add(v *model.Table, ch *sinks.Change) {
	if s.repeated {
		return
	}
	if len(s.ints)+len(s.strs) >= maxStagedKeys {
		*s = stagedKeys{repeated: true}
		return
	}
	if len(v.Key) == 1 && v.Columns[v.Key[0]].Type.Kind == model.KindInt {
		x, ok := ch.Values[v.Key[0]].(int64)
		if !ok {
			s.repeated = true // not a key Values accepts; COPY fails on it anyway
			return
		}
		if s.ints == nil {
			s.ints = map[int64]struct{}{}
		}
		n := len(s.ints)
		s.ints[x] = struct{}{}
		s.repeated = len(s.ints) == n
		return
	}
	s.buf = s.buf[:0]
	for _, k := range v.Key {
		switch v.Columns[k].Type.Kind {
		case model.KindInt:
			x, ok := ch.Values[k].(int64)
			if !ok {
				s.repeated = true
				return
			}
			s.buf = binary.BigEndian.AppendUint64(append(s.buf, 'i'), uint64(x))
		case model.KindString:
			x, ok := ch.Values[k].(string)
			if !ok {
				s.repeated = true
				return
			}
			s.buf = append(binary.AppendUvarint(append(s.buf, 's'), uint64(len(x))), x...)
		default:
			s.repeated = true
			return
		}
	}
	if s.strs == nil {
		s.strs = map[string]struct{}{}
	}
	n := len(s.strs)
	s.strs[string(s.buf)] = struct{}{}
	s.repeated = len(s.strs) == n
}
