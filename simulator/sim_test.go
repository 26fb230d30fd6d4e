package simulator

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
)

func TestTxnLastWriteWinsAndOracleAsOf(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(2)
	opts.Diff = true
	s := newSim(t, opts, fooTable())
	ctx := context.Background()
	o := s.Oracle()
	ts1, err := s.Txn(ctx, func(tx *Txn) error {
		for _, w := range []error{
			tx.Upsert("foo", map[string]any{"a": 1, "b": "first"}),
			tx.Upsert("foo", map[string]any{"a": 1, "b": "second"}), // only this one is emitted
			tx.Upsert("foo", map[string]any{"a": 2}),                // b NULL
			tx.Upsert("foo", map[string]any{"a": 3, "b": "gone"}),
			tx.Delete("foo", 3), // created and deleted in one txn: only a delete
		} {
			if w != nil {
				return w
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ts2, err := s.Txn(ctx, func(tx *Txn) error {
		if err := tx.Upsert("foo", map[string]any{"a": 2, "b": "two"}); err != nil {
			return err
		}
		return tx.Delete("foo", 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	ts3, err := s.Txn(ctx, func(tx *Txn) error { return tx.Delete("foo", 99) }) // absent row
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Txn(ctx, func(tx *Txn) error {
		_ = tx.Upsert("foo", map[string]any{"a": 5})
		return fmt.Errorf("rollback")
	}); err == nil {
		t.Fatal("a failing txn must return its error")
	}
	if !ts1.Less(ts2) || !ts2.Less(ts3) {
		t.Fatalf("HLCs not increasing: %s %s %s", ts1, ts2, ts3)
	}
	rows := func(at hlc.Timestamp) string {
		var b strings.Builder
		for _, r := range o.Rows("foo", at) {
			fmt.Fprintf(&b, "%v=%v@%t ", r.Key, r.Values["b"], r.Updated == at)
		}
		return b.String()
	}
	for _, c := range []struct {
		at   hlc.Timestamp
		want string
	}{
		{prevHLC(ts1), ""},
		{ts1, "[1]=second@true [2]=<nil>@true "},
		{prevHLC(ts2), "[1]=second@false [2]=<nil>@false "},
		{ts2, "[2]=two@true "},
		{ts3, "[2]=two@false "},
	} {
		if got := rows(c.at); got != c.want {
			t.Errorf("Rows at %s: %q, want %q", c.at, got, c.want)
		}
	}
	var ops []string
	for _, v := range o.Versions("foo") {
		ops = append(ops, fmt.Sprintf("%v:%s", v.Key, v.Op))
	}
	if got := strings.Join(ops, " "); got != "[1]:insert [2]:insert [3]:delete [1]:delete [2]:update [99]:delete" {
		t.Errorf("versions: %s", got)
	}
	if _, err := s.Resolve(ctx); err != nil {
		t.Fatal(err)
	}
	recs := consumeAll(t, opts.Brokers, "foo")
	n := 0
	for _, r := range recs {
		if r.Key != nil {
			n++
		}
	}
	if n != 6 {
		t.Errorf("%d row messages, want 6 (one per version)", n)
	}
}

func TestHLCStrictlyIncreasing(t *testing.T) {
	e := newEnv(t)
	s := newSim(t, e.opts(1), fooTable())
	ctx := context.Background()
	var prev hlc.Timestamp
	logical := 0
	for i := 0; i < 200; i++ {
		var ts hlc.Timestamp
		var err error
		if i%10 == 9 {
			ts, err = s.Resolve(ctx)
		} else {
			ts, err = s.Txn(ctx, func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": i}) })
		}
		if err != nil {
			t.Fatal(err)
		}
		if !prev.Less(ts) {
			t.Fatalf("HLC %s not after %s", ts, prev)
		}
		if ts.Logical > 0 {
			logical++
		}
		prev = ts
	}
	if logical == 0 {
		t.Error("the clock never used its logical counter")
	}
	if start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC); prev.Time().Before(start) || prev.Time().After(start.Add(time.Second)) {
		t.Errorf("clock at %s, want just after the default start", prev.Time())
	}
}

// TestLiveClockNeverRunsAhead: a Live simulator emits thousands of
// transactions a second, faster than a Start-based clock's steps would
// allow without outrunning real time; its timestamps still increase
// strictly and never pass the local clock.
func TestLiveClockNeverRunsAhead(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(1)
	opts.Live = true
	opts.MaxClockStep = time.Hour // unused when Live
	s := newSim(t, opts, fooTable())
	ctx := context.Background()
	before := time.Now()
	var prev hlc.Timestamp
	for i := 0; i < 2000; i++ {
		var ts hlc.Timestamp
		var err error
		if i%100 == 99 {
			ts, err = s.Resolve(ctx)
		} else {
			ts, err = s.Txn(ctx, func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": i % 50}) })
		}
		if err != nil {
			t.Fatal(err)
		}
		if now := time.Now(); !prev.Less(ts) || ts.Time().After(now) || ts.Time().Before(before) {
			t.Fatalf("HLC %s (%s): want after %s, between %s and the local clock %s", ts, ts.Time(), prev, before, now)
		}
		prev = ts
	}
}

func TestSchemaChangeAddDropColumn(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(2)
	opts.Diff = true
	s := newSim(t, opts, fooTable())
	ctx := context.Background()
	before, err := s.Txn(ctx, func(tx *Txn) error {
		for i := 1; i <= 3; i++ {
			if err := tx.Upsert("foo", map[string]any{"a": i, "b": fmt.Sprint("v", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	add, err := s.AddColumn(ctx, "foo", ColumnDef{Name: "c", Type: "INT8", NotNull: true, Default: "7"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.Txn(ctx, func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 4, "b": "new"}) })
	if err != nil {
		t.Fatal(err)
	}
	drop, err := s.DropColumn(ctx, "foo", "b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx); err != nil {
		t.Fatal(err)
	}
	// Subject foo-value: v1 (original), v2 (new columns), v3 (before=v1,
	// after=v2 for the backfill), then the drop's versions.
	v1 := registered(t, e.reg, "foo-value", 1)
	v2 := registered(t, e.reg, "foo-value", 2)
	if v1.ID == v2.ID || !strings.Contains(v2.Schema.Schema, `"__crdb__":"c INT8 NOT NULL DEFAULT 7"`) {
		t.Errorf("add column did not register a new value schema: %d %d %s", v1.ID, v2.ID, v2.Schema.Schema)
	}
	if k := registered(t, e.reg, "foo-key", 1); !e.reg.SubjectExists("foo-key") || k.ID != 1 {
		t.Errorf("key schema id changed")
	}
	if _, ok := e.reg.GetSchema("foo-key", 2); ok {
		t.Error("the key schema must not get a new version")
	}
	d := newDecoder(opts.RegistryURL)
	rows, _ := decodeFeed(t, d, consumeAll(t, opts.Brokers, "foo"))
	var backfilled, dropped int
	for _, r := range rows {
		after, _ := r.value["after"].(map[string]any)
		rec, _ := after["foo"].(map[string]any)
		switch r.updated {
		case add:
			backfilled++
			if rec["c"].(map[string]any)["long"] != int64(7) || r.schemaID == uint32(v1.ID) {
				t.Errorf("backfill row %v with schema %d", rec, r.schemaID)
			}
			// The before image is from the previous descriptor: no c.
			bef := r.value["before"].(map[string]any)["foo_before"].(map[string]any)
			if _, has := bef["c"]; has {
				t.Errorf("before record of the backfill has the new column: %v", bef)
			}
		case drop:
			dropped++
			if _, has := rec["b"]; has || rec["c"] == nil {
				t.Errorf("drop backfill row %v", rec)
			}
		}
	}
	if backfilled != 3 || dropped != 4 {
		t.Errorf("backfilled %d (want 3), drop re-emitted %d (want 4)", backfilled, dropped)
	}
	o := s.Oracle()
	if rs := o.Rows("foo", before); len(rs) != 3 || len(rs[0].Values) != 2 {
		t.Errorf("rows before the change: %v", rs)
	}
	if rs := o.Rows("foo", add); len(rs) != 3 || rs[0].Values["c"] != int64(7) || rs[0].Updated != add {
		t.Errorf("rows at the change: %v", rs)
	}
	if rs := o.Rows("foo", after); len(rs) != 4 || rs[3].Values["c"] != int64(7) {
		t.Errorf("rows after: %v", rs)
	}
	for _, v := range o.Versions("foo") {
		_, hasB := v.Values["b"]
		if !drop.Less(v.Updated) && v.Updated != drop {
			continue
		}
		if hasB {
			t.Errorf("version at %s still has dropped column b", v.Updated)
		}
	}
	if got := o.Columns("foo"); strings.Join(got, ",") != "a,c" {
		t.Errorf("columns %v", got)
	}
}

// TestDeterministic runs the same seeded faulty workload against two
// clusters and expects byte-identical topics.
func TestDeterministic(t *testing.T) {
	dump := func() string {
		e := newEnv(t)
		opts := e.opts(3)
		opts.Seed, opts.DuplicateProb, opts.Reorder, opts.Diff = 7, 0.1, true, true
		s := newSim(t, opts, TelemetryTables()...)
		if err := s.RunTelemetry(context.Background(), Workload{Txns: 200, RowsPerTxn: 3, DeleteProb: 0.05, ResolveEvery: 60, RestartEvery: 90, GapProb: 0.5}); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, r := range consumeAll(t, opts.Brokers, s.Topics()...) {
			lines = append(lines, fmt.Sprintf("%s/%d/%09d %x %x\n", r.Topic, r.Partition, r.Offset, r.Key, r.Value))
		}
		slices.Sort(lines) // partitions are fetched concurrently
		return strings.Join(lines, "")
	}
	a, b := dump(), dump()
	if a != b {
		t.Error("same seed, different feeds")
	}
	if strings.Count(a, "\n") < 400 {
		t.Errorf("only %d records", strings.Count(a, "\n"))
	}
}

func TestTelemetryFeed(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(2)
	s := newSim(t, opts, TelemetryTables()...)
	if err := s.RunTelemetry(context.Background(), Workload{Txns: 100, KeysPerTable: 5, RowsPerTxn: 4, ResolveEvery: 20}); err != nil {
		t.Fatal(err)
	}
	key := registered(t, e.reg, "features-key", 1).Schema.Schema
	if !strings.Contains(key, `"name":"node","default":null,"__crdb__":"node INT8 NOT NULL"},{"type":["null","string"],"name":"feature"`) {
		t.Errorf("features key not in (node, feature) order: %s", key)
	}
	val := registered(t, e.reg, "features-value", 1).Schema.Schema
	if !strings.Contains(val, `"__crdb__":"\"timestamp\" TIMESTAMPTZ NULL"`) || !strings.Contains(val, `"__crdb__":"internal BOOL NOT NULL DEFAULT false"`) {
		t.Errorf("features value schema: %s", val)
	}
	d := newDecoder(opts.RegistryURL)
	rows, res := decodeFeed(t, d, consumeAll(t, opts.Brokers, s.Topics()...))
	if len(res) != 2*2*6 { // 5 periodic + the final Resolve
		t.Errorf("%d resolved messages, want 24", len(res))
	}
	nv := len(s.Oracle().Versions("features")) + len(s.Oracle().Versions("nodes"))
	if len(rows) != nv {
		t.Errorf("%d rows, oracle has %d versions", len(rows), nv)
	}
	if n := len(s.Oracle().Rows("nodes", s.LastResolved())); n == 0 || n > 5 {
		t.Errorf("%d nodes", n)
	}
	for _, r := range s.Oracle().Rows("features", s.LastResolved()) {
		// "timestamp" is the reporting txn's time, rounded to microseconds.
		if d := r.Values["timestamp"].(time.Time).Sub(r.Updated.Time()); r.Values["uses"].(int64) <= 0 || d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("unrealistic feature row %v", r)
		}
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		defs []TableDef
		want string
	}{
		{"no tables", nil, "no tables"},
		{"unknown type", []TableDef{{Name: "t", Columns: []ColumnDef{{Name: "a", Type: "OID"}}}}, "not supported"},
		{"bare decimal", []TableDef{{Name: "t", Columns: []ColumnDef{{Name: "a", Type: "DECIMAL"}}}}, "decimal with no precision"},
		{"missing pk column", []TableDef{{Name: "t", Columns: []ColumnDef{{Name: "a", Type: "INT"}}, PrimaryKey: []string{"b"}}}, "not a column"},
		{"duplicate column", []TableDef{{Name: "t", Columns: []ColumnDef{{Name: "a", Type: "INT"}, {Name: "a", Type: "INT"}}}}, "twice"},
		{"bad default", []TableDef{{Name: "t", Columns: []ColumnDef{{Name: "a", Type: "INT", Default: "'x'"}}}}, "DEFAULT"},
		{"duplicate table", []TableDef{fooTable(), fooTable()}, "twice"},
	} {
		if _, err := New(ctx, e.opts(1), c.defs...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want error containing %q", c.name, err, c.want)
		}
	}
	if _, err := New(ctx, Options{RegistryURL: "not a url"}, fooTable()); err == nil {
		t.Error("bad registry URL accepted")
	}
	s := newSim(t, e.opts(1), AllTypesTable("t"))
	for _, c := range []struct {
		name string
		row  map[string]any
		want string
	}{
		{"unknown column", map[string]any{"id": 1, "nope": 1}, "does not exist"},
		{"null key", map[string]any{"s": "x"}, "not-null"},
		{"wrong type", map[string]any{"id": "one"}, "want an integer"},
		{"int4 range", map[string]any{"id": 1, "i4": int64(1) << 40}, "out of range"},
		{"decimal digits", map[string]any{"id": 1, "d": "1.23456"}, "fractional digits"},
		{"decimal precision", map[string]any{"id": 1, "d0": "12345678901"}, "precision"},
		{"bad uuid", map[string]any{"id": 1, "u": "xyz"}, "invalid UUID"},
		{"bad json", map[string]any{"id": 1, "j": "{"}, "invalid JSON"},
		{"bad enum", map[string]any{"id": 1, "st": "maybe"}, "invalid input value for enum"},
		{"bit length", map[string]any{"id": 1, "bt": "01"}, "does not match"},
		{"array elem", map[string]any{"id": 1, "ia": []any{"x"}}, "element 0"},
		{"explicit null not null", map[string]any{"id": 1, "s": nil}, "not-null"},
	} {
		_, err := s.Txn(ctx, func(tx *Txn) error { return tx.Upsert("t", c.row) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want error containing %q", c.name, err, c.want)
		}
	}
	_, err := s.Txn(ctx, func(tx *Txn) error { return tx.Delete("t") })
	if err == nil {
		t.Error("delete without key accepted")
	}
	if _, err := s.Txn(ctx, func(tx *Txn) error { return tx.Upsert("nope", nil) }); err == nil {
		t.Error("unknown table accepted")
	}
	if _, err := s.AddColumn(ctx, "t", ColumnDef{Name: "id", Type: "INT"}, nil); err == nil {
		t.Error("duplicate column added")
	}
	if _, err := s.DropColumn(ctx, "t", "id"); err == nil {
		t.Error("primary-key column dropped")
	}
	if err := s.Load("t", map[string]any{"id": "x"}); err == nil {
		t.Error("bad load accepted")
	}
	if err := s.Restart(ctx, hlc.Timestamp{}, 2); err == nil {
		t.Error("gapProb 2 accepted")
	}
	// The defaults apply: s is NOT NULL DEFAULT 'none'.
	ts, err := s.Txn(ctx, func(tx *Txn) error { return tx.Upsert("t", map[string]any{"id": 1}) })
	if err != nil {
		t.Fatal(err)
	}
	if rs := s.Oracle().Rows("t", ts); len(rs) != 1 || rs[0].Values["s"] != "none" || rs[0].Values["i4"] != nil {
		t.Errorf("defaults: %v", rs)
	}
}

func TestRandomValueRoundTripsThroughNormalize(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, typ := range []string{"INT8", "INT2", "FLOAT4", "DECIMAL(5,2)", "DATE", "TIME", "TIMESTAMPTZ", "UUID", "JSONB", "INTERVAL", "INET", "BIT(7)", "VARBIT", "STRING[]", "BYTES"} {
		ct, err := parseType(typ, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 200; i++ {
			v, err := RandomValue(rng, typ)
			if err != nil {
				t.Fatal(err)
			}
			n, err := ct.normalize(v)
			if err != nil {
				t.Fatalf("%s: random value %v rejected: %v", typ, v, err)
			}
			if fmt.Sprint(n) != fmt.Sprint(v) {
				t.Fatalf("%s: random value %v is not canonical (%v)", typ, v, n)
			}
		}
	}
}

// TestOracleConcurrentReads reads the oracle while a workload runs (run
// with -race to make this meaningful).
func TestOracleConcurrentReads(t *testing.T) {
	e := newEnv(t)
	s := newSim(t, e.opts(2), fooTable())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				_ = s.Oracle().Rows("foo", hlc.Timestamp{WallTime: 1 << 62})
				_ = s.Oracle().Versions("foo")
			}
		}
	}()
	err := s.Run(context.Background(), Workload{Txns: 300, KeysPerTable: 20, DeleteProb: 0.3, ResolveEvery: 50})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.Oracle().Versions("foo")); got != 300 {
		t.Errorf("%d versions, want 300", got)
	}
}

func TestResolvedV2SinglePayload(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(2)
	opts.SchemaPrefix = "super"
	s := newSim(t, opts, fooTable(), TableDef{Name: "bar", Columns: []ColumnDef{{Name: "x", Type: "STRING"}}})
	if _, err := s.Resolve(context.Background()); err != nil {
		t.Fatal(err)
	}
	var payloads [][]byte
	for _, r := range consumeAll(t, opts.Brokers, s.Topics()...) {
		payloads = append(payloads, r.Value)
	}
	if len(payloads) != 4 {
		t.Fatalf("%d resolved messages, want 4", len(payloads))
	}
	for _, p := range payloads[1:] {
		if !bytes.Equal(p, payloads[0]) {
			t.Error("v2 sink sends one payload to all topics")
		}
	}
	id := binary.BigEndian.Uint32(payloads[0][1:5])
	got := registered(t, e.reg, "-value", 1)
	if uint32(got.ID) != id || got.Schema.Schema != `{"type":"record","name":"_envelope","fields":[{"type":["null","string"],"name":"resolved","default":null}],"namespace":"super"}` {
		t.Errorf("resolved schema %d %s (payload id %d)", got.ID, got.Schema.Schema, id)
	}
	if !e.reg.SubjectExists("superfoo-key") || !e.reg.SubjectExists("superbar-value") {
		t.Error("prefixed subjects missing")
	}
}

// TestSlowCallerRowsAreSent checks that rows of a caller that pauses are
// produced without waiting for its next call (they are encoded in batches).
func TestSlowCallerRowsAreSent(t *testing.T) {
	e := newEnv(t)
	opts := e.opts(1)
	s := newSim(t, opts, fooTable())
	if _, err := s.Txn(context.Background(), func(tx *Txn) error { return tx.Upsert("foo", map[string]any{"a": 1}) }); err != nil {
		t.Fatal(err)
	}
	// consumeAll reads up to the end offsets, so poll them until the row is
	// there; the test fails by its deadline otherwise.
	deadline := time.Now().Add(20 * time.Second)
	for len(consumeAll(t, opts.Brokers, "foo")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a committed row was not produced while the caller paused")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
