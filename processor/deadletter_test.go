package processor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/duckdb"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

// Avro encoding of the few shapes the tests need.

func avroLong(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }
func avroString(b []byte, s string) []byte {
	return append(avroLong(b, int64(len(s))), s...)
}

func framed(id int, body []byte) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), body...)
}

// Schema ids seeded in the fake registry.
const (
	idKeyT    = 1 // key of table t: id
	idValueT  = 2 // envelope of table t: after {id, name}, updated
	idValueU  = 4 // envelope of table u: after {x}, updated
	idUnknown = 999
)

const (
	keyT = `{"type":"record","name":"t","fields":[{"type":["null","long"],"name":"id","default":null,"__crdb__":"id INT8 NOT NULL"}]}`
	valT = `{"type":"record","name":"t_envelope","fields":[{"type":["null",{"type":"record","name":"t","fields":[` +
		`{"type":["null","long"],"name":"id","default":null,"__crdb__":"id INT8 NOT NULL"},` +
		`{"type":["null","string"],"name":"name","default":null,"__crdb__":"name STRING NULL"}]}],"name":"after","default":null},` +
		`{"type":["null","string"],"name":"updated","default":null}]}`
	valU = `{"type":"record","name":"u_envelope","fields":[{"type":["null",{"type":"record","name":"u","fields":[` +
		`{"type":["null","long"],"name":"x","default":null,"__crdb__":"x INT8 NOT NULL"}]}],"name":"after","default":null},` +
		`{"type":["null","string"],"name":"updated","default":null}]}`
)

func keyOfT(id int64) []byte { return framed(idKeyT, avroLong(avroLong(nil, 1), id)) }

func valueOfT(id int64, name string, updated hlc.Timestamp) []byte {
	b := avroLong(nil, 1) // after: record
	b = avroLong(avroLong(b, 1), id)
	b = avroString(avroLong(b, 1), name)
	b = avroString(avroLong(b, 1), updated.String())
	return framed(idValueT, b)
}

func valueOfU(x int64, updated hlc.Timestamp) []byte {
	b := avroLong(nil, 1)
	b = avroLong(avroLong(b, 1), x)
	b = avroString(avroLong(b, 1), updated.String())
	return framed(idValueU, b)
}

func resolvedOf(ts hlc.Timestamp, id int) []byte {
	return framed(id, avroString(avroLong(nil, 1), ts.String()))
}

const valResolved = `{"type":"record","name":"t_envelope","fields":[{"type":["null","string"],"name":"resolved","default":null}]}`
const idResolved = 5

// rig is a processor on a real in-memory buffer, a fake registry, a DuckDB
// warehouse and (for dlq) an in-process Kafka broker, driven by calling
// ingest and flush directly.
type rig struct {
	p     *Processor
	buf   *buffer.Store
	w     *duckdb.Writer
	kafka *kfake.Cluster
	part  buffer.Partition
}

func newRig(t *testing.T, policy ErrorPolicy) *rig {
	t.Helper()
	ctx := context.Background()
	fake := srfake.New()
	t.Cleanup(fake.Close)
	for id, s := range map[int]string{idKeyT: keyT, idValueT: valT, idValueU: valU, idResolved: valResolved} {
		fake.SeedSchema(fmt.Sprintf("s%d-value", id), 1, id, sr.Schema{Schema: s, Type: sr.TypeAvro})
	}
	reg, err := schemas.NewRegistry(fake.URL())
	if err != nil {
		t.Fatal(err)
	}
	buf, err := buffer.Open(buffer.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	w, err := duckdb.OpenPath(ctx, filepath.Join(t.TempDir(), "wh.duckdb"), sinks.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kafka.Close)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	p, err := New(Config{
		Brokers: kafka.ListenAddrs(), Topics: []string{"t"}, Group: "g",
		Decoder: schemas.NewDecoder(reg), Buffer: buf, Writer: w,
		OnError: policy, StartupTimeout: 10 * time.Second, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if policy == OnErrorDLQ {
		if p.dlq, err = newDeadLetterProducer(ctx, &p.cfg, log); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.dlq.close)
	}
	r := &rig{p: p, buf: buf, w: w, kafka: kafka, part: buffer.Partition{Topic: "t", Partition: 0}}
	p.parts[r.part] = &partState{p: r.part, ready: true}
	return r
}

// window is the rig's partition's window through f, built on its applied
// checkpoint.
func (r *rig) window(f hlc.Timestamp) window {
	st := r.p.parts[r.part]
	return window{f: f, parts: []buffer.Partition{r.part}, advance: []bool{st.applied.Less(f)},
		held: []sinks.Checkpoint{{Group: "g", Topic: r.part.Topic, Partition: r.part.Partition, Resolved: st.applied, NextOffset: st.appliedNext}}}
}

// ingest feeds records (offsets from 0) through the processor's ingest.
func (r *rig) ingest(t *testing.T, recs ...*kgo.Record) error {
	t.Helper()
	for i, rec := range recs {
		rec.Topic, rec.Partition, rec.Offset = r.part.Topic, r.part.Partition, int64(i)
		rec.Timestamp = time.Unix(1700000000+int64(i), 0)
	}
	fetches := kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: r.part.Topic, Partitions: []kgo.FetchPartition{{Partition: r.part.Partition, Records: recs}}}}}}
	return r.p.ingest(context.Background(), fetches)
}

