package processor

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// The value schema of a table whose SQL name holds a NUL byte: CockroachDB
// escapes it as _u0000_ in the Avro record name.
const (
	idValueNUL = 6
	valNUL     = `{"type":"record","name":"bad_u0000_name_envelope","fields":[{"type":["null",{"type":"record","name":"bad_u0000_name","fields":[` +
		`{"type":["null","long"],"name":"id","default":null,"__crdb__":"id INT8 NOT NULL"}]}],"name":"after","default":null},` +
		`{"type":["null","string"],"name":"updated","default":null}]}`
)

func valueOfNUL(id int64, updated hlc.Timestamp) []byte {
	b := avroLong(nil, 1)
	b = avroLong(avroLong(b, 1), id)
	b = avroString(avroLong(b, 1), updated.String())
	return framed(idValueNUL, b)
}

// hugeKey is a framed key of table t whose Avro body is n bytes that do not
// repeat, so that a leak of more than a prefix shows.
func hugeKey(n int) []byte {
	body := make([]byte, n)
	for i := range body {
		body[i] = byte(1 + (i*7+i/251)%255)
	}
	return framed(idKeyT, body)
}

// leaksKey reports whether s holds more of key than a 16-byte prefix, in
// hex or raw.
func leaksKey(s string, key []byte) bool {
	tail := key[16:48]
	return strings.Contains(s, hex.EncodeToString(tail)) || strings.Contains(s, string(tail)) ||
		strings.Contains(s, hex.Dump(tail)[10:40])
}

// limitsRig is a rig (deadletter_test.go) on a disk buffer, whose decoder
// also knows the NUL-named table, and whose log is captured.
func limitsRig(t *testing.T, policy ErrorPolicy) (*rig, *observer.ObservedLogs) {
	t.Helper()
	r := newRig(t, policy)
	fake := srfake.New()
	t.Cleanup(fake.Close)
	for id, s := range map[int]string{idKeyT: keyT, idValueT: valT, idValueU: valU, idResolved: valResolved, idValueNUL: valNUL} {
		fake.SeedSchema(fmt.Sprintf("s%d-value", id), 1, id, sr.Schema{Schema: s, Type: sr.TypeAvro})
	}
	reg, err := schemas.NewRegistry(fake.URL())
	if err != nil {
		t.Fatal(err)
	}
	r.p.cfg.Decoder = schemas.NewDecoder(reg)
	// A dead letter holds the record's key: in memory Badger takes values
	// of at most 1 KB, on disk a value-log file.
	buf, err := buffer.Open(buffer.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	r.buf, r.p.cfg.Buffer = buf, buf
	core, logs := observer.New(zap.DebugLevel)
	r.p.log = zap.New(core)
	if r.p.dlq != nil {
		r.p.dlq.log = r.p.log
	}
	return r, logs
}

// checkLogs fails if a captured log line carries more than a prefix of key.
func checkLogs(t *testing.T, logs *observer.ObservedLogs, key []byte) {
	t.Helper()
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	for _, e := range logs.All() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		if leaksKey(buf.String(), key) {
			t.Errorf("a log line carries more than a key prefix: %.300s", buf.String())
		}
		buf.Free()
	}
}

// unbufferableFeed: good rows of t around a row of a table whose name holds
// a NUL byte and a row with a 70,000-byte key, then a resolved timestamp.
func unbufferableFeed() ([]*kgo.Record, []byte) {
	key := hugeKey(70000)
	return []*kgo.Record{
		{Key: keyOfT(1), Value: valueOfT(1, "a", t1)},      // 0 good
		{Key: keyOfT(2), Value: valueOfNUL(2, t1)},         // 1 ingest: NUL in the table name
		{Key: key, Value: valueOfT(3, "c", t1)},            // 2 ingest: key above Badger's limit
		{Key: keyOfT(4), Value: valueOfT(4, "d", t1)},      // 3 good
		{Value: resolvedOf(t1, idResolved)},                // 4 resolved t1
		{Key: keyOfT(5), Value: valueOfNUL(5, t2)},         // 5 ingest: NUL, beyond the window
		{Key: hugeKey(65000), Value: valueOfT(6, "f", t2)}, // 6 ingest: just above the limit
		{Key: keyOfT(7), Value: valueOfT(7, "g", t2)},      // 7 good, beyond the window
	}, key
}

