package files

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/redact"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// Names of highwater's own objects beside the tables' directories.
const (
	// internalDir holds manifests, checkpoint objects and the table
	// catalog; readers of the data skip it.
	internalDir = "_highwater"
	// DeadLetterDir holds dead letters as NDJSON, per group.
	DeadLetterDir = "_dlq"
)

// Format is the data files' format.
type Format string

// Data file formats.
const (
	Parquet Format = "parquet"
	NDJSON  Format = "ndjson"
)

// Config configures a Writer. The zero value of each field but Root means
// its default.
type Config struct {
	// Root is where files go: a local directory path, or an
	// s3://bucket/prefix URL.
	Root string
	// S3Region, S3Endpoint and S3PathStyle configure an s3:// Root. The
	// endpoint overrides AWS's (MinIO, Cloudflare R2, GCS interoperability);
	// credentials come from the standard AWS chain (environment, shared
	// files, instance role).
	S3Region, S3Endpoint string
	S3PathStyle          bool
	// Format of the data files; default Parquet.
	Format Format
	// Compression: for Parquet snappy (default), zstd, gzip, lz4 or none;
	// for NDJSON none (default), gzip or zstd.
	Compression string
	// MaxFileSize is the size at which a data file is closed and the next
	// part begun; default 128 MiB. Sizes are approximate (Parquet's are
	// estimated before the last row group is compressed).
	MaxFileSize int64
	// MemoryLimit bounds the window's changes held in memory before they
	// are spilled to sort runs on disk; default 64 MiB.
	MemoryLimit int64
	// TempDir holds sort runs and files being written; default the
	// directory's _highwater/tmp, or the system's temp directory for S3.
	TempDir string
}

// Default sizes.
const (
	DefaultMaxFileSize = 128 << 20
	DefaultMemoryLimit = 64 << 20
)

// Writer writes windows of changes as files. It implements sinks.Writer.
// A Writer runs one window transaction at a time.
type Writer struct {
	cfg    Config
	st     store
	tmp    string
	ownTmp bool
	logger *zap.Logger
	codec  compressor

	mu sync.Mutex
	// applied is the newest checkpoint known per partition of a group:
	// from the checkpoint objects read by Checkpoints and the windows
	// committed since. Rows at or below its Resolved were in an earlier
	// window, and so were dead letters below its NextOffset.
	applied map[partKey]sinks.Checkpoint
	// stale are checkpoint objects of partition sets with a window left
	// half-written by a crash, found by Checkpoints; Commit of a window
	// that took over their partitions deletes their files.
	stale map[string]*stateObject
	// others are the complete checkpoint objects of the group's other
	// partition sets, as Checkpoints last read them; Commit deletes those
	// its window supersedes, so that they do not pile up over rebalances.
	others map[string]*stateObject
	// catalog is the table catalog entry last written per table.
	catalog map[string]string
	// dirs is each table's directory, dirOwner each directory's table
	// (names.go); only the window's Tx uses them.
	dirs, dirOwner map[string]string
}

type partKey struct {
	group, topic string
	partition    int32
}

var _ sinks.Writer = (*Writer)(nil)

// Open opens the writer named by a sink URL:
//
//	file:///abs/dir?format=parquet&compression=zstd
//	file://rel/dir                                  relative to the working directory
//	s3://bucket/prefix?region=eu-west-1
//	s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1   MinIO, R2, GCS
//
// Query parameters: format (parquet, ndjson), compression, max_file_size
// (bytes, or with KB/MB/GB/KiB/MiB/GiB), memory (sort buffer size),
// tmpdir; for s3 also region, endpoint and path_style (default true when
// an endpoint is given). sinks.Options.Changelog has no effect: files
// always hold every version.
func Open(ctx context.Context, rawURL string, _ sinks.Options, logger *zap.Logger) (*Writer, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return OpenConfig(ctx, cfg, logger)
}

// CheckURL validates a file:// or s3:// sink URL as Open would, short of
// touching the directory or the bucket (`highwater config check`).
func CheckURL(rawURL string) error {
	_, err := ParseURL(rawURL)
	return err
}

