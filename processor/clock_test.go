package processor

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks/duckdb"
)

// year2200 is a timestamp from the future, as a forged or corrupted
// message would carry it.
var year2200 = hlc.Timestamp{WallTime: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), Logical: 1}

// TestFutureTimestampsArePoison feeds one partition a good row, then the
// record under test, then a resolved timestamp t1, under each policy. A
// resolved or row timestamp beyond the local clock plus the max clock skew
// is a poison record at ingest: with fail the feed stops naming it, with
// skip and dlq it is set aside, and the partition's resolved timestamp, the
// frontier and the checkpoint stay at t1. One within the skew is accepted.
func TestFutureTimestampsArePoison(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	at := func(d time.Duration) hlc.Timestamp { return hlc.Timestamp{WallTime: now.Add(d).UnixNano()} }
	for _, tc := range []struct {
		name   string
		rec    *kgo.Record
		poison bool
	}{
		{"resolved in 2200", &kgo.Record{Value: resolvedOf(year2200, idResolved)}, true},
		{"row in 2200", &kgo.Record{Key: keyOfT(2), Value: valueOfT(2, "future", year2200)}, true},
		{"resolved just beyond the skew", &kgo.Record{Value: resolvedOf(at(DefaultMaxClockSkew+time.Minute), idResolved)}, true},
		{"row just beyond the skew", &kgo.Record{Key: keyOfT(2), Value: valueOfT(2, "future", at(DefaultMaxClockSkew+time.Minute))}, true},
		{"resolved within the skew", &kgo.Record{Value: resolvedOf(at(DefaultMaxClockSkew/2), idResolved)}, false},
		{"row within the skew", &kgo.Record{Key: keyOfT(2), Value: valueOfT(2, "ahead", at(DefaultMaxClockSkew/2))}, false},
	} {
		for _, policy := range []ErrorPolicy{OnErrorFail, OnErrorSkip, OnErrorDLQ} {
			t.Run(tc.name+"/"+string(policy), func(t *testing.T) {
				r := newRig(t, policy)
				feed := []*kgo.Record{
					{Key: keyOfT(1), Value: valueOfT(1, "a", t1)}, // 0 good
					tc.rec,                              // 1 under test
					{Value: resolvedOf(t1, idResolved)}, // 2 resolved t1
				}
				err := r.ingest(t, feed...)
				if !tc.poison {
					if err != nil {
						t.Fatalf("ingest: %v", err)
					}
					// A row is buffered; a resolved timestamp, the later of
					// the two, becomes the partition's.
					wantEvents, wantResolved := int64(2), t1
					if tc.rec.Key == nil {
						wantEvents, wantResolved = 1, recordHLC(t, r, tc.rec)
					}
					bs, _, _ := r.buf.State(r.part)
					if st := r.p.parts[r.part]; bs.Events != wantEvents || st.resolved != wantResolved || bs.Consumed != 3 {
						t.Fatalf("buffer %+v, partition resolved %s; want %d events, resolved %s: the record within the skew was not accepted",
							bs, st.resolved, wantEvents, wantResolved)
					}
					if s := r.p.Stats(); s.Skipped+s.DeadLettersIngest != 0 {
						t.Fatalf("a record within the skew was set aside: %+v", s)
					}
					return
				}
				if policy == OnErrorFail {
					var de *schemas.DecodeError
					if !errors.Is(err, ErrClockSkew) || !isPoison(err) || !errors.As(err, &de) || de.Offset != 1 {
						t.Fatalf("ingest error = %v, want a poison error marked ErrClockSkew for t[0]@1", err)
					}
					for _, part := range []string{"t[0]@1", "--max-clock-skew 5m0s", recordHLC(t, r, tc.rec).String()} {
						if !strings.Contains(err.Error(), part) {
							t.Errorf("error %q does not name %q", err, part)
						}
					}
					if _, known, _ := r.buf.State(r.part); known {
						t.Error("the batch with the future record was written to the buffer")
					}
					if st := r.p.parts[r.part]; !st.resolved.IsZero() {
						t.Errorf("the partition's resolved timestamp moved to %s", st.resolved)
					}
					return
				}
				if err != nil {
					t.Fatalf("ingest: %v", err)
				}
				s := r.p.Stats()
				if policy == OnErrorSkip && (s.Skipped != 1 || s.DeadLettersIngest != 0) {
					t.Fatalf("skipped %d, dead-lettered %d; want 1 skipped", s.Skipped, s.DeadLettersIngest)
				}
				if policy == OnErrorDLQ && (s.DeadLettersIngest != 1 || s.Skipped != 0) {
					t.Fatalf("dead-lettered %d, skipped %d; want 1 dead-lettered", s.DeadLettersIngest, s.Skipped)
				}
				// Neither the partition's resolved timestamp (which the
				// frontier is the minimum of) nor the buffer's moved past t1.
				st := r.p.parts[r.part]
				bs, _, _ := r.buf.State(r.part)
				if st.resolved != t1 || bs.Resolved != t1 || bs.Events != 1 || bs.Consumed != 3 {
					t.Fatalf("partition resolved %s, buffer %+v; want resolved %s, 1 event, consumed 3", st.resolved, bs, t1)
				}
				if f, _, ok := frontier(r.p.owned()); !ok || f != t1 {
					t.Fatalf("frontier %s, want %s", f, t1)
				}
				res := r.p.flush(ctx, r.window(t1))
				if res.err != nil {
					t.Fatal(res.err)
				}
				if got := r.query(t, `SELECT CAST(resolved AS VARCHAR), CAST(next_offset AS VARCHAR) FROM highwater_checkpoints`); !reflect.DeepEqual(got, [][]string{{t1.String(), "3"}}) {
					t.Fatalf("checkpoint = %v, want %s at offset 3", got, t1)
				}
				if got := r.query(t, `SELECT CAST(id AS VARCHAR), name FROM t`); !reflect.DeepEqual(got, [][]string{{"1", "a"}}) {
					t.Fatalf("mirror = %v, want only the good row", got)
				}
				dead := r.query(t, `SELECT CAST("offset" AS VARCHAR), stage, error FROM highwater_dlq`)
				if policy == OnErrorSkip {
					if len(dead) != 0 {
						t.Fatalf("skip wrote dead letters: %v", dead)
					}
					return
				}
				if len(dead) != 1 || dead[0][0] != "1" || dead[0][1] != StageIngest || !strings.Contains(dead[0][2], "--max-clock-skew") {
					t.Fatalf("highwater_dlq = %v, want offset 1 at ingest, its error naming --max-clock-skew", dead)
				}
				recs := r.dlqTopic(t, 1)
				if len(recs) != 1 || header(recs[0], HeaderOffset) != "1" || !strings.Contains(header(recs[0], HeaderError), ErrClockSkew.Error()) {
					t.Fatalf("dead-letter topic = %v", recs)
				}
			})
		}
	}
}

