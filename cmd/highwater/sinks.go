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

// asWriter turns a writer package's Open, which returns its own *Writer,
// into an opener.
func asWriter[W sinks.Writer](open func(context.Context, string, sinks.Options, *zap.Logger) (W, error)) opener {
	return func(ctx context.Context, rawURL string, opts sinks.Options, log *zap.Logger) (sinks.Writer, error) {
		w, err := open(ctx, rawURL, opts, log)
		if err != nil {
			return nil, err // not a typed nil in a non-nil interface
		}
		return w, nil
	}
}

// warehouse is one kind of --sink: how to check its URL without connecting
// (config check validates exactly what run would), how to open it, and
// whether it writes change files (every version of every key: a changelog
// by nature) rather than mirror tables.
type warehouse struct {
	check       func(rawURL string) error
	open        opener
	changeFiles bool
}

// warehouses maps a --sink URL scheme to its warehouse writer. Every writer
// package has Open(ctx, rawURL, opts, log) and CheckURL(rawURL): adding a
// warehouse is one sub-package of sinks and one line here.
var warehouses = map[string]warehouse{
	"duckdb":     {check: duckdb.CheckURL, open: asWriter(duckdb.Open)},
	"postgres":   {check: postgres.CheckURL, open: asWriter(postgres.Open)},
	"postgresql": {check: postgres.CheckURL, open: asWriter(postgres.Open)},
	"file":       {check: files.CheckURL, open: asWriter(files.Open), changeFiles: true},
	"s3":         {check: files.CheckURL, open: asWriter(files.Open), changeFiles: true},
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
