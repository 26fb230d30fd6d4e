// Package duckdb is highwater's DuckDB warehouse writer.
//
// Each resolved window is one DuckDB transaction on one connection. Write
// appends the window's row versions with DuckDB's Appender into TEMP staging
// tables (one per table version seen in the window) inside that
// transaction; Commit then evolves the warehouse tables, applies each table
// with one set-based MERGE (newest version per key, never over a newer
// _hw_updated), copies the versions into the changelog with INSERT ... ON
// CONFLICT DO NOTHING, upserts the checkpoints, drops the staging tables and
// commits. Nothing of a window is visible before Commit, and a rolled back
// or failed window leaves nothing behind, staging tables included.
//
// The warehouse layout (table names, columns, type mapping) is described in
// docs/SINK_DUCKDB.md.
package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"

	duck "github.com/duckdb/duckdb-go/v2"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/redact"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/sinks"
)

// Names that live only in this writer's staging; the warehouse layout's
// names are sinks.CheckpointsTable and its neighbours.
const (
	// seqColumn orders staged rows with equal HLC by arrival; it lives
	// only in staging tables.
	seqColumn = "_hw_seq"
	// stagePrefix names the TEMP staging tables.
	stagePrefix = "_hw_stage_"
)

// Writer is a DuckDB warehouse. It implements sinks.Writer. A Writer runs
// one window transaction at a time; DuckDB allows a single writing process
// per database file.
type Writer struct {
	db     *sql.DB
	opts   sinks.Options
	logger *zap.Logger
	// catalog is the quoted name of the database's catalog, used to qualify
	// warehouse tables so that no TEMP table can shadow them.
	catalog string

	nonFinite atomic.Int64
	stageSeq  atomic.Int64
	// names is the committed record of where each source table lives.
	names *names

	// locks are the database's fence locks, shared with the other Writers
	// of this process on the same file; dropLocks releases them at Close.
	locks     *partitionLocks
	dropLocks func()
}

var _ sinks.Writer = (*Writer)(nil)

// withoutQuery is rawURL for error messages: DuckDB options may carry
// tokens (MotherDuck, S3 secrets), so the query never reaches a log, and
// a password in the user info is redacted.
func withoutQuery(rawURL string) string {
	if i := strings.IndexByte(rawURL, '?'); i >= 0 {
		return redact.URL(rawURL[:i]) + "?…"
	}
	return redact.URL(rawURL)
}

// Open opens the warehouse named by a sink URL:
//
//	duckdb:///abs/path/warehouse.duckdb   absolute path
//	duckdb://rel/path/warehouse.duckdb    path relative to the working directory
//	duckdb://:memory:                     in-memory database (tests)
//
// A query string is passed to DuckDB as configuration options, e.g.
// duckdb:///data/wh.duckdb?threads=2&memory_limit=2GB. Percent-escapes in
// the path are decoded.
func Open(ctx context.Context, rawURL string, opts sinks.Options, logger *zap.Logger) (*Writer, error) {
	dsn, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return OpenPath(ctx, dsn, opts, logger)
}

// CheckURL validates a duckdb:// sink URL as Open would, short of opening
// the database (`highwater config check`).
func CheckURL(rawURL string) error {
	_, err := ParseURL(rawURL)
	return err
}

// ParseURL returns the database path, with DuckDB options as its query, of
// a duckdb:///abs/path.duckdb?option=value sink URL; it is what Open
// opens, and lets `highwater config check` validate a sink as run does.
func ParseURL(rawURL string) (string, error) {
	const scheme = "duckdb:"
	if len(rawURL) < len(scheme) || !strings.EqualFold(rawURL[:len(scheme)], scheme) {
		return "", fmt.Errorf("duckdb sink URL %q: scheme must be duckdb", withoutQuery(rawURL))
	}
	rest := strings.TrimPrefix(rawURL[len(scheme):], "//")
	path, query, _ := strings.Cut(rest, "?")
	path, err := url.PathUnescape(path)
	if err != nil {
		return "", fmt.Errorf("duckdb sink URL %q: path: %w", withoutQuery(rawURL), err)
	}
	if path == "" {
		return "", fmt.Errorf("duckdb sink URL %q: no database path (want duckdb:///abs/path.duckdb)", withoutQuery(rawURL))
	}
	if query != "" {
		if _, err := url.ParseQuery(query); err != nil {
			return "", fmt.Errorf("duckdb sink URL %q: options: %w", withoutQuery(rawURL), err)
		}
		path += "?" + query
	}
	return path, nil
}

