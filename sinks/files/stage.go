package files

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/parquet-go/parquet-go"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// version is one table version (schema) seen in a window.
type version struct {
	table *model.Table
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
	byTable  map[*model.Table]int
	// recs are the records held in memory, each a slice of a chunk.
	recs  [][]byte
	chunk []byte
	runs  []string
	rows  int64
}

// A record is one row version:
//
//	HLC (12 bytes, hlc.Timestamp.AppendBinary) | key length (4 bytes) | key |
//	sequence (8 bytes) | version index (uvarint) | op (1 byte) | values
//
// The key is the primary-key values in an order-preserving encoding
// (keyorder.go). Records compare with compareRecords in (HLC, key by value,
// arrival) order, and a (key, HLC) group is adjacent.
const recHeader = hlc.Size + 4

func recIdentity(rec []byte) []byte {
	return rec[:recHeader+int(binary.BigEndian.Uint32(rec[hlc.Size:]))]
}

const chunkSize = 1 << 20

// version returns the index of table's version in the window, adding it.
func (tw *tableWindow) version(table *model.Table) (int, error) {
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
	// Another *model.Table with the same schema is the same version.
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
		binary.BigEndian.PutUint32(rec[hlc.Size:], uint32(len(rec)-recHeader))
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
