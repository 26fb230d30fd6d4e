package simulator

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// ColumnDef declares one column. Type is CockroachDB SQL (INT8, STRING,
// DECIMAL(10,2), TIMESTAMPTZ, INT8[], an ENUM name from Options.Enums, ...).
// Default is a SQL expression: a literal ('text', 12, 1.5, true, NULL) or one
// of unique_rowid(), now(), current_timestamp(), gen_random_uuid().
type ColumnDef struct {
	Name    string
	Type    string
	NotNull bool
	Default string
	// Virtual, when set, makes the column a virtual computed column with
	// this expression (`AS (Virtual) VIRTUAL`), emitted as the changefeed
	// option virtual_columns = 'null' does: present in every row record,
	// its value always NULL (also in the Oracle), whatever is written to it.
	Virtual string
}

// TableDef declares a table. Columns are in table order; PrimaryKey lists
// the primary-key columns in index order. An empty PrimaryKey gives the table
// CockroachDB's hidden `rowid INT8 NOT NULL DEFAULT unique_rowid()` key.
type TableDef struct {
	Name       string
	Columns    []ColumnDef
	PrimaryKey []string
	// Enums declares ENUM types the table uses, like Options.Enums.
	Enums map[string][]string
	// Families declares column families, the first being family 0 (see
	// FamilyDef). Two or more need Options.SplitColumnFamilies; the feed
	// then has one table "<Name>.<family>" per family (families.go).
	Families []FamilyDef
	// Database is the table's database ("defaultdb" when empty). It shows
	// only with Options.FullTableName, where the table is named
	// "<Database>.public.<Name>" in topics, subjects, the envelope record,
	// the simulator's API and its Oracle.
	Database string
}

// Options configure a Sim: where it writes and which changefeed options it
// mimics (`format=avro, confluent_schema_registry, updated, resolved` always,
// plus diff and mvcc_timestamp when set).
type Options struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// RegistryURL is the Confluent Schema Registry base URL.
	RegistryURL string
	// Partitions is the partition count of topics the simulator creates
	// (default 1). Existing topics keep their partition count.
	Partitions int
	// Diff adds the `before` field (changefeed option diff).
	Diff bool
	// MVCCTimestamp adds the `mvcc_timestamp` field.
	MVCCTimestamp bool
	// Envelope is the changefeed option envelope: EnvelopeWrapped (the
	// default) or EnvelopeEnriched (v25.2+, see enriched.go).
	Envelope string
	// EnrichedProperties is the option enriched_properties ("source",
	// "schema" or both, comma separated), only with EnvelopeEnriched.
	// "source" adds the source record; "schema" changes nothing in Avro.
	EnrichedProperties string
	// NoUpdated mimics a changefeed without the `updated` option: no
	// `updated` field (wrapped), or a null source.ts_hlc and ts_ns
	// (enriched). highwater refuses such feeds; it exists to test that.
	NoUpdated bool
	// SchemaPrefix is avro_schema_prefix: it prefixes subjects and record
	// names and becomes the records' namespace.
	SchemaPrefix string
	// TopicPrefix is the Kafka URI's topic_prefix.
	TopicPrefix string
	// FullTableName mimics the changefeed option full_table_name: topics,
	// subjects, the key record and the envelope record are named after
	// "<database>.public.<table>" (escaped), the row records after the bare
	// table. Tables are then addressed by that qualified name.
	FullTableName bool
	// SplitColumnFamilies mimics the changefeed option
	// split_column_families: tables with several TableDef.Families emit one
	// message per family written, on topic "<table>.<family>".
	SplitColumnFamilies bool
	// ResolvedV1 mimics the v1 (sarama) Kafka sink: the resolved schema is
	// "<topic>_envelope" under "<topic>-value". By default it mimics the v2
	// sink: "_envelope" under subject "-value", one payload for all topics.
	ResolvedV1 bool
	// HeadersJSONColumn mimics the changefeed option
	// headers_json_column_name: this JSONB column, which every table must
	// have, is left out of the values and sent as Kafka record headers
	// (headers.go).
	HeadersJSONColumn string
	// KeyColumn mimics the changefeed option key_column (with unordered):
	// the Kafka key is a record of this column, which every table must
	// have, instead of the primary key (keycolumn.go).
	KeyColumn string
	// Seed makes everything (clock steps, workloads, faults) deterministic.
	Seed int64
	// DuplicateProb is the probability that a row message is sent twice in
	// a row to its partition (a retried Kafka batch).
	DuplicateProb float64
	// Reorder sends the rows between two resolved messages in a random
	// interleaving that keeps each key's order.
	Reorder bool
	// Enums declares ENUM types by name: the labels, in order.
	Enums map[string][]string
	// Start is the wall time of the first HLC. The default is a fixed
	// instant (2025-01-01 UTC) so that runs are reproducible; set
	// time.Now() for a live-looking feed.
	Start time.Time
	// MaxClockStep bounds the random wall-clock step between transactions
	// (default 1ms). About one transaction in four advances only the
	// logical counter.
	MaxClockStep time.Duration
	// Live makes the clock follow the local clock as CockroachDB's HLC
	// does: each timestamp is the later of the local time and the
	// previous timestamp's successor, so the feed never runs ahead of real
	// time (highwater takes a timestamp beyond its clock plus
	// --max-clock-skew for poison; a Start-based clock stepping up to
	// MaxClockStep per transaction outruns real time whenever it emits
	// more than ~2,700 transactions a second). Start and MaxClockStep are
	// then unused, and timestamps are not reproducible.
	Live bool
	// KafkaOpts are extra franz-go options (TLS, SASL, ...), applied last.
	KafkaOpts []kgo.Opt
	// Logger receives progress messages; zap.NewNop() by default.
	Logger *zap.Logger
}