// recordHLC is the timestamp rec carries, as the decoder reads it.
func recordHLC(t *testing.T, r *rig, rec *kgo.Record) hlc.Timestamp {
	t.Helper()
	x, err := r.p.cfg.Decoder.Extract(context.Background(), "t", 0, 1, rec.Key, rec.Value)
	if err != nil {
		t.Fatal(err)
	}
	return x.Updated
}

func TestMaxClockSkewSetting(t *testing.T) {
	base := func(skew time.Duration) Config {
		return Config{Brokers: []string{"b"}, Topics: []string{"t"}, Group: "g", Decoder: schemas.NewDecoder(nil),
			Buffer: &buffer.Store{}, Writer: &duckdb.Writer{}, MaxClockSkew: skew}
	}
	for _, tc := range []struct {
		skew, want time.Duration
		err        bool
	}{
		{0, DefaultMaxClockSkew, false},
		{time.Minute, time.Minute, false},
		{-time.Second, 0, true},
	} {
		p, err := New(base(tc.skew))
		if tc.err {
			if err == nil {
				t.Errorf("MaxClockSkew %s: no error", tc.skew)
			}
			continue
		}
		if err != nil || p.cfg.MaxClockSkew != tc.want {
			t.Errorf("MaxClockSkew %s: %v, %v; want %s", tc.skew, p.cfg.MaxClockSkew, err, tc.want)
		}
	}
	// A huge skew saturates instead of wrapping around to the past.
	now := time.Now()
	if got := clockLimit(now, time.Duration(math.MaxInt64)); got != math.MaxInt64 {
		t.Errorf("clockLimit with the largest skew = %d, want MaxInt64", got)
	}
	if got := clockLimit(now, time.Minute); got != now.Add(time.Minute).UnixNano() {
		t.Errorf("clockLimit(now, 1m) = %d", got)
	}
}
