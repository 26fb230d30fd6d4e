// Package scanfeed plays the initial scan of issue 12 item 4: a table of
// many rows emitted by the simulator as a changefeed's initial scan, every
// row at one HLC and no resolved timestamp until the scan is complete. The
// integration tests of scans bigger than --buffer-budget and the initial
// scan phase of `highwater bench` both play it, and both check the mirror
// against the simulator's oracle with Expect and Mirror.
package scanfeed

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/simulator"
)

// TableName is the scanned table.
const TableName = "items"

// Table is the scanned table: a key and a payload.
func Table() simulator.TableDef {
	return simulator.TableDef{
		Name: TableName,
		Columns: []simulator.ColumnDef{
			{Name: "id", Type: "INT8", NotNull: true},
			{Name: "payload", Type: "STRING"},
		},
		PrimaryKey: []string{"id"},
	}
}

// Options are the simulator's options for the scan: 3 partitions, and
// producer batches below the in-process broker's 1 MiB message limit (the
// scan is produced in one burst, and the simulator's 4 MiB batches would
// exceed it). The caller sets the broker and the registry.
func Options(seed int64, dupProb float64) simulator.Options {
	return simulator.Options{Partitions: 3, Seed: seed, DuplicateProb: dupProb,
		KafkaOpts: []kgo.Opt{kgo.ProducerBatchMaxBytes(900 << 10)}}
}

// Payload is row id's payload: 180 x's, a dash and the id in 8 digits
// (TestInitialScanLarge checks this form in SQL). With the key and the
// changefeed envelope a buffered event is ~260 bytes.
func Payload(id int64) string {
	return fmt.Sprintf("%s-%08d", strings.Repeat("x", 180), id)
}

// Load loads rows rows (ids 0 to rows-1) into the table and emits the
// initial scan with no resolved timestamp after it, in chunks so that the
// simulator's memory stays small. It returns the scan's HLC once the
// broker has every record.
func Load(ctx context.Context, sim *simulator.Sim, rows int) (hlc.Timestamp, error) {
	const chunk = 20000
	for i := 0; i < rows; i += chunk {
		batch := make([]map[string]any, 0, chunk)
		for j := i; j < min(i+chunk, rows); j++ {
			batch = append(batch, map[string]any{"id": int64(j), "payload": Payload(int64(j))})
		}
		if err := sim.Load(TableName, batch...); err != nil {
			return hlc.Timestamp{}, fmt.Errorf("scanfeed: load rows %d-%d: %w", i, i+len(batch)-1, err)
		}
	}
	scan, err := sim.InitialScan(ctx)
	if err != nil {
		return hlc.Timestamp{}, fmt.Errorf("scanfeed: initial scan: %w", err)
	}
	if err := sim.Flush(ctx); err != nil {
		return hlc.Timestamp{}, fmt.Errorf("scanfeed: flush the scan: %w", err)
	}
	return scan, nil
}

// Digest sums up a table's rows: how many, and the sum of a hash of each
// row's id, payload and updated HLC. The sum does not depend on the rows'
// order, so a mirror read in any order compares with the oracle's.
type Digest struct {
	Rows int64
	Sum  uint64
}

func (d *Digest) add(id int64, payload string, updated string) {
	h := fnv.New64a()
	b := strconv.AppendInt(nil, id, 10)
	b = append(b, 0)
	b = append(b, payload...)
	b = append(b, 0)
	b = append(b, updated...)
	_, _ = h.Write(b)
	d.Rows++
	d.Sum += h.Sum64()
}

// Expect is the digest of the table as the oracle has it at at: what a
// mirror that has applied through at must hold.
func Expect(o *simulator.Oracle, at hlc.Timestamp) (Digest, error) {
	var d Digest
	for _, r := range o.Rows(TableName, at) {
		id, ok := r.Key[0].(int64)
		payload, pok := r.Values["payload"].(string)
		if !ok || !pok {
			return d, fmt.Errorf("scanfeed: oracle row %v: id %T, payload %T", r.Key, r.Key[0], r.Values["payload"])
		}
		d.add(id, payload, r.Updated.String())
	}
	return d, nil
}

// Mirror is the digest of the mirror's table in a warehouse (DuckDB or
// PostgreSQL), read row by row.
func Mirror(ctx context.Context, db *sql.DB) (Digest, error) {
	var d Digest
	rows, err := db.QueryContext(ctx, `SELECT id, payload, CAST(_hw_updated AS VARCHAR) FROM `+TableName)
	if err != nil {
		return d, fmt.Errorf("scanfeed: read the mirror: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var payload sql.NullString
		var updated string
		if err := rows.Scan(&id, &payload, &updated); err != nil {
			return d, fmt.Errorf("scanfeed: read the mirror: %w", err)
		}
		// The warehouse prints the DECIMAL(38,10) as the HLC's text;
		// parsed and printed again it compares with the oracle's.
		ts, err := hlc.Parse(updated)
		if err != nil {
			return d, fmt.Errorf("scanfeed: mirror row %d: _hw_updated %q: %w", id, updated, err)
		}
		d.add(id, payload.String, ts.String())
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("scanfeed: read the mirror: %w", err)
	}
	return d, nil
}
