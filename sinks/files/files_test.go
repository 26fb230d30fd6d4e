package files

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

func S(x hlc.Timestamp) string { return x.String() }

func TestWindowIsDedupedAndOrderedWithDeletes(t *testing.T) {
	dir := t.TempDir()
	w := openDir(t, dir, Config{})
	tb := kv("users")
	commit(t, w, []sinks.Checkpoint{cp(0, h(10), 7)},
		write{tb, []sinks.Change{
			ch(sinks.OpUpdate, h(3), int64(1), "v3", int64(3)),
			ch(sinks.OpInsert, h(1), int64(1), "v1", int64(1)),
			ch(sinks.OpInsert, h(1), int64(2), "gone", int64(1)),
			// A re-sent version with the same key and HLC: once, the later arrival.
			ch(sinks.OpInsert, h(1), int64(1), "v1-resent", int64(1)),
		}},
		write{tb, []sinks.Change{
			// A delete carries only the key: the other values are dropped.
			ch(sinks.OpDelete, h(2), int64(2), "ignored", int64(9)),
			ch(sinks.OpUpsert, h(2), int64(1), "v2", int64(2)),
			ch(sinks.OpUpdate, h(3), int64(1), "v3", int64(3)),
		}},
	)
	db := duck(t)
	got := query(t, db, `SELECT CAST(id AS VARCHAR), name, CAST(n AS VARCHAR), CAST(_hw_updated AS VARCHAR), _hw_op FROM `+parquetSrc(dir, "users")+` ORDER BY filename, file_row_number`)
	eq(t, "change file rows", got, [][]string{
		{"1", "v1-resent", "1", S(h(1)), "insert"},
		{"2", "gone", "1", S(h(1)), "insert"},
		{"1", "v2", "2", S(h(2)), "upsert"},
		{"2", "NULL", "NULL", S(h(2)), "delete"},
		{"1", "v3", "3", S(h(3)), "update"},
	})
	if files := dataFiles(t, dir, "users"); len(files) != 1 || !strings.HasPrefix(files[0], "users/date=2022-08-04/hour=20/"+hlcName(h(10))+"-p") {
		t.Fatalf("data files %v: want one under users/date=2022-08-04/hour=20/<resolved>-<partition set>-...", files)
	}
}

// allTypes is a table with every kind, and two rows of values.
func allTypes() (*model.Table, []sinks.Change) {
	typ := func(k model.Kind) model.Type { return model.Type{Kind: k} }
	arr := func(k model.Kind) model.Type { e := typ(k); return model.Type{Kind: model.KindArray, Elem: &e} }
	tb := table("all types", []int{0},
		col("id", model.KindInt),
		col("f", model.KindFloat),
		col("b", model.KindBool),
		col("s", model.KindString),
		col("by", model.KindBytes),
		model.Column{Name: "d9", Type: model.Type{Kind: model.KindDecimal, Precision: 9, Scale: 2}},
		model.Column{Name: "d18", Type: model.Type{Kind: model.KindDecimal, Precision: 18, Scale: 4}},
		model.Column{Name: "d38", Type: model.Type{Kind: model.KindDecimal, Precision: 38, Scale: 10}},
		model.Column{Name: "dtext", Type: model.Type{Kind: model.KindDecimal}},
		col("dt", model.KindDate),
		col("tm", model.KindTime),
		col("ts", model.KindTimestamp),
		col("tz", model.KindTimestampTZ),
		col("u", model.KindUUID),
		col("j", model.KindJSON),
		col("iv", model.KindInterval),
		model.Column{Name: "ints", Type: arr(model.KindInt)},
		model.Column{Name: "strs", Type: arr(model.KindString)},
		model.Column{Name: "decs", Type: model.Type{Kind: model.KindArray, Elem: &model.Type{Kind: model.KindDecimal, Precision: 10, Scale: 2}}},
	)
	dec := func(u int64, s int) model.Decimal { return model.Decimal{Unscaled: big.NewInt(u), Scale: s} }
	huge, _ := new(big.Int).SetString("-12345678901234567890123456789", 10)
	rows := []sinks.Change{
		ch(sinks.OpInsert, h(1), int64(-9007199254740993), 1.5, true, "a\x00b \"q\" ☃\n", []byte{0, 1, 255},
			dec(-12345, 2), dec(123456789012345678, 4), model.Decimal{Unscaled: huge, Scale: 10}, model.Decimal{Special: "NaN"},
			time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), 13*time.Hour+14*time.Minute+15*time.Second+123456*time.Microsecond,
			time.Date(2022, 8, 4, 19, 6, 24, 586630000, time.UTC), time.Date(2022, 8, 4, 19, 6, 24, 1000, time.UTC),
			"0E8C3E5D-8A4B-4E6F-9C1D-2B3A4C5D6E7F", `{"a": [1, "x"], "b": null}`, model.Interval{Months: -14, Days: 3, Micros: -(4*3600e6 + 6789000)},
			[]any{int64(1), nil, int64(-3)}, []any{"x", ""}, []any{dec(1050, 2), nil}),
		ch(sinks.OpUpsert, h(2), int64(2), nil, nil, nil, nil, dec(1, 0), nil, nil, model.Decimal{Unscaled: big.NewInt(5), Scale: 1}, nil, nil, nil, nil, nil, nil, nil,
			[]any{}, nil, []any{}),
	}
	return tb, rows
}

