package integration

import (
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/simulator"
	"github.com/highwater-dev/highwater/sinks"
)

// TestAsOfEqualsSourceAsOfPastHLCs plays the standard feed (restart with
// re-emitted versions, deletes of present and absent rows, ADD COLUMN with
// a backfill, DROP COLUMN) into a warehouse with --changelog, then calls
// each table's time-travel function <table>_asof(h) at HLCs chosen from the
// oracle's history of every table: random ones, just before a key's first
// version, exactly at a delete, exactly at a version, and just before, at
// and after each schema change. At each, every table's function must
// return exactly the oracle's rows AS OF h, compared like the mirror with
// the oracle at the final resolved timestamp.
func TestAsOfEqualsSourceAsOfPastHLCs(t *testing.T) {
	for _, wh := range []warehouse{duckWarehouse(), pgWarehouse()} {
		t.Run(wh.name, func(t *testing.T) {
			f := newFeed(t, hostileOptions(23), feedTables()...)
			sinkURL := wh.url(t)
			m := startMember(t, f, wh, memberConfig{group: "g1", sinkURL: sinkURL, changelog: true})
			final := playScenario(t, f, 1, func(h hlc.Timestamp) { m.awaitFrontier(t, h) })
			m.proc.SetStopAt(final)
			m.wait(t, 2*time.Minute)

			hlcs := asOfHLCs(t, f, final, rand.New(rand.NewPCG(23, uint64(len(wh.name)))))
			var db *sql.DB
			var err error
			switch wh.name {
			case "duckdb":
				if db, err = sql.Open("duckdb", strings.TrimPrefix(sinkURL, "duckdb://")); err != nil {
					t.Fatal(err)
				}
				db.SetMaxOpenConns(1)
			case "postgres":
				if db, err = sql.Open("pgx", sinkURL); err != nil {
					t.Fatal(err)
				}
			}
			defer db.Close()
			mirrors := map[string]string{}
			rows, err := db.Query(`SELECT source_table, mirror_table FROM ` + sinks.TablesTable)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var s, m string
				if err := rows.Scan(&s, &m); err != nil {
					t.Fatal(err)
				}
				mirrors[s] = m
			}
			rows.Close()

			compared, rowsSeen, empty := 0, 0, 0
			for i, h := range hlcs {
				// The oracle AS OF h, written through the same writer.
				var oraclePrefix, fnPrefix string
				switch wh.name {
				case "duckdb":
					path := filepath.Join(t.TempDir(), fmt.Sprintf("oracle%d.duckdb", i))
					w := wh.open(t, "duckdb://"+path, sinks.Options{})
					writeOracle(t, f, w, h.at)
					w.Close()
					alias := fmt.Sprintf("oracle%d", i)
					if _, err := db.Exec(fmt.Sprintf("ATTACH '%s' AS %s (READ_ONLY)", path, alias)); err != nil {
						t.Fatal(err)
					}
					oraclePrefix = alias + "."
				case "postgres":
					sep := "?"
					if strings.Contains(sinkURL, "?") {
						sep = "&"
					}
					schema := fmt.Sprintf("oracle%d", i)
					w := wh.open(t, sinkURL+sep+"schema="+schema, sinks.Options{})
					writeOracle(t, f, w, h.at)
					w.Close()
					oraclePrefix, fnPrefix = schema+".", "public."
				}
				for name, tbl := range tableModels(t, f) {
					mirror, ok := mirrors[name]
					if !ok {
						t.Fatalf("%s is not in %s", name, sinks.TablesTable)
					}
					fn := fmt.Sprintf("%s%s(%s)", fnPrefix, sqlident.Quote(sinks.AsOfName(mirror)), h.at)
					n := compareRows(t, db, fmt.Sprintf("%s as of %s (%s)", name, h.at, h.why), fn, oraclePrefix+sqlident.Quote(name), tbl, true)
					compared, rowsSeen = compared+1, rowsSeen+n
					if n == 0 {
						empty++
					}
				}
			}
			t.Logf("%d HLCs, %d comparisons (%d empty), %d rows", len(hlcs), compared, empty, rowsSeen)
			if empty > compared/2 {
				t.Errorf("%d of %d comparisons are empty: the test compares too little", empty, compared)
			}
		})
	}
}