// ParseURL turns a file:// or s3:// sink URL into a Config.
func ParseURL(rawURL string) (Config, error) {
	var cfg Config
	// Errors show the URL redacted: it may hold a password or a key.
	shown := redact.URL(rawURL)
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return cfg, fmt.Errorf("files sink URL %q: want file:///dir or s3://bucket/prefix", shown)
	}
	p, query, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return cfg, fmt.Errorf("files sink URL %q: options: %w", shown, err)
	}
	if p, err = url.PathUnescape(p); err != nil {
		return cfg, fmt.Errorf("files sink URL %q: path: %w", shown, err)
	}
	switch strings.ToLower(scheme) {
	case "file":
		if p == "" {
			return cfg, fmt.Errorf("files sink URL %q: no directory (want file:///abs/dir)", shown)
		}
		cfg.Root = p
	case "s3":
		bucket, _, _ := strings.Cut(p, "/")
		if bucket == "" {
			return cfg, fmt.Errorf("files sink URL %q: no bucket (want s3://bucket/prefix)", shown)
		}
		cfg.Root = "s3://" + p
	default:
		return cfg, fmt.Errorf("files sink URL %q: scheme must be file or s3", shown)
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "format":
			cfg.Format = Format(strings.ToLower(v))
		case "compression":
			cfg.Compression = strings.ToLower(v)
		case "max_file_size":
			if cfg.MaxFileSize, err = parseSize(v); err != nil {
				return cfg, fmt.Errorf("files sink URL %q: max_file_size: %w", shown, err)
			}
		case "memory":
			if cfg.MemoryLimit, err = parseSize(v); err != nil {
				return cfg, fmt.Errorf("files sink URL %q: memory: %w", shown, err)
			}
		case "tmpdir":
			cfg.TempDir = v
		case "region":
			cfg.S3Region = v
		case "endpoint":
			cfg.S3Endpoint = v
			if _, set := q["path_style"]; !set {
				cfg.S3PathStyle = true
			}
		case "path_style":
			if cfg.S3PathStyle, err = strconv.ParseBool(v); err != nil {
				return cfg, fmt.Errorf("files sink URL %q: path_style: %w", shown, err)
			}
		default:
			return cfg, fmt.Errorf("files sink URL %q: unknown option %q (known: format, compression, max_file_size, memory, tmpdir, region, endpoint, path_style)", shown, k)
		}
	}
	// What Open would refuse, refused here: `highwater config check`
	// validates a sink with ParseURL alone.
	format := cfg.Format
	if format == "" {
		format = Parquet
	}
	if _, err := newCompressor(format, cfg.Compression); err != nil {
		return cfg, fmt.Errorf("files sink URL %q: %w", shown, err)
	}
	return cfg, nil
}

