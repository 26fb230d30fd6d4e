package postgres

import (
	"context"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/sinktest"
)

// TestConformance runs the writer conformance suite against PostgreSQL, a
// fresh database per subtest.
func TestConformance(t *testing.T) {
	d := &dbs{urls: map[string]string{}}
	open := func(t *testing.T, url string, opts sinks.Options) sinks.Writer {
		w, err := Open(context.Background(), url, opts, zaptest.NewLogger(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return w
	}
	sinktest.Run(t, sinktest.Harness{
		Open: func(t *testing.T, opts sinks.Options) sinks.Writer {
			url := server.CreateDB(t)
			d.set(t, url)
			return open(t, url, opts)
		},
		Reopen: func(t *testing.T, opts sinks.Options) sinks.Writer {
			return open(t, d.get(t), opts)
		},
		Second: func(t *testing.T, opts sinks.Options) sinks.Writer {
			return open(t, d.get(t), opts)
		},
		Query: func(t *testing.T, sql string) [][]string {
			t.Helper()
			return query(t, d.get(t), sql)
		},
		Quote: sqlident.Quote,
	})
}