// asOfHLC is an HLC to travel to and why it was chosen.
type asOfHLC struct {
	at  hlc.Timestamp
	why string
}

// asOfHLCs chooses the HLCs of TestAsOfEqualsSourceAsOfPastHLCs from the
// oracle's history, all at or after the initial scan (the feed's first
// version: the source rows loaded before it have no earlier version in any
// changelog) and at or before final.
func asOfHLCs(t *testing.T, f *feed, final hlc.Timestamp, rng *rand.Rand) []asOfHLC {
	t.Helper()
	o := f.sim.Oracle()
	var out []asOfHLC
	add := func(h hlc.Timestamp, why string) { out = append(out, asOfHLC{h, why}) }
	start := hlc.Timestamp{WallTime: math.MaxInt64}
	for _, name := range o.Tables() {
		if vs := o.Versions(name); len(vs) > 0 && vs[0].Updated.Less(start) {
			start = vs[0].Updated
		}
	}
	add(start, "the initial scan")
	for _, name := range o.Tables() {
		vs := o.Versions(name)
		if len(vs) == 0 {
			t.Fatalf("%s: the oracle has no versions", name)
		}
		// Just before a key's first version, for a key first written
		// after the scan.
		seen := map[string]bool{}
		var firsts []hlc.Timestamp
		for _, v := range vs {
			k := fmt.Sprint(v.Key)
			if !seen[k] {
				seen[k] = true
				if start.Less(v.Updated) {
					firsts = append(firsts, v.Updated)
				}
			}
		}
		if len(firsts) == 0 {
			t.Fatalf("%s: no key is first written after the initial scan", name)
		}
		add(justBefore(firsts[rng.IntN(len(firsts))]), name+": just before a key's first version")
		var deletes, writes []hlc.Timestamp
		for _, v := range vs {
			if v.Op == "delete" {
				deletes = append(deletes, v.Updated)
			} else {
				writes = append(writes, v.Updated)
			}
		}
		if len(deletes) == 0 {
			t.Fatalf("%s: the oracle has no deletes", name)
		}
		add(deletes[rng.IntN(len(deletes))], name+": at a delete")
		add(writes[rng.IntN(len(writes))], name+": at a version")
		// A random HLC between the scan and the end, off any version.
		span := final.WallTime - start.WallTime
		add(hlc.Timestamp{WallTime: start.WallTime + rng.Int64N(span+1), Logical: int32(rng.IntN(3))}, name+": random")
	}
	// The schema changes: the first version of orders with priority (the
	// ADD COLUMN's backfill) and of order items without select (the DROP
	// COLUMN's).
	change := func(table, why string, is func(simulator.Version) bool) {
		for _, v := range o.Versions(table) {
			if v.Values != nil && is(v) {
				add(justBefore(v.Updated), "just before "+why)
				add(v.Updated, "at "+why)
				add(hlc.Timestamp{WallTime: v.Updated.WallTime + 1}, "after "+why)
				return
			}
		}
		t.Fatalf("%s: no version after %s", table, why)
	}
	change("orders", "ADD COLUMN priority", func(v simulator.Version) bool { _, ok := v.Values["priority"]; return ok })
	change(`order items ☃`, "DROP COLUMN select", func(v simulator.Version) bool { _, ok := v.Values["select"]; return !ok })
	add(final, "the final resolved timestamp")
	for _, h := range out {
		if final.Less(h.at) {
			t.Fatalf("chosen HLC %s (%s) is after the final resolved timestamp %s", h.at, h.why, final)
		}
	}
	slices.SortFunc(out, func(a, b asOfHLC) int { return a.at.Compare(b.at) })
	return out
}

// justBefore returns the HLC right before h.
func justBefore(h hlc.Timestamp) hlc.Timestamp {
	if h.Logical > 0 {
		return hlc.Timestamp{WallTime: h.WallTime, Logical: h.Logical - 1}
	}
	return hlc.Timestamp{WallTime: h.WallTime - 1, Logical: math.MaxInt32}
}
