package integration

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/simulator"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/postgres"
)

// The per-record poison scenarios: records that decode but that the buffer
// or PostgreSQL cannot hold, produced into the middle of a simulated feed
// next to legitimate rows of the same table (notes) and of the feed's own
// tables:
//
//	nul-table    ingest  a table whose SQL name holds NUL (Avro name _u0000_)
//	huge-key     ingest  a 70,000-byte Kafka key, above Badger's key limit
//	nul-string   apply   a STRING value with a NUL character
//	nul-json     apply   a JSONB value with \u0000
//
// PostgreSQL's writer refuses the last two per row (processor.ChangeChecker).
var _ processor.ChangeChecker = (*postgres.Writer)(nil)

var recordPoisonKinds = []struct{ kind, stage string }{
	{"nul-table", processor.StageIngest},
	{"huge-key", processor.StageIngest},
	{"nul-string", processor.StageApply},
	{"nul-json", processor.StageApply},
}

// hugeKeyBytes is the Kafka key length of the huge-key record.
const hugeKeyBytes = 70000

// recordKit produces notes rows, legitimate and poison, into a feed's first
// topic.
type recordKit struct {
	f          *feed
	topic      string
	partitions int
	prod       *kgo.Client
	notesKey   int // schema ids
	notesValue int
	nulValue   int
	n          int
	legit      []int64 // ids of the legitimate notes rows
	records    []injected
	hugeKey    []byte // the last huge-key record's key
}

// notesField is a nullable Avro field with CockroachDB's __crdb__ hint.
func notesField(name, avroType, sqlType string) string {
	return `{"type":["null",` + strconv.Quote(avroType) + `],"name":` + strconv.Quote(name) +
		`,"default":null,"__crdb__":` + strconv.Quote(name+" "+sqlType+" NULL") + `}`
}

func newRecordKit(t *testing.T, f *feed) *recordKit {
	t.Helper()
	k := &recordKit{f: f, topic: f.sim.Topics()[0]}
	k.partitions = f.sim.Partitions(k.topic)
	register := func(subject, text string) int {
		id, _, err := f.stack.Registry.RegisterSchema(subject, sr.Schema{Schema: text, Type: sr.TypeAvro})
		if err != nil {
			t.Fatalf("register %s: %v", subject, err)
		}
		return id
	}
	// A primary-key column is NOT NULL, as CockroachDB's key schemas say
	// (a nullable key column is key_column's, which highwater refuses).
	id := `{"type":"long","name":"id","__crdb__":"id INT8 NOT NULL"}`
	fields := id + "," + notesField("s", "string", "STRING") + "," + notesField("j", "string", "JSONB")
	k.notesKey = register("notes-key", `{"type":"record","name":"notes","fields":[`+id+`]}`)
	k.notesValue = register("notes-value", envelope("notes", fields))
	// CockroachDB escapes a NUL in a table name as _u0000_ in Avro names.
	k.nulValue = register("bad_u0000_name-value", envelope("bad_u0000_name", fields))
	var err error
	if k.prod, err = kgo.NewClient(kgo.SeedBrokers(f.stack.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.prod.Close)
	return k
}

func (k *recordKit) key(id int64) []byte {
	return confluent(k.notesKey, avroLong(nil, id))
}

func (k *recordKit) value(schemaID int, id int64, s, j string, updated hlc.Timestamp) []byte {
	b := avroLong(nil, 1) // after: the record
	b = avroLong(b, id)
	b = avroString(avroLong(b, 1), s)
	b = avroString(avroLong(b, 1), j)
	return confluent(schemaID, avroString(avroLong(b, 1), updated.String()))
}

// inject produces two legitimate notes rows and one record of each kind
// (all if none), spread over the partitions, at updated.
func (k *recordKit) inject(ctx context.Context, updated hlc.Timestamp, kinds ...string) ([]injected, error) {
	var out []injected
	produce := func(kind, stage string, key, value []byte) error {
		k.n++
		r, err := k.prod.ProduceSync(ctx, &kgo.Record{Topic: k.topic, Partition: int32(k.n % k.partitions), Key: key, Value: value}).First()
		if err != nil {
			return fmt.Errorf("produce %s: %w", kind, err)
		}
		if stage != "" {
			out = append(out, injected{kind: kind, stage: stage, topic: r.Topic, partition: r.Partition, offset: r.Offset})
		}
		return nil
	}
	legit := func() error {
		id := int64(1000 + k.n)
		k.legit = append(k.legit, id)
		return produce("legit", "", k.key(id), k.value(k.notesValue, id, fmt.Sprintf("note %d", id), `{"n": 1}`, updated))
	}
	if err := legit(); err != nil {
		return out, err
	}
	for _, pk := range recordPoisonKinds {
		if len(kinds) > 0 && !strings.Contains(strings.Join(kinds, ","), pk.kind) {
			continue
		}
		id := int64(2000 + k.n)
		var key, value []byte
		switch pk.kind {
		case "nul-table":
			key, value = k.key(id), k.value(k.nulValue, id, "x", `{}`, updated)
		case "huge-key":
			body := make([]byte, hugeKeyBytes-5)
			for i := range body {
				body[i] = byte('a' + (i*7+i/26)%26) // printable: a leak shows raw or in hex
			}
			key, value = confluent(k.notesKey, body), k.value(k.notesValue, id, "x", `{}`, updated)
			k.hugeKey = key
		case "nul-string":
			key, value = k.key(id), k.value(k.notesValue, id, "before\x00after", `{}`, updated)
		case "nul-json":
			key, value = k.key(id), k.value(k.notesValue, id, "x", `{"a": "x\u0000y"}`, updated)
		}
		if err := produce(pk.kind, pk.stage, key, value); err != nil {
			return out, err
		}
	}
	if err := legit(); err != nil {
		return out, err
	}
	k.records = append(k.records, out...)
	return out, nil
}

// startLoggedMember runs a member on PostgreSQL with policy whose processor,
// buffer and writer log at debug level into the returned observer (and at
// warn into the test log).
func startLoggedMember(t *testing.T, f *feed, group, sinkURL string, policy processor.ErrorPolicy) (*member, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Core()))
	wh := pgWarehouse()
	wh.open = func(t *testing.T, url string, opts sinks.Options) sinks.Writer {
		w, err := postgres.Open(context.Background(), url, opts, log)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	return startMember(t, f, wh, memberConfig{group: group, sinkURL: sinkURL, onError: policy, log: log}), logs
}

