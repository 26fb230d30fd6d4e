package buffer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/highwater-dev/highwater/hlc"
)

// envTestMemory runs the package's tests with the memory front on, with the
// MemoryBudget it names (TestSuiteWithMemoryFront sets it).
const envTestMemory = "HIGHWATER_BUFFER_TEST_MEMORY"

// withTestMemory sets o.MemoryBudget from envTestMemory, if set.
func withTestMemory(o Options) Options {
	if v := os.Getenv(envTestMemory); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			panic("bad " + envTestMemory + ": " + v)
		}
		o.MemoryBudget = n
	}
	return o
}

// TestSuiteWithMemoryFront runs every test of the package again with the
// memory front on: with a budget so small that nearly every Write spills
// (the spill path, memory and Badger mixed in every Scan), and with one so
// large that nothing spills (everything in memory, trims without Badger).
func TestSuiteWithMemoryFront(t *testing.T) {
	if os.Getenv(envTestMemory) != "" {
		t.Skip("running with the memory front already")
	}
	for _, budget := range []int64{4 << 10, 1 << 30} {
		t.Run(strconv.FormatInt(budget, 10), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^Test", "-test.count=1")
			cmd.Env = append(os.Environ(), envTestMemory+"="+strconv.FormatInt(budget, 10))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the package's tests with MemoryBudget %d: %v\n%s", budget, err, out)
			}
		})
	}
}

// memEvents is how many events of p the memory front holds.
func memEvents(s *Store, p Partition) int {
	s.smu.RLock()
	defer s.smu.RUnlock()
	if pt := s.parts[p]; pt != nil {
		return int(pt.memEvents)
	}
	return 0
}

// skipWithMemoryFront skips a test of Badger's own paths (it corrupts or
// inspects Badger's keys directly) when the memory front is on.
func skipWithMemoryFront(t *testing.T, s *Store) {
	t.Helper()
	if s.memBudget > 0 {
		t.Skip("tests Badger's write path; the memory front keeps these events out of Badger")
	}
}

// TestMemoryFrontKillNineLosesNothing kills a writer whose newest records
// are only in the memory front (with a budget that holds them all, and
// with one so small that older runs were spilled to Badger first), twice,
// then resumes the partition the way the processor does, from the
// persisted Consumed, re-reading the records from "Kafka" (crashEvent).
// Every record written before the kills above Base must then be buffered,
// as its smallest-offset copy: the persisted Consumed never covers records
// that were only in memory.
func TestMemoryFrontKillNineLosesNothing(t *testing.T) {
	if os.Getenv(envCrashDir) != "" || os.Getenv(envTestMemory) != "" {
		t.Skip("the helper, or the suite's run with the memory front")
	}
	for _, budget := range []int64{1 << 30, 256 << 10} {
		t.Run(strconv.FormatInt(budget, 10), func(t *testing.T) {
			dir := t.TempDir()
			env := envTestMemory + "=" + strconv.FormatInt(budget, 10)
			var wrote int64
			for range 2 {
				wrote = max(wrote, killCrashHelper(t, dir, env))
			}
			s, err := Open(Options{Dir: dir, MemoryBudget: budget})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			st := mustState(t, s, crashPart)
			// Resume from Kafka at Consumed, as the processor does.
			for off := st.Consumed; off < wrote; {
				b := s.NewBatch()
				for end := min(off+crashBatch, wrote); off < end; off++ {
					b.Add(crashPart, crashEvent(off))
				}
				b.SetConsumed(crashPart, off)
				if err := s.Write(context.Background(), b); err != nil {
					t.Fatal(err)
				}
			}
			stored := map[string]rec{}
			for _, r := range scan(t, s, []Partition{crashPart}, maxHLC, false) {
				stored[r.TS.String()+r.Table+r.Key] = r
			}
			for off := range wrote {
				e := crashEvent(off)
				if !st.Base.Less(e.Updated) {
					continue // applied and trimmed before the kill
				}
				r, ok := stored[e.Updated.String()+e.Table+string(e.Key)]
				if !ok {
					t.Fatalf("record at offset %d (%s) lost: resumed from Consumed %d, %d written before the kills", off, e.Updated, st.Consumed, wrote)
				}
				if r.Offset > off {
					t.Fatalf("record at offset %d stored with larger offset %d", off, r.Offset)
				}
			}
			// The premises: the kill found records only in memory, and
			// (small budget) others spilled.
			if st.Consumed >= wrote {
				t.Fatalf("persisted Consumed %d covers all %d records written: the kill found none only in memory", st.Consumed, wrote)
			}
			if budget < 1<<20 && st.Events == 0 {
				t.Fatalf("nothing was spilled before the kill with a %d-byte budget", budget)
			}
			t.Logf("written %d, resumed from %d, base %s: %d events buffered", wrote, st.Consumed, st.Base, len(stored))
		})
	}
}