// Sim is a CockroachDB changefeed simulator. Its methods are safe for
// concurrent use but run one at a time, like statements of one SQL session;
// the Oracle can be read concurrently.
type Sim struct {
	opts Options
	log  *zap.Logger
	cl   *kgo.Client
	reg  *registry
	env  envelopeOpts

	ctx    context.Context // producing context, canceled by Close
	cancel context.CancelFunc

	mu           sync.Mutex // serializes the API
	rng          *rand.Rand
	dupRng       *rand.Rand // duplicate decisions, in send order
	bgDone       chan struct{}
	clock        hlc.Timestamp
	tables       []*table // the feed's tables, one per topic
	declared     []*table // the tables as declared (families.go)
	byName       map[string]*table
	pending      []*message
	lastResolved hlc.Timestamp
	rowidSeq     int64
	encQ         []encJob // committed versions waiting for encoding
	encSpare     []encJob
	inflight     []encJob // the batch being encoded
	inflightWG   *sync.WaitGroup
	workers      []*encWorker
	closed       bool
	produced     int64

	state sync.RWMutex // guards table schemas and row histories for Oracle readers

	errMu   sync.Mutex
	prodErr error
	promise func(*kgo.Record, error)

	oracle *Oracle
}

// New validates the tables, creates missing topics, registers the key, value
// and resolved schemas (in that order, table by table) and returns a Sim
// ready to emit.
func New(ctx context.Context, opts Options, tables ...TableDef) (*Sim, error) {
	if len(tables) == 0 {
		return nil, errors.New("simulator: no tables")
	}
	if opts.DuplicateProb < 0 || opts.DuplicateProb >= 1 {
		return nil, fmt.Errorf("simulator: DuplicateProb %v not in [0,1)", opts.DuplicateProb)
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 1
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	switch {
	case opts.Live:
		opts.Start = time.Now()
	case opts.Start.IsZero():
		opts.Start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if opts.MaxClockStep <= 0 {
		opts.MaxClockStep = time.Millisecond
	}
	enriched, source, err := validateEnvelope(opts)
	if err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	reg, err := newRegistry(opts.RegistryURL)
	if err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	s := &Sim{
		opts:   opts,
		log:    opts.Logger,
		reg:    reg,
		env:    envelopeOpts{diff: opts.Diff, updated: !opts.NoUpdated, mvcc: opts.MVCCTimestamp, prefix: opts.SchemaPrefix, enriched: enriched, source: source, seed: opts.Seed},
		rng:    rand.New(rand.NewSource(opts.Seed)),
		dupRng: rand.New(rand.NewSource(opts.Seed ^ 0x5eed)),
		clock:  hlc.Timestamp{WallTime: opts.Start.UnixNano()},
		byName: map[string]*table{},
	}
	s.promise = s.recordErr
	for n := min(runtime.GOMAXPROCS(0), 4); len(s.workers) < n; {
		s.workers = append(s.workers, &encWorker{scratch: map[*valueCodec]*codecScratch{}})
	}
	s.oracle = &Oracle{s: s}
	s.opts.Enums = map[string][]string{}
	for k, v := range opts.Enums {
		s.opts.Enums[k] = v
	}
	for _, def := range tables {
		for k, v := range def.Enums {
			if old, ok := s.opts.Enums[k]; ok && !slices.Equal(old, v) {
				return nil, fmt.Errorf("simulator: enum %q declared twice with different labels", k)
			}
			s.opts.Enums[k] = v
		}
	}
	topics := make([]string, 0, len(tables))
	for _, def := range tables {
		t, err := s.buildTable(def)
		if err != nil {
			return nil, fmt.Errorf("simulator: table %q: %w", def.Name, err)
		}
		if err := s.checkHeadersColumn(t); err != nil {
			return nil, fmt.Errorf("simulator: %w", err)
		}
		if err := s.checkKeyColumn(t); err != nil {
			return nil, fmt.Errorf("simulator: %w", err)
		}
		if _, dup := s.byName[t.name]; dup {
			return nil, fmt.Errorf("simulator: table %q declared twice", t.name)
		}
		feed := []*table{t}
		if len(def.Families) > 1 {
			if feed, err = s.buildFamilies(t, def.Families); err != nil {
				return nil, fmt.Errorf("simulator: table %q: %w", def.Name, err)
			}
		}
		for _, ft := range feed {
			for _, o := range s.tables {
				if o.topic == ft.topic {
					return nil, fmt.Errorf("simulator: tables %q and %q map to the same topic %q", o.name, ft.name, ft.topic)
				}
			}
			s.tables = append(s.tables, ft)
			topics = append(topics, ft.topic)
		}
		s.declared = append(s.declared, t)
		s.byName[t.name] = t
	}
	if s.cl, err = newProducer(opts.Brokers, opts.KafkaOpts...); err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			s.cancel()
			s.cl.Close()
		}
	}()
	parts, err := ensureTopics(ctx, s.cl, opts.Partitions, topics)
	if err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	for _, t := range s.tables {
		t.partitions = parts[t.topic]
		if err := s.registerTable(ctx, t); err != nil {
			return nil, fmt.Errorf("simulator: table %q: %w", t.name, err)
		}
	}
	for _, t := range s.declared {
		if t.families != nil {
			shareFamilyKey(t)
		}
	}
	if err := s.registerResolved(ctx); err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	ok = true
	s.bgDone = make(chan struct{})
	go s.background()
	s.log.Info("changefeed simulator ready", zap.Strings("topics", topics), zap.Bool("diff", opts.Diff),
		zap.Bool("mvcc_timestamp", opts.MVCCTimestamp), zap.Int64("seed", opts.Seed))
	return s, nil
}

