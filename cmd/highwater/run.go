package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/metrics"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

func newRunCmd(getenv func(string) string, stderr io.Writer) *cobra.Command {
	l := config.NewLoader("run", getenv)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Consume a changefeed and apply it to a warehouse",
		Long: `Consumes the changefeed's topics as a member of a Kafka consumer group, buffers
row changes until resolved timestamps close a window, and applies each window to
the warehouse in one transaction with the partitions' checkpoints.

Every flag is also a YAML field of the --config file (--buffer-dir: buffer_dir)
and an environment variable (HIGHWATER_BUFFER_DIR). Precedence: flags, then
environment, then the file, then defaults.`,
		Example: `  highwater run --brokers kafka:9092 --registry http://registry:8081 \
    --topics features,nodes --sink duckdb:///var/lib/highwater/warehouse.duckdb --changelog
  highwater run --config highwater.yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := l.Load()
			if err != nil {
				return fmt.Errorf("configuration: %w", err)
			}
			log, err := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck // nothing useful to do on a failed sync at exit
			plan, err := memoryPlan(cfg, "/")
			if err != nil {
				return fmt.Errorf("configuration: %w", err)
			}
			// GOMEMLIMIT is read from the real environment, as the Go runtime does.
			mem := applyMemoryPlan(plan, os.Getenv, log)
			cfg.Sink = withDuckDBLimits(cfg.Sink, plan)
			log.Debug("effective configuration (secrets redacted)", zap.String("yaml", cfg.Redacted()))
			err = runPipeline(cmd.Context(), cfg, log, mem, nil)
			logPeakMemory(log)
			return err
		},
	}
	cmd.Flags().SortFlags = false
	cmd.Flags().AddFlagSet(l.FlagSet())
	return cmd
}

// runPipeline wires registry, decoder, buffer, writer and processor for cfg
// and runs until ctx ends, StopAt is reached, or an error. mem is what the
// memory plan asks of the processor (applyMemoryPlan). started, if not
// nil, receives the processor once it exists (the demo shows its progress).
func runPipeline(ctx context.Context, cfg config.Config, log *zap.Logger, mem memoryHooks, started func(*processor.Processor)) error {
	stopAt, _ := cfg.StopAtHLC()
	budget, _ := cfg.Budget()

	// A sink URL that cannot be opened fails before anything waits or is
	// created.
	if err := checkSink(cfg.Sink); err != nil {
		return err
	}
	secOpts, err := cfg.RegistryOptions()
	if err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	kafkaOpts, err := cfg.KafkaOptions()
	if err != nil {
		return err
	}
	// Nothing is created (buffer directory, warehouse file) until the
	// brokers answer. A wrong password or certificate fails here with what
	// to fix, not as a retry loop inside the consumer; unreachable brokers
	// are said once, with how long highwater waits for them.
	if err := cfg.WaitForKafka(ctx, func(wait time.Duration) {
		log.Warn("waiting for the Kafka brokers to answer", zap.Strings("brokers", cfg.Brokers), zap.String("up_to", wait.String()))
	}); err != nil {
		return err
	}
	regOpts := append([]schemas.RegistryOption{schemas.WithLogger(log)}, secOpts...)
	reg, err := schemas.NewRegistry(cfg.Registry, regOpts...)
	if err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	buf, err := buffer.Open(buffer.Options{Dir: cfg.BufferDir, DiskBudget: budget, MemoryBudget: bufferMemoryBudget(), Logger: log})
	if err != nil {
		return fmt.Errorf("open buffer %s: %w", cfg.BufferDir, err)
	}
	defer buf.Close()
	// Change files are a changelog by nature: every version goes in them,
	// whether or not --changelog was given.
	changelog := cfg.Changelog || writesChangeFiles(cfg.Sink)
	w, err := openWriter(ctx, cfg.Sink, sinks.Options{Changelog: changelog}, log)
	if err != nil {
		return err
	}
	defer w.Close()
	obs := metrics.NewObserver()
	hook, err := windowTestHook(os.Getenv(testHookEnv), log)
	if err != nil {
		return err
	}

	proc, err := processor.New(processor.Config{
		Brokers:          cfg.Brokers,
		Topics:           cfg.Topics,
		Feeds:            cfg.Feeds.Processor(),
		Frontier:         processor.FrontierMode(cfg.Frontier),
		Group:            cfg.Group,
		Decoder:          schemas.NewDecoder(reg, decoderOptions(cfg)...),
		Buffer:           buf,
		Writer:           obs.Writer(w),
		KafkaOptions:     kafkaOpts,
		Observer:         obs,
		Changelog:        changelog,
		StopAt:           stopAt,
		SessionTimeout:   cfg.SessionTimeout,
		RebalanceTimeout: cfg.RebalanceTimeout,
		StartupTimeout:   cfg.StartupTimeout,
		OnError:          processor.ErrorPolicy(cfg.OnError),
		DeadLetterTopic:  cfg.DLQTopic,
		MaxClockSkew:     cfg.MaxClockSkew,
		Logger:           log,
		// A retention gap stops the member unless the operator accepts it.
		AllowRetentionGap: cfg.AllowRetentionGap,
		WindowHook:        hook,
		HeadersJSONColumn: cfg.HeadersJSONColumn,
		ScanMemory:        mem.scan,
		Applying:          mem.applying(),
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
			if err := metrics.Serve(metricsCtx, cfg.MetricsAddr, proc, log, metrics.WithObserver(obs),
				metrics.WithPageInfo(metrics.PageInfo{Group: cfg.Group, Topics: cfg.Topics, Sink: config.RedactURL(cfg.Sink), BufferBudget: budget})); err != nil {
				log.Error("metrics server stopped", zap.String("addr", cfg.MetricsAddr), zap.Error(err))
			}
		}()
	}
	log.Info("highwater running", zap.Strings("topics", cfg.Topics), zap.String("frontier", cfg.Frontier), zap.String("group", cfg.Group),
		zap.String("sink", config.RedactURL(cfg.Sink)), zap.Bool("changelog", changelog),
		zap.Strings("brokers", cfg.Brokers), zap.String("registry", config.RedactURL(cfg.Registry)),
		zap.Bool("kafka_tls", cfg.KafkaTLSEnabled()),
		zap.String("kafka_sasl", strings.ToUpper(cfg.KafkaSASLMechanism)))
	start := time.Now()
	if mem.lender != nil {
		lendCtx, stopLending := context.WithCancel(ctx)
		lent := make(chan struct{})
		go func() { defer close(lent); mem.lender.Run(lendCtx) }()
		defer func() { stopLending(); <-lent }()
	}
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
		zap.Int64("dead_letters", s.DeadLettersIngest+s.DeadLettersApply),
		zap.Int64("skipped", s.Skipped),
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
	if format == "" || format == "auto" {
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

// decoderOptions are the decoder options cfg asks for.
func decoderOptions(cfg config.Config) []schemas.DecoderOption {
	var opts []schemas.DecoderOption
	if cfg.SplitColumnFamilies {
		opts = append(opts, schemas.WithSplitColumnFamilies())
	}
	return opts
}