// parseSize parses "1048576", "64MB", "64MiB", "1GB".
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}
	mult := int64(1)
	upper := strings.ToUpper(s)
	for _, u := range units {
		if strings.HasSuffix(upper, u.suffix) {
			mult, s = u.mult, strings.TrimSpace(s[:len(s)-len(u.suffix)])
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return n * mult, nil
}

// Open opens a writer on cfg.Root, creating the directory if needed.
func OpenConfig(ctx context.Context, cfg Config, logger *zap.Logger) (*Writer, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if cfg.Format == "" {
		cfg.Format = Parquet
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if cfg.MemoryLimit <= 0 {
		cfg.MemoryLimit = DefaultMemoryLimit
	}
	codec, err := newCompressor(cfg.Format, cfg.Compression)
	if err != nil {
		return nil, err
	}
	w := &Writer{cfg: cfg, logger: logger, codec: codec, applied: map[partKey]sinks.Checkpoint{}, stale: map[string]*stateObject{}, others: map[string]*stateObject{}, catalog: map[string]string{},
		dirs: map[string]string{}, dirOwner: map[string]string{}}
	if rest, ok := strings.CutPrefix(cfg.Root, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		s3s, err := newS3Store(ctx, s3Config{bucket: bucket, prefix: prefix, region: cfg.S3Region, endpoint: cfg.S3Endpoint, pathStyle: cfg.S3PathStyle})
		if err != nil {
			return nil, fmt.Errorf("open files sink %s: %w", cfg.Root, err)
		}
		ok, err := s3s.probeConditional(ctx)
		if err != nil {
			return nil, fmt.Errorf("open files sink %s: probing conditional writes: %w", cfg.Root, err)
		}
		if !ok {
			s3s.unconditional = true
			logger.Error("files sink: the S3 store does not honour conditional writes (If-None-Match); "+
				"a member that lost its partitions can still commit a window (see docs/SINK_FILES.md)", zap.String("root", cfg.Root))
		}
		w.st = s3s
		w.tmp = cfg.TempDir
	} else {
		ds, err := newDirStore(cfg.Root)
		if err != nil {
			return nil, fmt.Errorf("open files sink: %w", err)
		}
		w.st = ds
		w.tmp = cmp.Or(cfg.TempDir, ds.tmp)
	}
	// A private directory per Writer: a crashed process's leftovers are
	// never mistaken for this one's, and Close removes it whole.
	if w.tmp, err = os.MkdirTemp(w.tmp, "hw-"); err != nil {
		return nil, fmt.Errorf("open files sink %s: temp directory: %w", cfg.Root, err)
	}
	w.ownTmp = true
	w.cleanTemp()
	logger.Info("files sink open", zap.String("root", cfg.Root), zap.String("format", string(cfg.Format)),
		zap.String("compression", codec.name), zap.Int64("max_file_size", cfg.MaxFileSize))
	return w, nil
}

// cleanTemp removes temp directories of earlier processes in a directory
// sink's own temp area (they died with kill -9).
func (w *Writer) cleanTemp() {
	ds, ok := w.st.(*dirStore)
	if !ok || w.cfg.TempDir != "" {
		return
	}
	entries, err := os.ReadDir(ds.tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := ds.tmp + string(os.PathSeparator) + e.Name()
		if p == w.tmp {
			continue
		}
		// Another live Writer on the same directory would own a
		// younger one; only remove what is clearly abandoned.
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
			_ = os.RemoveAll(p)
		}
	}
}

// Close releases the writer's temporary files. An open Tx is abandoned.
func (w *Writer) Close() error {
	if w.ownTmp {
		if err := os.RemoveAll(w.tmp); err != nil {
			return fmt.Errorf("close files sink: %w", err)
		}
	}
	return nil
}

// Location returns where the object at key (relative to the root) is: a
// local path or an s3:// URL. Location("") is the root.
func (w *Writer) Location(key string) string { return w.st.location(key) }

// Begin starts a window.
func (w *Writer) Begin(ctx context.Context) (sinks.Tx, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("begin window: %w", err)
	}
	// The temp directory may have been removed under a long-idle writer
	// (another process cleans abandoned ones).
	if err := os.MkdirAll(w.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("begin window: %w", err)
	}
	return &Tx{w: w, tables: map[string]*tableWindow{}, cps: map[partKey]sinks.Checkpoint{}}, nil
}

// Object layout. Every name is derived from the window (its resolved HLC and
// the set of partitions it checkpoints), so that a window written again
// produces the same names.

// escape makes a table or group name one safe path segment, as CockroachDB
// makes a table name a Kafka topic name.
func escape(name string) string {
	if name == "" {
		return "_"
	}
	return model.SQLNameToKafkaName(name)
}

// hlcName renders an HLC fixed-width, so that names sort by HLC.
func hlcName(h hlc.Timestamp) string {
	return fmt.Sprintf("%019d.%010d", h.WallTime, h.Logical)
}

// datePath is the Hive-style partition of a window by its resolved time.
func datePath(h hlc.Timestamp) string {
	return h.Time().Format("date=2006-01-02/hour=15")
}

func stateKey(group, partset string) string {
	return internalDir + "/checkpoints/" + escape(group) + "/" + partset + ".json"
}

func manifestKey(group, partset string, resolved hlc.Timestamp) string {
	return internalDir + "/manifests/" + escape(group) + "/" + partset + "/" + hlcName(resolved) + ".json"
}

// catalogKey names the catalog entry of the table whose directory is dir.
func catalogKey(dir string) string {
	return internalDir + "/tables/" + dir + ".json"
}

// partsetID names the set of partitions a window checkpoints.
func partsetID(cps []sinks.Checkpoint) string {
	h := sha256.New()
	for _, cp := range cps {
		fmt.Fprintf(h, "%s\x00%d\x00", cp.Topic, cp.Partition)
	}
	return "p" + hex.EncodeToString(h.Sum(nil)[:8])
}