// TestRecordsTheBufferCannotHoldArePoison: a table name with a NUL byte and
// a Kafka key above Badger's limit are poison records at ingest under every
// policy; the other records of the batch are buffered and applied, and no
// error or log line carries the whole key.
func TestRecordsTheBufferCannotHoldArePoison(t *testing.T) {
	ctx := context.Background()
	t.Run("fail", func(t *testing.T) {
		for _, bad := range []int{1, 2} {
			r, logs := limitsRig(t, OnErrorFail)
			feed, key := unbufferableFeed()
			// The rig numbers offsets from 0: the bad record is at 1.
			err := r.ingest(t, feed[0], feed[bad])
			var de *schemas.DecodeError
			if !errors.As(err, &de) || !isPoison(err) || !strings.Contains(err.Error(), "t[0]@1") {
				t.Fatalf("ingest error = %v, want a poison error naming t[0]@1", err)
			}
			if want := map[int]int{1: idValueNUL, 2: idKeyT}[bad]; de.SchemaID != want {
				t.Errorf("schema id %d, want %d", de.SchemaID, want)
			}
			if leaksKey(err.Error(), key) || len(err.Error()) > 400 {
				t.Errorf("the error carries more than a key prefix (%d bytes): %.300s", len(err.Error()), err)
			}
			checkLogs(t, logs, key)
		}
	})
	for _, policy := range []ErrorPolicy{OnErrorSkip, OnErrorDLQ} {
		t.Run(string(policy), func(t *testing.T) {
			r, logs := limitsRig(t, policy)
			feed, key := unbufferableFeed()
			if err := r.ingest(t, feed...); err != nil {
				t.Fatalf("ingest: %v", err)
			}
			s := r.p.Stats()
			if set := s.Skipped + s.DeadLettersIngest; set != 4 {
				t.Fatalf("%d records set aside at ingest, want 4: %+v", set, s)
			}
			r.p.parts[r.part].resolved = t1
			res := r.p.flush(ctx, r.window(t1))
			if res.err != nil {
				t.Fatalf("window: %v", res.err)
			}
			if got := r.query(t, `SELECT CAST(id AS VARCHAR), name FROM t ORDER BY id`); !reflect.DeepEqual(got, [][]string{{"1", "a"}, {"4", "d"}}) {
				t.Fatalf("mirror = %v, want rows 1 and 4", got)
			}
			if got := r.query(t, `SELECT CAST(next_offset AS VARCHAR) FROM highwater_checkpoints`); !reflect.DeepEqual(got, [][]string{{"7"}}) {
				t.Fatalf("checkpoint = %v, want next offset 7", got)
			}
			if policy == OnErrorDLQ {
				got := r.query(t, `SELECT CAST("offset" AS VARCHAR), stage, CAST(schema_id AS VARCHAR), CAST(octet_length("key") AS VARCHAR), error
					FROM highwater_dlq ORDER BY "offset"`)
				want := [][]string{
					{"1", "ingest", fmt.Sprint(idValueNUL), fmt.Sprint(len(keyOfT(2))), "NUL"},
					{"2", "ingest", fmt.Sprint(idKeyT), fmt.Sprint(len(key)), "Kafka key too long"},
					{"5", "ingest", fmt.Sprint(idValueNUL), fmt.Sprint(len(keyOfT(5))), "NUL"},
					{"6", "ingest", fmt.Sprint(idKeyT), "65005", "Kafka key too long"},
				}
				if len(got) != len(want) {
					t.Fatalf("highwater_dlq = %v, want the four records below the checkpoint", got)
				}
				for i, w := range want {
					if !reflect.DeepEqual(got[i][:4], w[:4]) || !strings.Contains(got[i][4], w[4]) {
						t.Errorf("dead letter %v, want %v", got[i], w)
					}
					if leaksKey(got[i][4], key) {
						t.Errorf("dead letter error carries the key: %.300s", got[i][4])
					}
				}
				recs := r.dlqTopic(t, 4)
				if len(recs) != 4 {
					t.Fatalf("%d records in the dead-letter topic, want 4", len(recs))
				}
				for _, rec := range recs {
					if header(rec, HeaderOffset) == "2" && !bytes.Equal(rec.Key, key) {
						t.Errorf("the dead-letter topic holds a %d-byte key for t[0]@2, want the record's %d bytes", len(rec.Key), len(key))
					}
				}
			}
			checkLogs(t, logs, key)
		})
	}
}