func TestEveryTypeRoundTripsThroughDuckDB(t *testing.T) {
	tb, rows := allTypes()
	want := [][]string{
		{"-9007199254740993", "1.5", "true", "a\x00b \"q\" ☃\n", `\x00\x01\xFF`, "-123.45", "12345678901234.5678", "-1234567890123456789.0123456789", "NaN",
			"1969-12-31", "13:14:15.123456", "2022-08-04 19:06:24.58663", "2022-08-04 19:06:24.000001+00", "0e8c3e5d-8a4b-4e6f-9c1d-2b3a4c5d6e7f",
			`{"a": [1, "x"], "b": null}`, "-1 years -2 mons 3 days -04:00:06.789", "[1, NULL, -3]", "[x, '']", "[10.50, NULL]", S(h(1)), "insert"},
		{"2", "NULL", "NULL", "NULL", "NULL", "1.00", "NULL", "NULL", "0.5", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "[]", "NULL", "[]", S(h(2)), "upsert"},
	}
	for _, f := range []Format{Parquet, NDJSON} {
		t.Run(string(f), func(t *testing.T) {
			dir := t.TempDir()
			w := openDir(t, dir, Config{Format: f})
			commit(t, w, []sinks.Checkpoint{cp(0, h(5), 1)}, write{tb, rows})
			db := duck(t)
			var src string
			if f == Parquet {
				src = parquetSrc(dir, tb.Name)
				// Typed columns, as readers see them.
				got := query(t, db, `SELECT column_name, column_type FROM (DESCRIBE SELECT * EXCLUDE (filename, file_row_number) FROM `+src+`)`)
				wantTypes := "[[id BIGINT] [f DOUBLE] [b BOOLEAN] [s VARCHAR] [by BLOB] [d9 DECIMAL(9,2)] [d18 DECIMAL(18,4)] [d38 DECIMAL(38,10)] [dtext VARCHAR] " +
					"[dt DATE] [tm TIME] [ts TIMESTAMP] [tz TIMESTAMP WITH TIME ZONE] [u VARCHAR] [j JSON] [iv VARCHAR] [ints BIGINT[]] [strs VARCHAR[]] [decs DECIMAL(10,2)[]] " +
					"[_hw_updated DECIMAL(38,10)] [_hw_op VARCHAR]]"
				if fmt.Sprint(got) != wantTypes {
					t.Fatalf("parquet column types:\n got  %v\n want %s", got, wantTypes)
				}
			} else {
				// NDJSON: every column as JSON text; the typed reading is the
				// reader's business, so compare through explicit casts.
				src = fmt.Sprintf(`(SELECT * FROM read_ndjson('%s/%s/*/*/*.ndjson', columns={id: 'BIGINT', f: 'DOUBLE', b: 'BOOLEAN', s: 'VARCHAR', "by": 'VARCHAR',
					d9: 'DECIMAL(9,2)', d18: 'DECIMAL(18,4)', d38: 'DECIMAL(38,10)', dtext: 'VARCHAR', dt: 'DATE', tm: 'TIME', ts: 'TIMESTAMP', tz: 'TIMESTAMPTZ',
					u: 'VARCHAR', j: 'JSON', iv: 'VARCHAR', ints: 'BIGINT[]', strs: 'VARCHAR[]', decs: 'DECIMAL(10,2)[]', _hw_updated: 'DECIMAL(38,10)', _hw_op: 'VARCHAR'}, hive_partitioning=false))`, dir, escape(tb.Name))
			}
			q := `SELECT CAST(COLUMNS(* EXCLUDE (filename, file_row_number)) AS VARCHAR) FROM ` + src + ` ORDER BY id`
			if f == NDJSON {
				q = `SELECT CAST(COLUMNS(*) AS VARCHAR) FROM ` + src + ` ORDER BY id`
			}
			got := query(t, db, `SET TimeZone = 'UTC'`)
			_ = got
			got = query(t, db, q)
			if f == NDJSON {
				// JSON has no bytes: BYTES are base64; DECIMAL NaN is null
				// in Parquet but the text column keeps it either way; JSON
				// is re-rendered compactly by DuckDB.
				want := slices.Clone(want)
				want[0] = slices.Clone(want[0])
				want[0][4] = "AAH/"
				want[0][14] = `{"a":[1,"x"],"b":null}`
				eq(t, "ndjson values", got, want)
				return
			}
			eq(t, "parquet values", got, want)
			// The interval text casts back to the interval it came from.
			iv := query(t, db, `SELECT CAST(CAST(iv AS INTERVAL) = INTERVAL '-14 months 3 days -4 hours -6.789 seconds' AS VARCHAR) FROM `+src+` WHERE id < 0`)
			eq(t, "interval cast back", iv, [][]string{{"true"}})
		})
	}
}