// keyLeaks reports whether s holds more of key than its 16-byte prefix:
// a 32-byte run from beyond it, raw or in hex.
func keyLeaks(s string, key []byte) bool {
	for _, at := range []int{100, len(key) / 2, len(key) - 40} {
		run := key[at : at+32]
		if strings.Contains(s, string(run)) || strings.Contains(s, hex.EncodeToString(run)) {
			return true
		}
	}
	return false
}

// checkNoKeyInLogs fails if a captured log line carries the key.
func checkNoKeyInLogs(t *testing.T, logs *observer.ObservedLogs, key []byte) {
	t.Helper()
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	n := 0
	for _, e := range logs.All() {
		line, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		if keyLeaks(line.String(), key) {
			t.Errorf("a log line carries the %d-byte key: %.300s", len(key), line.String())
		}
		line.Free()
		n++
	}
	if n == 0 {
		t.Error("no log line was captured: the check proves nothing")
	}
}

// TestRecordPoisonIsDeadLetteredOnPostgres: with --on-error=dlq, a table
// name with NUL, a 70,000-byte key, and NUL in a STRING and in a JSONB
// value, produced mid-feed among rows of several tables, are set aside once
// each in highwater_dlq (and the dead-letter topic) with their stage and
// error; the feed goes on, the feed's tables equal the oracle, the notes
// rows around the poison are applied, and no log line carries the key.
func TestRecordPoisonIsDeadLetteredOnPostgres(t *testing.T) {
	ctx := context.Background()
	f := newFeed(t, simulator.Options{Partitions: 3, Seed: 89, Diff: true}, feedTables()...)
	k := newRecordKit(t, f)
	sinkURL := pg.CreateDB(t)
	m, logs := startLoggedMember(t, f, "g-records", sinkURL, processor.OnErrorDLQ)
	start := time.Now()
	w := simulator.Workload{Txns: 60, KeysPerTable: 30, RowsPerTxn: 3, DeleteProb: 0.1, ResolveEvery: 10}
	for round := 0; round < 2; round++ {
		if err := f.sim.Run(ctx, w); err != nil {
			t.Fatal(err)
		}
		r, err := f.sim.Resolve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Windows applied before the poison, and after it.
		m.awaitFrontier(t, r)
		if _, err := k.inject(ctx, r.Next()); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.sim.Run(ctx, w); err != nil {
		t.Fatal(err)
	}
	final, err := f.sim.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m.proc.SetStopAt(final)
	m.wait(t, 2*time.Minute)
	s := m.proc.Stats()
	t.Logf("%d record poison dead-lettered (%d at ingest, %d at apply) in %s; %d rows applied in %d windows",
		s.DeadLettersIngest+s.DeadLettersApply, s.DeadLettersIngest, s.DeadLettersApply, time.Since(start).Round(time.Millisecond), s.RowsApplied, s.Windows)
	if s.DeadLettersIngest != 4 || s.DeadLettersApply != 4 {
		t.Errorf("dead letters: %d at ingest, %d at apply; want 4 and 4", s.DeadLettersIngest, s.DeadLettersApply)
	}
	verify(t, f, pgWarehouse(), sinkURL, final, false)

	db := openDB(t, pgWarehouse(), sinkURL)
	if got, want := deadLetterRows(t, db), wantDeadLetters(k.records); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("highwater_dlq:\n got  %v\n want %v", got, want)
	}
	wantErr := map[string]string{"nul-table": "NUL byte", "huge-key": "Kafka key too long", "nul-string": "NUL character", "nul-json": `\u0000`}
	for _, inj := range k.records {
		var msg string
		var keyLen int
		if err := db.QueryRow(`SELECT error, octet_length("key") FROM highwater_dlq WHERE topic = $1 AND "partition" = $2 AND "offset" = $3`,
			inj.topic, inj.partition, inj.offset).Scan(&msg, &keyLen); err != nil {
			t.Fatalf("dead letter %s: %v", inj.where(), err)
		}
		if !strings.Contains(msg, wantErr[inj.kind]) || !strings.Contains(msg, inj.where()) {
			t.Errorf("dead letter %s (%s) error %q, want it to name the record and %q", inj.where(), inj.kind, msg, wantErr[inj.kind])
		}
		if inj.kind == "huge-key" && (keyLen != hugeKeyBytes || keyLeaks(msg, k.hugeKey)) {
			t.Errorf("huge-key dead letter: %d key bytes (want %d), error %.200q", keyLen, hugeKeyBytes, msg)
		}
	}
	var ids []string
	rows, err := db.Query(`SELECT id FROM notes ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, fmt.Sprint(id))
	}
	rows.Close()
	var want []string
	for _, id := range k.legit {
		want = append(want, fmt.Sprint(id))
	}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("notes holds ids %v, want the legitimate rows %v", ids, want)
	}
	topic := dlqTopicRecords(t, f, "g-records.dlq", len(k.records))
	for _, w := range wantDeadLetters(k.records) {
		if topic[w] != 1 {
			t.Errorf("the dead-letter topic holds %s %d times, want once", w, topic[w])
		}
	}
	checkNoKeyInLogs(t, logs, k.hugeKey)
}

// TestRecordPoisonFailsWithItsLocationOnPostgres: with --on-error=fail each
// kind stops the member with an error naming the record's location, and no
// checkpoint passes it.
func TestRecordPoisonFailsWithItsLocationOnPostgres(t *testing.T) {
	for _, pk := range recordPoisonKinds {
		t.Run(pk.kind, func(t *testing.T) {
			ctx := context.Background()
			f := newFeed(t, simulator.Options{Partitions: 2, Seed: 97}, feedTables()[0])
			k := newRecordKit(t, f)
			w := simulator.Workload{Txns: 30, KeysPerTable: 20, RowsPerTxn: 2, ResolveEvery: 10}
			if err := f.sim.Run(ctx, w); err != nil {
				t.Fatal(err)
			}
			good, err := f.sim.Resolve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			inj, err := k.inject(ctx, good.Next(), pk.kind)
			if err != nil || len(inj) != 1 {
				t.Fatalf("inject %s: %v, %v", pk.kind, inj, err)
			}
			if err := f.sim.Run(ctx, w); err != nil {
				t.Fatal(err)
			}
			if _, err := f.sim.Resolve(ctx); err != nil {
				t.Fatal(err)
			}
			sinkURL := pg.CreateDB(t)
			m, logs := startLoggedMember(t, f, "g-records-fail", sinkURL, processor.OnErrorFail)
			runErr := m.stopped(t, time.Minute, "the "+pk.kind+" record")
			if runErr == nil || !strings.Contains(runErr.Error(), inj[0].where()) {
				t.Fatalf("error = %v, want it to name %s", runErr, inj[0].where())
			}
			t.Logf("%s stopped the member: %.300s", pk.kind, runErr)
			if pk.kind == "huge-key" {
				if keyLeaks(runErr.Error(), k.hugeKey) {
					t.Errorf("the error carries the key: %.300s", runErr)
				}
				checkNoKeyInLogs(t, logs, k.hugeKey)
			}
			db := openDB(t, pgWarehouse(), sinkURL)
			var through string
			if err := db.QueryRow(`SELECT CAST(max(resolved) AS TEXT) FROM highwater_checkpoints`).Scan(&through); err != nil {
				t.Fatal(err)
			}
			if at, err := hlc.Parse(through); err != nil || !at.Less(good.Next()) {
				t.Errorf("a checkpoint at %s passed the poison record at %s (%v)", through, good.Next(), err)
			}
		})
	}
}
