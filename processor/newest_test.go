package processor

import (
	"fmt"
	"strings"
	"testing"

	"github.com/highwater-dev/highwater/buffer"
)

// TestNewestVersionsKeepsTheLastVersionOfEachKey feeds versions in the
// buffer's ascending order and checks that a drain yields exactly each
// (table, key)'s last version with its partition and offset, whether the
// newer value fits in the older one's room or not.
func TestNewestVersionsKeepsTheLastVersionOfEachKey(t *testing.T) {
	p0 := buffer.Partition{Topic: "t", Partition: 0}
	p1 := buffer.Partition{Topic: "t", Partition: 1}
	type in struct {
		p     buffer.Partition
		ts    int64
		table string
		key   string
		off   int64
		value string
	}
	feed := []in{
		{p0, 1, "a", "k1", 10, "first"},
		{p1, 2, "a", "k2", 20, "other"},
		{p0, 3, "b", "k1", 11, "same key, other table"},
		{p1, 4, "a", "k1", 21, "longer value than the first one"}, // appended
		{p0, 5, "a", "k2", 12, "s"},                               // in place
		{p0, 6, "a", "k1", 13, "short"},                           // in place of the appended one
	}
	want := map[string]in{
		"a/k1": feed[5],
		"a/k2": feed[4],
		"b/k1": feed[2],
	}
	nv := newNewestVersions(1 << 20)
	for _, e := range feed {
		if nv.keep(e.p, buffer.Event{Updated: h(e.ts), Table: e.table, Key: []byte(e.key), Offset: e.off, Value: []byte(e.value)}) {
			t.Fatal("keep asked for a drain far below the limit")
		}
	}
	got := map[string]in{}
	if err := nv.drain(func(p buffer.Partition, ev buffer.Event) error {
		id := ev.Table + "/" + string(ev.Key)
		if _, dup := got[id]; dup {
			t.Errorf("%s drained twice", id)
		}
		got[id] = in{p, ev.Updated.WallTime, ev.Table, string(ev.Key), ev.Offset, string(ev.Value)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("drained %d keys, want %d: %v", len(got), len(want), got)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: got %+v, want %+v", id, got[id], w)
		}
	}
	// A drain forgets everything.
	n := 0
	_ = nv.drain(func(buffer.Partition, buffer.Event) error { n++; return nil })
	if n != 0 {
		t.Fatalf("second drain yielded %d versions", n)
	}
}

// TestNewestVersionsBoundedMemory checks that keep asks for a drain once
// the kept bytes reach the limit, and that draining then and at the end
// still delivers each key's newest version last (earlier versions may
// precede it, which the writer resolves).
func TestNewestVersionsBoundedMemory(t *testing.T) {
	const limit = 4096
	nv := newNewestVersions(limit)
	p := buffer.Partition{Topic: "t"}
	value := strings.Repeat("v", 100)
	last := map[string]int64{}
	var drains int
	collect := func(_ buffer.Partition, ev buffer.Event) error {
		k := string(ev.Key)
		if ev.Offset < last[k] {
			return fmt.Errorf("key %s: version %d delivered after %d", k, ev.Offset, last[k])
		}
		last[k] = ev.Offset
		return nil
	}
	for i := int64(0); i < 500; i++ {
		key := fmt.Sprintf("k%d", i%120)
		if nv.keep(p, buffer.Event{Updated: h(i + 1), Table: "t", Key: []byte(key), Offset: i, Value: []byte(value)}) {
			drains++
			if err := nv.drain(collect); err != nil {
				t.Fatal(err)
			}
		}
		if len(nv.arena) > limit+len(key)+len(value) {
			t.Fatalf("arena grew to %d bytes beyond the %d limit", len(nv.arena), limit)
		}
	}
	if err := nv.drain(collect); err != nil {
		t.Fatal(err)
	}
	if drains == 0 {
		t.Fatal("the limit never asked for a drain")
	}
	for i := int64(380); i < 500; i++ {
		if k := fmt.Sprintf("k%d", i%120); last[k] != i {
			t.Errorf("key %s: last delivered version %d, want %d", k, last[k], i)
		}
	}
}

// TestNewestVersionsManyKeys checks the index past its growth and with
// colliding probe sequences: 20,000 keys in two tables (the same key bytes
// in both), each written up to three times, over two windows of a reused
// size hint; every drain yields each (table, key) once, with its last
// value, as a map would.
func TestNewestVersionsManyKeys(t *testing.T) {
	var hint versionsHint
	for window := range 2 {
		nv := hint.newestVersions()
		want := map[string]string{}
		for i := range 30000 {
			table := []string{"a", "b"}[i%2]
			key := fmt.Sprintf("k%d", (i/2*7919)%10000)
			value := fmt.Sprintf("w%d-v%d", window, i)
			want[table+"/"+key] = value
			nv.keep(buffer.Partition{Topic: "t"}, buffer.Event{Updated: h(int64(i + 1)), Table: table, Key: []byte(key), Offset: int64(i), Value: []byte(value)})
		}
		got := map[string]string{}
		if err := nv.drain(func(_ buffer.Partition, ev buffer.Event) error {
			id := ev.Table + "/" + string(ev.Key)
			if _, dup := got[id]; dup {
				t.Fatalf("window %d: %s drained twice", window, id)
			}
			got[id] = string(ev.Value)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		hint.note(nv)
		if len(got) != len(want) {
			t.Fatalf("window %d: %d versions drained, want %d", window, len(got), len(want))
		}
		for id, v := range want {
			if got[id] != v {
				t.Fatalf("window %d: %s = %q, want %q", window, id, got[id], v)
			}
		}
	}
	if hint.keys.Load() != 20000 {
		t.Fatalf("size hint %d keys, want 20000", hint.keys.Load())
	}
}