// nulRejecter is a writer that, like PostgreSQL, cannot store a string
// with a NUL byte: its Tx.Write fails the window, and (with check) it says
// so per row through ChangeChecker.
type nulRejecter struct {
	sinks.Writer
}

func nulIn(ch sinks.Change) error {
	for i, v := range ch.Values {
		if s, ok := v.(string); ok && strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("column %d: a NUL character", i)
		}
	}
	return nil
}

func (w nulRejecter) Begin(ctx context.Context) (sinks.Tx, error) {
	tx, err := w.Writer.Begin(ctx)
	return nulRejecterTx{tx}, err
}

type nulRejecterTx struct{ sinks.Tx }

func (x nulRejecterTx) Write(ctx context.Context, table *model.Table, changes []sinks.Change) error {
	for _, ch := range changes {
		if err := nulIn(ch); err != nil {
			return err
		}
	}
	return x.Tx.Write(ctx, table, changes)
}

type checkingRejecter struct{ nulRejecter }

func (checkingRejecter) CheckChange(_ *model.Table, ch sinks.Change) error { return nulIn(ch) }

// TestRowsTheWarehouseCannotStoreArePoison: a row the writer's ChangeChecker
// refuses is a poison record at apply: set aside inside its window under
// dlq and skip (the window commits with the other rows), the error that
// stops the feed under fail. A writer without ChangeChecker fails the
// whole window, as before.
func TestRowsTheWarehouseCannotStoreArePoison(t *testing.T) {
	ctx := context.Background()
	feed := func() []*kgo.Record {
		return []*kgo.Record{
			{Key: keyOfT(1), Value: valueOfT(1, "a", t1)},      // 0 good
			{Key: keyOfT(2), Value: valueOfT(2, "b\x00b", t1)}, // 1 apply: NUL
			{Key: keyOfT(3), Value: valueOfT(3, "c", t1)},      // 2 good
			{Value: resolvedOf(t1, idResolved)},                // 3 resolved
		}
	}
	for _, policy := range []ErrorPolicy{OnErrorFail, OnErrorSkip, OnErrorDLQ} {
		t.Run(string(policy), func(t *testing.T) {
			r := newRig(t, policy)
			r.p.cfg.Writer = checkingRejecter{nulRejecter{r.w}}
			if err := r.ingest(t, feed()...); err != nil {
				t.Fatal(err)
			}
			res := r.p.flush(ctx, r.window(t1))
			if policy == OnErrorFail {
				var de *schemas.DecodeError
				if !isPoison(res.err) || !errors.As(res.err, &de) || de.Offset != 1 || !strings.Contains(res.err.Error(), "t[0]@1") ||
					!strings.Contains(res.err.Error(), "warehouse cannot store") {
					t.Fatalf("window error = %v, want a poison error naming t[0]@1", res.err)
				}
				return
			}
			if res.err != nil {
				t.Fatalf("window: %v", res.err)
			}
			if got := res.poison.skipped + int64(len(res.poison.dead)); got != 1 {
				t.Fatalf("window set aside %d records, want 1", got)
			}
			if got := r.query(t, `SELECT CAST(id AS VARCHAR) FROM t ORDER BY id`); !reflect.DeepEqual(got, [][]string{{"1"}, {"3"}}) {
				t.Fatalf("mirror = %v, want rows 1 and 3", got)
			}
			if policy == OnErrorDLQ {
				got := r.query(t, `SELECT CAST("offset" AS VARCHAR), stage, CAST(schema_id AS VARCHAR), error FROM highwater_dlq`)
				if len(got) != 1 || got[0][0] != "1" || got[0][1] != StageApply || got[0][2] != fmt.Sprint(idValueT) ||
					!strings.Contains(got[0][3], "NUL") || !strings.Contains(got[0][3], "t[0]@1") {
					t.Fatalf("highwater_dlq = %v", got)
				}
			}
		})
	}
	t.Run("without ChangeChecker", func(t *testing.T) {
		r := newRig(t, OnErrorDLQ)
		r.p.cfg.Writer = nulRejecter{r.w}
		if err := r.ingest(t, feed()...); err != nil {
			t.Fatal(err)
		}
		res := r.p.flush(ctx, r.window(t1))
		if res.err == nil || isPoison(res.err) {
			t.Fatalf("window error = %v, want the writer's failure (not poison)", res.err)
		}
	})
}
