package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/buffer"
	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/schemas"
	"github.com/highwater-dev/highwater/sinks"
)

// Decoder turns changefeed records into what the pipeline needs: the cheap
// ingest fields first, the typed row only at flush.
type Decoder interface {
	Extract(ctx context.Context, topic string, partition int32, offset int64, key, value []byte) (schemas.Record, error)
	DecodeRow(ctx context.Context, key, value []byte) (schemas.Row, error)
}

// Config configures a Processor. Brokers, Topics, Group, Decoder, Buffer and
// Writer are required.
type Config struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// Topics are the changefeeds' topics: with a shared frontier (the
	// default), one frontier over all of them.
	Topics []string
	// Feeds groups Topics into named feeds, say one per CockroachDB
	// changefeed (ResolveFeeds: a topic in no feed is a feed of its own).
	Feeds []Feed
	// Frontier is FrontierShared (the default: one consistent cut over
	// every topic) or FrontierIndependent (each feed its own frontier and
	// windows, so that a stalled feed holds back only its own tables).
	Frontier FrontierMode
	// Group is the Kafka consumer group; it also names the feed's
	// checkpoints in the warehouse.
	Group string
	// KafkaOptions are added to the client's options (TLS, SASL, ...).
	KafkaOptions []kgo.Opt

	Decoder Decoder
	Buffer  *buffer.Store
	Writer  sinks.Writer

	// Changelog must match the writer's sinks.Options.Changelog: with a
	// changelog every version is decoded and written, without one only the
	// newest version of each key in a window.
	Changelog bool

	// StopAt, when set, makes Run return nil once every partition of every
	// feed topic is applied through a resolved timestamp >= StopAt, as the
	// warehouse checkpoints show (whichever group member applied it).
	StopAt hlc.Timestamp

	// SessionTimeout is how long the group coordinator waits for a silent
	// member (say, killed with -9) before it moves its partitions elsewhere.
	// Default 10s, instead of Kafka's 45s, so that recovery takes seconds.
	SessionTimeout time.Duration
	// RebalanceTimeout bounds how long a rebalance waits for members to
	// rejoin; it must exceed the longest flush. Default 30s.
	RebalanceTimeout time.Duration
	// StartupTimeout bounds how long Run waits for the brokers and the
	// topics' metadata before it gives up with an error. Default 30s.
	StartupTimeout time.Duration

	// FlushBatch is how many changes of one table go to the writer per
	// Tx.Write call. Default 20000.
	FlushBatch int
	// FlushBytes bounds the decoded changes queued for the writer, over all
	// tables, by their estimated memory (schemas.Row.Size, at least the
	// record's Avro length): when the queue reaches it, every table's queue
	// is written out. Default 64 MiB.
	FlushBytes int
	// PollRecords is the most records ingested per buffer write. Default 10000.
	PollRecords int

	// OnError is what happens to a poison record, one that can never be
	// decoded or applied (see ErrorPolicy). Default OnErrorFail. A
	// registry that fails is retried, never taken for poison: the decoder
	// marks such errors schemas.ErrSchemaUnavailable.
	OnError ErrorPolicy
	// DeadLetterTopic receives poison records with OnErrorDLQ; it is
	// created if missing. Default "<Group>.dlq".
	DeadLetterTopic string
	// MaxClockSkew bounds how far ahead of the local clock a record's HLC
	// (a row's `updated`, a resolved timestamp) may be; a record beyond it
	// is a poison record (OnError), so that one timestamp from the future
	// can never move a checkpoint past every later row. Default
	// DefaultMaxClockSkew (5m); 0 means the default, a negative value is an
	// error. Raise it only if this host's clock may lag the cluster's by
	// more; a huge value (say 100 years) turns the check off.
	MaxClockSkew time.Duration

	// AllowRetentionGap lets the member go on, from the log start, when
	// Kafka's retention deleted records of a partition before they were
	// applied (see RetentionGapError); the gap is logged at error level and
	// counted in Stats.RetentionGaps. Default false: the member stops.
	AllowRetentionGap bool

	// HeadersJSONColumn names the JSONB column that a changefeed created
	// WITH headers_json_column_name sends as Kafka record headers instead
	// of in the value: ingest keeps each record's headers with its value in
	// the buffer, and each decoded row gets the column back (headers.go).
	// Empty: headers are not kept.
	HeadersJSONColumn string

	Logger *zap.Logger
	// Observer, if set, is told about each applied window (for metrics).
	Observer Observer

	// WindowHook, if set, is called by the goroutine applying a window
	// through a frontier at each stage of its life (the WindowStage
	// constants). It is a test hook: the end-to-end tests use it to freeze
	// a process at a precise point of a window. It must return quickly
	// unless it means to stall the window.
	WindowHook func(stage WindowStage, through hlc.Timestamp)

	// ScanMemory, if set, is called as a group of an initial scan starts
	// to be applied ahead of its resolved timestamp, and as the window
	// that ends such a scan starts; the function it returns is called when
	// that group or window is done. highwater run sets it, under a memory
	// limit, to make DuckDB's allocator return the memory DuckDB frees at
	// once meanwhile (memlimit.ReturnDuckDBFreed): too costly for every
	// window, needed for the MERGEs of a scan. The processor itself lowers
	// the Go soft memory limit then (lowerGoLimit).
	ScanMemory func() (restore func())
	// Applying, if set, is called as a window or a group starts to be
	// applied, before ScanMemory and before the processor lowers the Go
	// soft limit for a scan; the function it returns is called when the
	// apply is done, after both are undone, and before its result is
	// reaped. Once a group of an initial scan has been applied early it
	// is also held until the window through the scan is applied, or Run
	// returns. highwater run sets it, under a memory limit, to a
	// memlimit.Lender's Busy: the Go heap borrows DuckDB's share only
	// while the warehouse is idle.
	Applying func() (done func())
}

