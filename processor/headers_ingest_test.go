package processor

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestHeadersSurviveTheBufferIntoTheMirror runs ingest, the buffer and a
// window with HeadersJSONColumn: a row's headers come out as the column in
// the warehouse, a row without headers gets NULL, and a record whose value
// fits the in-memory buffer's 1 KiB limit only without its headers is a
// poison record at ingest (skipped), not a failed buffer write.
func TestHeadersSurviveTheBufferIntoTheMirror(t *testing.T) {
	r := newRig(t, OnErrorSkip)
	r.p.headers = newHeadersColumn("meta")
	big := strings.Repeat("x", 900)
	feed := []*kgo.Record{
		{Key: keyOfT(1), Value: valueOfT(1, "a", t1), Headers: []kgo.RecordHeader{
			{Key: "trace_id", Value: []byte("abc")}, {Key: "n", Value: []byte("1")}}},
		{Key: keyOfT(2), Value: valueOfT(2, "b", t1)},
		{Key: keyOfT(3), Value: valueOfT(3, big, t1), Headers: []kgo.RecordHeader{{Key: "pad", Value: []byte(strings.Repeat("y", 200))}}},
		{Value: resolvedOf(t1, idResolved)},
	}
	if len(feed[2].Value) > 1000 {
		t.Fatalf("the big value alone (%d bytes) must fit the buffer", len(feed[2].Value))
	}
	if err := r.ingest(t, feed...); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	if s := r.p.Stats(); s.Skipped != 1 {
		t.Fatalf("skipped %d records, want the one that does not fit with its headers", s.Skipped)
	}
	r.p.parts[r.part].resolved = t1
	if res := r.p.flush(context.Background(), r.window(t1)); res.err != nil {
		t.Fatalf("window: %v", res.err)
	}
	got := r.query(t, `SELECT CAST(id AS VARCHAR), name, COALESCE(CAST(meta AS VARCHAR), 'NULL') FROM t ORDER BY id`)
	want := [][]string{{"1", "a", `{"n": "1", "trace_id": "abc"}`}, {"2", "b", "NULL"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mirror = %v, want %v", got, want)
	}
}
