package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitBufferedWaitsForTheLastWrite serves a buffer count that trails
// the consumed records and grows on each scrape: waitBuffered returns the
// whole feed, or the count it settles at when a feed holds fewer events
// than records.
func TestWaitBufferedWaitsForTheLastWrite(t *testing.T) {
	for _, tc := range []struct {
		name         string
		start, final int64
		records      int64
	}{
		{"every record buffered", 9_999_990, 10_000_000, 10_000_000},
		{"fewer events than records", 95, 98, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			n.Store(tc.start)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				v := n.Load()
				if v < tc.final {
					n.Store(v + 1)
				}
				fmt.Fprintf(w, "# TYPE highwater_buffer_events gauge\nhighwater_buffer_events %d\n", v)
			}))
			defer srv.Close()
			got, wall := waitBuffered(strings.TrimPrefix(srv.URL, "http://"), tc.records, time.Now())
			if got != tc.final || wall <= 0 {
				t.Fatalf("waitBuffered = %d after %s, want %d", got, wall, tc.final)
			}
		})
	}
}