func (s *Sim) buildTable(def TableDef) (*table, error) {
	if def.Name == "" {
		return nil, errors.New("empty table name")
	}
	if len(def.Columns) == 0 {
		return nil, errors.New("no columns")
	}
	sch := &tableSchema{byName: map[string]int{}}
	pk := map[string]bool{}
	for _, k := range def.PrimaryKey {
		if pk[k] {
			return nil, fmt.Errorf("primary key column %q listed twice", k)
		}
		pk[k] = true
	}
	cols := slices.Clone(def.Columns)
	keyNames := def.PrimaryKey
	if len(keyNames) == 0 {
		cols = append(cols, ColumnDef{Name: "rowid", Type: "INT8", NotNull: true, Default: "unique_rowid()"})
		keyNames = []string{"rowid"}
		pk["rowid"] = true
	}
	for _, cd := range cols {
		if pk[cd.Name] {
			if cd.Virtual != "" {
				return nil, fmt.Errorf("primary key column %q: the simulator's virtual columns are always NULL", cd.Name)
			}
			cd.NotNull = true // primary-key columns are implicitly NOT NULL
		}
		c, err := s.newColumn(cd)
		if err != nil {
			return nil, err
		}
		if _, dup := sch.byName[c.name]; dup {
			return nil, fmt.Errorf("column %q declared twice", c.name)
		}
		sch.byName[c.name] = len(sch.cols)
		sch.cols = append(sch.cols, c)
	}
	for _, k := range keyNames {
		i, ok := sch.byName[k]
		if !ok {
			return nil, fmt.Errorf("primary key column %q is not a column", k)
		}
		if sch.cols[i].typ.fam == famArray || sch.cols[i].typ.fam == famJSON {
			return nil, fmt.Errorf("primary key column %q: type %s cannot be a key", k, sch.cols[i].typ.sql)
		}
		sch.key = append(sch.key, i)
	}
	db := def.Database
	if db == "" {
		db = "defaultdb"
	}
	name := def.Name
	if s.opts.FullTableName {
		name = db + ".public." + def.Name
	}
	topic := model.SQLNameToKafkaName(s.opts.TopicPrefix + name)
	sub := model.SQLNameToKafkaName(s.opts.SchemaPrefix + name)
	return &table{
		name: name, bare: def.Name, database: db, topic: topic, keySubject: sub + "-key", valSubject: sub + "-value",
		versions: []*tableSchema{sch}, values: map[[2]int]*valueCodec{}, rows: map[string]*rowState{},
	}, nil
}

