package main

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/internal/redact"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/duckdb"
	"github.com/highwater-dev/highwater/sinks/files"
	"github.com/highwater-dev/highwater/sinks/postgres"
)

type opener func(ctx context.Context, rawURL string, opts sinks.Options, log *zap.Logger) (sinks.Writer, error)

// writers maps a --sink URL scheme to its warehouse writer. Adding a
// warehouse is one sub-package of sinks and one line here.
var writers = map[string]opener{
	"duckdb":     openDuckDB,
	"postgres":   openPostgres,
	"postgresql": openPostgres,
	"file":       files.OpenSink, "s3": files.OpenSink,
}

func openDuckDB(ctx context.Context, rawURL string, opts sinks.Options, log *zap.Logger) (sinks.Writer, error) {
	return duckdb.OpenURL(ctx, rawURL, opts, log)
}

func openPostgres(ctx context.Context, rawURL string, opts sinks.Options, log *zap.Logger) (sinks.Writer, error) {
	return postgres.Open(ctx, rawURL, opts, log)
}

// writesChangeFiles reports whether the sink at rawURL writes change files
// (every version of every key) rather than mirror tables.
func writesChangeFiles(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "file", "s3":
		return true
	}
	return false
}

func openWriter(ctx context.Context, rawURL string, opts sinks.Options, log *zap.Logger) (sinks.Writer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the whole URL, password included.
		return nil, fmt.Errorf("sink %s: not a valid URL: %w", config.RedactURL(rawURL), redact.Error(err, rawURL))
	}
	open, ok := writers[strings.ToLower(u.Scheme)]
	if !ok {
		schemes := make([]string, 0, len(writers))
		for s := range writers {
			schemes = append(schemes, s+"://")
		}
		sort.Strings(schemes)
		return nil, fmt.Errorf("sink %q: unknown scheme %q (supported: %s)", config.RedactURL(rawURL), u.Scheme, strings.Join(schemes, ", "))
	}
	w, err := open(ctx, rawURL, opts, log)
	if err != nil {
		// Writers and their drivers may quote the URL (or its password)
		// in their errors.
		return nil, fmt.Errorf("open sink %s: %w", config.RedactURL(rawURL), redact.Error(err, rawURL))
	}
	return w, nil
}
