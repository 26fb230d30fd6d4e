package files

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/sinks"
)

// fenceStores runs fn on a directory and on S3 (gofakes3, which honours
// If-Match and If-None-Match on PutObject): open returns a new writer on
// the same root each call.
func fenceStores(t *testing.T, fn func(t *testing.T, open func() *Writer)) {
	t.Run("dir", func(t *testing.T) {
		dir := t.TempDir()
		fn(t, func() *Writer { return openDir(t, dir, Config{}) })
	})
	t.Run("s3", func(t *testing.T) {
		endpoint := fakeS3(t)
		fn(t, func() *Writer {
			w, err := OpenConfig(context.Background(), Config{Root: "s3://lake/cdc", S3Endpoint: endpoint, S3PathStyle: true}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			return w
		})
	})
}

// fencedCommit runs a window as the processor does: Write, Fence,
// Checkpoint, Commit.
func fencedCommit(w sinks.Writer, held, cps []sinks.Checkpoint, writes ...write) error {
	ctx := context.Background()
	tx, err := w.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	for _, wr := range writes {
		if err := tx.Write(ctx, wr.table, wr.changes); err != nil {
			return err
		}
	}
	if err := tx.Fence(ctx, held); err != nil {
		return err
	}
	if err := tx.Checkpoint(ctx, cps); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func wantFenced(t *testing.T, err error, stored ...sinks.Checkpoint) {
	t.Helper()
	var fe *sinks.FencedError
	if !errors.Is(err, sinks.ErrFenced) || !errors.As(err, &fe) {
		t.Fatalf("got %v, want a *sinks.FencedError", err)
	}
	if fmt.Sprint(fe.Stored) != fmt.Sprint(stored) {
		t.Fatalf("FencedError.Stored = %v, want %v", fe.Stored, stored)
	}
}

func wantCps(t *testing.T, w *Writer, want ...sinks.Checkpoint) {
	t.Helper()
	got, err := w.Checkpoints(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("checkpoints %v, want %v", got, want)
	}
}

// completeVersions returns table t's versions in the complete windows (the
// files the manifests list): id, name, _hw_updated, _hw_op.
func completeVersions(t *testing.T, w *Writer) [][]string {
	t.Helper()
	ms, err := w.Manifests(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	root := download(t, w)
	var paths []string
	for _, m := range ms {
		for _, f := range m.Files {
			if f.Table == "t" {
				paths = append(paths, "'"+filepath.Join(root, filepath.FromSlash(f.Path))+"'")
			}
		}
	}
	if len(paths) == 0 {
		return [][]string{}
	}
	return query(t, duck(t), `SELECT CAST(id AS VARCHAR), name, CAST(_hw_updated AS VARCHAR), _hw_op FROM read_parquet([`+
		strings.Join(paths, ", ")+`], union_by_name = true) ORDER BY _hw_updated, id`)
}

func TestFenceMatchingStaleAndAbsent(t *testing.T) {
	fenceStores(t, func(t *testing.T, open func() *Writer) {
		w := open()
		tb := kv("t")
		x := []sinks.Checkpoint{cp(0, h(10), 10), cp(1, h(10), 20)}
		if err := fencedCommit(w, []sinks.Checkpoint{cp(0, hlc.Timestamp{}, 0), cp(1, hlc.Timestamp{}, 0)}, x,
			write{tb, []sinks.Change{ch(sinks.OpInsert, h(1), int64(1), "a", nil)}}); err != nil {
			t.Fatalf("first window, held at zero where nothing is stored: %v", err)
		}
		y := []sinks.Checkpoint{cp(0, h(20), 11), cp(1, h(20), 21)}
		if err := fencedCommit(w, x, y, write{tb, []sinks.Change{ch(sinks.OpUpdate, h(11), int64(1), "b", nil)}}); err != nil {
			t.Fatalf("window on the stored checkpoints: %v", err)
		}
		wantCps(t, w, y...)
		before := completeVersions(t, w)

		// Built on partition 1 at 10, stored at 20.
		err := fencedCommit(w, []sinks.Checkpoint{y[0], x[1]}, []sinks.Checkpoint{cp(0, h(30), 12), cp(1, h(30), 22)},
			write{tb, []sinks.Change{ch(sinks.OpInsert, h(21), int64(2), "stale", nil)}})
		wantFenced(t, err, y[1])
		// Partition 4 was never applied: stored zero.
		err = fencedCommit(w, []sinks.Checkpoint{cp(4, h(10), 3)}, []sinks.Checkpoint{cp(4, h(30), 5)},
			write{tb, []sinks.Change{ch(sinks.OpInsert, h(22), int64(3), "stale", nil)}})
		wantFenced(t, err, sinks.Checkpoint{Group: "g", Topic: "t", Partition: 4})
		wantCps(t, open(), y...)
		eq(t, "complete versions after fenced windows", completeVersions(t, w), before)
	})
}

// TestFenceTwoWritersOneCheckpoint has two members build on one
// checkpoint. The new owner B deletes key 1; the stale member A's window
// re-inserts it. Whether A's commit starts after B's, or A claims first and
// B claims and publishes while A writes its files, A is fenced and none of
// its versions is in a complete window.
func TestFenceTwoWritersOneCheckpoint(t *testing.T) {
	fenceStores(t, func(t *testing.T, open func() *Writer) {
		a, b := open(), open()
		tb := kv("t")
		x := []sinks.Checkpoint{cp(0, h(10), 10)}
		commit(t, a, x, write{tb, []sinks.Change{ch(sinks.OpInsert, h(1), int64(1), "a", nil)}})
		if _, err := b.Checkpoints(context.Background(), "g"); err != nil {
			t.Fatal(err)
		}
		stale := write{tb, []sinks.Change{ch(sinks.OpInsert, h(12), int64(1), "stale", nil)}}

		// B commits between A's claim and A's publish: B takes the claim
		// over and publishes; A finds its claim gone.
		y := []sinks.Checkpoint{cp(0, h(20), 11)}
		real := a.st
		var bErr error
		once := sync.Once{}
		a.st = &hookStore{store: real, before: func(key string) {
			if isStaged(key) {
				once.Do(func() {
					bErr = fencedCommit(b, x, y, write{tb, []sinks.Change{ch(sinks.OpDelete, h(14), int64(1), nil, nil)}})
				})
			}
		}}
		err := fencedCommit(a, x, []sinks.Checkpoint{cp(0, h(16), 12)}, stale)
		a.st = real
		if bErr != nil {
			t.Fatalf("new owner's window: %v", bErr)
		}
		wantFenced(t, err, y[0])

		// A tries again on its stale view: fenced at once.
		err = fencedCommit(a, x, []sinks.Checkpoint{cp(0, h(16), 12)}, stale)
		wantFenced(t, err, y[0])

		wantCps(t, open(), y...)
		eq(t, "complete versions", completeVersions(t, b), [][]string{
			{"1", "a", S(h(1)), "insert"},
			{"1", "NULL", S(h(14)), "delete"},
		})
	})
}

// TestFenceObjectCompareAndSwap has two writers update the fence object
// concurrently: no update is lost.
func TestFenceObjectCompareAndSwap(t *testing.T) {
	fenceStores(t, func(t *testing.T, open func() *Writer) {
		ws := []*Writer{open(), open()}
		const n = 15
		var wg sync.WaitGroup
		errs := make(chan error, len(ws))
		for _, w := range ws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n {
					err := w.casFence(context.Background(), "g", func(f *fenceObject) error {
						e := f.entry("t", 0)
						if e == nil {
							e = f.add(cp(0, hlc.Timestamp{}, 0))
						}
						e.NextOffset++
						return nil
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		f, _, err := ws[0].readFence(context.Background(), "g")
		if err != nil {
			t.Fatal(err)
		}
		if e := f.entry("t", 0); e == nil || e.NextOffset != int64(n*len(ws)) {
			t.Fatalf("fence entry %+v after %d increments", e, n*len(ws))
		}
	})
}

// TestCrashAfterPublishRestoresManifest: the checkpoints are published in
// the fence object but the manifest is not written; the next Checkpoints
// writes it from the staged copy, and the window is complete.
func TestCrashAfterPublishRestoresManifest(t *testing.T) {
	fenceStores(t, func(t *testing.T, open func() *Writer) {
		w := open()
		tb := kv("t")
		x := []sinks.Checkpoint{cp(0, h(10), 10)}
		commit(t, w, x, write{tb, []sinks.Change{ch(sinks.OpInsert, h(1), int64(1), "a", nil)}})
		real := w.st
		w.st = &failStore{store: real, fail: isManifest}
		y := []sinks.Checkpoint{cp(0, h(20), 11)}
		if err := fencedCommit(w, x, y, write{tb, []sinks.Change{ch(sinks.OpUpdate, h(11), int64(1), "b", nil)}}); !errors.Is(err, errCrash) {
			t.Fatalf("commit with a crash at the manifest: %v", err)
		}
		w.st = real
		w2 := open()
		wantCps(t, w2, y...)
		eq(t, "complete versions", completeVersions(t, w2), [][]string{
			{"1", "a", S(h(1)), "insert"},
			{"1", "b", S(h(11)), "update"},
		})
	})
}

// hookStore calls before ahead of every put.
type hookStore struct {
	store
	before func(key string)
}

func (s *hookStore) put(ctx context.Context, key string, b []byte) error {
	s.before(key)
	return s.store.put(ctx, key, b)
}

func (s *hookStore) putFile(ctx context.Context, key, src string) error {
	s.before(key)
	return s.store.putFile(ctx, key, src)
}

// TestS3ProbeFindsStoreIgnoringConditions: against an S3 endpoint that
// drops If-Match and If-None-Match, Open notices (and logs) that the fence
// object cannot be compared and swapped; against gofakes3 it can.
func TestS3ProbeFindsStoreIgnoringConditions(t *testing.T) {
	endpoint := fakeS3(t)
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	strip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("If-Match")
		r.Header.Del("If-None-Match")
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(strip.Close)
	for _, tc := range []struct {
		endpoint      string
		unconditional bool
	}{{endpoint, false}, {strip.URL, true}} {
		w, err := OpenConfig(context.Background(), Config{Root: "s3://lake/probe", S3Endpoint: tc.endpoint, S3PathStyle: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.st.(*s3Store).unconditional; got != tc.unconditional {
			t.Errorf("endpoint dropping conditions %v: unconditional = %v", tc.unconditional, got)
		}
		if keys, _ := w.st.list(context.Background(), internalDir+"/fence/"); len(keys) != 0 {
			t.Errorf("the probe left %v", keys)
		}
		w.Close()
	}
}