// TestEveryTypeReadsWithParquetGo reads the same file with parquet-go: the
// physical values and logical types a non-DuckDB reader sees.
func TestEveryTypeReadsWithParquetGo(t *testing.T) {
	dir := t.TempDir()
	w := openDir(t, dir, Config{})
	tb, rows := allTypes()
	commit(t, w, []sinks.Checkpoint{cp(0, h(5), 1)}, write{tb, rows})
	files := dataFiles(t, dir, tb.Name)
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	b, err := os.ReadFile(filepath.Join(dir, files[0]))
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	schema := pf.Schema()
	var names []string
	for _, f := range schema.Fields() {
		names = append(names, f.Name())
	}
	wantNames := []string{"id", "f", "b", "s", "by", "d9", "d18", "d38", "dtext", "dt", "tm", "ts", "tz", "u", "j", "iv", "ints", "strs", "decs", sinks.UpdatedColumn, sinks.OpColumn}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("columns in file order: %v, want table order %v", names, wantNames)
	}
	logical := map[string]string{}
	for _, f := range schema.Fields() {
		if f.Leaf() {
			logical[f.Name()] = f.Type().String()
		}
	}
	for name, want := range map[string]string{"d38": "DECIMAL(38,10)", "tz": "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)", "ts": "TIMESTAMP(isAdjustedToUTC=false,unit=MICROS)",
		"dt": "DATE", "j": "JSON", "_hw_updated": "DECIMAL(38,10)"} {
		if logical[name] != want {
			t.Errorf("column %s: logical type %q, want %q", name, logical[name], want)
		}
	}
	if v, ok := pf.Lookup("highwater.primary_key"); !ok || v != `["id"]` {
		t.Errorf("metadata highwater.primary_key = %q, want [\"id\"]", v)
	}
	r := parquet.NewReader(pf)
	defer r.Close()
	got := make([]parquet.Row, 4)
	n, _ := r.ReadRows(got)
	if n != 2 {
		t.Fatalf("read %d rows, want 2", n)
	}
	// Leaf columns: id=0, ..., _hw_updated=19, _hw_op=20.
	first := map[int]parquet.Value{}
	for _, v := range got[0] {
		if _, ok := first[v.Column()]; !ok {
			first[v.Column()] = v
		}
	}
	if first[0].Int64() != -9007199254740993 {
		t.Errorf("id = %v", first[0])
	}
	if d := first[5].Int32(); d != -12345 {
		t.Errorf("d9 unscaled = %d, want -12345", d)
	}
	if d := first[9].Int32(); d != -1 {
		t.Errorf("dt = %d days, want -1 (1969-12-31)", d)
	}
	if u := int128ToBig(first[19].ByteArray()); u.Cmp(h(1).Unscaled()) != 0 {
		t.Errorf("_hw_updated unscaled = %s, want %s", u, h(1).Unscaled())
	}
	if op := string(first[20].ByteArray()); op != "insert" {
		t.Errorf("_hw_op = %q", op)
	}
}

func TestSchemaChangeStartsNewFile(t *testing.T) {
	dir := t.TempDir()
	w := openDir(t, dir, Config{})
	v1 := kv("t")
	v2 := table("t", []int{0}, col("id", model.KindInt), col("name", model.KindString), col("n", model.KindInt), col("added", model.KindString))
	commit(t, w, []sinks.Checkpoint{cp(0, h(10), 1)},
		write{v1, []sinks.Change{ch(sinks.OpInsert, h(1), int64(1), "a", int64(1))}},
		write{v2, []sinks.Change{ch(sinks.OpUpdate, h(2), int64(1), "b", int64(2), "new")}},
		write{v1, []sinks.Change{ch(sinks.OpInsert, h(3), int64(2), "c", int64(3))}},
	)
	files := dataFiles(t, dir, "t")
	if len(files) != 2 {
		t.Fatalf("files %v: want one per table version", files)
	}
	db := duck(t)
	got := query(t, db, `SELECT CAST(id AS VARCHAR), name, added, CAST(_hw_updated AS VARCHAR) FROM `+parquetSrc(dir, "t")+` ORDER BY _hw_updated`)
	eq(t, "both versions", got, [][]string{{"1", "a", "NULL", S(h(1))}, {"1", "b", "new", S(h(2))}, {"2", "c", "NULL", S(h(3))}})
	ti, err := w.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ti) != 1 || ti[0].Name != "t" || len(ti[0].Columns) != 4 || ti[0].PrimaryKey[0] != "id" {
		t.Fatalf("table catalog %+v: want t with the newest version's 4 columns", ti)
	}
}