func (s *Sim) newColumn(cd ColumnDef) (*column, error) {
	c, err := newColumn(cd, s.opts.Enums)
	if err != nil {
		return nil, err
	}
	if c.dflt != "" {
		if c.dfn, err = parseDefault(c); err != nil {
			return nil, fmt.Errorf("column %q: %w", c.name, err)
		}
	}
	return c, nil
}

// Close flushes what was produced (for up to 10 s) and closes the client.
// Rows not yet followed by Resolve are sent but no resolved message follows.
func (s *Sim) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.sendAll(); err != nil {
		s.log.Warn("encode on close", zap.Error(err))
	}
	s.sendPending()
	if err := s.cl.Flush(ctx); err != nil {
		s.log.Warn("flush on close", zap.Error(err))
	}
	s.cancel()
	<-s.bgDone // it only TryLocks, so it sees the cancel and returns
	s.cl.Close()
}

// background sends committed rows when the caller pauses: rows are encoded
// in batches (encode.go), and a slow caller should not see its last rows
// held back until its next call. Sending order, and so the feed, does not
// depend on when this runs.
func (s *Sim) background() {
	defer close(s.bgDone)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if !s.mu.TryLock() {
			continue // a call is running; it or a later tick will send
		}
		if !s.closed && (len(s.encQ) > 0 || s.inflight != nil) {
			if err := s.sendAll(); err != nil {
				s.setErr(err)
			}
		}
		s.mu.Unlock()
	}
}

// Topics returns the Kafka topics, one per table in declaration order.
func (s *Sim) Topics() []string {
	out := make([]string, len(s.tables))
	for i, t := range s.tables {
		out[i] = t.topic
	}
	return out
}

// Partitions returns the partition count of topic (0 if unknown).
func (s *Sim) Partitions(topic string) int {
	for _, t := range s.tables {
		if t.topic == topic {
			return t.partitions
		}
	}
	return 0
}

// Produced returns the number of row messages handed to the producer,
// duplicates included, resolved messages excluded.
func (s *Sim) Produced() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.produced
}

// LastResolved returns the HLC of the last resolved messages sent.
func (s *Sim) LastResolved() hlc.Timestamp {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastResolved
}

// Oracle returns the simulator's record of the source tables.
func (s *Sim) Oracle() *Oracle { return s.oracle }

// tick advances the clock: every call returns an HLC strictly after the
// previous one. Usually the wall time moves on by a random step; sometimes
// only the logical counter does, as on a busy CockroachDB node. A Live
// clock takes the local time instead.
func (s *Sim) tick() hlc.Timestamp {
	if s.opts.Live {
		if now := time.Now().UnixNano(); s.clock.WallTime < now {
			s.clock = hlc.Timestamp{WallTime: now}
		} else {
			s.clock = s.clock.Next()
		}
		return s.clock
	}
	if s.rng.Intn(4) == 0 {
		s.clock = s.clock.Next()
	} else {
		s.clock = hlc.Timestamp{WallTime: s.clock.WallTime + 1 + s.rng.Int63n(int64(s.opts.MaxClockStep))}
	}
	return s.clock
}

func (s *Sim) usable() error {
	if s.closed {
		return errors.New("simulator: closed")
	}
	return nil
}

func (s *Sim) usableCtx(ctx context.Context) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	return nil
}

func (s *Sim) recordErr(r *kgo.Record, err error) {
	if err == nil {
		return
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.prodErr == nil {
		s.prodErr = fmt.Errorf("produce to %s[%d]: %w", r.Topic, r.Partition, err)
	}
}

func (s *Sim) setErr(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.prodErr == nil {
		s.prodErr = err
	}
}

func (s *Sim) producerErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.prodErr
}
