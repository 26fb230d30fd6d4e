// Package postgres is highwater's PostgreSQL warehouse writer.
//
// Each resolved window is one PostgreSQL transaction: the window's changes
// are COPYed into temporary staging tables, then every table is brought up
// to date by one set-based statement (the newest version per key, deletes
// included, guarded by _hw_updated so an older version never replaces a
// newer one), the optional changelog by one INSERT ... ON CONFLICT DO
// NOTHING, and the partitions' checkpoints are upserted into
// highwater_checkpoints, all before COMMIT.
//
// Several highwater members of one consumer group may write to the same
// database: they own different partitions, so their rows and checkpoints do
// not overlap, and schema changes are serialised by an advisory lock.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/redact"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/sinks"
)

// Names that live only in this writer's staging; the warehouse layout's
// names are sinks.CheckpointsTable and its neighbours.
const (
	// seqColumn orders staged versions with equal HLC by arrival (the
	// later wins); it lives only in staging tables.
	seqColumn = "_hw_seq"
)

// DefaultReconnectTimeout is how long Open and Begin keep trying to reach
// an unreachable server before they give up.
const DefaultReconnectTimeout = time.Minute

// maxIdent is PostgreSQL's identifier length limit (NAMEDATALEN-1 bytes).
// Longer names are silently truncated by the server, which could make two
// source tables one; the writer refuses them instead.
const maxIdent = 63

// sessionTimeouts are the server settings the writer gives its sessions
// unless the sink URL sets them (?lock_timeout=10s, ...).
var sessionTimeouts = []struct{ name, value string }{
	// How long a statement waits for a lock another window holds before
	// the window fails and is retried: a live member holds the fence's
	// checkpoint rows for well under a second, a frozen one indefinitely.
	{"lock_timeout", "5s"},
	// The longest statement: a MERGE of a window of millions of rows
	// takes tens of seconds; a COPY counts from its start while it waits
	// for the member to send rows.
	{"statement_timeout", "5min"},
	// A transaction whose member sends nothing for this long (frozen
	// between two statements of a window) is ended with its session; a
	// live member's gaps between a window's statements are its own work
	// on the next batch of rows, well under this.
	{"idle_in_transaction_session_timeout", "1min"},
}

// maxIdle bounds the connections kept open between windows.
const maxIdle = 4

// Writer is a PostgreSQL warehouse. It is safe for concurrent use; each
// open Tx holds its own connection.
type Writer struct {
	cfg              *pgx.ConnConfig
	schema           string
	opts             sinks.Options
	log              *zap.Logger
	reconnectTimeout time.Duration

	nonFinite atomic.Int64
	// names caches the committed name record (names.go).
	names names

	mu     sync.Mutex
	idle   []*pgx.Conn
	closed bool
}

var _ sinks.Writer = (*Writer)(nil)