// TestScanMergesMemoryAndBadger: with a budget that the first batches
// overflow (they are spilled, and the next go to Badger directly until a
// trim), a Scan merges the runs left in memory with the events in Badger, over
// several partitions, in (HLC, table, key) order forward and exactly
// reversed, through a given HLC and above Base; a duplicate that arrives
// later with a smaller offset replaces the copy in memory or in Badger;
// LowOffset and the counters see both.
func TestScanMergesMemoryAndBadger(t *testing.T) {
	s, err := Open(Options{InMemory: true, MemoryBudget: 96 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	parts := []Partition{pA, pB}
	type key struct {
		p  Partition
		ts hlc.Timestamp
		k  string
	}
	oracle := map[key]rec{}
	next := map[Partition]int64{}
	for batch := range 40 {
		if batch == 25 {
			// The front overflowed and was spilled, and Writes went to
			// Badger since: a trim (here of nothing) gives them back to
			// the memory front.
			if m := s.Memory(); m.Events != 0 || m.Spilled == 0 {
				t.Fatalf("memory front %+v after 25 batches: want it spilled and bypassed", m)
			}
			if err := s.Trim(context.Background(), parts, at(1, 0)); err != nil {
				t.Fatal(err)
			}
		}
		b := s.NewBatch()
		for _, p := range parts {
			for range 30 {
				e := ev(at(int64(batch*10+rng.IntN(40)), 0), "t", fmt.Sprint("k", rng.IntN(200)), next[p])
				next[p]++
				b.Add(p, e)
				k := key{p, e.Updated, string(e.Key)}
				if _, ok := oracle[k]; !ok {
					oracle[k] = rec{P: p, TS: e.Updated, Table: e.Table, Key: string(e.Key), Offset: e.Offset, Value: string(e.Value)}
				}
			}
			b.SetConsumed(p, next[p])
		}
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if m := s.Memory(); m.Events == 0 || m.Spilled == 0 {
		t.Fatalf("memory front %+v: the test needs events both in memory and spilled", m)
	}
	// A re-delivery with smaller offsets of events already buffered: one
	// in memory (the newest HLCs) and one in Badger (the oldest).
	var newest, oldest rec
	for _, r := range oracle {
		if r.P == pA && (newest.Key == "" || newest.TS.Less(r.TS)) {
			newest = r
		}
		if r.P == pA && (oldest.Key == "" || r.TS.Less(oldest.TS)) {
			oldest = r
		}
	}
	b := s.NewBatch()
	for i, r := range []rec{newest, oldest} {
		off := int64(-10 - i)
		b.Add(pA, Event{Updated: r.TS, Table: r.Table, Key: []byte(r.Key), Offset: off, Value: []byte("earlier")})
		r.Offset, r.Value = off, "earlier"
		oracle[key{pA, r.TS, r.Key}] = r
	}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	through := at(250, 0)
	if err := s.Trim(context.Background(), parts, at(60, 0)); err != nil {
		t.Fatal(err)
	}
	// The premise: the window through `through` is partly in memory,
	// partly in Badger.
	inMem := 0
	s.smu.RLock()
	for _, p := range parts {
		for _, r := range s.parts[p].mem {
			for i := r.start; i < len(r.ents); i++ {
				if !through.Less(r.ents[i].ts) {
					inMem++
				}
			}
		}
	}
	s.smu.RUnlock()
	if inMem == 0 || s.lookup(pA).m.events == 0 {
		t.Fatalf("%d events through %s in memory, %d in Badger: the test needs both", inMem, through, s.lookup(pA).m.events)
	}
	var want []rec
	for _, r := range oracle {
		if at(60, 0).Less(r.TS) && !through.Less(r.TS) {
			want = append(want, r)
		}
	}
	slices.SortFunc(want, func(a, b rec) int {
		if c := cmpRec(a, b); c != 0 {
			return c
		}
		return strings.Compare(a.P.Topic, b.P.Topic)*2 + int(a.P.Partition-b.P.Partition)
	})
	got := scan(t, s, parts, through, false)
	if !slices.Equal(got, want) {
		t.Fatalf("forward scan: %d events, want %d\n got %v\nwant %v", len(got), len(want), got, want)
	}
	rev := scan(t, s, parts, through, true)
	slices.Reverse(rev)
	if !slices.Equal(rev, want) {
		t.Fatalf("reverse scan is not the forward scan reversed: %d events, want %d", len(rev), len(want))
	}
	var events int64
	for _, r := range oracle {
		if at(60, 0).Less(r.TS) {
			events++
		}
	}
	if u := s.Usage(); u.Events != events {
		t.Fatalf("Usage %+v, want %d events", u, events)
	}
	// LowOffset: the smallest offset above through, memory and Badger.
	for _, p := range parts {
		low := next[p]
		for _, r := range oracle {
			if r.P == p && through.Less(r.TS) {
				low = min(low, r.Offset)
			}
		}
		if got, err := s.LowOffset(p, through); err != nil || got != low {
			t.Fatalf("LowOffset(%v) = %d, %v; want %d", p, got, err, low)
		}
	}
}

// TestMemoryFrontTrimWritesNothing: events that fit in the memory front
// never reach Badger, their trim writes no tombstone, and the trim that
// empties the front persists the Consumed they held back; a clean Close
// spills what is left, so the next Open resumes from where it stopped.
func TestMemoryFrontTrimWritesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, MemoryBudget: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	write(t, s, pA, ev(at(10, 0), "t", "a", 0), ev(at(20, 0), "t", "b", 1))
	write(t, s, pA, ev(at(30, 0), "t", "c", 2))
	rawEvents := func() (events int, m meta) {
		t.Helper()
		pt := s.lookup(pA)
		events = rawEventCount(t, s, pt.id, true) // tombstones too
		if err := s.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(idPrefix(prefixMeta, pt.id))
			if err != nil {
				return err
			}
			return item.Value(func(v []byte) error { m, err = decodeMeta(v); return err })
		}); err != nil {
			t.Fatal(err)
		}
		return events, m
	}
	if n, m := rawEvents(); n != 0 || m.consumed != 0 {
		t.Fatalf("after the writes Badger holds %d event entries and Consumed %d; want none and 0 (all in memory)", n, m.consumed)
	}
	if err := s.Trim(context.Background(), []Partition{pA}, at(20, 0)); err != nil {
		t.Fatal(err)
	}
	// The first run is empty now: its Consumed is durable; the second
	// still holds c.
	if n, m := rawEvents(); n != 0 || m.consumed != 2 || m.base != at(20, 0) {
		t.Fatalf("after the trim Badger holds %d event entries, meta %+v; want none, Consumed 2, Base 20", n, m)
	}
	if st := mustState(t, s, pA); st.Consumed != 3 || st.Events != 1 {
		t.Fatalf("State %+v, want Consumed 3 and 1 event", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir)
	defer s.Close()
	if st := mustState(t, s, pA); st.Consumed != 3 || st.Events != 1 {
		t.Fatalf("after a clean Close and Open: State %+v, want Consumed 3 and 1 event", st)
	}
	if got := scan(t, s, []Partition{pA}, maxHLC, false); len(got) != 1 || got[0].Key != "c" {
		t.Fatalf("after reopen: %v, want c", got)
	}
}
