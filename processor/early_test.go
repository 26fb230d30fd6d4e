package processor

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

func deleteOfT(updated hlc.Timestamp) []byte {
	b := avroLong(nil, 0) // after: null
	b = avroString(avroLong(b, 1), updated.String())
	return framed(idValueT, b)
}

// TestEarlyGroupAppliesUpsertsAndRefusesDeletes applies a scan's group of
// rows ahead of its resolved timestamp, then refuses the next group, which
// holds a delete (an older version re-sent after it would bring the row
// back), and lets the window apply it: the scan rows reach the mirror with
// no checkpoint, leave the buffer, and the window that follows moves the
// checkpoint and supersedes them.
func TestEarlyGroupAppliesUpsertsAndRefusesDeletes(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, OnErrorFail)
	t3 := hlc.Timestamp{WallTime: t2.WallTime + 1e9}
	feed := []*kgo.Record{
		{Key: keyOfT(1), Value: valueOfT(1, "a", t1)}, // 0-2: the scan
		{Key: keyOfT(2), Value: valueOfT(2, "b", t1)},
		{Key: keyOfT(3), Value: valueOfT(3, "c", t1)},
		{Key: keyOfT(1), Value: deleteOfT(t2)},         // 3: a delete
		{Key: keyOfT(2), Value: valueOfT(2, "b2", t3)}, // 4: an update
	}
	if err := r.ingest(t, feed...); err != nil {
		t.Fatal(err)
	}
	held := []sinks.Checkpoint{{Group: "g", Topic: r.part.Topic, Partition: r.part.Partition}}
	parts := []buffer.Partition{r.part}

	if h, ok, err := r.buf.LowestAbove(r.part, hlc.Timestamp{}); err != nil || !ok || h != t1 {
		t.Fatalf("lowest buffered HLC = %s, %v, %v; want the scan's %s", h, ok, err, t1)
	}
	res := r.p.applyEarly(ctx, r.buf.TakeGroup(parts, t1), held)
	if res.err != nil || res.rows != 3 {
		t.Fatalf("scan group: %d rows, %v; want 3 applied", res.rows, res.err)
	}
	want := [][]string{{"1", "a", t1.String()}, {"2", "b", t1.String()}, {"3", "c", t1.String()}}
	if got := r.query(t, `SELECT CAST(id AS VARCHAR), name, CAST(_hw_updated AS VARCHAR) FROM t ORDER BY id`); !reflect.DeepEqual(got, want) {
		t.Errorf("mirror after the scan group = %v, want %v", got, want)
	}
	if got := r.query(t, `SELECT CAST(count(*) AS VARCHAR) FROM highwater_checkpoints`); !reflect.DeepEqual(got, [][]string{{"0"}}) {
		t.Errorf("a group applied early wrote checkpoints: %v", got)
	}
	if st, _ := r.state(t); st.Events != 2 || !st.Base.IsZero() {
		t.Errorf("buffer after the scan group: %+v, want the delete and the update left and Base unmoved", st)
	}

	if h, ok, err := r.buf.LowestAbove(r.part, hlc.Timestamp{}); err != nil || !ok || h != t2 {
		t.Fatalf("lowest buffered HLC = %s, %v, %v; want the delete's %s", h, ok, err, t2)
	}
	res = r.p.applyEarly(ctx, r.buf.TakeGroup(parts, t2), held)
	if !errors.Is(res.err, errEarlyRefused) {
		t.Fatalf("group with a delete: %v, want it refused", res.err)
	}
	if got := r.query(t, `SELECT CAST(count(*) AS VARCHAR) FROM t`); !reflect.DeepEqual(got, [][]string{{"3"}}) {
		t.Errorf("the refused group changed the mirror: %v rows", got)
	}
	if st, _ := r.state(t); st.Events != 2 {
		t.Errorf("the refused group left the buffer: %+v", st)
	}

	// The window through t3 applies the delete and the update.
	if res := r.p.flush(ctx, r.window(t3)); res.err != nil {
		t.Fatal(res.err)
	}
	want = [][]string{{"2", "b2", t3.String()}, {"3", "c", t1.String()}}
	if got := r.query(t, `SELECT CAST(id AS VARCHAR), name, CAST(_hw_updated AS VARCHAR) FROM t ORDER BY id`); !reflect.DeepEqual(got, want) {
		t.Errorf("mirror after the window = %v, want %v", got, want)
	}
	if got := r.query(t, `SELECT CAST(resolved AS VARCHAR), CAST(next_offset AS VARCHAR) FROM highwater_checkpoints`); !reflect.DeepEqual(got, [][]string{{t3.String(), "5"}}) {
		t.Errorf("checkpoint after the window = %v, want through %s at offset 5", got, t3)
	}
}
