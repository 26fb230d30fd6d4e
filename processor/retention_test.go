package processor

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/buffer"
)

// TestFetchGapCatchesRecordsDeletedWhileConsuming covers the gap that
// opens after assignment (retention deletes records the member has not read
// yet, or deletes them between the check on assignment and the first
// fetch): franz-go then resumes at the log start without a word, and only
// the fetch shows it. The integration test covers the check on assignment.
func TestFetchGapCatchesRecordsDeletedWhileConsuming(t *testing.T) {
	fetch := func(logStart int64, offsets ...int64) kgo.FetchTopicPartition {
		fp := kgo.FetchTopicPartition{Topic: "orders", FetchPartition: kgo.FetchPartition{Partition: 2, LogStartOffset: logStart}}
		for _, o := range offsets {
			fp.Records = append(fp.Records, &kgo.Record{Topic: "orders", Partition: 2, Offset: o})
		}
		return fp
	}
	for _, tc := range []struct {
		name    string
		allow   bool
		fp      kgo.FetchTopicPartition
		wantGap bool
	}{
		{name: "contiguous", fp: fetch(0, 10, 11)},
		{name: "log start moved but nothing skipped", fp: fetch(10, 10, 11)},
		{name: "offsets skipped above the log start (compaction, transaction markers)", fp: fetch(5, 14, 15)},
		{name: "empty fetch", fp: fetch(30)},
		{name: "deleted unread", fp: fetch(20, 20, 21), wantGap: true},
		{name: "deleted unread, allowed", allow: true, fp: fetch(20, 20, 21), wantGap: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Processor{cfg: Config{AllowRetentionGap: tc.allow}, log: zap.NewNop()}
			st := &partState{p: buffer.Partition{Topic: "orders", Partition: 2}, expect: 10}
			err := p.fetchGap(st, tc.fp)
			var gap *RetentionGapError
			isGap := errors.As(err, &gap)
			switch {
			case tc.wantGap && !tc.allow:
				if !isGap || gap.Topic != "orders" || gap.Partition != 2 || gap.Resume != 10 || gap.LogStart != 20 {
					t.Fatalf("err = %v, want a retention gap on orders[2] from 10 to the log start 20", err)
				}
			case err != nil:
				t.Fatalf("err = %v, want none", err)
			}
			if got, want := p.stats.retentionGaps.Load(), map[bool]int64{true: 1, false: 0}[tc.wantGap]; got != want {
				t.Errorf("retention gaps counted %d, want %d", got, want)
			}
			if n := len(tc.fp.Records); n > 0 {
				if want := tc.fp.Records[n-1].Offset + 1; st.expect != want {
					t.Errorf("expect = %d after the fetch, want %d", st.expect, want)
				}
			}
		})
	}
}
