package integration

import (
	"bytes"
	"context"
	"database/sql"
	be "encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/simulator"
)

// The poison-record scenarios: a simulated feed into which records that can
// never be decoded or applied are produced directly, in the middle of the
// feed, next to the changefeed's own. Each kind of poison shows at ingest
// (when the record is read) or at apply (when its window is decoded):
//
//	garbage        ingest  bytes that are not a Confluent frame
//	unknown-id     ingest  a schema id the registry answers 404 for
//	truncated      ingest  a real row's value cut short
//	other-table    apply   a value schema of another table than the key's
//	truncated-key  apply   a key whose Avro body is cut short
//	hostile        apply   record and field names with quotes and SQL, under
//	                       a key of another table
//
// Besides the poison, each injection produces one legitimate row of a table
// whose schema names are hostile (`x"; DROP TABLE orders; --`): it must be
// applied with its names quoted, and nothing of it executed.

// hostileName is a record and field name that would end an SQL identifier
// and run a statement if it were ever pasted into SQL unquoted.
const hostileName = `x"; DROP TABLE orders; --`

// poisonKinds in the order inject produces them.
var poisonKinds = []struct{ kind, stage string }{
	{"garbage", processor.StageIngest},
	{"unknown-id", processor.StageIngest},
	{"truncated", processor.StageIngest},
	{"other-table", processor.StageApply},
	{"truncated-key", processor.StageApply},
	{"hostile", processor.StageApply},
}

// injected is one poison record as produced.
type injected struct {
	kind, stage string
	topic       string
	partition   int32
	offset      int64
}

func (i injected) where() string { return fmt.Sprintf("%s[%d]@%d", i.topic, i.partition, i.offset) }

// poisonKit produces poison records into a feed's first topic.
type poisonKit struct {
	f          *feed
	topic      string
	partitions int
	prod       *kgo.Client
	// Schema ids: the feed's orders key, and the test's own tables.
	ordersKey, otherValue, hostileKey, hostileValue int
	// sample is a real row value of the feed, for the truncated kind.
	sample []byte

	mu      sync.Mutex
	n       int
	legit   int // hostile-named rows produced (legitimate, applied)
	records []injected
}

func avroLong(b []byte, v int64) []byte    { return be.AppendVarint(b, v) }
func avroString(b []byte, s string) []byte { return append(avroLong(b, int64(len(s))), s...) }
func confluent(id int, body ...[]byte) []byte {
	b := be.BigEndian.AppendUint32([]byte{0}, uint32(id))
	for _, p := range body {
		b = append(b, p...)
	}
	return b
}

func envelope(table string, fields string) string {
	return `{"type":"record","name":` + strconv.Quote(table+"_envelope") + `,"fields":[{"type":["null",{"type":"record","name":` +
		strconv.Quote(table) + `,"fields":[` + fields + `]}],"name":"after","default":null},{"type":["null","string"],"name":"updated","default":null}]}`
}

