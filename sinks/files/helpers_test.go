package files

import (
	"context"
	"database/sql"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

// base is a realistic wall time (2022-08-04), so HLC text has 19 digits.
const base = int64(1659643584586630201)

func h(i int64) hlc.Timestamp { return hlc.Timestamp{WallTime: base + i} }

func col(name string, k model.Kind) model.Column {
	return model.Column{Name: name, Type: model.Type{Kind: k}, Nullable: true}
}

func table(name string, key []int, cols ...model.Column) *model.Table {
	t := &model.Table{Name: name, Columns: cols, Key: key}
	for _, k := range key {
		t.Columns[k].PrimaryKey = true
	}
	return t
}

// kv is the everyday table: id INT primary key, name STRING, n INT.
func kv(name string) *model.Table {
	return table(name, []int{0}, col("id", model.KindInt), col("name", model.KindString), col("n", model.KindInt))
}

func ch(op sinks.Op, at hlc.Timestamp, vals ...any) sinks.Change {
	return sinks.Change{Op: op, Updated: at, Values: vals}
}

type write struct {
	table   *model.Table
	changes []sinks.Change
}

func cp(part int32, resolved hlc.Timestamp, next int64) sinks.Checkpoint {
	return sinks.Checkpoint{Group: "g", Topic: "t", Partition: part, Resolved: resolved, NextOffset: next}
}

// commit writes one window and fails t on error.
func commit(t *testing.T, w sinks.Writer, cps []sinks.Checkpoint, writes ...write) {
	t.Helper()
	if err := tryCommit(w, cps, writes...); err != nil {
		t.Fatal(err)
	}
}

func tryCommit(w sinks.Writer, cps []sinks.Checkpoint, writes ...write) error {
	ctx := context.Background()
	tx, err := w.Begin(ctx)
	if err != nil {
		return err
	}
	for _, wr := range writes {
		if err := tx.Write(ctx, wr.table, wr.changes); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
	}
	if err := tx.Checkpoint(ctx, cps); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	return tx.Rollback(ctx)
}

func openDir(t *testing.T, dir string, cfg Config) *Writer {
	t.Helper()
	cfg.Root = dir
	w, err := OpenConfig(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// fakeS3 starts an in-process S3 server (gofakes3, in-memory) with one
// bucket and points the AWS credential chain at static test keys.
func fakeS3(t *testing.T) (endpoint string) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("lake"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	return srv.URL
}

// download copies every object of w's store into a local directory, for
// DuckDB to read.
func download(t *testing.T, w *Writer) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	keys, err := w.st.list(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		b, err := w.st.get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func duck(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// query returns every row as text, NULL as "NULL".
func query(t *testing.T, db *sql.DB, q string, args ...any) [][]string {
	t.Helper()
	return sinktest.Rows(t, db, q, args...)
}

// parquetGlob is the DuckDB read_parquet call over a table's files, in
// file name order and row order within each file.
func parquetSrc(dir, tbl string) string {
	return fmt.Sprintf(`(SELECT * FROM read_parquet('%s/%s/*/*/*.parquet', hive_partitioning=false, union_by_name=true, filename=true, file_row_number=true))`,
		dir, escape(tbl))
}

// dataFiles lists a table's data files under dir, relative to dir.
func dataFiles(t *testing.T, dir, tbl string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, escape(tbl), "*", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(m))
	for _, p := range m {
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
	}
	return out
}

func eq(t *testing.T, what string, got, want [][]string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
