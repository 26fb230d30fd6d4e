package processor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/memsink"
)

// newFeedsRig is a memRig over two topics, a and b, one partition each:
// feed x is topic a, feed y topic b.
func newFeedsRig(t *testing.T, mode FrontierMode) *memRig {
	t.Helper()
	r := newMemRig(t)
	p, err := New(Config{
		Brokers: []string{"unused:9092"}, Topics: []string{"a", "b"}, Group: "g",
		Feeds:    []Feed{{Name: "x", Topics: []string{"a"}}, {Name: "y", Topics: []string{"b"}}},
		Frontier: mode,
		Decoder:  r.p.cfg.Decoder, Buffer: r.buf, Writer: r.w, Changelog: true, Logger: r.p.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	for _, topic := range []string{"a", "b"} {
		bp := buffer.Partition{Topic: topic}
		p.parts[bp] = &partState{p: bp, ready: true}
	}
	return r
}

// ingestTo feeds records to partition 0 of topic at the next offsets.
func (r *memRig) ingestTo(t *testing.T, topic string, recs ...*kgo.Record) {
	t.Helper()
	r.part = buffer.Partition{Topic: topic}
	r.ingest(t, recs...)
}

// windows applies every window that can start, as the poll loop would, and
// returns how many did.
func (r *memRig) windows(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	n := 0
	for ; ; n++ {
		if err := r.p.maybeFlush(ctx); err != nil {
			t.Fatal(err)
		}
		if r.p.inflight == nil {
			r.p.publishPartitions()
			return n
		}
		if err := r.p.reapFlush(ctx, true, true); err != nil {
			t.Fatal(err)
		}
	}
}

// applied returns the stored checkpoint of each topic's partition 0.
func (r *memRig) applied(t *testing.T) map[string]hlc.Timestamp {
	t.Helper()
	cps, err := r.w.Checkpoints(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]hlc.Timestamp{}
	for _, cp := range cps {
		out[cp.Topic] = cp.Resolved
	}
	return out
}

// stallFeedY plays two feeds: both resolve through t1; then feed x (topic
// a) goes on to t3 while feed y (topic b) writes a row and never resolves
// again, as a paused changefeed.
func stallFeedY(t *testing.T, r *memRig) {
	t.Helper()
	r.ingestTo(t, "a", row(1, "a1", t1), resolved(t1))
	r.ingestTo(t, "b", row(2, "b1", t1), resolved(t1))
	if n := r.windows(t); n == 0 {
		t.Fatal("no window through t1")
	}
	r.ingestTo(t, "a", row(1, "a2", t2), resolved(t2))
	r.ingestTo(t, "b", row(2, "b2", t2))
	r.ingestTo(t, "a", row(1, "a3", t3), resolved(t3))
	r.windows(t)
}

// TestIndependentFrontiersLetOneFeedGoOnWhileAnotherStalls: with
// independent frontiers, feed x is applied through its own resolved
// timestamp while feed y, silent, stays at its own; each one's checkpoints
// move alone, and the frontier stats name y as the feed holding the cut
// back.
func TestIndependentFrontiersLetOneFeedGoOnWhileAnotherStalls(t *testing.T) {
	r := newFeedsRig(t, FrontierIndependent)
	stallFeedY(t, r)
	if got := r.applied(t); got["a"] != t3 || got["b"] != t1 {
		t.Fatalf("checkpoints a=%s b=%s; want a=%s (feed x goes on), b=%s (feed y stalled)", got["a"], got["b"], t3, t1)
	}
	if got := names(r.w); !mirrorHas(got, "a3") || !mirrorHas(got, "b1") || mirrorHas(got, "b2") {
		t.Fatalf("mirror = %v; want a3 (feed x through t3) and b1, not b2 (feed y through t1)", got)
	}
	for _, c := range r.w.Commits() {
		if len(c.Checkpoints) != 1 {
			t.Fatalf("a window checkpointed %v: with independent frontiers each window is one feed's", c.Checkpoints)
		}
	}
	fs := r.p.FrontierStats()
	if fs.Mode != FrontierIndependent || fs.Holder < 0 || fs.Feeds[fs.Holder].Name != "y" {
		t.Fatalf("frontier stats %+v: want feed y holding the cut back", fs)
	}
	y, x := fs.Feeds[fs.Holder], fs.Feeds[0]
	if y.HeldByTopic != "b" || y.HeldByPartition != 0 || y.Resolved != t1 || y.Applied != t1 || x.Resolved != t3 || x.Applied != t3 {
		t.Fatalf("feeds %+v: want x resolved and applied through t3, y through t1 held by b[0]", fs.Feeds)
	}
	// The member's applied frontier is its cut: the lowest feed's.
	if s := r.p.Stats(); s.Frontier != t1 || s.Resolved != t1 {
		t.Fatalf("stats frontier %s resolved %s; want %s, %s", s.Frontier, s.Resolved, t1, t1)
	}
}

// TestSharedFrontierHoldsEveryFeedAndNamesTheHolder: with the shared
// frontier (the default) a silent feed holds every table at one consistent
// cut, as before feeds existed, and the frontier stats name it.
func TestSharedFrontierHoldsEveryFeedAndNamesTheHolder(t *testing.T) {
	r := newFeedsRig(t, "")
	stallFeedY(t, r)
	if got := r.applied(t); got["a"] != t1 || got["b"] != t1 {
		t.Fatalf("checkpoints a=%s b=%s; want both at the shared cut %s", got["a"], got["b"], t1)
	}
	if got := names(r.w); !mirrorHas(got, "a1") || !mirrorHas(got, "b1") {
		t.Fatalf("mirror = %v; want a1 and b1, the cut through t1", got)
	}
	fs := r.p.FrontierStats()
	if fs.Mode != FrontierShared || fs.Holder < 0 || fs.Feeds[fs.Holder].Name != "y" || fs.Feeds[fs.Holder].HeldByTopic != "b" {
		t.Fatalf("frontier stats %+v: want feed y, b[0], holding the shared cut back", fs)
	}
}

func mirrorHas(m map[string]string, name string) bool {
	for _, v := range m {
		if v == name {
			return true
		}
	}
	return false
}

// TestResolveFeeds: how topics fall into feeds, and the mistakes refused.
func TestResolveFeeds(t *testing.T) {
	show := func(fs []Feed) string {
		var b strings.Builder
		for _, f := range fs {
			fmt.Fprintf(&b, "%s=%s;", f.Name, strings.Join(f.Topics, ","))
		}
		return b.String()
	}
	for _, tc := range []struct {
		name   string
		topics []string
		feeds  []Feed
		mode   FrontierMode
		want   string // or the error's text
	}{
		{"shared without feeds: one feed", []string{"a", "b"}, nil, FrontierShared, "default=a,b;"},
		{"independent without feeds: a feed per topic", []string{"a", "b"}, nil, FrontierIndependent, "a=a;b=b;"},
		{"named feeds, a topic left over", []string{"a", "b", "c"}, []Feed{{"x", []string{"a", "b"}}}, FrontierIndependent, "x=a,b;c=c;"},
		{"a topic in two feeds", []string{"a"}, []Feed{{"x", []string{"a"}}, {"y", []string{"a"}}}, FrontierShared, `topic "a" is in feeds "x" and "y"`},
		{"an unknown topic", []string{"a"}, []Feed{{"x", []string{"z"}}}, FrontierShared, `feed "x": topic "z" is not one of the topics`},
		{"a name twice", []string{"a", "b"}, []Feed{{"x", []string{"a"}}, {"x", []string{"b"}}}, FrontierShared, `feed "x": named twice`},
		{"no name", []string{"a"}, []Feed{{"", []string{"a"}}}, FrontierShared, "no name"},
		{"no topics", []string{"a"}, []Feed{{"x", nil}}, FrontierShared, `feed "x": no topics`},
		{"a leftover topic named like a feed", []string{"a", "b"}, []Feed{{"b", []string{"a"}}}, FrontierShared, `topic "b" is in no feed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveFeeds(tc.topics, tc.feeds, tc.mode)
			if err != nil {
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				return
			}
			if s := show(got); s != tc.want {
				t.Fatalf("feeds %s, want %s", s, tc.want)
			}
		})
	}
	if _, err := ParseFrontierMode("both"); err == nil || !strings.Contains(err.Error(), "want shared or independent") {
		t.Fatalf("ParseFrontierMode(both) = %v", err)
	}
}

// TestIndependentFrontiersRetryTheFailedFeedFirst: a feed's window whose
// commit took effect but was reported failed is retried before another
// feed's window, so that the retry recognises it as applied instead of
// taking it for another member's work (fenced, partitions re-read).
func TestIndependentFrontiersRetryTheFailedFeedFirst(t *testing.T) {
	r := newFeedsRig(t, FrontierIndependent)
	r.ingestTo(t, "a", row(1, "a1", t1), resolved(t1))
	r.ingestTo(t, "b", row(2, "b1", t1), resolved(t1))
	r.w.CommitThenFail(errors.New("unexpected EOF"))
	if err := r.window(t); err != nil {
		t.Fatal(err)
	}
	if r.p.uncertain == nil {
		t.Fatal("the first window's commit was not reported failed")
	}
	for range 2 {
		if err := r.window(t); err != nil {
			t.Fatal(err)
		}
	}
	if s := r.p.Stats(); s.Fenced != 0 || len(r.p.seeks) != 0 {
		t.Fatalf("fenced %d, seeks %v: the committed window was taken for another member's", s.Fenced, r.p.seeks)
	}
	if got := r.applied(t); got["a"] != t1 || got["b"] != t1 || len(r.w.Commits()) != 2 || r.w.Calls(memsink.OpWrite) != 2 {
		t.Fatalf("checkpoints %v, %d commits, %d writes; want both feeds through t1, each written and committed once",
			got, len(r.w.Commits()), r.w.Calls(memsink.OpWrite))
	}
}

// TestBackpressurePausesOnlyPartitionsAheadOfTheirOwnFeed: over the disk
// budget, a partition pauses only when it is ahead of the frontier it is
// part of. With independent frontiers the running feed's partition at its
// own feed's frontier keeps fetching, or its window could never close
// while another feed is stalled; with a shared frontier it is ahead of the
// cut and pauses.
func TestBackpressurePausesOnlyPartitionsAheadOfTheirOwnFeed(t *testing.T) {
	for _, tc := range []struct {
		mode   FrontierMode
		aAhead bool
	}{{FrontierIndependent, false}, {FrontierShared, true}} {
		t.Run(string(tc.mode), func(t *testing.T) {
			r := newFeedsRig(t, tc.mode)
			r.ingestTo(t, "a", resolved(t3))
			r.ingestTo(t, "b", resolved(t1))
			r.p.mu.Lock()
			defer r.p.mu.Unlock()
			owned := r.p.owned()
			ahead := r.p.aheadOfFrontier(owned)
			if got := ahead(r.p.parts[buffer.Partition{Topic: "a"}]); got != tc.aAhead {
				t.Errorf("a (resolved t3, feed x) ahead = %v, want %v", got, tc.aAhead)
			}
			if ahead(r.p.parts[buffer.Partition{Topic: "b"}]) {
				t.Error("b (resolved t1, holding the cut back) is ahead: it would pause and the window never close")
			}
		})
	}
}