func newPoisonKit(t *testing.T, f *feed) *poisonKit {
	t.Helper()
	ctx := context.Background()
	k := &poisonKit{f: f, topic: f.sim.Topics()[0]}
	k.partitions = f.sim.Partitions(k.topic)
	cl, err := sr.NewClient(sr.URLs(f.stack.RegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	key, err := cl.SchemaByVersion(ctx, model.SQLNameToKafkaName(f.opts.SchemaPrefix+"orders")+"-key", -1)
	if err != nil {
		t.Fatalf("orders key schema: %v", err)
	}
	k.ordersKey = key.ID
	register := func(subject, text string) int {
		id, _, err := f.stack.Registry.RegisterSchema(subject, sr.Schema{Schema: text, Type: sr.TypeAvro})
		if err != nil {
			t.Fatalf("register %s: %v", subject, err)
		}
		return id
	}
	// As CockroachDB writes it: the SQL name escaped into a valid Avro
	// name (an unescaped one is not valid Avro, and the decoder refuses it
	// as poison at ingest); the decoder unescapes it back.
	avroName := model.SQLNameToAvroName(hostileName)
	hostileField := `{"type":["null","long"],"name":` + strconv.Quote(avroName) + `,"default":null}`
	k.otherValue = register("poison_other-value", envelope("poison_other", `{"type":["null","long"],"name":"x","default":null}`))
	k.hostileKey = register("hostile-key", `{"type":"record","name":`+strconv.Quote(avroName)+`,"fields":[`+hostileField+`]}`)
	k.hostileValue = register("hostile-value", envelope(avroName, hostileField))
	if k.prod, err = kgo.NewClient(kgo.SeedBrokers(f.stack.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.prod.Close)
	return k
}

// loadSample reads one row value of the feed (after some rows were played).
func (k *poisonKit) loadSample() error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.f.stack.Brokers()...), kgo.ConsumeTopics(k.topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for k.sample == nil {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return errors.New("no row record in the feed to truncate")
		}
		fs.EachRecord(func(r *kgo.Record) {
			if k.sample == nil && r.Key != nil && len(r.Value) > 40 {
				k.sample = r.Value
			}
		})
	}
	return nil
}

// ordersKeyFor is a well-formed orders key no real row has.
func (k *poisonKit) ordersKeyFor(n int) []byte {
	body := avroString(avroLong(nil, 1), fmt.Sprintf("poison-%d", n))
	return confluent(k.ordersKey, avroLong(avroLong(body, 1), int64(n)))
}

func (k *poisonKit) valueOf(id int, x int64, updated hlc.Timestamp) []byte {
	b := avroLong(avroLong(avroLong(nil, 1), 1), x)
	return confluent(id, avroString(avroLong(b, 1), updated.String()))
}

// inject produces one poison record of each of kinds (all if none),
// spread over the topic's partitions, and one legitimate hostile-named row.
// updated is the `updated` of the apply-stage ones: it must be newer than
// anything the member applied, and covered by a later resolved timestamp.
func (k *poisonKit) inject(updated hlc.Timestamp, kinds ...string) ([]injected, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ctx := context.Background()
	var out []injected
	for i, pk := range poisonKinds {
		if len(kinds) > 0 && !slices.Contains(kinds, pk.kind) {
			continue
		}
		k.n++
		n := k.n
		var key, value []byte
		switch pk.kind {
		case "garbage":
			key, value = []byte("not avro"), []byte{1, 2, 3}
		case "unknown-id":
			key, value = k.ordersKeyFor(n), confluent(987654, []byte{2, 4, 6})
		case "truncated":
			key, value = k.ordersKeyFor(n), k.sample[:len(k.sample)-7]
		case "other-table":
			key, value = k.ordersKeyFor(n), k.valueOf(k.otherValue, int64(n), updated)
		case "truncated-key":
			// The region string says 20 bytes and has 9.
			key = confluent(k.ordersKey, []byte{2, 40}, []byte(fmt.Sprintf("poison-%02d", n%100)))
			value = k.valueOf(k.otherValue, int64(n), updated)
		case "hostile":
			key, value = k.ordersKeyFor(n), k.valueOf(k.hostileValue, int64(n), updated)
		}
		part := int32((n + i) % k.partitions)
		res := k.prod.ProduceSync(ctx, &kgo.Record{Topic: k.topic, Partition: part, Key: key, Value: value})
		r, err := res.First()
		if err != nil {
			return out, fmt.Errorf("produce %s: %w", pk.kind, err)
		}
		out = append(out, injected{kind: pk.kind, stage: pk.stage, topic: r.Topic, partition: r.Partition, offset: r.Offset})
	}
	// A legitimate row of a table with hostile names: applied, quoted.
	k.n++
	k.legit++
	key := confluent(k.hostileKey, avroLong(avroLong(nil, 1), int64(k.n)))
	res := k.prod.ProduceSync(ctx, &kgo.Record{Topic: k.topic, Partition: int32(k.n % k.partitions), Key: key, Value: k.valueOf(k.hostileValue, int64(k.n), updated)})
	k.records = append(k.records, out...)
	if err := res.FirstErr(); err != nil {
		return out, fmt.Errorf("produce the hostile-named row: %w", err)
	}
	return out, nil
}

func (k *poisonKit) all() []injected {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]injected(nil), k.records...)
}