func (c *Config) setDefaults() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("processor: no brokers")
	case len(c.Topics) == 0:
		return errors.New("processor: no topics")
	case c.Group == "":
		return errors.New("processor: no consumer group")
	case c.Decoder == nil || c.Buffer == nil || c.Writer == nil:
		return errors.New("processor: decoder, buffer and writer are required")
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = 30 * time.Second
	}
	if c.StartupTimeout == 0 {
		c.StartupTimeout = 30 * time.Second
	}
	if c.FlushBatch <= 0 {
		c.FlushBatch = 20000
	}
	if c.FlushBytes <= 0 {
		c.FlushBytes = 64 << 20
	}
	if c.PollRecords <= 0 {
		c.PollRecords = 10000
	}
	policy, err := ParseErrorPolicy(string(c.OnError))
	if err != nil {
		return fmt.Errorf("processor: %w", err)
	}
	c.OnError = policy
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.Group + ".dlq"
	}
	switch {
	case c.MaxClockSkew < 0:
		return fmt.Errorf("processor: negative max clock skew %s", c.MaxClockSkew)
	case c.MaxClockSkew == 0:
		c.MaxClockSkew = DefaultMaxClockSkew
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}

// Processor is one member of a feed's consumer group.
type Processor struct {
	cfg Config
	log *zap.Logger
	cl  *kgo.Client

	// mu serialises the poll loop's work with the group's rebalance
	// callbacks: a partition is never dropped in the middle of a flush.
	mu      sync.Mutex
	parts   map[buffer.Partition]*partState
	closing bool
	// numPartitions is the partition count of each feed topic.
	numPartitions map[string]int32
	paused        bool
	// inflight is the window being applied in the background, if any;
	// attempt counts its failed tries, retryAt delays the next, and flushErr
	// holds an error met in a rebalance callback for the poll loop.
	inflight *flushJob
	attempt  int
	retryAt  time.Time
	flushErr error
	// versions sizes a window's newestVersions after the last (window.go).
	versions versionsHint
	// toCommit are the checkpoints of applied windows whose advisory Kafka
	// offsets the poll loop commits once it has released mu.
	toCommit []sinks.Checkpoint
	// uncertain is the last window whose Commit was reported failed (the
	// commit may have taken effect), until a window succeeds or is fenced.
	uncertain *uncertainCommit
	// seeks are the fetch positions of partitions re-adjusted to another
	// member's checkpoint (fence.go), applied by the poll loop.
	seeks map[buffer.Partition]int64
	// feeds groups the topics (feeds.go); lastFeed is the feed of the
	// last window started with independent frontiers.
	feeds    *feedSet
	lastFeed int
	// earlyRefused is the last group HLC refused for an early apply, and
	// earlyRetryAt when a group found too small is looked at again
	// (early.go); splitChecked is the last HLC found too small to be
	// split out of a window.
	earlyRefused hlc.Timestamp
	earlyRetryAt time.Time
	splitChecked hlc.Timestamp
	// earlyApplied is the HLC of the last group applied early (early.go).
	earlyApplied hlc.Timestamp
	// scanHold is Config.Applying's token held from a group applied
	// early until the window through it is applied (reapEarly, applied):
	// while an initial scan bigger than the buffer budget goes on, its
	// groups' MERGEs keep coming, and between them the ingest refilling
	// the buffer must not borrow the memory they need (with the Go heap
	// borrowing there, a 2M-row scan peaked 20-25 MiB higher).
	scanHold func()

	stats struct {
		consumed, resolvedMsgs, duplicates, rowsApplied, windows atomic.Int64
		frontier, resolved                                       atomic.Pointer[hlc.Timestamp]
		partitions                                               atomic.Int64
		paused                                                   atomic.Bool
		lastFlush, lastVisible                                   atomic.Int64
		deadIngest, deadApply, skipped                           atomic.Int64
		retentionGaps                                            atomic.Int64
		fenced, cancelled                                        atomic.Int64
		earlyGroups, earlyRows                                   atomic.Int64
	}
	latency *latencies
	stopAt  atomic.Pointer[hlc.Timestamp]
	obs     observed
	// dlq produces to the dead-letter topic (OnErrorDLQ only).
	dlq *deadLetterProducer
	// lastErr is Stats.LastError (noteError).
	lastErr atomic.Pointer[errorNote]
	// headers restores Config.HeadersJSONColumn; nil without it.
	headers *headersColumn
	// batch is ingest's buffer batch, reset and reused for every fetch
	// (its arena grew anew for each fetch: 7% of the CPU with 10M events
	// buffered, and the garbage GC marked).
	batch *buffer.Batch
}

