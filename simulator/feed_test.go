package simulator

import (
	"bytes"
	"context"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// feedRow is one decoded row message.
type feedRow struct {
	topic     string
	partition int32
	offset    int64
	schemaID  uint32
	keyBytes  []byte
	key       map[string]any
	value     map[string]any
	updated   hlc.Timestamp
	raw       []byte
}

type feedResolved struct {
	topic     string
	partition int32
	offset    int64
	ts        hlc.Timestamp
}

func decodeFeed(t *testing.T, d *decoder, recs []*kgo.Record) ([]feedRow, []feedResolved) {
	t.Helper()
	var rows []feedRow
	var res []feedResolved
	for _, r := range recs {
		_, v := d.decode(t, r.Value)
		if r.Key == nil {
			if len(v) != 1 {
				t.Fatalf("resolved message with fields %v", v)
			}
			res = append(res, feedResolved{r.Topic, r.Partition, r.Offset, hlcField(t, v, "resolved")})
			continue
		}
		_, k := d.decode(t, r.Key)
		id, _ := d.decode(t, r.Value)
		rows = append(rows, feedRow{topic: r.Topic, partition: r.Partition, offset: r.Offset, schemaID: id,
			keyBytes: r.Key, key: k, value: v, updated: hlcField(t, v, "updated"), raw: r.Value})
	}
	return rows, res
}

func hlcField(t *testing.T, v map[string]any, name string) hlc.Timestamp {
	t.Helper()
	u, ok := v[name].(map[string]any)
	if !ok {
		t.Fatalf("field %s missing in %v", name, v)
	}
	h, err := hlc.Parse(u["string"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// orderCheck applies CockroachDB's orderValidator rules (§9) to a feed in
// offset order per partition, and the resolved guarantee's other half: all
// versions <= a resolved timestamp were sent before it.
type orderCheck struct {
	partitionOf map[string]string            // key -> topic/partition
	seen        map[string]map[string][]byte // key -> updated -> value
	latest      map[string]hlc.Timestamp     // key -> newest ts seen
	resolved    map[string]hlc.Timestamp     // topic/partition -> latest resolved
	failures    []string
}

func newOrderCheck() *orderCheck {
	return &orderCheck{partitionOf: map[string]string{}, seen: map[string]map[string][]byte{},
		latest: map[string]hlc.Timestamp{}, resolved: map[string]hlc.Timestamp{}}
}

func (c *orderCheck) fail(f string, args ...any) {
	c.failures = append(c.failures, fmt.Sprintf(f, args...))
}

func (c *orderCheck) row(r feedRow) {
	part := fmt.Sprintf("%s/%d", r.topic, r.partition)
	key := r.topic + "/" + string(r.keyBytes)
	if p, ok := c.partitionOf[key]; ok && p != part {
		c.fail("key %x received on two partitions: %s and %s", r.keyBytes, p, part)
	}
	c.partitionOf[key] = part
	ts := r.updated.String()
	if c.seen[key] == nil {
		c.seen[key] = map[string][]byte{}
	}
	if prev, dup := c.seen[key][ts]; dup {
		if !bytes.Equal(prev, r.raw) {
			c.fail("saw duplicate row timestamp %s with a different value", ts)
		}
		return
	}
	c.seen[key][ts] = r.raw
	if r.updated.Less(c.latest[key]) {
		c.fail("%s: saw new row timestamp %s after %s was seen", part, ts, c.latest[key])
	} else {
		c.latest[key] = r.updated
	}
	if r.updated.Less(c.resolved[part]) {
		c.fail("%s: saw new row timestamp %s after %s was resolved", part, ts, c.resolved[part])
	}
}

func (c *orderCheck) resolvedMsg(r feedResolved) {
	part := fmt.Sprintf("%s/%d", r.topic, r.partition)
	if r.ts.Less(c.resolved[part]) {
		c.fail("%s: resolved went backwards: %s after %s", part, r.ts, c.resolved[part])
	}
	c.resolved[part] = r.ts
}

// replay runs the check over rows and resolved messages merged per
// partition in offset order.
func replay(rows []feedRow, res []feedResolved, c *orderCheck) {
	type ev struct {
		part   string
		offset int64
		row    *feedRow
		res    *feedResolved
	}
	var evs []ev
	for i := range rows {
		evs = append(evs, ev{fmt.Sprintf("%s/%d", rows[i].topic, rows[i].partition), rows[i].offset, &rows[i], nil})
	}
	for i := range res {
		evs = append(evs, ev{fmt.Sprintf("%s/%d", res[i].topic, res[i].partition), res[i].offset, nil, &res[i]})
	}
	slices.SortFunc(evs, func(a, b ev) int {
		if a.part != b.part {
			return strings.Compare(a.part, b.part)
		}
		return int(a.offset - b.offset)
	})
	for _, e := range evs {
		if e.row != nil {
			c.row(*e.row)
		} else {
			c.resolvedMsg(*e.res)
		}
	}
}

// TestOrderValidatorRules drives duplicates, reordering and restarts with
// gaps through kfake and checks the consumed feed with CockroachDB's
// orderValidator rules, completeness before every resolved message, and
// that every oracle version arrived.
func TestOrderValidatorRules(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(4)
	opts.Diff, opts.DuplicateProb, opts.Reorder, opts.Seed = true, 0.2, true, 42
	s := newSim(t, opts, fooTable(), TelemetryTables()[0])
	ctx := context.Background()
	if err := s.Run(ctx, Workload{Txns: 600, KeysPerTable: 40, RowsPerTxn: 3, DeleteProb: 0.2,
		ResolveEvery: 50, RestartEvery: 130, GapProb: 0.3}); err != nil {
		t.Fatal(err)
	}
	d := newDecoder(opts.RegistryURL)
	rows, res := decodeFeed(t, d, consumeAll(t, opts.Brokers, s.Topics()...))
	c := newOrderCheck()
	replay(rows, res, c)
	for _, f := range c.failures {
		t.Error(f)
	}
	// Resolved: on every partition of every topic, the same timestamps.
	perPart := map[string][]hlc.Timestamp{}
	for _, r := range res {
		k := fmt.Sprintf("%s/%d", r.topic, r.partition)
		perPart[k] = append(perPart[k], r.ts)
	}
	if len(perPart) != 8 {
		t.Errorf("resolved on %d partitions, want 8", len(perPart))
	}
	var first []hlc.Timestamp
	for _, ts := range perPart {
		if first == nil {
			first = ts
		} else if !slices.Equal(first, ts) {
			t.Errorf("partitions saw different resolved sequences")
		}
	}
	if len(first) != 600/50+1 {
		t.Errorf("got %d resolved per partition, want %d", len(first), 600/50+1)
	}
	// Completeness: every version <= R was on its partition before R, and
	// every version arrived at all.
	seenBefore := map[string]int64{} // key/ts -> first offset
	for _, r := range rows {
		k := fmt.Sprintf("%s/%x/%s", r.topic, r.keyBytes, r.updated)
		if o, ok := seenBefore[k]; !ok || r.offset < o {
			seenBefore[k] = r.offset
		}
	}
	dups := len(rows)
	for i, table := range s.Oracle().Tables() {
		topic := s.Topics()[i]
		tb := s.byName[table]
		vs := s.Oracle().Versions(table)
		dups -= len(vs)
		for _, v := range vs {
			kb, err := tb.encodeKey(v.Key)
			if err != nil {
				t.Fatal(err)
			}
			o, ok := seenBefore[fmt.Sprintf("%s/%x/%s", topic, kb, v.Updated)]
			if !ok {
				t.Errorf("%s version %v@%s never arrived", table, v.Key, v.Updated)
				continue
			}
			p := Partition(kb, 4)
			for _, r := range res {
				if r.topic == topic && r.partition == p && !r.ts.Less(v.Updated) && r.offset < o {
					t.Errorf("%s version %v@%s arrived at offset %d after resolved %s at %d", table, v.Key, v.Updated, o, r.ts, r.offset)
					break
				}
			}
		}
	}
	if dups <= 0 {
		t.Errorf("expected duplicates from DuplicateProb and restarts, got %d extra rows", dups)
	}
	t.Logf("%d row messages (%d duplicates), %d resolved", len(rows), dups, len(res))
}

// TestRoundTripAllTypes decodes the feed of every column type with goavro
// and the registry and compares it with the oracle's versions.
func TestRoundTripAllTypes(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(3)
	opts.Diff, opts.MVCCTimestamp, opts.SchemaPrefix, opts.TopicPrefix = true, true, "super", "cdc_"
	def := AllTypesTable("all types")
	s := newSim(t, opts, def)
	ctx := context.Background()
	if err := s.Load("all types", map[string]any{"id": 1000, "s": "loaded"}, map[string]any{"id": 1001, "s": "loaded too"}); err != nil {
		t.Fatal(err)
	}
	scan, err := s.InitialScan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx, Workload{Txns: 300, KeysPerTable: 30, RowsPerTxn: 2, DeleteProb: 0.15, ResolveEvery: 100}); err != nil {
		t.Fatal(err)
	}
	d := newDecoder(opts.RegistryURL)
	rows, _ := decodeFeed(t, d, consumeAll(t, opts.Brokers, s.Topics()...))
	if s.Topics()[0] != "cdc_all_u0020_types" {
		t.Errorf("topic %q", s.Topics()[0])
	}
	sch := s.byName["all types"].cur()
	got := map[string]feedRow{}
	for _, r := range rows {
		got[fmt.Sprintf("%v/%s", r.key["id"], r.updated)] = r
	}
	vs := s.Oracle().Versions("all types")
	if len(vs) != len(got) {
		t.Errorf("oracle has %d versions, feed %d distinct", len(vs), len(got))
	}
	scanned := 0
	for _, v := range vs {
		r, ok := got[fmt.Sprintf("map[long:%d]/%s", v.Key[0], v.Updated)]
		if !ok {
			t.Errorf("version %v@%s missing from the feed", v.Key, v.Updated)
			continue
		}
		after := r.value["after"]
		if v.Values == nil {
			if after != nil {
				t.Errorf("delete %v has after %v", v.Key, after)
			}
			continue
		}
		rec := after.(map[string]any)["super.all_u0020_types"].(map[string]any)
		for _, c := range sch.cols {
			if err := sameValue(v.Values[c.name], rec[c.avroName]); err != nil {
				t.Errorf("%v@%s column %q: %v", v.Key, v.Updated, c.name, err)
			}
		}
		mvcc := hlcField(t, r.value, "mvcc_timestamp")
		if v.Updated == scan {
			scanned++
			if r.value["before"] != nil || v.Op != "insert" || !mvcc.Less(scan) {
				t.Errorf("scan row %v: before %v op %s mvcc %s", v.Key, r.value["before"], v.Op, mvcc)
			}
		} else if mvcc != v.Updated {
			t.Errorf("mvcc_timestamp %s != updated %s", mvcc, v.Updated)
		}
		if (v.Op == "update") != (r.value["before"] != nil) {
			t.Errorf("op %s with before %v", v.Op, r.value["before"])
		}
	}
	if scanned != 2 {
		t.Errorf("initial scan emitted %d rows, want 2", scanned)
	}
}

var isoRE = regexp.MustCompile(`^P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?)(\d+)(?:\.(\d+))?S)?)?$`)

// parseISOInterval is an independent reader of the ISO 8601 text.
func parseISOInterval(s string) (model.Interval, error) {
	m := isoRE.FindStringSubmatch(s)
	if m == nil {
		return model.Interval{}, fmt.Errorf("bad interval %q", s)
	}
	n := func(x string) int64 { v, _ := strconv.ParseInt(x, 10, 64); return v }
	iv := model.Interval{Months: int32(n(m[1])*12 + n(m[2])), Days: int32(n(m[3]))}
	frac := (m[8] + "000000")[:6]
	secs := n(m[7])*1e6 + n(frac)
	if m[6] == "-" {
		secs = -secs
	}
	iv.Micros = n(m[4])*3600e6 + n(m[5])*60e6 + secs
	return iv, nil
}

// sameValue compares an oracle value with goavro's decoded union.
func sameValue(want, got any) error {
	if want == nil || got == nil {
		if want != nil || got != nil {
			return fmt.Errorf("want %v, got %v", want, got)
		}
		return nil
	}
	u, ok := got.(map[string]any)
	if !ok || len(u) != 1 {
		return fmt.Errorf("not a union: %#v", got)
	}
	var branch string
	var g any
	for branch, g = range u {
	}
	switch w := want.(type) {
	case int64, float64, bool:
		if g != w {
			return fmt.Errorf("want %v, got %s %v", w, branch, g)
		}
	case string:
		if branch == "array" { // BIT / VARBIT words
			words := g.([]any)
			last := words[0].(int64)
			var b strings.Builder
			for i, wd := range words[1:] {
				bits := 64
				if i == len(words)-2 {
					bits = int(last)
				}
				for j := 0; j < bits; j++ {
					b.WriteByte('0' + byte(uint64(wd.(int64))>>(63-j)&1))
				}
			}
			if b.String() != w {
				return fmt.Errorf("bits: want %s, got %s", w, b.String())
			}
		} else if g != w {
			return fmt.Errorf("want %q, got %s %q", w, branch, g)
		}
	case []byte:
		if !bytes.Equal(w, g.([]byte)) {
			return fmt.Errorf("bytes differ")
		}
	case model.Decimal:
		if w.Special != "" {
			if g != w.Special {
				return fmt.Errorf("want %s, got %v", w.Special, g)
			}
		} else if r, ok := g.(*big.Rat); !ok || r.Cmp(ratOf(w)) != 0 {
			return fmt.Errorf("want %s, got %v", w, g)
		}
	case time.Time:
		if tm, ok := g.(time.Time); !ok || !tm.Equal(w) {
			return fmt.Errorf("want %s, got %s %v", w, branch, g)
		}
	case time.Duration:
		if g != w {
			return fmt.Errorf("want %s, got %v", w, g)
		}
	case model.Interval:
		iv, err := parseISOInterval(g.(string))
		if err != nil || iv != w {
			return fmt.Errorf("want %+v, got %s (%v)", w, g, err)
		}
	case []any:
		ga := g.([]any)
		if len(ga) != len(w) {
			return fmt.Errorf("array length %d, want %d", len(ga), len(w))
		}
		for i := range w {
			if err := sameValue(w[i], ga[i]); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
	default:
		return fmt.Errorf("unexpected oracle type %T", want)
	}
	return nil
}