// poisonFeed plays a feed with every kind of poison injected rounds times in
// the middle, each time right after a resolved timestamp, and returns the
// final resolved timestamp. between, if set, runs after each injection.
func poisonFeed(ctx context.Context, f *feed, k *poisonKit, scale, rounds int, between func()) (hlc.Timestamp, error) {
	w := simulator.Workload{Txns: 60 * scale, KeysPerTable: 30 * scale, RowsPerTxn: 3, DeleteProb: 0.1, ResolveEvery: 10}
	for round := 0; round < rounds; round++ {
		if err := f.sim.Run(ctx, w); err != nil {
			return hlc.Timestamp{}, err
		}
		r, err := f.sim.Resolve(ctx)
		if err != nil {
			return hlc.Timestamp{}, err
		}
		if k.sample == nil {
			if err := k.loadSample(); err != nil {
				return hlc.Timestamp{}, err
			}
		}
		if _, err := k.inject(r.Next()); err != nil {
			return hlc.Timestamp{}, err
		}
		if between != nil {
			between()
		}
	}
	if err := f.sim.Run(ctx, w); err != nil {
		return hlc.Timestamp{}, err
	}
	return f.sim.Resolve(ctx)
}

func playPoisoned(t *testing.T, f *feed, k *poisonKit) hlc.Timestamp {
	t.Helper()
	final, err := poisonFeed(context.Background(), f, k, 1, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	return final
}

// startPolicyMember runs an in-process member with a poison policy that
// logs only errors to the test log.
func startPolicyMember(t *testing.T, f *feed, wh warehouse, group, sinkURL string, policy processor.ErrorPolicy) *member {
	t.Helper()
	return startMember(t, f, wh, memberConfig{group: group, sinkURL: sinkURL, onError: policy,
		log: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))})
}

