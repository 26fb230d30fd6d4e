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

// warehouse is one kind of --sink: how to check its URL without connecting
// (config check validates exactly what run would), how to open it, and
// whether it writes change files (every version of every key: a changelog
// by nature) rather than mirror tables.
type warehouse struct {
	check       func(rawURL string) error
	open        opener
	changeFiles bool
}

// warehouses maps a --sink URL scheme to its warehouse writer. Adding a
// warehouse is one sub-package of sinks and one line here.
var warehouses = map[string]warehouse{
	"duckdb":     {check: checkDuckDB, open: openDuckDB},
	"postgres":   {check: postgres.CheckURL, open: openPostgres},
	"postgresql": {check: postgres.CheckURL, open: openPostgres},
	"file":       {check: checkFiles, open: files.OpenSink, changeFiles: true},
	"s3":         {check: checkFiles, open: files.OpenSink, changeFiles: true},
}

func openDuckDB(ctx context.Context, rawURL string, opts sinks.Options, log *zap.Logger) (sinks.Writer, error) {
	return duckdb.OpenURL(ctx, rawURL, opts, log)
}

func checkDuckDB(rawURL string) error {
	_, err := duckdb.ParseURL(rawURL)
	return err
}

func openPostgres(ctx context.Context, rawURL string, opts sinks.Options, log *zap.Logger) (sinks.Writer, error) {
	return postgres.Open(ctx, rawURL, opts, log)
}

func checkFiles(rawURL string) error {
	_, err := files.ParseURL(rawURL)
	return err
}

// lookupSink returns the warehouse of a --sink URL by its scheme.
func lookupSink(rawURL string) (warehouse, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the whole URL, password included.
		return warehouse{}, fmt.Errorf("sink %s: not a valid URL: %w", config.RedactURL(rawURL), redact.Error(err, rawURL))
	}
	wh, ok := warehouses[strings.ToLower(u.Scheme)]
	if !ok {
		schemes := make([]string, 0, len(warehouses))
		for s := range warehouses {
			schemes = append(schemes, s+"://")
		}
		sort.Strings(schemes)
		return warehouse{}, fmt.Errorf("sink %q: unknown scheme %q (supported: %s)", config.RedactURL(rawURL), u.Scheme, strings.Join(schemes, ", "))
	}
	return wh, nil
}

// checkSink validates a --sink URL as opening it would, short of
// connecting.
func checkSink(rawURL string) error {
	wh, err := lookupSink(rawURL)
	if err != nil {
		return err
	}
	if err := wh.check(rawURL); err != nil {
		return fmt.Errorf("sink %s: %w", config.RedactURL(rawURL), redact.Error(err, rawURL))
	}
	return nil
}

// writesChangeFiles reports whether the sink at rawURL writes change files
// (every version of every key) rather than mirror tables.
func writesChangeFiles(rawURL string) bool {
	wh, err := lookupSink(rawURL)
	return err == nil && wh.changeFiles
}

func openWriter(ctx context.Context, rawURL string, opts sinks.Options, log *zap.Logger) (sinks.Writer, error) {
	wh, err := lookupSink(rawURL)
	if err != nil {
		return nil, err
	}
	w, err := wh.open(ctx, rawURL, opts, log)
	if err != nil {
		// Writers and their drivers may quote the URL (or its password)
		// in their errors.
		return nil, fmt.Errorf("open sink %s: %w", config.RedactURL(rawURL), redact.Error(err, rawURL))
	}
	return w, nil
}
