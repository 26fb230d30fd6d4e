package postgres

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

func decimal(unscaled int64, scale int) model.Decimal {
	return model.Decimal{Unscaled: big.NewInt(unscaled), Scale: scale}
}

func pow10Big(n int64) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(n), nil) }

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// TestCheckChangeRefusesWhatPostgresRefuses: for one value per case,
// CheckChange refuses it exactly when a real server fails the window that
// writes it (checked by writing every case, refused or not, without
// CheckChange), so that a refused row is one that would have stopped the
// feed, and an accepted borderline value is stored.
func TestCheckChangeRefusesWhatPostgresRefuses(t *testing.T) {
	url := server.CreateDB(t)
	w := openWriter(t, url, sinks.Options{})
	str, js := kind(model.KindString), kind(model.KindJSON)
	tsType := kind(model.KindTimestamp)
	cases := []struct {
		name  string
		typ   model.Type
		value any
		ok    bool
		want  string // in CheckChange's error
	}{
		{"nul_string", str, "a\x00b", false, "NUL"},
		{"nul_string_array", arrayOf(str), []any{"a", "b\x00"}, false, "array element 1"},
		{"bad_utf8", str, "a\xffb", false, "UTF-8"},
		{"json_nul", js, `{"a":"x\u0000y"}`, false, `\u0000`},
		{"json_nul_key", js, `{"\u0000":1}`, false, `\u0000`},
		{"json_escaped_backslash", js, `{"a":"\\u0000"}`, true, ""},
		{"json_lone_high", js, `"\ud800"`, false, "surrogate"},
		{"json_lone_low", js, `"\udc00x"`, false, "surrogate"},
		{"json_pair", js, `"\ud83d\ude00"`, true, ""},
		{"json_invalid", js, `{"a":`, false, "not valid JSON"},
		{"json_raw_nul", js, "\"a\x00\"", false, "NUL"},
		{"bad_uuid", kind(model.KindUUID), "not-a-uuid", false, "invalid UUID"},
		// One UUID rule for every writer (sinks.ParseUUID).
		{"braced_uuid", kind(model.KindUUID), "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}", false, "invalid UUID"},
		{"uuid_32_digits", kind(model.KindUUID), "6ba7b8109dad11d180b400c04fd430c8", false, "invalid UUID"},
		{"uuid_upper_case", kind(model.KindUUID), "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", true, ""},
		{"time_negative", kind(model.KindTime), -time.Second, false, "outside"},
		{"time_24h", kind(model.KindTime), 24 * time.Hour, true, ""},
		{"date_min", kind(model.KindDate), date(-4713, 11, 24), true, ""},
		{"date_before_min", kind(model.KindDate), date(-4713, 11, 23), false, "range"},
		{"date_max", kind(model.KindDate), date(5874897, 12, 31), true, ""},
		{"date_after_max", kind(model.KindDate), date(5874898, 1, 1), false, "range"},
		{"timestamp_before_min", tsType, date(-5000, 1, 1), false, "range"},
		{"timestamptz_before_min", kind(model.KindTimestampTZ), date(-4713, 11, 23), false, "range"},
		{"timestamp_max", tsType, time.Date(294276, 12, 31, 23, 59, 59, 999999000, time.UTC), true, ""},
		{"timestamp_after_max", tsType, date(294277, 1, 1), false, "range"},
		{"decimal_overflow", dec(3, 0), decimal(12345, 0), false, "does not fit"},
		{"decimal_at_precision", dec(3, 0), decimal(-999, 0), true, ""},
		{"decimal_rounds_over", dec(5, 2), decimal(999995, 3), false, "does not fit"},
		{"decimal_rounds_within", dec(5, 2), decimal(999994, 3), true, ""},
		{"decimal_coarser_scale", dec(5, 2), decimal(1000, -1), false, "does not fit"},
		{"decimal_big_overflow", dec(20, 2), model.Decimal{Unscaled: new(big.Int).Exp(big.NewInt(10), big.NewInt(20), nil), Scale: 2}, false, "does not fit"},
		{"decimal_int64_min", dec(18, 0), model.Decimal{Unscaled: big.NewInt(-1 << 63)}, false, "does not fit"},
		{"decimal_max_digits", dec(0, 0), model.Decimal{Unscaled: pow10Big(131071), Scale: 0}, true, ""},
		{"decimal_too_many_digits", dec(0, 0), model.Decimal{Unscaled: pow10Big(131072), Scale: 0}, false, "digits before the point"},
		{"decimal_scale", dec(0, 0), decimal(1, 20000), false, "scale"},
		{"decimal_special", dec(0, 0), model.Decimal{Special: "Huge"}, false, "Huge"},
		{"decimal_infinity_constrained", dec(5, 2), model.Decimal{Special: "Infinity"}, true, ""},
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := table("chk_"+c.name, col("id", kind(model.KindInt)), col("v", c.typ))
			ch := change(sinks.OpInsert, ts(1), int64(1), c.value)
			err := w.CheckChange(tb, ch)
			if (err == nil) != c.ok || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Errorf("CheckChange = %v, want ok=%v (error with %q)", err, c.ok, c.want)
			}
			if err != nil && len(err.Error()) > 300 {
				t.Errorf("the error quotes too much of the value (%d bytes)", len(err.Error()))
			}
			werr := tryApply(ctx, w, nil, write{tb, []sinks.Change{ch}})
			if (werr == nil) != c.ok {
				t.Errorf("writing it: %v, want ok=%v: CheckChange and the server disagree", werr, c.ok)
			}
		})
	}
}