func (r *rig) query(t *testing.T, q string) [][]string {
	t.Helper()
	return sinktest.Rows(t, r.w.DB(), q)
}

// bufferedDeadLetters returns the offsets of the dead letters buffered on
// r's partition below offset 100, failing t if the buffer cannot say.
func (r *rig) bufferedDeadLetters(t *testing.T) []int64 {
	t.Helper()
	offs := []int64{}
	if err := r.buf.DeadLetters(r.part, 100, func(dl buffer.DeadLetter) error {
		offs = append(offs, dl.Offset)
		return nil
	}); err != nil {
		t.Fatalf("buffered dead letters: %v", err)
	}
	return offs
}

// state returns r's partition's buffer state, failing t on an error.
func (r *rig) state(t *testing.T) (buffer.State, bool) {
	t.Helper()
	st, known, err := r.buf.State(r.part)
	if err != nil {
		t.Fatalf("buffer state: %v", err)
	}
	return st, known
}

// dlqTopic reads every record of the dead-letter topic.
func (r *rig) dlqTopic(t *testing.T, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.kafka.ListenAddrs()...), kgo.ConsumeTopics("g.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

var (
	t1 = hlc.Timestamp{WallTime: 1700000000000000000}
	t2 = hlc.Timestamp{WallTime: 1700000001000000000}
)

// poisonFeed is one partition's records: good rows and a resolved
// timestamp around poison records of both stages.
func poisonFeed() []*kgo.Record {
	return []*kgo.Record{
		{Key: keyOfT(1), Value: valueOfT(1, "a", t1)},                 // 0 good
		{Key: []byte("not avro"), Value: []byte{1, 2, 3}},             // 1 ingest: bad frame
		{Key: keyOfT(2), Value: framed(idUnknown, []byte{2, 4})},      // 2 ingest: unknown schema id (404)
		{Key: keyOfT(3), Value: valueOfT(3, "c", t1)[:12]},            // 3 ingest: truncated body
		{Key: keyOfT(4), Value: valueOfU(4, t1)},                      // 4 apply: value schema of another table
		{Key: framed(idKeyT, []byte{2}), Value: valueOfT(5, "e", t1)}, // 5 apply: truncated key body
		{Key: keyOfT(6), Value: valueOfT(7, "f", t1)},                 // 6 apply: key and value name other rows
		{Key: keyOfT(8), Value: valueOfT(8, "h", t1)},                 // 7 good
		{Value: resolvedOf(t1, idResolved)},                           // 8 resolved t1
		{Key: keyOfT(9), Value: valueOfT(9, "i", t2)},                 // 9 good, after the window
	}
}

var (
	ingestPoison = []int64{1, 2, 3}
	applyPoison  = []int64{4, 5, 6}
)

func TestPoisonRecordsPerPolicy(t *testing.T) {
	ctx := context.Background()
	t.Run("fail", func(t *testing.T) {
		r := newRig(t, OnErrorFail)
		err := r.ingest(t, poisonFeed()...)
		var de *schemas.DecodeError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "t[0]@1") || !isPoison(err) {
			t.Fatalf("ingest error = %v, want a decode error naming t[0]@1", err)
		}
		if _, known := r.state(t); known {
			t.Fatal("the batch with the poison record was written to the buffer")
		}
		// At apply: only the records after the ingest poison.
		r2 := newRig(t, OnErrorFail)
		feed := poisonFeed()
		for _, i := range ingestPoison {
			feed[i] = &kgo.Record{Value: resolvedOf(hlc.Timestamp{WallTime: 1}, idResolved)}
		}
		if err := r2.ingest(t, feed...); err != nil {
			t.Fatal(err)
		}
		res := r2.p.flush(ctx, r2.window(t1))
		// The window meets its events in (updated, table, key) order: the
		// first poison it meets is one of the three.
		var de2 *schemas.DecodeError
		if res.err == nil || !isPoison(res.err) || !errors.As(res.err, &de2) || de2.Topic != "t" ||
			!slices.Contains(applyPoison, de2.Offset) || !strings.Contains(res.err.Error(), "schema id") {
			t.Fatalf("flush error = %v, want a poison error naming t[0]@4, 5 or 6 and its schema id", res.err)
		}
		if got := r2.query(t, `SELECT count(*) FROM highwater_checkpoints`); got[0][0] != "0" {
			t.Fatalf("a checkpoint was written by the failed window: %v", got)
		}
	})

	t.Run("skip", func(t *testing.T) {
		r := newRig(t, OnErrorSkip)
		if err := r.ingest(t, poisonFeed()...); err != nil {
			t.Fatal(err)
		}
		if n := r.p.Stats().Skipped; n != int64(len(ingestPoison)) {
			t.Fatalf("skipped at ingest = %d, want %d", n, len(ingestPoison))
		}
		r.p.parts[r.part].resolved = t1
		res := r.p.flush(ctx, r.window(t1))
		if res.err != nil {
			t.Fatal(res.err)
		}
		if res.poison.skipped != int64(len(applyPoison)) || len(res.poison.dead) != 0 {
			t.Fatalf("window poison = %+v, want %d skipped", res.poison, len(applyPoison))
		}
		if got := r.query(t, `SELECT CAST(id AS VARCHAR), name FROM t ORDER BY id`); !reflect.DeepEqual(got, [][]string{{"1", "a"}, {"8", "h"}}) {
			t.Fatalf("mirror = %v", got)
		}
		if got := r.query(t, `SELECT count(*) FROM highwater_dlq`); got[0][0] != "0" {
			t.Fatalf("skip wrote dead letters: %v", got)
		}
		if got := r.query(t, `SELECT CAST(next_offset AS VARCHAR) FROM highwater_checkpoints`); !reflect.DeepEqual(got, [][]string{{"9"}}) {
			t.Fatalf("checkpoint = %v, want next offset 9", got)
		}
	})

	t.Run("dlq", func(t *testing.T) {
		r := newRig(t, OnErrorDLQ)
		if err := r.ingest(t, poisonFeed()...); err != nil {
			t.Fatal(err)
		}
		if s := r.p.Stats(); s.DeadLettersIngest != int64(len(ingestPoison)) {
			t.Fatalf("dead letters at ingest = %d", s.DeadLettersIngest)
		}
		if buffered := r.bufferedDeadLetters(t); !reflect.DeepEqual(buffered, ingestPoison) {
			t.Fatalf("buffered dead letters %v, want %v", buffered, ingestPoison)
		}
		res := r.p.flush(ctx, r.window(t1))
		if res.err != nil {
			t.Fatal(res.err)
		}
		r.p.inflight = &flushJob{f: t1, owned: r.p.owned(), done: make(chan flushResult, 1)}
		r.p.inflight.done <- res
		if err := r.p.reapFlush(ctx, true, false); err != nil {
			t.Fatal(err)
		}
		if s := r.p.Stats(); s.DeadLettersApply != int64(len(applyPoison)) {
			t.Fatalf("dead letters at apply = %d", s.DeadLettersApply)
		}
		got := r.query(t, `SELECT CAST("offset" AS VARCHAR), stage, CAST(schema_id AS VARCHAR), CAST(kafka_timestamp IS NULL AS VARCHAR),
			CAST(octet_length("value") AS VARCHAR), error FROM highwater_dlq ORDER BY "offset"`)
		want := []struct {
			stage, schemaID, noTS, valueLen, errPart string
		}{
			{"ingest", "-1", "false", "3", "not a Confluent Avro frame"},
			{"ingest", "999", "false", "7", "unknown schema id"},
			{"ingest", "2", "false", "12", ""},
			{"apply", "4", "true", fmt.Sprint(len(valueOfU(4, t1))), "key schema does not belong"},
			{"apply", "1", "true", fmt.Sprint(len(valueOfT(5, "e", t1))), "key"},
			{"apply", "2", "true", fmt.Sprint(len(valueOfT(7, "f", t1))), "differs between the key and the value"},
		}
		if len(got) != len(want) {
			t.Fatalf("highwater_dlq = %v", got)
		}
		for i, w := range want {
			g := got[i]
			if g[0] != fmt.Sprint(append(ingestPoison, applyPoison...)[i]) || g[1] != w.stage || g[2] != w.schemaID || g[3] != w.noTS || g[4] != w.valueLen || !strings.Contains(g[5], w.errPart) {
				t.Errorf("dead letter %d = %v, want %+v", i, g, w)
			}
		}
		if got := r.query(t, `SELECT CAST(id AS VARCHAR) FROM t ORDER BY id`); !reflect.DeepEqual(got, [][]string{{"1"}, {"8"}}) {
			t.Fatalf("mirror = %v", got)
		}
		// Written dead letters leave the buffer; the checkpoint passed them.
		if left := r.bufferedDeadLetters(t); len(left) != 0 {
			t.Fatalf("dead letters %v left in the buffer after the window", left)
		}
		recs := r.dlqTopic(t, 6)
		if len(recs) != 6 {
			t.Fatalf("%d records in the dead-letter topic, want 6", len(recs))
		}
		// The topic has the brokers' default partitions: order by offset.
		sort.Slice(recs, func(i, j int) bool {
			a, _ := strconv.Atoi(header(recs[i], HeaderOffset))
			b, _ := strconv.Atoi(header(recs[j], HeaderOffset))
			return a < b
		})
		for i, rec := range recs {
			off := append(ingestPoison, applyPoison...)[i]
			if header(rec, HeaderOffset) != fmt.Sprint(off) || header(rec, HeaderTopic) != "t" || header(rec, HeaderPartition) != "0" ||
				header(rec, HeaderStage) != want[i].stage || header(rec, HeaderSchemaID) != want[i].schemaID || header(rec, HeaderError) == "" {
				t.Errorf("dead-letter topic record %d headers %v", i, rec.Headers)
			}
		}
		if string(recs[0].Value) != "\x01\x02\x03" || string(recs[0].Key) != "not avro" {
			t.Errorf("dead-letter topic record 0 = %q/%q, want the raw record", recs[0].Key, recs[0].Value)
		}
		// A replay of the window (the process died before trimming) is a
		// no-op in the table.
		tx, err := r.w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.DeadLetters(ctx, res.poison.dead); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got := r.query(t, `SELECT count(*) FROM highwater_dlq`); got[0][0] != "6" {
			t.Fatalf("after a replay: %v dead letters, want 6", got)
		}
	})
}

