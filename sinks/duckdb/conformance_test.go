package duckdb

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

// harness keeps, per test, the warehouse file and the writer last opened
// on it.
type harness struct {
	mu      sync.Mutex
	paths   map[string]string
	writers map[string]*Writer
}

func (h *harness) open(t *testing.T, path string, opts sinks.Options) sinks.Writer {
	t.Helper()
	w, err := OpenPath(context.Background(), path, opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	h.mu.Lock()
	h.paths[t.Name()] = path
	h.writers[t.Name()] = w
	h.mu.Unlock()
	return w
}

func (h *harness) db(t *testing.T) *sql.DB {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.writers[t.Name()]
	if w == nil {
		t.Fatal("query without an open writer")
	}
	return w.DB()
}

func TestConformance(t *testing.T) {
	h := &harness{paths: map[string]string{}, writers: map[string]*Writer{}}
	sinktest.Run(t, sinktest.Harness{
		Open: func(t *testing.T, opts sinks.Options) sinks.Writer {
			return h.open(t, filepath.Join(t.TempDir(), "warehouse.duckdb"), opts)
		},
		Reopen: func(t *testing.T, opts sinks.Options) sinks.Writer {
			h.mu.Lock()
			path := h.paths[t.Name()]
			h.mu.Unlock()
			if path == "" {
				t.Fatal("Reopen before Open")
			}
			return h.open(t, path, opts)
		},
		// Another member in this process: duckdb-go shares one database
		// instance between the connectors of one file.
		Second: func(t *testing.T, opts sinks.Options) sinks.Writer {
			h.mu.Lock()
			path := h.paths[t.Name()]
			h.mu.Unlock()
			return h.open(t, path, opts)
		},
		Query: sinktest.QueryDB(h.db),
		Quote: sqlident.Quote,
	})
}
