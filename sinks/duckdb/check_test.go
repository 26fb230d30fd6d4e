package duckdb

import (
	"context"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

// TestCheckChangeRefusesWhatDuckDBRefuses: for one value per case,
// CheckChange refuses it exactly when DuckDB fails the window that writes
// it (checked by writing every case, refused or not, without CheckChange),
// so that a refused row is one that would have stopped the feed, and an
// accepted borderline value is stored.
func TestCheckChangeRefusesWhatDuckDBRefuses(t *testing.T) {
	ctx := context.Background()
	w, err := OpenPath(ctx, t.TempDir()+"/check.duckdb", sinks.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	str, js, ts := model.Type{Kind: model.KindString}, model.Type{Kind: model.KindJSON}, model.Type{Kind: model.KindTimestamp}
	dec := func(p, s int) model.Type { return model.Type{Kind: model.KindDecimal, Precision: p, Scale: s} }
	d := func(u int64, scale int) model.Decimal {
		return model.Decimal{Unscaled: big.NewInt(u), Scale: scale}
	}
	strs := model.Type{Kind: model.KindArray, Elem: &str}
	cases := []struct {
		name string
		typ  model.Type
		v    any
		ok   bool
		want string
	}{
		{"nul_string", str, "a\x00b", true, ""},
		{"bad_utf8", str, "a\xffb", false, "UTF-8"},
		{"bad_utf8_element", strs, []any{"a", "\xff"}, false, "element 1"},
		{"json_nul", js, `{"a":"\u0000"}`, true, ""},
		{"json_pair", js, `"\ud83d\ude00"`, true, ""},
		{"json_lone", js, `"\ud800"`, false, "surrogate"},
		{"json_invalid", js, `{"a":`, false, "not valid JSON"},
		{"json_bad_utf8", js, "\"\xff\"", false, "UTF-8"},
		{"decimal_finer_scale", dec(5, 2), d(12345, 3), false, "fractional digits"},
		{"decimal_coarser_scale", dec(5, 2), d(99, -1), true, ""},
		{"decimal_coarser_scale_over", dec(5, 2), d(100, -1), false, "does not fit"},
		{"decimal_over", dec(3, 0), d(1000, 0), false, "does not fit"},
		{"decimal_at", dec(3, 0), d(-999, 0), true, ""},
		{"decimal_int64_min", dec(18, 0), model.Decimal{Unscaled: big.NewInt(-1 << 63)}, false, "does not fit"},
		{"decimal_big", dec(38, 0), model.Decimal{Unscaled: new(big.Int).Exp(big.NewInt(10), big.NewInt(38), nil)}, false, "does not fit"},
		{"decimal_wide_as_text", dec(60, 0), model.Decimal{Unscaled: new(big.Int).Exp(big.NewInt(10), big.NewInt(59), nil)}, true, ""},
		{"bad_uuid", model.Type{Kind: model.KindUUID}, strings.Repeat("z", 1000), false, "invalid UUID"},
		// One UUID rule for every writer (sinks.ParseUUID).
		{"braced_uuid", model.Type{Kind: model.KindUUID}, "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}", false, "invalid UUID"},
		{"uuid_32_digits", model.Type{Kind: model.KindUUID}, "6ba7b8109dad11d180b400c04fd430c8", false, "invalid UUID"},
		{"uuid_upper_case", model.Type{Kind: model.KindUUID}, "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", true, ""},
		{"time_over", model.Type{Kind: model.KindTime}, 25 * time.Hour, false, "out of range"},
		{"time_24h", model.Type{Kind: model.KindTime}, 24 * time.Hour, true, ""},
		{"timestamp_min", ts, time.Date(-290307, 1, 1, 0, 0, 0, 0, time.UTC), true, ""},
		{"timestamp_before", ts, time.UnixMicro(-1 << 63).UTC(), false, "year"},
		{"timestamp_max", ts, time.Date(294246, 12, 31, 0, 0, 0, 0, time.UTC), true, ""},
		{"timestamptz_after", model.Type{Kind: model.KindTimestampTZ}, time.UnixMicro(1<<63 - 1).UTC(), false, "year"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := sinktest.Table("chk_"+c.name, []int{0}, sinktest.Col("id", model.KindInt), model.Column{Name: "v", Type: c.typ, Nullable: true})
			ch := sinks.Change{Op: sinks.OpInsert, Updated: hlc.Timestamp{WallTime: int64(i + 1)}, Values: []any{int64(1), c.v}}
			err := w.CheckChange(tb, ch)
			if (err == nil) != c.ok || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Errorf("CheckChange = %v, want ok=%v (error with %q)", err, c.ok, c.want)
			}
			if err != nil && len(err.Error()) > 300 {
				t.Errorf("the error quotes too much of the value (%d bytes)", len(err.Error()))
			}
			if werr := writeOne(ctx, w, tb, ch); (werr == nil) != c.ok {
				t.Errorf("writing it: %v, want ok=%v: CheckChange and DuckDB disagree", werr, c.ok)
			}
		})
	}
	// Keys: NULL, or a decimal DuckDB stores as NULL, is refused; a delete
	// carries only its key.
	keyed := sinktest.Table("chk_keys", []int{0}, model.Column{Name: "id", Type: dec(5, 2)}, sinktest.Col("v", model.KindString))
	for _, c := range []struct {
		name string
		ch   sinks.Change
		ok   bool
	}{
		{"null key", sinks.Change{Op: sinks.OpInsert, Values: []any{nil, "a"}}, false},
		{"NaN key", sinks.Change{Op: sinks.OpInsert, Values: []any{model.Decimal{Special: "NaN"}, "a"}}, false},
		{"delete ignores the value", sinks.Change{Op: sinks.OpDelete, Values: []any{d(1, 2), "\xff"}}, true},
	} {
		c.ch.Updated = hlc.Timestamp{WallTime: 100}
		if err := w.CheckChange(keyed, c.ch); (err == nil) != c.ok {
			t.Errorf("%s: CheckChange = %v, want ok=%v", c.name, err, c.ok)
		}
		if werr := writeOne(ctx, w, keyed, c.ch); (werr == nil) != c.ok {
			t.Errorf("%s: writing it: %v, want ok=%v", c.name, werr, c.ok)
		}
	}
}

