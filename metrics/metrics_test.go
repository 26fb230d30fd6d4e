package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/schemas"
)

// statsSource serves whatever Stats it holds, as a running processor would.
type statsSource struct {
	s atomic.Pointer[processor.Stats]
}

func (f *statsSource) Stats() processor.Stats { return *f.s.Load() }

func TestMetricsAndReadiness(t *testing.T) {
	src := &statsSource{}
	src.s.Store(&processor.Stats{Consumed: 42, RowsApplied: 7, Buffered: 3})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, src, zap.NewNop()) }()
	get := func(path string) (int, string) {
		t.Helper()
		var resp *http.Response
		var err error
		for i := 0; i < 100; i++ {
			if resp, err = http.Get("http://" + addr + path); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	_, body := get("/metrics")
	for _, want := range []string{"highwater_records_consumed_total 42", "highwater_rows_written_total 7", "highwater_buffer_events 3", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d before any window, want 503", code)
	}
	src.s.Store(&processor.Stats{Partitions: 2, Frontier: schemas.HLC{WallTime: time.Now().UnixNano()}})
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d after a window, want 200", code)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
