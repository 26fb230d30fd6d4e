package integration

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/simulator"
)

// The clock scenarios: records whose HLC is in the year 2200 (a forged or
// corrupted message, a node whose clock jumped) are produced into a
// simulated feed, mid-feed, next to the changefeed's own. Before
// --max-clock-skew, such a resolved timestamp closed a window through 2200,
// whose checkpoint then made every later real row look like an old
// duplicate: dropped, silently and for good.

// year2200 has as many digits as today's HLCs, so a real row's `updated`
// can be replaced in place.
var year2200 = hlc.Timestamp{WallTime: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), Logical: 1}

// futureKit produces year-2200 records into a feed's first topic.
type futureKit struct {
	f     *feed
	topic string
	prod  *kgo.Client
	// resolvedID is the schema id of the feed's resolved messages; row is
	// a real row record of the feed, whose key the future version reuses.
	resolvedID int
	row        *kgo.Record
}

// newFutureKit reads a resolved message and a row record of the feed's
// first topic (some must have been played).
func newFutureKit(t *testing.T, f *feed) *futureKit {
	t.Helper()
	k := &futureKit{f: f, topic: f.sim.Topics()[0], resolvedID: -1}
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.stack.Brokers()...), kgo.ConsumeTopics(k.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for k.row == nil || k.resolvedID < 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no row and resolved records in the feed")
		}
		fs.EachRecord(func(r *kgo.Record) {
			switch {
			case r.Key == nil && k.resolvedID < 0:
				k.resolvedID, _, _ = schemas.ParseFrame(r.Value)
			case r.Key != nil && k.row == nil:
				k.row = r
			}
		})
	}
	if k.prod, err = kgo.NewClient(kgo.SeedBrokers(f.stack.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.prod.Close)
	return k
}

// rowPartition is where the future row version goes: its key's partition.
func (k *futureKit) rowPartition() int32 { return k.row.Partition }

// futureRow is the real row record with its `updated` (the envelope's last
// field) replaced by the year 2200.
func (k *futureKit) futureRow(t *testing.T) []byte {
	t.Helper()
	reg, err := schemas.NewRegistry(k.f.stack.RegistryURL())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := schemas.NewDecoder(reg).Extract(context.Background(), k.row.Topic, k.row.Partition, k.row.Offset, k.row.Key, k.row.Value)
	if err != nil {
		t.Fatal(err)
	}
	old, future := []byte(rec.Updated.String()), []byte(year2200.String())
	if !bytes.HasSuffix(k.row.Value, old) || len(old) != len(future) {
		t.Fatalf("row value does not end with its updated %s of %d bytes", old, len(future))
	}
	v := append(bytes.Clone(k.row.Value[:len(k.row.Value)-len(old)]), future...)
	if got, err := schemas.NewDecoder(reg).Extract(context.Background(), k.row.Topic, k.row.Partition, k.row.Offset, k.row.Key, v); err != nil || got.Updated != year2200 {
		t.Fatalf("the future row decodes as %v, %v", got.Updated, err)
	}
	return v
}

// inject produces a year-2200 resolved message on each of resolvedOn and,
// if row, a year-2200 version of a real row on its own partition.
func (k *futureKit) inject(t *testing.T, resolvedOn []int32, row bool) []injected {
	t.Helper()
	var out []injected
	produce := func(kind string, part int32, key, value []byte) {
		r, err := k.prod.ProduceSync(context.Background(), &kgo.Record{Topic: k.topic, Partition: part, Key: key, Value: value}).First()
		if err != nil {
			t.Fatalf("produce %s: %v", kind, err)
		}
		out = append(out, injected{kind: kind, stage: processor.StageIngest, topic: r.Topic, partition: r.Partition, offset: r.Offset})
	}
	for _, p := range resolvedOn {
		produce("future-resolved", p, nil, confluent(k.resolvedID, avroString(avroLong(nil, 1), year2200.String())))
	}
	if row {
		produce("future-row", k.rowPartition(), k.row.Key, k.futureRow(t))
	}
	return out
}

