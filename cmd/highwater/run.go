package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/metrics"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

func runCmd(ctx context.Context, args []string, stderr io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fmt.Fprintf(stderr, "Usage: highwater run [flags]\n\nEvery flag is also a YAML field (--buffer-dir -> buffer_dir) and an env var (HIGHWATER_BUFFER_DIR).\nPrecedence: flags > env > --config file > defaults.\n\n%s", config.Usage())
			return flag.ErrHelp
		}
	}
	cfg, err := config.Load(args, os.Getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // nothing useful to do on a failed sync at exit
	return runPipeline(ctx, cfg, log, nil)
}

// runPipeline wires registry, decoder, buffer, writer and processor for cfg
// and runs until ctx ends, StopAt is reached, or an error. started, if not
// nil, receives the processor once it exists (the demo shows its progress).
func runPipeline(ctx context.Context, cfg config.Config, log *zap.Logger, started func(*processor.Processor)) error {
	stopAt, _ := cfg.StopAtHLC()
	budget, _ := cfg.Budget()

	regOpts := []schemas.RegistryOption{schemas.WithLogger(log)}
	if cfg.RegistryUser != "" {
		regOpts = append(regOpts, schemas.WithBasicAuth(cfg.RegistryUser, cfg.RegistryPassword))
	}
	reg, err := schemas.NewRegistry(cfg.Registry, regOpts...)
	if err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	buf, err := buffer.Open(buffer.Options{Dir: cfg.BufferDir, DiskBudget: budget, Logger: log})
	if err != nil {
		return fmt.Errorf("open buffer %s: %w", cfg.BufferDir, err)
	}
	defer buf.Close()
	w, err := openWriter(ctx, cfg.Sink, sinks.Options{Changelog: cfg.Changelog}, log)
	if err != nil {
		return err
	}
	defer w.Close()

	proc, err := processor.New(processor.Config{
		Brokers:          cfg.Brokers,
		Topics:           cfg.Topics,
		Group:            cfg.Group,
		Decoder:          schemas.NewDecoder(reg),
		Buffer:           buf,
		Writer:           w,
		Changelog:        cfg.Changelog,
		StopAt:           stopAt,
		SessionTimeout:   cfg.SessionTimeout,
		RebalanceTimeout: cfg.RebalanceTimeout,
		StartupTimeout:   cfg.StartupTimeout,
		Logger:           log,
	})
	if err != nil {
		return err
	}
	if started != nil {
		started(proc)
	}
	if cfg.MetricsAddr != "" {
		metricsCtx, stopMetrics := context.WithCancel(ctx)
		defer stopMetrics()
		go func() {
			if err := metrics.Serve(metricsCtx, cfg.MetricsAddr, proc, log); err != nil {
				log.Error("metrics server stopped", zap.String("addr", cfg.MetricsAddr), zap.Error(err))
			}
		}()
	}
	log.Info("highwater running", zap.Strings("topics", cfg.Topics), zap.String("group", cfg.Group),
		zap.String("sink", config.RedactURL(cfg.Sink)), zap.Bool("changelog", cfg.Changelog))
	start := time.Now()
	err = proc.Run(ctx)
	logSummary(log, proc, time.Since(start))
	if err != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// logSummary logs what the run did; `highwater bench` reads it too.
func logSummary(log *zap.Logger, proc *processor.Processor, took time.Duration) {
	s := proc.Stats()
	lat := proc.Latencies()
	slices.Sort(lat)
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))]
	}
	log.Info("highwater stopped",
		zap.Duration("ran", took),
		zap.Int64("consumed", s.Consumed),
		zap.Int64("duplicates", s.Duplicates),
		zap.Int64("rows_applied", s.RowsApplied),
		zap.Int64("windows", s.Windows),
		zap.Stringer("frontier", s.Frontier),
		zap.Duration("visible_p50", pct(0.50)),
		zap.Duration("visible_p99", pct(0.99)),
	)
}

// newLogger builds a zap logger: console output on a terminal, JSON
// otherwise (containers, log shippers).
func newLogger(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "console"
			}
		}
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch strings.ToLower(format) {
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), nil
}