// TestCheckChangeKeysAndNames: a NULL key (or one stored as NULL), and
// names with a NUL byte, are refused; a delete carries only its key.
func TestCheckChangeKeysAndNames(t *testing.T) {
	url := server.CreateDB(t)
	w := openWriter(t, url, sinks.Options{})
	ctx := context.Background()
	tb := table("keys", col("id", dec(5, 2)), col("v", kind(model.KindString)))
	for _, c := range []struct {
		name string
		ch   sinks.Change
		ok   bool
	}{
		{"null key", change(sinks.OpInsert, ts(1), nil, "a"), false},
		{"infinite key", change(sinks.OpInsert, ts(1), model.Decimal{Special: "Infinity"}, "a"), false},
		{"delete ignores the value", change(sinks.OpDelete, ts(1), decimal(1, 0), "a\x00"), true},
		{"delete without key", change(sinks.OpDelete, ts(1), nil, nil), false},
		{"value count", change(sinks.OpInsert, ts(1), decimal(1, 0)), false},
	} {
		err := w.CheckChange(tb, c.ch)
		if (err == nil) != c.ok {
			t.Errorf("%s: CheckChange = %v, want ok=%v", c.name, err, c.ok)
		}
		werr := tryApply(ctx, w, nil, write{tb, []sinks.Change{c.ch}})
		if (werr == nil) != c.ok {
			t.Errorf("%s: writing it: %v, want ok=%v", c.name, werr, c.ok)
		}
	}
	for _, tb := range []*model.Table{
		table("a\x00b", col("id", kind(model.KindInt))),
		table("ok", col("id", kind(model.KindInt)), col("c\x00d", kind(model.KindInt))),
	} {
		vals := make([]any, len(tb.Columns))
		vals[0] = int64(1)
		ch := sinks.Change{Op: sinks.OpInsert, Updated: ts(1), Values: vals}
		if err := w.CheckChange(tb, ch); err == nil || !strings.Contains(err.Error(), "NUL") {
			t.Errorf("names %q: CheckChange = %v, want a NUL error", fmt.Sprint(tb.Name, tb.Columns), err)
		}
		if err := tryApply(ctx, w, nil, write{tb, []sinks.Change{ch}}); err == nil {
			t.Errorf("names %q: the server stored them", fmt.Sprint(tb.Name, tb.Columns))
		}
	}
	long := strings.Repeat("x", 100000) + "\x00"
	if err := w.CheckChange(kv("long"), change(sinks.OpInsert, ts(1), int64(1), long)); err == nil || len(err.Error()) > 300 {
		t.Errorf("a 100 kB string with NUL: %d-byte error", len(fmt.Sprint(err)))
	}
}

// BenchmarkCheckChange measures the per-row cost CheckChange adds to the
// apply path, on a row shaped like the integration feed's orders.
func BenchmarkCheckChange(b *testing.B) {
	w := &Writer{}
	tb := table("orders", col("region", kind(model.KindString)), col("id", kind(model.KindInt)),
		col("status", kind(model.KindString)), col("amount", dec(12, 2)), col("placed_at", kind(model.KindTimestampTZ)),
		col("tags", arrayOf(kind(model.KindString))), col("doc", kind(model.KindJSON)))
	ch := change(sinks.OpUpsert, ts(1), "eu-west", int64(42), "shipped", decimal(1234567, 2),
		time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), []any{"a", "bb", "ccc"}, `{"note": "fragile", "n": [1, 2, 3]}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.CheckChange(tb, ch); err != nil {
			b.Fatal(err)
		}
	}
}