// openDB opens the warehouse at sinkURL for reading (the member must have
// stopped: DuckDB allows one process per file); highwater's tables are in
// the default schema.
func openDB(t *testing.T, wh warehouse, sinkURL string) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", sinkURL
	if wh.name == "duckdb" {
		driver, dsn = "duckdb", strings.TrimPrefix(sinkURL, "duckdb://")
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// deadLetterRows reads highwater_dlq as "topic[partition]@offset stage".
func deadLetterRows(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT topic, "partition", "offset", stage, schema_id, octet_length("value") FROM highwater_dlq ORDER BY topic, "partition", "offset"`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var topic, stage string
		var part, schemaID int32
		var off int64
		var vlen sql.NullInt64
		if err := rows.Scan(&topic, &part, &off, &stage, &schemaID, &vlen); err != nil {
			t.Fatal(err)
		}
		if !vlen.Valid || vlen.Int64 == 0 {
			t.Errorf("dead letter %s[%d]@%d has no value bytes", topic, part, off)
		}
		out = append(out, fmt.Sprintf("%s[%d]@%d %s", topic, part, off, stage))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func wantDeadLetters(inj []injected) []string {
	sorted := slices.Clone(inj)
	// The order of deadLetterRows: topic, partition, offset.
	sort.Slice(sorted, func(a, b int) bool {
		x, y := sorted[a], sorted[b]
		if x.topic != y.topic {
			return x.topic < y.topic
		}
		if x.partition != y.partition {
			return x.partition < y.partition
		}
		return x.offset < y.offset
	})
	out := make([]string, 0, len(sorted))
	for _, i := range sorted {
		out = append(out, i.where()+" "+i.stage)
	}
	return out
}

// dlqTopicRecords reads the dead-letter topic's records, keyed by the
// location their headers name, counting duplicates.
func dlqTopicRecords(t *testing.T, f *feed, topic string, want int) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.stack.Brokers()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[string]int{}
	n := 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for n < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if h[processor.HeaderError] == "" || h[processor.HeaderSchemaID] == "" || h[processor.HeaderStage] == "" {
				t.Errorf("dead-letter topic record without the error headers: %v", r.Headers)
			}
			out[h[processor.HeaderTopic]+"["+h[processor.HeaderPartition]+"]@"+h[processor.HeaderOffset]+" "+h[processor.HeaderStage]]++
			n++
		})
	}
	return out
}

// checkHostileTable checks that the legitimately named hostile table holds
// its rows, quoted, and that nothing of its names ran as SQL.
func checkHostileTable(t *testing.T, db *sql.DB, k *poisonKit) {
	t.Helper()
	var n int
	q := `SELECT count(` + sqlident.Quote(hostileName) + `) FROM ` + sqlident.Quote(hostileName)
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n != k.legit {
		t.Errorf("the hostile-named table holds %d rows, want %d", n, k.legit)
	}
	if err := db.QueryRow(`SELECT count(*) FROM orders`).Scan(&n); err != nil || n == 0 {
		t.Errorf("orders after hostile names: %d rows, %v", n, err)
	}
}

// TestPoisonRecordsAreDeadLettered: with --on-error=dlq the feed goes on
// past every kind of poison; the mirror equals the source, highwater_dlq
// holds exactly the poison records and the dead-letter topic holds them with
// their headers.
func TestPoisonRecordsAreDeadLettered(t *testing.T) {
	for _, wh := range []warehouse{duckWarehouse(), pgWarehouse()} {
		t.Run(wh.name, func(t *testing.T) {
			f := newFeed(t, simulator.Options{Partitions: 3, Seed: 61, Diff: true}, feedTables()[0])
			k := newPoisonKit(t, f)
			sinkURL := wh.url(t)
			m := startPolicyMember(t, f, wh, "g-dlq", sinkURL, processor.OnErrorDLQ)
			start := time.Now()
			final := playPoisoned(t, f, k)
			m.proc.SetStopAt(final)
			m.wait(t, 2*time.Minute)
			s := m.proc.Stats()
			t.Logf("%s: %d poison records dead-lettered (%d at ingest, %d at apply) in %s; %d rows applied",
				wh.name, s.DeadLettersIngest+s.DeadLettersApply, s.DeadLettersIngest, s.DeadLettersApply, time.Since(start).Round(time.Millisecond), s.RowsApplied)
			inj := k.all()
			if s.DeadLettersIngest != 6 || s.DeadLettersApply != 6 {
				t.Errorf("dead letters: %d at ingest, %d at apply; want 6 and 6", s.DeadLettersIngest, s.DeadLettersApply)
			}
			verify(t, f, wh, sinkURL, final, false)
			db := openDB(t, wh, sinkURL)
			if got, want := deadLetterRows(t, db), wantDeadLetters(inj); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("highwater_dlq:\n got  %v\n want %v", got, want)
			}
			checkHostileTable(t, db, k)
			topic := dlqTopicRecords(t, f, "g-dlq.dlq", len(inj))
			for _, w := range wantDeadLetters(inj) {
				if topic[w] != 1 {
					t.Errorf("dead-letter topic holds %s %d times, want once", w, topic[w])
				}
			}
			if len(topic) != len(inj) {
				t.Errorf("dead-letter topic holds %d records, want %d: %v", len(topic), len(inj), topic)
			}
		})
	}
}

// TestPoisonRecordsAreSkipped: with --on-error=skip the feed goes on, the
// mirror equals the source, the skips are counted, and nothing is written
// to highwater_dlq.
func TestPoisonRecordsAreSkipped(t *testing.T) {
	wh := duckWarehouse()
	f := newFeed(t, simulator.Options{Partitions: 2, Seed: 67}, feedTables()[0])
	k := newPoisonKit(t, f)
	sinkURL := wh.url(t)
	m := startPolicyMember(t, f, wh, "g-skip", sinkURL, processor.OnErrorSkip)
	final := playPoisoned(t, f, k)
	m.proc.SetStopAt(final)
	m.wait(t, 2*time.Minute)
	if s := m.proc.Stats(); s.Skipped != int64(len(k.all())) || s.DeadLettersIngest+s.DeadLettersApply != 0 {
		t.Errorf("skipped %d, dead-lettered %d; want %d skipped", s.Skipped, s.DeadLettersIngest+s.DeadLettersApply, len(k.all()))
	}
	verify(t, f, wh, sinkURL, final, false)
	db := openDB(t, wh, sinkURL)
	if got := deadLetterRows(t, db); len(got) != 0 {
		t.Errorf("skip wrote dead letters: %v", got)
	}
	checkHostileTable(t, db, k)
}

// TestPoisonRecordFailsWithItsLocation: with --on-error=fail (the default)
// the member stops at the first poison record with an error naming its
// topic, partition, offset and schema id, and the warehouse equals the
// source as of the last checkpoint. One poison kind per run: the first
// poison met decides the error.
func TestPoisonRecordFailsWithItsLocation(t *testing.T) {
	for _, kind := range []string{"unknown-id", "other-table", "hostile"} {
		t.Run(kind, func(t *testing.T) {
			wh := duckWarehouse()
			f := newFeed(t, simulator.Options{Partitions: 2, Seed: 71}, feedTables()[0])
			k := newPoisonKit(t, f)
			ctx := context.Background()
			if _, err := f.sim.InitialScan(ctx); err != nil {
				t.Fatal(err)
			}
			w := simulator.Workload{Txns: 40, KeysPerTable: 20, RowsPerTxn: 2, ResolveEvery: 10}
			if err := f.sim.Run(ctx, w); err != nil {
				t.Fatal(err)
			}
			good, err := f.sim.Resolve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := k.loadSample(); err != nil {
				t.Fatal(err)
			}
			sinkURL := wh.url(t)
			m := startPolicyMember(t, f, wh, "g-fail", sinkURL, processor.OnErrorFail)
			for deadline := time.Now().Add(time.Minute); m.proc.Stats().Frontier.Less(good); {
				if time.Now().After(deadline) {
					t.Fatalf("the good windows were not applied: %+v", m.proc.Stats())
				}
				time.Sleep(20 * time.Millisecond)
			}
			inj, err := k.inject(good.Next(), kind)
			if err != nil || len(inj) != 1 {
				t.Fatalf("inject %s: %v, %v", kind, inj, err)
			}
			poison := inj[0]
			if err := f.sim.Run(ctx, w); err != nil {
				t.Fatal(err)
			}
			if _, err := f.sim.Resolve(ctx); err != nil {
				t.Fatal(err)
			}
			runErr := m.stopped(t, time.Minute, "the poison record")
			if runErr == nil || !strings.Contains(runErr.Error(), poison.where()) || !strings.Contains(runErr.Error(), "schema id") {
				t.Fatalf("error = %v, want it to name %s and its schema id", runErr, poison.where())
			}
			t.Logf("%s stopped the member: %v", kind, runErr)
			// The warehouse is the source as of its checkpoints, which
			// stayed before the poison record's window.
			db := openDB(t, wh, sinkURL)
			var through string
			if err := db.QueryRow(`SELECT CAST(min(resolved) AS VARCHAR) FROM highwater_checkpoints`).Scan(&through); err != nil {
				t.Fatal(err)
			}
			db.Close()
			at, err := hlc.Parse(through)
			if err != nil {
				t.Fatal(err)
			}
			if at.Less(good) {
				t.Fatalf("checkpoints at %s, before the good windows %s", at, good)
			}
			verify(t, f, wh, sinkURL, at, false)
		})
	}
}

// dlqWatcher follows the dead-letter topic, counting records per location.
type dlqWatcher struct {
	cl   *kgo.Client
	seen map[string]int
}

func newDLQWatcher(t *testing.T, f *feed, topic string) *dlqWatcher {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.stack.Brokers()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &dlqWatcher{cl: cl, seen: map[string]int{}}
}

// waitFor polls until every one of inj is in the topic, or a minute passed.
func (d *dlqWatcher) waitFor(t *testing.T, inj []injected) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		missing := 0
		for _, i := range inj {
			if d.seen[i.where()] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d poison records did not reach the dead-letter topic", missing, len(inj))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		d.cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			d.seen[h[processor.HeaderTopic]+"["+h[processor.HeaderPartition]+"]@"+h[processor.HeaderOffset]]++
		})
		cancel()
	}
}

// TestDeadLettersSurviveKillNine kills the highwater process (SIGKILL)
// right after poison records reached the dead-letter topic, the moment when
// they are set aside but their window (or checkpoint) may not be committed:
// at ingest (dead letters in the buffer) and at apply (inside the window).
// After restarts the mirror must equal the source and highwater_dlq must
// hold every poison record exactly once; the topic holds each at least once
// (a restart may produce one again: the topic is at-least-once).
func TestDeadLettersSurviveKillNine(t *testing.T) {
	for _, wh := range []warehouse{duckWarehouse(), pgWarehouse()} {
		t.Run(wh.name, func(t *testing.T) {
			f := newFeed(t, simulator.Options{Partitions: 3, Seed: 73, DuplicateProb: 0.05}, feedTables()[0])
			k := newPoisonKit(t, f)
			sinkURL := wh.url(t)
			bufDir := t.TempDir()
			args := func(extra ...string) []string {
				return append([]string{"run",
					"--brokers", strings.Join(f.stack.Brokers(), ","),
					"--registry", f.stack.RegistryURL(),
					"--topics", strings.Join(f.sim.Topics(), ","),
					"--group", "g-dlq-kill-" + wh.name,
					"--sink", sinkURL,
					"--buffer-dir", bufDir,
					"--on-error", "dlq",
					"--session-timeout", "2s",
					"--rebalance-timeout", "4s",
					"--log-format", "json",
					"--log-level", "error",
				}, extra...)
			}
			var cmd *exec.Cmd
			var stderr bytes.Buffer
			start := func() {
				stderr.Reset()
				cmd = exec.Command(binary, args()...)
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
			}
			kills := 0
			kill := func() {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				err := cmd.Wait()
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
					t.Fatalf("highwater exited before it was killed: %v\n%s", err, stderr.String())
				}
				kills++
			}
			ctx := context.Background()
			w := simulator.Workload{Txns: 100, KeysPerTable: 40, RowsPerTxn: 3, DeleteProb: 0.1, ResolveEvery: 10}
			if err := f.sim.Run(ctx, w); err != nil {
				t.Fatal(err)
			}
			if err := k.loadSample(); err != nil {
				t.Fatal(err)
			}
			watch := newDLQWatcher(t, f, "g-dlq-kill-"+wh.name+".dlq")
			start()
			for round := 0; round < 3; round++ {
				r, err := f.sim.Resolve(ctx)
				if err != nil {
					t.Fatal(err)
				}
				inj, err := k.inject(r.Next())
				if err != nil {
					t.Fatal(err)
				}
				var ingest, apply []injected
				for _, i := range inj {
					if i.stage == processor.StageIngest {
						ingest = append(ingest, i)
					} else {
						apply = append(apply, i)
					}
				}
				// Killed as soon as ingest set the records aside: their window
				// has not been closed yet (no resolved timestamp covers them).
				watch.waitFor(t, ingest)
				kill()
				start()
				// The next resolved timestamp closes their window; killed as soon
				// as the window's apply set its poison aside.
				if err := f.sim.Run(ctx, w); err != nil {
					t.Fatal(err)
				}
				if _, err := f.sim.Resolve(ctx); err != nil {
					t.Fatal(err)
				}
				watch.waitFor(t, apply)
				kill()
				start()
				if err := f.sim.Run(ctx, w); err != nil {
					t.Fatal(err)
				}
			}
			final, err := f.sim.Resolve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			kill()
			runStart := time.Now()
			cmd = exec.Command(binary, args("--stop-at", final.String())...)
			stderr.Reset()
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitStopAt(t, cmd, &stderr)
			inj := k.all()
			t.Logf("%s: %d kill -9 right after %d poison records were dead-lettered; the last run finished in %s",
				wh.name, kills, len(inj), time.Since(runStart).Round(time.Millisecond))
			verify(t, f, wh, sinkURL, final, false)
			db := openDB(t, wh, sinkURL)
			if got, want := deadLetterRows(t, db), wantDeadLetters(inj); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("highwater_dlq after kill -9 restarts:\n got  %v\n want %v", got, want)
			}
			checkHostileTable(t, db, k)
			db.Close()
			topic := dlqTopicRecords(t, f, "g-dlq-kill-"+wh.name+".dlq", len(inj))
			dups := 0
			for _, w := range wantDeadLetters(inj) {
				if topic[w] < 1 {
					t.Errorf("dead-letter topic lost %s", w)
				}
				dups += max(topic[w]-1, 0)
			}
			t.Logf("dead-letter topic: %d poison records, %d of them produced again after a kill", len(inj), dups)

		})
	}
}