func TestPoisonOrTransient(t *testing.T) {
	located := func(err error) error {
		return &schemas.DecodeError{Topic: "t", Partition: 1, Offset: 2, SchemaID: 3, Err: err}
	}
	for _, tc := range []struct {
		name   string
		err    error
		poison bool
	}{
		{"bad frame", located(schemas.ErrBadFrame), true},
		{"truncated", located(errors.New("truncated value")), true},
		{"unknown schema id", located(fmt.Errorf("id 3: %w", schemas.ErrUnknownSchema)), true},
		{"registry failure", located(fmt.Errorf("%w: %w", schemas.ErrSchemaUnavailable, errors.New("HTTP 401"))), false},
		{"canceled", located(fmt.Errorf("fetch: %w", context.Canceled)), false},
		{"deadline", located(context.DeadlineExceeded), false},
		{"warehouse error", errors.New("connection refused"), false},
		{"nil", nil, false},
	} {
		if got := isPoison(tc.err); got != tc.poison {
			t.Errorf("%s: isPoison = %v, want %v", tc.name, got, tc.poison)
		}
	}
}

// TestRegistryFailuresAreNotPoisonButUnknownIDsAre runs a real
// Registry against an HTTP server that knows no ids (404) and refuses
// credentials for others (401).
func TestRegistryFailuresAreNotPoisonButUnknownIDsAre(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/7") {
			http.Error(w, `{"error_code":40403,"message":"Schema not found"}`, http.StatusNotFound)
			return
		}
		http.Error(w, `{"error_code":40101,"message":"Unauthorized"}`, http.StatusUnauthorized)
	}))
	defer srv.Close()
	reg, err := schemas.NewRegistry(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	dec := schemas.NewDecoder(reg)
	ctx := context.Background()
	_, err = dec.Extract(ctx, "t", 0, 5, keyOfT(1), framed(7, []byte{0}))
	if !isPoison(err) || !errors.Is(err, schemas.ErrUnknownSchema) {
		t.Errorf("404: %v is not poison", err)
	}
	_, err = dec.Extract(ctx, "t", 0, 6, keyOfT(1), framed(8, []byte{0}))
	if err == nil || isPoison(err) || !errors.Is(err, schemas.ErrSchemaUnavailable) {
		t.Errorf("401: %v taken for poison", err)
	}
}