// Open opens (creating if needed) the DuckDB database at path, which may be
// ":memory:" and may carry DuckDB options after a '?'. It creates
// highwater's checkpoint table and watermark view. A database file held by
// another process gives an error saying so.
func OpenPath(ctx context.Context, path string, opts sinks.Options, logger *zap.Logger) (*Writer, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if path == "" {
		return nil, errors.New("open duckdb: empty path")
	}
	file, _, _ := strings.Cut(path, "?")
	connector, err := duck.NewConnector(path, nil)
	if err != nil {
		if strings.Contains(err.Error(), "Could not set lock on file") || strings.Contains(err.Error(), "Conflicting lock") {
			return nil, fmt.Errorf("open duckdb: database file %s is locked by another highwater or DuckDB process: %w", file, err)
		}
		return nil, fmt.Errorf("open duckdb %s: %w", file, err)
	}
	w := &Writer{
		db:     sql.OpenDB(connector),
		opts:   opts,
		logger: logger,
	}
	w.locks, w.dropLocks = openLocks(file)
	if err := w.init(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open duckdb %s: %w", file, err)
	}
	// The memory DuckDB may take is outside Go's heap: say what it is
	// (--memory-limit sets it through the URL's memory_limit and threads).
	var memLimit, threads string
	if err := w.db.QueryRowContext(ctx, `SELECT current_setting('memory_limit'), CAST(current_setting('threads') AS VARCHAR)`).Scan(&memLimit, &threads); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open duckdb %s: read settings: %w", file, err)
	}
	logger.Info("duckdb warehouse open", zap.String("path", file), zap.Bool("changelog", opts.Changelog),
		zap.String("memory_limit", memLimit), zap.String("threads", threads))
	return w, nil
}

func (w *Writer) init(ctx context.Context) error {
	var name string
	if err := w.db.QueryRowContext(ctx, `SELECT current_database()`).Scan(&name); err != nil {
		return fmt.Errorf("current database: %w", err)
	}
	w.catalog = sqlident.Quote(name)
	ddl := []string{
		`CREATE TABLE IF NOT EXISTS ` + w.qualify(sinks.CheckpointsTable) + ` (
	consumer_group VARCHAR NOT NULL,
	topic VARCHAR NOT NULL,
	"partition" INTEGER NOT NULL,
	resolved DECIMAL(38,10) NOT NULL,
	next_offset BIGINT NOT NULL,
	applied_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (consumer_group, topic, "partition"))`,
		// One row per (group, topic) and one feed-wide row per group
		// (topic NULL): the HLC through which every partition is applied.
		`CREATE OR REPLACE VIEW ` + w.qualify(sinks.WatermarkView) + ` AS
SELECT consumer_group, topic, min(resolved) AS resolved, count(*) AS partitions, max(applied_at) AS applied_at
FROM ` + w.qualify(sinks.CheckpointsTable) + `
GROUP BY GROUPING SETS ((consumer_group, topic), (consumer_group))`,
		w.deadLetterDDL(),
	}
	ddl = append(ddl, w.feedsDDL()...)
	for _, q := range ddl {
		if _, err := w.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create highwater tables: %w", err)
		}
	}
	if err := w.initNames(ctx); err != nil {
		return err
	}
	return w.initAsOf(ctx)
}

// qualify returns the fully qualified, quoted name of a warehouse table.
func (w *Writer) qualify(table string) string {
	return w.catalog + `.main.` + sqlident.Quote(table)
}

// DB returns the database handle for reading the warehouse in the same
// process (DuckDB lets only one process open the file). Write through Begin.
func (w *Writer) DB() *sql.DB { return w.db }

// NonFiniteDecimals returns how many NaN or ±Infinity values, which a
// DuckDB DECIMAL cannot hold, were stored as NULL since Open.
func (w *Writer) NonFiniteDecimals() int64 { return w.nonFinite.Load() }

// Checkpoints returns every checkpoint stored for group.
func (w *Writer) Checkpoints(ctx context.Context, group string) ([]sinks.Checkpoint, error) {
	rows, err := w.db.QueryContext(ctx, `SELECT topic, "partition", CAST(resolved AS VARCHAR), next_offset FROM `+
		w.qualify(sinks.CheckpointsTable)+` WHERE consumer_group = ? ORDER BY topic, "partition"`, group)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints of group %q: %w", group, err)
	}
	defer rows.Close()
	var cps []sinks.Checkpoint
	for rows.Next() {
		cp := sinks.Checkpoint{Group: group}
		var resolved string
		if err := rows.Scan(&cp.Topic, &cp.Partition, &resolved, &cp.NextOffset); err != nil {
			return nil, fmt.Errorf("read checkpoints of group %q: %w", group, err)
		}
		if cp.Resolved, err = hlc.Parse(resolved); err != nil {
			return nil, fmt.Errorf("read checkpoints of group %q: topic %q partition %d: %w", group, cp.Topic, cp.Partition, err)
		}
		cps = append(cps, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read checkpoints of group %q: %w", group, err)
	}
	return cps, nil
}

// Begin starts the transaction of one resolved window on a connection of
// its own.
func (w *Writer) Begin(ctx context.Context) (sinks.Tx, error) {
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin window: connection: %w", err)
	}
	// An explicit BEGIN (not database/sql's Tx) keeps the connection free
	// for the Appender, which needs the raw driver connection.
	if _, err := conn.ExecContext(ctx, `BEGIN TRANSACTION`); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("begin window: %w", err)
	}
	return &Tx{w: w, conn: conn, tables: map[string]*tableState{}, cps: map[cpKey]sinks.Checkpoint{}}, nil
}

// Close closes the database. An open Tx is abandoned.
func (w *Writer) Close() error {
	w.dropLocks()
	// sql.DB.Close closes the connector (it is an io.Closer), which
	// closes the database and releases the file lock.
	if err := w.db.Close(); err != nil {
		return fmt.Errorf("close duckdb: %w", err)
	}
	return nil
}