// writeOne commits a window of one change.
func writeOne(ctx context.Context, w *Writer, tb *model.Table, ch sinks.Change) error {
	tx, err := w.Begin(ctx)
	if err != nil {
		return err
	}
	if err := tx.Write(ctx, tb, []sinks.Change{ch}); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}

// BenchmarkCheckChange measures the per-row cost CheckChange adds to the
// apply path, on a row shaped like the integration feed's orders.
func BenchmarkCheckChange(b *testing.B) {
	w := &Writer{}
	str := model.Type{Kind: model.KindString}
	tb := sinktest.Table("orders", []int{0, 1}, sinktest.Col("region", model.KindString), sinktest.Col("id", model.KindInt),
		sinktest.Col("status", model.KindString), model.Column{Name: "amount", Type: model.Type{Kind: model.KindDecimal, Precision: 12, Scale: 2}},
		sinktest.Col("placed_at", model.KindTimestampTZ), model.Column{Name: "tags", Type: model.Type{Kind: model.KindArray, Elem: &str}},
		sinktest.Col("doc", model.KindJSON))
	ch := sinks.Change{Op: sinks.OpUpsert, Updated: hlc.Timestamp{WallTime: 1}, Values: []any{"eu-west", int64(42), "shipped",
		model.Decimal{Unscaled: big.NewInt(1234567), Scale: 2}, time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), []any{"a", "bb", "ccc"},
		`{"note": "fragile", "n": [1, 2, 3]}`}}
	b.ReportAllocs()
	for b.Loop() {
		if err := w.CheckChange(tb, ch); err != nil {
			b.Fatal(err)
		}
	}
}