func TestCheckRowKey(t *testing.T) {
	table := &model.Table{Name: "t", Columns: []model.Column{{Name: "id"}, {Name: "name"}}, Key: []int{0}}
	for _, tc := range []struct {
		name string
		row  schemas.Row
		ok   bool
	}{
		{"matching", schemas.Row{Table: table, KeyValues: []any{int64(1)}, After: []any{int64(1), "a"}}, true},
		{"delete", schemas.Row{Table: table, KeyValues: []any{int64(1)}}, true},
		{"other row", schemas.Row{Table: table, KeyValues: []any{int64(2)}, After: []any{int64(1), "a"}}, false},
		{"other type", schemas.Row{Table: table, KeyValues: []any{"1"}, After: []any{int64(1), "a"}}, false},
		{"key of another table", schemas.Row{Table: &model.Table{Name: "u", Columns: []model.Column{{Name: "x"}}}, KeyValues: []any{int64(1)}, After: []any{int64(1)}}, false},
		{"no key", schemas.Row{Table: &model.Table{Name: "u"}}, false},
		{"no table", schemas.Row{}, false},
	} {
		if err := checkRowKey(tc.row); (err == nil) != tc.ok {
			t.Errorf("%s: checkRowKey = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestParseErrorPolicy(t *testing.T) {
	for in, want := range map[string]ErrorPolicy{"": OnErrorFail, "fail": OnErrorFail, "dlq": OnErrorDLQ, "skip": OnErrorSkip} {
		if got, err := ParseErrorPolicy(in); err != nil || got != want {
			t.Errorf("ParseErrorPolicy(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseErrorPolicy("drop"); err == nil {
		t.Error(`ParseErrorPolicy("drop"): no error`)
	}
	if _, err := New(Config{Brokers: []string{"b"}, Topics: []string{"t"}, Group: "g", Decoder: schemas.NewDecoder(nil), Buffer: &buffer.Store{}, Writer: &duckdb.Writer{}, OnError: "drop"}); err == nil {
		t.Error("New with an unknown policy: no error")
	}
}

func TestLogsShowOnlyAHexPrefix(t *testing.T) {
	if got := hexPrefix(make([]byte, 100)); got != strings.Repeat("00", 16)+"..." {
		t.Errorf("hexPrefix(100 bytes) = %q", got)
	}
	if got := hexPrefix([]byte{0xab}); got != "ab" {
		t.Errorf("hexPrefix = %q", got)
	}
}

// TestRegistryFailureIsRetriedNeverDeadLettered: a registry that answers
// 5xx is waited for, one that refuses the credentials is retried and then
// stops the feed; neither sets the record aside, even with dlq.
func TestRegistryFailureIsRetriedNeverDeadLettered(t *testing.T) {
	var calls atomic.Int32
	var refuse atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case refuse.Load():
			http.Error(w, `{"error_code":40101,"message":"Unauthorized"}`, http.StatusUnauthorized)
		case n <= 2:
			http.Error(w, `{"error_code":50001,"message":"down"}`, http.StatusServiceUnavailable)
		default:
			w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
			text := valT
			if strings.HasSuffix(r.URL.Path, "/1") {
				text = keyT
			}
			fmt.Fprintf(w, `{"schema":%q}`, text)
		}
	}))
	defer srv.Close()
	r := newRig(t, OnErrorDLQ)
	reg, err := schemas.NewRegistry(srv.URL, schemas.WithRetryBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	r.p.cfg.Decoder = schemas.NewDecoder(reg)

	// 503 twice, then the schema: the record is ingested.
	if err := r.ingest(t, &kgo.Record{Key: keyOfT(1), Value: valueOfT(1, "a", t1)}); err != nil {
		t.Fatalf("ingest through a registry that recovers: %v", err)
	}
	if st, _ := r.state(t); st.Events != 1 || calls.Load() < 3 {
		t.Fatalf("buffered %d events after %d registry calls, want 1 after at least 3", st.Events, calls.Load())
	}

	// 401 for a schema not cached yet: retried, then the feed stops.
	refuse.Store(true)
	before := calls.Load()
	err = r.ingest(t, &kgo.Record{Key: keyOfT(2), Value: framed(3, []byte{0})})
	if err == nil || isPoison(err) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("ingest through a registry refusing credentials: %v, want a non-poison error", err)
	}
	if n := calls.Load() - before; n < ingestAttempts {
		t.Errorf("the registry was asked %d times, want %d attempts", n, ingestAttempts)
	}
	if s := r.p.Stats(); s.DeadLettersIngest != 0 || s.Skipped != 0 {
		t.Errorf("a registry failure was set aside: %+v", s)
	}
	if dead := r.bufferedDeadLetters(t); len(dead) != 0 {
		t.Errorf("dead letters %v buffered for a registry failure", dead)
	}
}