// failStore fails puts of keys that fail() selects, once each: a crash at
// that point of a commit.
type failStore struct {
	store
	fail func(key string) bool
}

var errCrash = errors.New("simulated crash")

func (f *failStore) put(ctx context.Context, key string, b []byte) error {
	if f.fail(key) {
		return errCrash
	}
	return f.store.put(ctx, key, b)
}

func (f *failStore) putFile(ctx context.Context, key, src string) error {
	if f.fail(key) {
		return errCrash
	}
	return f.store.putFile(ctx, key, src)
}

func isManifest(key string) bool { return strings.HasPrefix(key, internalDir+"/manifests/") }
func isState(key string) bool    { return strings.HasPrefix(key, internalDir+"/checkpoints/") }
func isStaged(key string) bool   { return strings.HasPrefix(key, internalDir+"/staged/") }

// crashScenario runs on dir or S3: a window crashes between its data files
// and its manifest, before it publishes its checkpoints in the fence
// object (its staged manifest is the first write after the data); a new
// writer resumes from the window before, writes the
// rows again in a window with another resolved timestamp, and the crashed
// window's files are gone: every (key, HLC) is in the files once.
func crashScenario(t *testing.T, open func(t *testing.T) *Writer, read func(t *testing.T, w *Writer) string) {
	ctx := context.Background()
	tb := kv("t")
	w := open(t)
	commit(t, w, []sinks.Checkpoint{cp(0, h(10), 10), cp(1, h(10), 20)},
		write{tb, []sinks.Change{ch(sinks.OpInsert, h(1), int64(1), "a", int64(1))}})
	second := []sinks.Change{
		ch(sinks.OpUpdate, h(11), int64(1), "b", int64(2)),
		ch(sinks.OpInsert, h(12), int64(2), "x", int64(1)),
		ch(sinks.OpDelete, h(15), int64(2), nil, nil),
	}
	real := w.st
	w.st = &failStore{store: real, fail: isStaged}
	err := tryCommit(w, []sinks.Checkpoint{cp(0, h(20), 13), cp(1, h(20), 21)}, write{tb, second})
	if !errors.Is(err, errCrash) {
		t.Fatalf("commit with a crash before the manifest: %v", err)
	}
	w.st = real
	if n := len(listData(t, w, "t")); n != 2 {
		t.Fatalf("before recovery: %d data files, want 2 (the crashed window's is there, not complete)", n)
	}

	// Restart: the checkpoint is the last complete window's.
	w2 := open(t)
	cps, err := w2.Checkpoints(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	want := []sinks.Checkpoint{cp(0, h(10), 10), cp(1, h(10), 20)}
	if fmt.Sprint(cps) != fmt.Sprint(want) {
		t.Fatalf("checkpoints after the crash: %v, want %v", cps, want)
	}
	// The window again, cut at another resolved timestamp and with a row
	// at the old frontier re-sent: replaced, not added.
	again := append([]sinks.Change{ch(sinks.OpInsert, h(10), int64(1), "a", int64(1))}, second[:2]...)
	commit(t, w2, []sinks.Checkpoint{cp(0, h(14), 13), cp(1, h(14), 21)}, write{tb, again})
	commit(t, w2, []sinks.Checkpoint{cp(0, h(30), 14), cp(1, h(30), 22)}, write{tb, second[2:]})
	dir := read(t, w2)
	db := duck(t)
	got := query(t, db, `SELECT CAST(id AS VARCHAR), name, CAST(_hw_updated AS VARCHAR), _hw_op FROM `+parquetSrc(dir, "t")+` ORDER BY _hw_updated, id`)
	eq(t, "every version once", got, [][]string{
		{"1", "a", S(h(1)), "insert"},
		{"1", "b", S(h(11)), "update"},
		{"2", "x", S(h(12)), "insert"},
		{"2", "NULL", S(h(15)), "delete"},
	})
	if n := len(listData(t, w2, "t")); n != 3 {
		t.Fatalf("after recovery: %d data files, want 3 (one per complete window)", n)
	}
	cps, err = w2.Checkpoints(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if want := []sinks.Checkpoint{cp(0, h(30), 14), cp(1, h(30), 22)}; fmt.Sprint(cps) != fmt.Sprint(want) {
		t.Fatalf("checkpoints: %v, want %v", cps, want)
	}
	ms, err := w2.Manifests(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, m := range ms {
		for _, f := range m.Files {
			listed = append(listed, f.Path)
		}
	}
	slices.Sort(listed)
	if data := listData(t, w2, "t"); !slices.Equal(listed, data) {
		t.Fatalf("manifests list %v, the store holds %v", listed, data)
	}
}

func listData(t *testing.T, w *Writer, tbl string) []string {
	t.Helper()
	keys, err := w.st.list(context.Background(), escape(tbl)+"/")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestCrashBeforeManifestLeavesWindowInvisibleAndRewriteReplaces(t *testing.T) {
	t.Run("dir", func(t *testing.T) {
		dir := t.TempDir()
		crashScenario(t, func(t *testing.T) *Writer { return openDir(t, dir, Config{}) },
			func(t *testing.T, w *Writer) string { return dir })
	})
	t.Run("s3", func(t *testing.T) {
		endpoint := fakeS3(t)
		crashScenario(t, func(t *testing.T) *Writer {
			w, err := Open(context.Background(), "s3://lake/cdc/feed?endpoint="+endpoint, sinks.Options{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			return w
		}, download)
	})
}

// TestCrashAfterManifestIsComplete: the manifest is written but the
// checkpoint object is not updated: the window counts as complete.
func TestCrashAfterManifestIsComplete(t *testing.T) {
	dir := t.TempDir()
	w := openDir(t, dir, Config{})
	tb := kv("t")
	commit(t, w, []sinks.Checkpoint{cp(0, h(10), 10)}, write{tb, []sinks.Change{ch(sinks.OpInsert, h(1), int64(1), "a", int64(1))}})
	real := w.st
	states := 0
	w.st = &failStore{store: real, fail: func(key string) bool {
		if isState(key) {
			states++
			return states == 2 // the update after the manifest
		}
		return false
	}}
	commit(t, w, []sinks.Checkpoint{cp(0, h(20), 11)}, write{tb, []sinks.Change{ch(sinks.OpUpdate, h(11), int64(1), "b", int64(2))}})
	w2 := openDir(t, dir, Config{})
	cps, err := w2.Checkpoints(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if want := []sinks.Checkpoint{cp(0, h(20), 11)}; fmt.Sprint(cps) != fmt.Sprint(want) {
		t.Fatalf("checkpoints %v, want %v (the manifest completes the window)", cps, want)
	}
	// The next window does not delete the complete window's files.
	commit(t, w2, []sinks.Checkpoint{cp(0, h(30), 12)}, write{tb, []sinks.Change{ch(sinks.OpUpdate, h(21), int64(1), "c", int64(3))}})
	if n := len(dataFiles(t, dir, "t")); n != 3 {
		t.Fatalf("%d data files, want 3", n)
	}
}

func TestSameWindowGivesSameNames(t *testing.T) {
	tb := kv("t")
	rows := []sinks.Change{ch(sinks.OpInsert, h(1), int64(1), "a", int64(1)), ch(sinks.OpInsert, h(2), int64(2), "b", int64(2))}
	cps := []sinks.Checkpoint{cp(0, h(10), 3), cp(1, h(10), 4)}
	var names [][]string
	var contents [][]byte
	for range 2 {
		dir := t.TempDir()
		w := openDir(t, dir, Config{})
		commit(t, w, cps, write{tb, rows})
		f := dataFiles(t, dir, "t")
		names = append(names, f)
		b, err := os.ReadFile(filepath.Join(dir, f[0]))
		if err != nil {
			t.Fatal(err)
		}
		contents = append(contents, b)
		// The same window again into the same directory (a crash after the
		// manifest, before the member learnt it): the same file, replaced.
		commit(t, w, cps, write{tb, rows})
		if again := dataFiles(t, dir, "t"); !slices.Equal(again, f) {
			t.Fatalf("window written twice: files %v, then %v", f, again)
		}
	}
	if !slices.Equal(names[0], names[1]) || !bytes.Equal(contents[0], contents[1]) {
		t.Fatalf("the same window gave different files: %v vs %v (contents equal: %t)", names[0], names[1], bytes.Equal(contents[0], contents[1]))
	}
}

// TestGroupMembersDoNotCollide: two members (different partition sets)
// commit windows through the same resolved timestamp into one root.
func TestGroupMembersDoNotCollide(t *testing.T) {
	dir := t.TempDir()
	a, b := openDir(t, dir, Config{}), openDir(t, dir, Config{})
	tb := kv("t")
	commit(t, a, []sinks.Checkpoint{cp(0, h(10), 5)}, write{tb, []sinks.Change{ch(sinks.OpInsert, h(1), int64(1), "a", int64(1))}})
	commit(t, b, []sinks.Checkpoint{cp(1, h(10), 6)}, write{tb, []sinks.Change{ch(sinks.OpInsert, h(1), int64(2), "b", int64(1))}})
	if n := len(dataFiles(t, dir, "t")); n != 2 {
		t.Fatalf("%d files, want 2", n)
	}
	// b leaves; a takes partition 1 over (a new partition set) and goes on.
	cps, err := a.Checkpoints(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if want := []sinks.Checkpoint{cp(0, h(10), 5), cp(1, h(10), 6)}; fmt.Sprint(cps) != fmt.Sprint(want) {
		t.Fatalf("checkpoints %v, want %v", cps, want)
	}
	commit(t, a, []sinks.Checkpoint{cp(0, h(20), 7), cp(1, h(20), 8)}, write{tb, []sinks.Change{ch(sinks.OpUpdate, h(11), int64(2), "b2", int64(2))}})
	cps, err = openDir(t, dir, Config{}).Checkpoints(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if want := []sinks.Checkpoint{cp(0, h(20), 7), cp(1, h(20), 8)}; fmt.Sprint(cps) != fmt.Sprint(want) {
		t.Fatalf("checkpoints %v, want %v", cps, want)
	}
	// a's window covers both old partition sets: their objects are gone.
	if states, _ := a.st.list(context.Background(), internalDir+"/checkpoints/g/"); len(states) != 1 {
		t.Fatalf("checkpoint objects %v: want only the current partition set's", states)
	}
	if cps, _ := a.Checkpoints(context.Background(), "other"); len(cps) != 0 {
		t.Fatalf("group other has checkpoints %v", cps)
	}
	got := query(t, duck(t), `SELECT CAST(id AS VARCHAR), name FROM `+parquetSrc(dir, "t")+` ORDER BY _hw_updated, id`)
	eq(t, "rows of both members", got, [][]string{{"1", "a"}, {"2", "b"}, {"2", "b2"}})
}

func TestFormatsAndCompressions(t *testing.T) {
	tb := kv("t")
	rows := []sinks.Change{ch(sinks.OpInsert, h(1), int64(1), "a", int64(1)), ch(sinks.OpDelete, h(2), int64(1), nil, nil)}
	for _, tc := range []struct {
		format      Format
		compression string
		ext         string
		codec       string
	}{
		{Parquet, "", ".parquet", "SNAPPY"},
		{Parquet, "zstd", ".parquet", "ZSTD"},
		{Parquet, "gzip", ".parquet", "GZIP"},
		{Parquet, "lz4", ".parquet", "LZ4_RAW"},
		{Parquet, "none", ".parquet", "UNCOMPRESSED"},
		{NDJSON, "", ".ndjson", ""},
		{NDJSON, "gzip", ".ndjson.gz", ""},
		{NDJSON, "zstd", ".ndjson.zst", ""},
	} {
		t.Run(string(tc.format)+"/"+tc.compression, func(t *testing.T) {
			dir := t.TempDir()
			w, err := Open(context.Background(), fmt.Sprintf("file://%s?format=%s&compression=%s", dir, tc.format, tc.compression), sinks.Options{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			commit(t, w, []sinks.Checkpoint{cp(0, h(5), 1)}, write{tb, rows})
			files := dataFiles(t, dir, "t")
			if len(files) != 1 || !strings.HasSuffix(files[0], tc.ext) {
				t.Fatalf("files %v, want one ending %s", files, tc.ext)
			}
			db := duck(t)
			p := filepath.Join(dir, files[0])
			var got [][]string
			if tc.format == Parquet {
				got = query(t, db, `SELECT CAST(id AS VARCHAR), name, CAST(_hw_updated AS VARCHAR), _hw_op FROM read_parquet(?)`, p)
				if c := query(t, db, `SELECT DISTINCT compression FROM parquet_metadata(?)`, p); fmt.Sprint(c) != fmt.Sprintf("[[%s]]", tc.codec) {
					t.Fatalf("compression %v, want %s", c, tc.codec)
				}
			} else {
				got = query(t, db, `SELECT CAST(id AS VARCHAR), name, _hw_updated, _hw_op FROM read_ndjson(?, columns={id: 'BIGINT', name: 'VARCHAR', _hw_updated: 'VARCHAR', _hw_op: 'VARCHAR'})`, p)
			}
			eq(t, "rows", got, [][]string{{"1", "a", S(h(1)), "insert"}, {"1", "NULL", S(h(2)), "delete"}})
		})
	}
}

// TestLargeWindowSpillsAndRolls: a window far bigger than the memory limit
// and the file size, with keys in random order and re-sent duplicates:
// spilled to sort runs, merged, split into parts, each part and the parts
// together in HLC order, every (key, HLC) once.
func TestLargeWindowSpillsAndRolls(t *testing.T) {
	for _, f := range []Format{Parquet, NDJSON} {
		t.Run(string(f), func(t *testing.T) { largeWindow(t, f) })
	}
}

func largeWindow(t *testing.T, f Format) {
	dir := t.TempDir()
	cfg := Config{Format: f, MaxFileSize: 256 << 10, MemoryLimit: 512 << 10}
	n := 40_000
	if f == NDJSON {
		// Fewer rows: DuckDB reads gzipped NDJSON slowly.
		cfg.Compression, cfg.MaxFileSize, cfg.MemoryLimit, n = "gzip", 16<<10, 256<<10, 16_000
	}
	w := openDir(t, dir, cfg)
	tb := kv("big")
	rng := rand.New(rand.NewPCG(1, 2))
	var changes []sinks.Change
	for i := range n {
		changes = append(changes, ch(sinks.OpUpsert, h(int64(i/4)), int64(i%5000), fmt.Sprintf("name-%d-%s", i, strings.Repeat("x", rng.IntN(40))), int64(i)))
	}
	rng.Shuffle(len(changes), func(i, j int) { changes[i], changes[j] = changes[j], changes[i] })
	// 2,000 re-sent duplicates.
	changes = append(changes, changes[:2000]...)
	ctx := context.Background()
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(changes); i += 1000 {
		if err := tx.Write(ctx, tb, changes[i:min(i+1000, len(changes))]); err != nil {
			t.Fatal(err)
		}
	}
	spills := tx.(*Tx).nspill
	if err := tx.Checkpoint(ctx, []sinks.Checkpoint{cp(0, h(int64(n)), 1)}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if spills < 3 {
		t.Errorf("%d sort runs: the window should have spilled", spills)
	}
	files := dataFiles(t, dir, "big")
	if len(files) < 3 {
		t.Errorf("%d files: the window should have rolled over parts", len(files))
	}
	db := duck(t)
	src := parquetSrc(dir, "big")
	if f == NDJSON {
		src = fmt.Sprintf(`(SELECT * FROM read_ndjson('%s/big/*/*/*.ndjson.gz', columns={id: 'BIGINT', name: 'VARCHAR', n: 'BIGINT', _hw_updated: 'DECIMAL(38,10)', _hw_op: 'VARCHAR'}, hive_partitioning=false, filename=true))`, dir)
	}
	got := query(t, db, `SELECT CAST(count(*) AS VARCHAR), CAST(count(DISTINCT (id, _hw_updated)) AS VARCHAR) FROM `+src)
	// Keys i%5000 at HLC i/4: every (key, HLC) pair is distinct.
	eq(t, "rows", got, [][]string{{fmt.Sprint(n), fmt.Sprint(n)}})
	// Parts in name order, rows in file order: HLC never goes back.
	order := "filename, file_row_number"
	if f == NDJSON {
		order = "filename, rowid"
		src = strings.Replace(src, "SELECT *", "SELECT *, row_number() OVER () AS rowid", 1)
	}
	bad := query(t, db, `SELECT count(*) FROM (SELECT _hw_updated < lag(_hw_updated) OVER (ORDER BY `+order+`) AS back FROM `+src+`) WHERE back`)
	eq(t, "rows out of HLC order across parts", bad, [][]string{{"0"}})
}

func TestDeadLettersAreWrittenWithTheWindow(t *testing.T) {
	dir := t.TempDir()
	w := openDir(t, dir, Config{})
	ctx := context.Background()
	tx, _ := w.Begin(ctx)
	dl := tx.(interface {
		DeadLetters(context.Context, []sinks.DeadLetter) error
	})
	if err := dl.DeadLetters(ctx, []sinks.DeadLetter{{Group: "g", Topic: "t", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte{0, 1}, SchemaID: -1, Stage: "ingest", Error: "bad frame"}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Checkpoint(ctx, []sinks.Checkpoint{cp(2, h(5), 42)}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := query(t, duck(t), `SELECT topic, CAST("partition" AS VARCHAR), CAST("offset" AS VARCHAR), from_base64("value")::VARCHAR, error FROM read_ndjson(?)`, filepath.Join(dir, DeadLetterDir, "g", "*", "*", "*.ndjson"))
	eq(t, "dead letters", got, [][]string{{"t", "2", "41", `\x00\x01`, "bad frame"}})
	ms, err := w.Manifests(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || len(ms[0].DeadLetters) != 1 {
		t.Fatalf("manifests %+v: want one naming the dead-letter file", ms)
	}
}

func TestBadInputIsAnError(t *testing.T) {
	tb := kv("t")
	dec := table("d", []int{0}, col("id", model.KindInt), model.Column{Name: "x", Type: model.Type{Kind: model.KindDecimal, Precision: 4, Scale: 2}})
	for _, tc := range []struct {
		name  string
		table *model.Table
		ch    sinks.Change
		want  string
	}{
		{"wrong value count", tb, ch(sinks.OpInsert, h(1), int64(1)), "1 values for 3 columns"},
		{"NULL key", tb, ch(sinks.OpInsert, h(1), nil, "a", int64(1)), `primary-key column "id" is NULL`},
		{"wrong Go type", tb, ch(sinks.OpInsert, h(1), int64(1), 7, int64(1)), "unexpected Go value of type int"},
		{"no primary key", table("nokey", nil, col("a", model.KindInt)), ch(sinks.OpInsert, h(1), int64(1)), "no primary key"},
		{"reserved column", table("r", []int{0}, col("_hw_op", model.KindInt)), ch(sinks.OpInsert, h(1), int64(1)), "collides"},
		{"decimal too wide", dec, ch(sinks.OpInsert, h(1), int64(1), model.Decimal{Unscaled: big.NewInt(123456), Scale: 2}), "does not fit"},
		{"decimal too precise", dec, ch(sinks.OpInsert, h(1), int64(1), model.Decimal{Unscaled: big.NewInt(1234), Scale: 3}), "fractional digits"},
		{"bad UUID", table("u", []int{0}, col("u", model.KindUUID)), ch(sinks.OpInsert, h(1), "nope"), "invalid UUID"},
		{"braced UUID", table("u", []int{0}, col("u", model.KindUUID)), ch(sinks.OpInsert, h(1), "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}"), "invalid UUID"},
		{"negative HLC", tb, ch(sinks.OpInsert, hlc.Timestamp{WallTime: -1}, int64(1), "a", int64(1)), "negative HLC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w := openDir(t, dir, Config{})
			err := tryCommit(w, []sinks.Checkpoint{cp(0, h(5), 1)}, write{tc.table, []sinks.Change{tc.ch}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if cps, _ := w.Checkpoints(context.Background(), "g"); len(cps) != 0 {
				t.Fatalf("a failed window left checkpoints %v", cps)
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want Config
		err  string
	}{
		{url: "file:///data/cdc", want: Config{Root: "/data/cdc"}},
		{url: "file:///data/with%20space?format=ndjson&compression=gzip&max_file_size=64MiB&memory=1GB", want: Config{Root: "/data/with space", Format: NDJSON, Compression: "gzip", MaxFileSize: 64 << 20, MemoryLimit: 1e9}},
		{url: "s3://bucket/some/prefix?region=eu-west-1", want: Config{Root: "s3://bucket/some/prefix", S3Region: "eu-west-1"}},
		{url: "s3://bucket?endpoint=http://localhost:9000", want: Config{Root: "s3://bucket", S3Endpoint: "http://localhost:9000", S3PathStyle: true}},
		{url: "s3://bucket/p?endpoint=https://r2.example&path_style=false", want: Config{Root: "s3://bucket/p", S3Endpoint: "https://r2.example"}},
		{url: "file://", err: "no directory"},
		{url: "s3:///prefix", err: "no bucket"},
		{url: "gs://b/p", err: "scheme must be file or s3"},
		{url: "file:///d?colour=red", err: `unknown option "colour"`},
		{url: "file:///d?max_file_size=-3", err: "invalid size"},
		{url: "/just/a/path", err: "want file:///dir"},
	} {
		got, err := ParseURL(tc.url)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.url, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.url, got, err, tc.want)
		}
	}
	for _, u := range []string{"file:///d?format=csv", "file:///d?compression=brotli", "file:///d?format=ndjson&compression=snappy"} {
		if _, err := Open(context.Background(), u, sinks.Options{}, nil); err == nil {
			t.Errorf("%s: opened, want an error", u)
		}
	}
}

func TestOlderCheckpointNeverMovesBack(t *testing.T) {
	dir := t.TempDir()
	w := openDir(t, dir, Config{})
	tb := kv("t")
	commit(t, w, []sinks.Checkpoint{cp(0, h(20), 9), cp(1, h(20), 9)}, write{tb, []sinks.Change{ch(sinks.OpInsert, h(1), int64(1), "a", int64(1))}})
	// A window through an older resolved timestamp for partition 0 (one
	// applied further by another member keeps its checkpoint).
	commit(t, w, []sinks.Checkpoint{cp(0, h(10), 5), cp(1, h(30), 12)}, write{tb, []sinks.Change{ch(sinks.OpInsert, h(25), int64(2), "b", int64(1))}})
	cps, err := openDir(t, dir, Config{}).Checkpoints(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if want := []sinks.Checkpoint{cp(0, h(20), 9), cp(1, h(30), 12)}; fmt.Sprint(cps) != fmt.Sprint(want) {
		t.Fatalf("checkpoints %v, want %v", cps, want)
	}
}

func TestReplayedDeadLetterIsWrittenOnce(t *testing.T) {
	dir := t.TempDir()
	w := openDir(t, dir, Config{})
	ctx := context.Background()
	window := func(resolved hlc.Timestamp, next int64, offsets ...int64) {
		tx, _ := w.Begin(ctx)
		var dls []sinks.DeadLetter
		for _, o := range offsets {
			dls = append(dls, sinks.DeadLetter{Group: "g", Topic: "t", Partition: 0, Offset: o, SchemaID: -1, Stage: "apply", Error: "bad"})
		}
		if err := tx.(*Tx).DeadLetters(ctx, dls); err != nil {
			t.Fatal(err)
		}
		if err := tx.Checkpoint(ctx, []sinks.Checkpoint{cp(0, resolved, next)}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	window(h(10), 5, 3)
	// The next window replays offset 3 (a restart between commit and the
	// buffer trim) and adds offset 7.
	window(h(20), 9, 3, 7)
	got := query(t, duck(t), `SELECT CAST("offset" AS VARCHAR) FROM read_ndjson(?) ORDER BY 1`, filepath.Join(dir, DeadLetterDir, "g", "*", "*", "*.ndjson"))
	eq(t, "dead letters", got, [][]string{{"3"}, {"7"}})
}