// New validates cfg and returns a Processor; Run starts it.
func New(cfg Config) (*Processor, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	feeds, err := newFeedSet(&cfg)
	if err != nil {
		return nil, err
	}
	p := &Processor{
		feeds:   feeds,
		cfg:     cfg,
		log:     cfg.Logger,
		parts:   make(map[buffer.Partition]*partState),
		seeks:   make(map[buffer.Partition]int64),
		latency: newLatencies(4096),
		headers: newHeadersColumn(cfg.HeadersJSONColumn),
	}
	p.SetStopAt(cfg.StopAt)
	return p, nil
}

// SetStopAt changes Config.StopAt while the processor runs (the demo learns
// its final resolved timestamp only once the feed has played).
func (p *Processor) SetStopAt(h hlc.Timestamp) { p.stopAt.Store(&h) }

// errStopReached ends the poll loop once StopAt is reached; Run turns it
// into a nil error.
var errStopReached = errors.New("stop-at reached")

// Run consumes and applies until ctx is canceled (returning nil), StopAt is
// reached (nil), or an error stops the feed. On return no window is half
// applied: a window's transaction either committed or rolled back.
func (p *Processor) Run(ctx context.Context) error {
	if err := p.checkTopics(ctx); err != nil {
		return err
	}
	if err := p.registerPartitions(ctx); err != nil {
		return err
	}
	if err := p.recordFeeds(ctx); err != nil {
		return err
	}
	if p.cfg.OnError == OnErrorDLQ {
		dlq, err := newDeadLetterProducer(ctx, &p.cfg, p.log)
		if err != nil {
			return err
		}
		p.dlq = dlq
		defer dlq.close()
	}
	defer func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.scanHold != nil {
			p.scanHold()
			p.scanHold = nil
		}
	}()
	opts := []kgo.Opt{
		kgo.SeedBrokers(p.cfg.Brokers...),
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.cfg.Topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(p.cfg.SessionTimeout),
		kgo.RebalanceTimeout(p.cfg.RebalanceTimeout),
		kgo.HeartbeatInterval(p.cfg.SessionTimeout / 5),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(32 << 20),
		// 1 MB per partition (~5k changefeed rows), not 8: the frontier is
		// the minimum over the partitions, and with 8 MB fetches the poll
		// loop got ~40k records of a few partitions at a time, so on a
		// backlog the first window waited ~5 s for the slowest partition
		// and most of the backlog fell into 1-2 huge windows applied after
		// ingest. Small fetches keep the partitions in step: windows start
		// within a second and stay small (docs/BENCHMARKS.md).
		kgo.FetchMaxPartitionBytes(1 << 20),
		kgo.FetchMaxWait(250 * time.Millisecond),
		kgo.OnPartitionsAssigned(p.onAssigned),
		kgo.AdjustFetchOffsetsFn(p.adjustOffsets),
		kgo.OnPartitionsRevoked(p.onRevoked),
		kgo.OnPartitionsLost(p.onLost),
		kgo.WithLogger(kgoLogger{p.log}),
	}
	cl, err := kgo.NewClient(append(opts, p.cfg.KafkaOptions...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	p.cl = cl
	defer func() {
		p.mu.Lock()
		p.closing = true
		p.waitFlush(ctx)
		p.mu.Unlock()
		// Leave the group promptly so that the partitions move at once
		// rather than after the session timeout.
		leaveCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = cl.LeaveGroupContext(leaveCtx)
		cancel()
		cl.CloseAllowingRebalance()
	}()

	err = p.loop(ctx)
	if errors.Is(err, errStopReached) {
		p.log.Info("stop-at reached: every partition is applied through it", zap.Stringer("stop_at", *p.stopAt.Load()))
		return nil
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// checkTopics fails fast, with a clear message, when the brokers cannot be
// reached or a feed topic does not exist, and records partition counts.
func (p *Processor) checkTopics(ctx context.Context) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.cfg.Brokers...), kgo.WithLogger(kgoLogger{p.log})}, p.cfg.KafkaOptions...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(p.cfg.StartupTimeout)
	for {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		details, err := adm.ListTopics(tctx, p.cfg.Topics...)
		cancel()
		if err == nil {
			counts := make(map[string]int32, len(p.cfg.Topics))
			var missing []string
			for _, t := range p.cfg.Topics {
				d, ok := details[t]
				if !ok || d.Err != nil || len(d.Partitions) == 0 {
					missing = append(missing, t)
					continue
				}
				counts[t] = int32(len(d.Partitions))
			}
			if len(missing) == 0 {
				p.numPartitions = counts
				return nil
			}
			err = fmt.Errorf("topics %v do not exist on %v (has the changefeed been created, and is --topics right?)", missing, p.cfg.Brokers)
			if time.Now().After(deadline) {
				return err
			}
		} else if time.Now().After(deadline) {
			return fmt.Errorf("cannot reach Kafka brokers %v within %s: %w", p.cfg.Brokers, p.cfg.StartupTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (p *Processor) loop(ctx context.Context) error {
	buf := p.cfg.Buffer
	for {
		wait := 500 * time.Millisecond
		p.mu.Lock()
		if p.inflight != nil {
			// Reap the window in flight soon after it finishes.
			wait = 50 * time.Millisecond
		}
		p.mu.Unlock()
		pollCtx, cancel := context.WithTimeout(ctx, wait)
		fetches := p.cl.PollRecords(pollCtx, p.cfg.PollRecords)
		cancel()
		if fetches.IsClientClosed() {
			return errors.New("kafka client closed")
		}
		if ctx.Err() != nil {
			p.cl.AllowRebalance()
			return ctx.Err()
		}
		var fetchErr error
		fetches.EachError(func(t string, part int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			p.log.Warn("fetch error", zap.String("topic", t), zap.Int32("partition", part), zap.Error(err))
			p.noteError(fmt.Errorf("fetch %s[%d]: %w", t, part, err))
			if fetchErr == nil && isFatalFetchError(err) {
				fetchErr = fmt.Errorf("fetch %s[%d]: %w", t, part, err)
			}
		})
		if fetchErr != nil {
			p.cl.AllowRebalance()
			return fetchErr
		}

		p.mu.Lock()
		err := p.flushErr
		if err == nil {
			err = p.waitForBufferMemory(ctx)
		}
		if err == nil {
			err = p.ingest(ctx, fetches)
		}
		if err == nil {
			err = p.maybeFlush(ctx)
		}
		if err == nil {
			p.maybeApplyEarly(ctx) // early.go
		}
		if err == nil {
			p.applyBackpressure(buf)
		}
		p.publishPartitions()
		commits := p.toCommit
		p.toCommit = nil
		seeks := p.takeSeeks()
		p.mu.Unlock()
		// Before AllowRebalance: no rebalance can move these partitions
		// meanwhile (kgo.Client.SetOffsets).
		if len(seeks) > 0 {
			p.cl.SetOffsets(seeks)
		}
		p.cl.AllowRebalance()
		// Outside mu: a commit waits for a rebalance in progress, and the
		// rebalance callbacks take mu.
		p.commitOffsets(ctx, commits)
		if err != nil {
			return err
		}
		if stopAt := *p.stopAt.Load(); !stopAt.IsZero() {
			done, err := p.stopReached(ctx, stopAt)
			if err != nil {
				return err
			}
			if done {
				return errStopReached
			}
		}
	}
}

func isFatalFetchError(err error) bool {
	var ke interface{ IsRetriable() bool }
	if errors.As(err, &ke) {
		return !ke.IsRetriable()
	}
	return false
}

// stopReached reports whether the warehouse shows every partition of every
// feed topic applied through StopAt.
func (p *Processor) stopReached(ctx context.Context, stopAt hlc.Timestamp) (bool, error) {
	p.mu.Lock()
	var minApplied hlc.Timestamp
	owned := p.owned()
	for i, st := range owned {
		if i == 0 || st.applied.Less(minApplied) {
			minApplied = st.applied
		}
	}
	p.mu.Unlock()
	// Cheap check first: our own partitions must be through StopAt before
	// the warehouse is asked about everyone's.
	if len(owned) > 0 && minApplied.Less(stopAt) {
		return false, nil
	}
	cps, err := p.cfg.Writer.Checkpoints(ctx, p.cfg.Group)
	if err != nil {
		return false, fmt.Errorf("read checkpoints: %w", err)
	}
	done := make(map[buffer.Partition]bool, len(cps))
	for _, cp := range cps {
		if !cp.Resolved.Less(stopAt) {
			done[buffer.Partition{Topic: cp.Topic, Partition: cp.Partition}] = true
		}
	}
	for t, n := range p.numPartitions {
		for i := int32(0); i < n; i++ {
			if !done[buffer.Partition{Topic: t, Partition: i}] {
				return false, nil
			}
		}
	}
	return true, nil
}