// Open connects to the PostgreSQL database named by rawURL
// (postgres://user:pass@host:port/db?sslmode=...), creates the target schema,
// highwater_checkpoints and highwater_watermark if they are missing, and
// returns a Writer.
//
// highwater's own URL options, removed before the URL reaches the driver:
//   - schema=NAME or search_path=NAME[,...]: the schema of every table the
//     writer touches (the first search_path entry); default "public".
//   - reconnect_timeout=DURATION: how long Open and Begin retry an
//     unreachable server (default 1m).
//
// Every other option is pgx's (sslmode, connect_timeout, application_name,
// any server setting). The writer sets lock_timeout=5s,
// statement_timeout=5min and idle_in_transaction_session_timeout=1min on
// its sessions unless the URL gives them (0 turns one off).
func Open(ctx context.Context, rawURL string, opts sinks.Options, logger *zap.Logger) (*Writer, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	w, err := configure(rawURL, opts, logger)
	if err != nil {
		return nil, err
	}
	if err := w.ensureCatalog(ctx); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// CheckURL reports whether Open would accept rawURL, without connecting:
// `highwater config check` validates a sink exactly as run does.
func CheckURL(rawURL string) error {
	_, err := configure(rawURL, sinks.Options{}, zap.NewNop())
	return err
}

// configure parses rawURL into a Writer that has not connected yet.
func configure(rawURL string, opts sinks.Options, logger *zap.Logger) (*Writer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the whole URL, password included.
		return nil, fmt.Errorf("postgres: parsing sink URL: %w", redact.Error(err, rawURL))
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Errorf("postgres: sink URL scheme %q, want postgres://", u.Scheme)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		// url.URL.Query would silently drop the bad option, e.g. a schema
		// name with an unescaped ';'.
		return nil, fmt.Errorf("postgres: sink URL options: %w", err)
	}
	schema := "public"
	if sp := q.Get("search_path"); sp != "" {
		schema = firstSearchPathEntry(sp)
	}
	if s := q.Get("schema"); s != "" {
		if q.Has("search_path") && s != schema {
			return nil, fmt.Errorf("postgres: sink URL sets schema=%q and search_path=%q; give one", s, q.Get("search_path"))
		}
		schema = s
	}
	if err := checkIdent("schema", schema); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	w := &Writer{schema: schema, opts: opts, log: logger, reconnectTimeout: DefaultReconnectTimeout}
	if s := q.Get("reconnect_timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("postgres: sink URL option reconnect_timeout=%q: want a duration like 30s", s)
		}
		w.reconnectTimeout = d
	}
	q.Del("schema")
	q.Del("search_path")
	q.Del("reconnect_timeout")
	u.RawQuery = q.Encode()
	w.cfg, err = pgx.ParseConfig(u.String())
	if err != nil {
		// pgx's message may contain the password; it is the user's own URL,
		// but keep it out of logs anyway.
		return nil, fmt.Errorf("postgres: parsing sink URL %s: %w", u.Redacted(), err)
	}
	if !q.Has("default_query_exec_mode") {
		// Staging tables are created anew in every window, and the mirror
		// tables change shape with the feed: describe each statement
		// rather than reuse cached descriptions or prepared statements
		// (which COPY would otherwise apply to a new table of the same
		// name). A window runs a handful of statements, so this costs
		// nothing measurable.
		w.cfg.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
	}
	if w.cfg.ConnectTimeout == 0 {
		// A black-holed host would otherwise hang each attempt for the
		// kernel's TCP timeout.
		w.cfg.ConnectTimeout = 10 * time.Second
	}
	rp := w.cfg.RuntimeParams
	setDefault := func(k, v string) {
		if _, ok := rp[k]; !ok {
			rp[k] = v
		}
	}
	setDefault("application_name", "highwater")
	// A member frozen mid-window (SIGSTOP, a GC pause, a frozen VM) must
	// not hold its locks, above all the fence's checkpoint row locks, for
	// longer than it takes the group to hand its partitions to another
	// member: the server ends a statement or an idle transaction that
	// outlives these, and the new owner, which waits for a lock at most
	// lock_timeout before retrying its window, then commits. The fence
	// keeps the frozen member from committing afterwards; these only
	// bound how long it can stall the others. See docs/SINK_POSTGRES.md.
	for _, d := range sessionTimeouts {
		setDefault(d.name, d.value)
	}
	// Staging tables and the per-key sort of a window live in these; the
	// defaults (8MB, 4MB) spill a 100k-row window to disk.
	setDefault("temp_buffers", "64MB")
	setDefault("work_mem", "64MB")
	return w, nil
}

// firstSearchPathEntry returns the first schema of a search_path setting,
// unquoted.
func firstSearchPathEntry(sp string) string {
	s := strings.TrimSpace(strings.Split(sp, ",")[0])
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}

// NonFiniteDecimals returns how many ±Infinity values of DECIMAL(p,s)
// columns, which PostgreSQL's NUMERIC(p,s) cannot hold, were stored as NULL
// since Open. (NaN, and ±Infinity in unconstrained DECIMAL columns, are
// stored as they are.)
func (w *Writer) NonFiniteDecimals() int64 { return w.nonFinite.Load() }