// otherPartitions returns every partition of the topic but p.
func otherPartitions(f *feed, topic string, p int32) []int32 {
	var out []int32
	for i := int32(0); i < int32(f.sim.Partitions(topic)); i++ {
		if i != p {
			out = append(out, i)
		}
	}
	return out
}

// awaitApplied waits until m has applied through h, failing after a minute.
func awaitApplied(t *testing.T, m *member, h hlc.Timestamp) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); m.proc.Stats().Frontier.Less(h); {
		if time.Now().After(deadline) {
			t.Fatalf("not applied through %s within a minute: %+v", h, m.proc.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkpointRange returns the lowest and highest resolved timestamp of the
// warehouse checkpoints.
func checkpointRange(t *testing.T, db *sql.DB, castText string) (lo, hi hlc.Timestamp) {
	t.Helper()
	var a, b string
	q := fmt.Sprintf(`SELECT CAST(min(resolved) AS %s), CAST(max(resolved) AS %s) FROM highwater_checkpoints`, castText, castText)
	if err := db.QueryRow(q).Scan(&a, &b); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	var err error
	if lo, err = hlc.Parse(a); err != nil {
		t.Fatal(err)
	}
	if hi, err = hlc.Parse(b); err != nil {
		t.Fatal(err)
	}
	return lo, hi
}

func castTextOf(wh warehouse) string {
	if wh.name == "postgres" {
		return "TEXT"
	}
	return "VARCHAR"
}

// TestFutureTimestampsAreDeadLettered: with --on-error=dlq, year-2200
// resolved messages and a year-2200 row version injected mid-feed are
// dead-lettered at ingest; the feed goes on to its final resolved
// timestamp, no checkpoint passes it, the mirror equals the source and
// highwater_dlq and the dead-letter topic hold the future records.
// "one partition" is a resolved message on one partition and the row on
// another; "every partition" is how CockroachDB itself emits a resolved
// timestamp (on every partition), which without the bound closes a window
// through 2200 and loses every later row.
func TestFutureTimestampsAreDeadLettered(t *testing.T) {
	for _, wh := range []warehouse{duckWarehouse(), pgWarehouse()} {
		for _, scenario := range []string{"one partition", "every partition"} {
			t.Run(wh.name+"/"+scenario, func(t *testing.T) {
				ctx := context.Background()
				f := newFeed(t, simulator.Options{Partitions: 3, Seed: 83, Diff: true}, feedTables()[0])
				w := simulator.Workload{Txns: 60, KeysPerTable: 30, RowsPerTxn: 3, DeleteProb: 0.1, ResolveEvery: 10}
				if err := f.sim.Run(ctx, w); err != nil {
					t.Fatal(err)
				}
				good, err := f.sim.Resolve(ctx)
				if err != nil {
					t.Fatal(err)
				}
				k := newFutureKit(t, f)
				sinkURL := wh.url(t)
				group := "g-clock"
				m := startPolicyMember(t, f, wh, group, sinkURL, processor.OnErrorDLQ)
				start := time.Now()
				awaitApplied(t, m, good)
				resolvedOn := otherPartitions(f, k.topic, k.rowPartition())[:1]
				if scenario == "every partition" {
					resolvedOn = append(otherPartitions(f, k.topic, k.rowPartition()), k.rowPartition())
				}
				inj := k.inject(t, resolvedOn, true)
				// The feed goes on: later versions of the same rows, and
				// resolved timestamps that close their windows.
				for i := 0; i < 2; i++ {
					if err := f.sim.Run(ctx, w); err != nil {
						t.Fatal(err)
					}
				}
				final, err := f.sim.Resolve(ctx)
				if err != nil {
					t.Fatal(err)
				}
				m.proc.SetStopAt(final)
				m.wait(t, 2*time.Minute)
				s := m.proc.Stats()
				t.Logf("%s, %s: %d future records dead-lettered in %s; %d rows applied in %d windows",
					wh.name, scenario, s.DeadLettersIngest, time.Since(start).Round(time.Millisecond), s.RowsApplied, s.Windows)
				if s.DeadLettersIngest != int64(len(inj)) || s.DeadLettersApply+s.Skipped != 0 {
					t.Errorf("dead letters: %d at ingest, %d at apply, %d skipped; want %d at ingest", s.DeadLettersIngest, s.DeadLettersApply, s.Skipped, len(inj))
				}
				verify(t, f, wh, sinkURL, final, false)
				db := openDB(t, wh, sinkURL)
				if lo, hi := checkpointRange(t, db, castTextOf(wh)); lo != final || hi != final {
					t.Errorf("checkpoints from %s to %s, want all at the final resolved %s", lo, hi, final)
				}
				if got, want := deadLetterRows(t, db), wantDeadLetters(inj); strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("highwater_dlq:\n got  %v\n want %v", got, want)
				}
				var errText sql.NullString
				if err := db.QueryRow(`SELECT min(error) FROM highwater_dlq`).Scan(&errText); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(errText.String, year2200.String()) || !strings.Contains(errText.String, "--max-clock-skew 5m0s") {
					t.Errorf("highwater_dlq error %q does not name the HLC and the bound", errText.String)
				}
				t.Logf("highwater_dlq error: %s", errText.String)
				topic := dlqTopicRecords(t, f, group+".dlq", len(inj))
				for _, w := range wantDeadLetters(inj) {
					if topic[w] != 1 {
						t.Errorf("dead-letter topic holds %s %d times, want once", w, topic[w])
					}
				}
			})
		}
	}
}

// TestFutureTimestampFailsWithItsLocation: with --on-error=fail a year-2200
// resolved message or row version stops the member with an error naming
// topic[partition]@offset, the HLC and the bound; no checkpoint moved
// towards 2200 and the warehouse equals the source as of its checkpoints.
func TestFutureTimestampFailsWithItsLocation(t *testing.T) {
	for _, kind := range []string{"resolved", "row"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			wh := duckWarehouse()
			f := newFeed(t, simulator.Options{Partitions: 2, Seed: 89}, feedTables()[0])
			w := simulator.Workload{Txns: 40, KeysPerTable: 20, RowsPerTxn: 2, ResolveEvery: 10}
			if err := f.sim.Run(ctx, w); err != nil {
				t.Fatal(err)
			}
			good, err := f.sim.Resolve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			k := newFutureKit(t, f)
			sinkURL := wh.url(t)
			m := startPolicyMember(t, f, wh, "g-clock-fail", sinkURL, processor.OnErrorFail)
			awaitApplied(t, m, good)
			var inj []injected
			if kind == "resolved" {
				inj = k.inject(t, otherPartitions(f, k.topic, k.rowPartition()), false)
			} else {
				inj = k.inject(t, nil, true)
			}
			if err := f.sim.Run(ctx, w); err != nil {
				t.Fatal(err)
			}
			if _, err := f.sim.Resolve(ctx); err != nil {
				t.Fatal(err)
			}
			runErr := m.stopped(t, time.Minute, "the future record")
			if runErr == nil || !errors.Is(runErr, processor.ErrClockSkew) {
				t.Fatalf("error = %v, want processor.ErrClockSkew", runErr)
			}
			for _, part := range []string{inj[0].where(), year2200.String(), "--max-clock-skew 5m0s"} {
				if !strings.Contains(runErr.Error(), part) {
					t.Errorf("error %q does not name %q", runErr, part)
				}
			}
			t.Logf("a future %s stopped the member: %v", kind, runErr)
			db := openDB(t, wh, sinkURL)
			lo, hi := checkpointRange(t, db, "VARCHAR")
			db.Close()
			if lo.Less(good) || hi.Time().After(time.Now()) {
				t.Fatalf("checkpoints from %s to %s: want at least %s, none in the future", lo, hi, good)
			}
			verify(t, f, wh, sinkURL, lo, false)
		})
	}
}