// Schema returns the schema the writer writes to.
func (w *Writer) Schema() string { return w.schema }

// qualified returns the quoted schema-qualified name of a relation.
func (w *Writer) qualified(name string) string {
	return sqlident.Quote(w.schema) + "." + sqlident.Quote(name)
}

// ensureCatalog creates the schema, the checkpoint table and the watermark
// view if missing. It only issues CREATE for what is absent, so a role
// without CREATE privilege can run against a prepared database.
func (w *Writer) ensureCatalog(ctx context.Context) error {
	conn, err := w.acquire(ctx)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Wait for other members' schema changes past lock_timeout (up to
		// statement_timeout): a member must not fail to start because
		// another one's window is creating tables.
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = 0"); err != nil {
			return fmt.Errorf("lifting lock_timeout: %w", err)
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "highwater ddl "+w.schema); err != nil {
			return fmt.Errorf("taking the schema lock: %w", err)
		}
		var hasSchema, hasCP, hasWM bool
		err := tx.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
			to_regclass($2) IS NOT NULL, to_regclass($3) IS NOT NULL`,
			w.schema, w.qualified(sinks.CheckpointsTable), w.qualified(sinks.WatermarkView)).Scan(&hasSchema, &hasCP, &hasWM)
		if err != nil {
			return fmt.Errorf("reading the catalog: %w", err)
		}
		if !hasSchema {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA "+sqlident.Quote(w.schema)); err != nil {
				return fmt.Errorf("creating schema %s: %w", sqlident.Quote(w.schema), err)
			}
		}
		cp := w.qualified(sinks.CheckpointsTable)
		if !hasCP {
			_, err := tx.Exec(ctx, `CREATE TABLE `+cp+` (
				consumer_group TEXT NOT NULL,
				topic TEXT NOT NULL,
				"partition" INTEGER NOT NULL,
				resolved NUMERIC(38,10) NOT NULL,
				next_offset BIGINT NOT NULL,
				applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
				PRIMARY KEY (consumer_group, topic, "partition"))`)
			if err != nil {
				return fmt.Errorf("creating %s: %w", cp, err)
			}
		}
		if !hasWM {
			// One row per group and topic, and one feed-wide row per group
			// (topic NULL): the HLC through which every partition is applied.
			_, err := tx.Exec(ctx, `CREATE VIEW `+w.qualified(sinks.WatermarkView)+` AS
				SELECT consumer_group, topic, min(resolved) AS resolved, count(*) AS partitions,
					max(applied_at) AS applied_at
				FROM `+cp+`
				GROUP BY GROUPING SETS ((consumer_group, topic), (consumer_group))`)
			if err != nil {
				return fmt.Errorf("creating %s: %w", w.qualified(sinks.WatermarkView), err)
			}
		}
		if err := w.ensureDeadLetterTable(ctx, tx); err != nil {
			return err
		}
		if err := w.ensureFeeds(ctx, tx); err != nil {
			return err
		}
		if err := w.ensureNameRecord(ctx, tx); err != nil {
			return err
		}
		return w.ensureAsOf(ctx, tx)
	})
	w.release(conn)
	if err != nil {
		return fmt.Errorf("postgres: preparing schema %s: %w", sqlident.Quote(w.schema), err)
	}
	return nil
}

// Checkpoints returns every checkpoint stored for group.
func (w *Writer) Checkpoints(ctx context.Context, group string) ([]sinks.Checkpoint, error) {
	var cps []sinks.Checkpoint
	err := w.withConn(ctx, func(conn *pgx.Conn) error {
		cps = cps[:0]
		rows, err := conn.Query(ctx, `SELECT topic, "partition", resolved::text, next_offset FROM `+
			w.qualified(sinks.CheckpointsTable)+` WHERE consumer_group = $1 ORDER BY topic, "partition"`, group)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			cp := sinks.Checkpoint{Group: group}
			var resolved string
			if err := rows.Scan(&cp.Topic, &cp.Partition, &resolved, &cp.NextOffset); err != nil {
				return err
			}
			if cp.Resolved, err = hlc.Parse(resolved); err != nil {
				return fmt.Errorf("topic %q partition %d: stored resolved %q: %w", cp.Topic, cp.Partition, resolved, err)
			}
			cps = append(cps, cp)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: reading checkpoints of group %q from %s: %w", group, w.qualified(sinks.CheckpointsTable), err)
	}
	return cps, nil
}

// Close closes the writer's idle connections. Connections of open
// transactions are closed when those end.
func (w *Writer) Close() error {
	w.mu.Lock()
	idle := w.idle
	w.idle, w.closed = nil, true
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range idle {
		_ = c.Close(ctx)
	}
	return nil
}

// withConn runs fn on a connection. A connection that was idle may have
// died with a server restart; if fn fails because of that, fn runs once
// more on a fresh connection.
func (w *Writer) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	for attempt := 0; ; attempt++ {
		conn, err := w.acquire(ctx)
		if err != nil {
			return err
		}
		err = fn(conn)
		broken := conn.IsClosed()
		w.release(conn)
		if err != nil && broken && attempt == 0 && ctx.Err() == nil {
			w.log.Info("postgres connection lost, retrying on a new one", zap.Error(err))
			continue
		}
		return err
	}
}

// acquire returns an idle connection or a new one. New connections are
// retried with backoff while the server is unreachable or starting up, for
// up to the reconnect timeout.
func (w *Writer) acquire(ctx context.Context) (*pgx.Conn, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, errors.New("postgres: writer is closed")
	}
	if n := len(w.idle); n > 0 {
		c := w.idle[n-1]
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		if !c.IsClosed() {
			return c, nil
		}
	} else {
		w.mu.Unlock()
	}
	deadline := time.Now().Add(w.reconnectTimeout)
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		conn, err := pgx.ConnectConfig(ctx, w.cfg)
		if err == nil {
			registerFastNumeric(conn)
			if attempt > 1 {
				w.log.Info("postgres reconnected", zap.Int("attempts", attempt))
			}
			return conn, nil
		}
		if !retryableConnectError(err) || ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			return nil, fmt.Errorf("postgres: connecting to %s:%d/%s (attempt %d): %w",
				w.cfg.Host, w.cfg.Port, w.cfg.Database, attempt, err)
		}
		w.log.Warn("postgres unreachable, retrying", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("postgres: connecting: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// markLockTimeout marks a lock wait that lock_timeout ended (SQLSTATE
// 55P03, lock_not_available) as sinks.ErrLockTimeout: the window waited for
// another member's transaction and is retried without counting it as a
// failure.
func markLockTimeout(err *error) {
	var pe *pgconn.PgError
	if *err != nil && !errors.Is(*err, sinks.ErrLockTimeout) && errors.As(*err, &pe) && pe.Code == "55P03" {
		*err = fmt.Errorf("%w: %w", sinks.ErrLockTimeout, *err)
	}
}

// retryableConnectError reports whether a failed connect may succeed later:
// network errors and a server that is starting, stopping or full, but not
// authentication failures or a missing database.
func retryableConnectError(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "08", "53", "57": // connection exception, insufficient resources, operator intervention
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		// A ConnectError wrapping a PgError was handled above; the rest are
		// network-level (refused, reset, timeout).
		return true
	}
	return pgconn.Timeout(err)
}

// release returns a connection to the idle set if it is healthy and outside
// any transaction, and closes it otherwise.
func (w *Writer) release(c *pgx.Conn) {
	if c.IsClosed() {
		return
	}
	if c.PgConn().TxStatus() == 'I' {
		w.mu.Lock()
		if !w.closed && len(w.idle) < maxIdle {
			w.idle = append(w.idle, c)
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
