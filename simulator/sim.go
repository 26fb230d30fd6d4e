package simulator

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/schemas"
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
	// SchemaPrefix is avro_schema_prefix: it prefixes subjects and record
	// names and becomes the records' namespace.
	SchemaPrefix string
	// TopicPrefix is the Kafka URI's topic_prefix.
	TopicPrefix string
	// ResolvedV1 mimics the v1 (sarama) Kafka sink: the resolved schema is
	// "<topic>_envelope" under "<topic>-value". By default it mimics the v2
	// sink: "_envelope" under subject "-value", one payload for all topics.
	ResolvedV1 bool
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
	clock        schemas.HLC
	tables       []*table
	byName       map[string]*table
	pending      []*message
	lastResolved schemas.HLC
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

type table struct {
	name       string
	topic      string
	keySubject string
	valSubject string
	partitions int
	versions   []*tableSchema
	keyCodec   *goavro.Codec
	keyHeader  [5]byte
	keyScratch *rowScratch
	values     map[[2]int]*valueCodec
	rows       map[string]*rowState
	order      []*rowState // creation order
	resolvedV1 []byte
}

func (t *table) cur() *tableSchema { return t.versions[len(t.versions)-1] }

// schemaAt is the table version valid at ts.
func (t *table) schemaAt(ts schemas.HLC) *tableSchema {
	for i := len(t.versions) - 1; i > 0; i-- {
		if !ts.Less(t.versions[i].since) {
			return t.versions[i]
		}
	}
	return t.versions[0]
}

type valueCodec struct {
	codec      *goavro.Codec
	header     [5]byte
	beforeName string
	afterName  string
	before     *tableSchema
	after      *tableSchema
}

// rowScratch is a reusable native record for one schema version.
type rowScratch struct {
	row    map[string]any
	unions []map[string]any
}

func newRowScratch(sch *tableSchema, cols []int) *rowScratch {
	rs := &rowScratch{row: make(map[string]any, len(cols)), unions: make([]map[string]any, len(sch.cols))}
	for _, i := range cols {
		rs.unions[i] = map[string]any{sch.cols[i].typ.branch: nil}
	}
	return rs
}

// fill sets the record's fields for columns cols of sch from vals (indexed
// like sch.cols, or like cols when packed).
func (rs *rowScratch) fill(sch *tableSchema, cols []int, vals []any, packed bool) map[string]any {
	for j, i := range cols {
		c := sch.cols[i]
		var v any
		if packed {
			v = vals[j]
		} else {
			v = vals[i]
		}
		switch {
		case v == nil:
			rs.row[c.avroName] = nil
		case c.typ.simple():
			m := rs.unions[i]
			m[c.typ.branch] = v
			rs.row[c.avroName] = m
		default:
			rs.row[c.avroName] = c.typ.native(v)
		}
	}
	return rs.row
}

type rowState struct {
	key  []any
	kb   []byte // Confluent-framed key
	hist []rowVersion
	// sentTS is the newest version handed to the producer; versions are
	// sent in key order, so every emitted version at or below it was sent.
	sentTS schemas.HLC
}

const (
	flagEmitted = 1 << iota // part of the feed (not a Load)
	flagScan                // initial scan: before is null
)

type rowVersion struct {
	ts     schemas.HLC
	mvcc   schemas.HLC
	vals   []any // nil: deleted
	schema int32 // index into table.versions
	flags  uint8
}

// message is an encoded row message waiting to be produced.
type message struct {
	t     *table
	rs    *rowState
	ts    schemas.HLC
	value []byte
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
	reg, err := newRegistry(opts.RegistryURL)
	if err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	s := &Sim{
		opts:   opts,
		log:    opts.Logger,
		reg:    reg,
		env:    envelopeOpts{diff: opts.Diff, updated: true, mvcc: opts.MVCCTimestamp, prefix: opts.SchemaPrefix},
		rng:    rand.New(rand.NewSource(opts.Seed)),
		dupRng: rand.New(rand.NewSource(opts.Seed ^ 0x5eed)),
		clock:  schemas.HLC{WallTime: opts.Start.UnixNano()},
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
		if _, dup := s.byName[t.name]; dup {
			return nil, fmt.Errorf("simulator: table %q declared twice", t.name)
		}
		for _, o := range s.tables {
			if o.topic == t.topic {
				return nil, fmt.Errorf("simulator: tables %q and %q map to the same topic %q", o.name, t.name, t.topic)
			}
		}
		s.tables = append(s.tables, t)
		s.byName[t.name] = t
		topics = append(topics, t.topic)
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
	topic := schemas.SQLNameToKafkaName(s.opts.TopicPrefix + def.Name)
	sub := schemas.SQLNameToKafkaName(s.opts.SchemaPrefix + def.Name)
	return &table{
		name: def.Name, topic: topic, keySubject: sub + "-key", valSubject: sub + "-value",
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

func (s *Sim) registerTable(ctx context.Context, t *table) error {
	ks := keySchema(t.name, s.opts.SchemaPrefix, t.cur())
	codec, err := goavro.NewCodec(ks)
	if err != nil {
		return fmt.Errorf("key schema: %w", err)
	}
	id, err := s.reg.register(ctx, t.keySubject, ks)
	if err != nil {
		return err
	}
	t.keyCodec = codec
	t.keyHeader = header(id)
	v := t.cur().version
	_, err = s.valueCodec(ctx, t, v, v)
	return err
}

func (s *Sim) registerResolved(ctx context.Context) error {
	if !s.opts.ResolvedV1 {
		_, err := s.resolvedPayload(ctx, "", s.clock)
		return err
	}
	for _, t := range s.tables {
		if _, err := s.resolvedPayload(ctx, t.topic, s.clock); err != nil {
			return err
		}
	}
	return nil
}

// resolvedPayload encodes a resolved message for topic ("" for the v2 sink).
func (s *Sim) resolvedPayload(ctx context.Context, topic string, ts schemas.HLC) ([]byte, error) {
	sch := resolvedSchema(topic, s.opts.SchemaPrefix)
	codec, err := goavro.NewCodec(sch)
	if err != nil {
		return nil, fmt.Errorf("resolved schema: %w", err)
	}
	id, err := s.reg.register(ctx, schemas.SQLNameToKafkaName(topic)+"-value", sch)
	if err != nil {
		return nil, err
	}
	h := header(id)
	b, err := codec.BinaryFromNative(h[:], map[string]any{"resolved": map[string]any{"string": ts.String()}})
	if err != nil {
		return nil, fmt.Errorf("encode resolved: %w", err)
	}
	return b, nil
}

func header(id uint32) [5]byte {
	var h [5]byte
	binary.BigEndian.PutUint32(h[1:], id)
	return h
}

// valueCodec returns the envelope codec for a (before version, after
// version) pair, registering its schema under the value subject on first use.
func (s *Sim) valueCodec(ctx context.Context, t *table, before, after int) (*valueCodec, error) {
	if vc, ok := t.values[[2]int{before, after}]; ok {
		return vc, nil
	}
	sch := valueSchema(t.name, s.env, t.versions[before], t.versions[after])
	codec, err := goavro.NewCodec(sch)
	if err != nil {
		return nil, fmt.Errorf("value schema: %w", err)
	}
	id, err := s.reg.register(ctx, t.valSubject, sch)
	if err != nil {
		return nil, err
	}
	inner := schemas.SQLNameToAvroName(t.name)
	vc := &valueCodec{codec: codec, header: header(id),
		beforeName: fullName(s.opts.SchemaPrefix, inner+"_before"), afterName: fullName(s.opts.SchemaPrefix, inner),
		before: t.versions[before], after: t.versions[after]}
	allCols(vc.before) // fill the caches now: encoders read them concurrently
	allCols(vc.after)
	t.values[[2]int{before, after}] = vc
	return vc, nil
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
func (s *Sim) LastResolved() schemas.HLC {
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
func (s *Sim) tick() schemas.HLC {
	if s.opts.Live {
		if now := time.Now().UnixNano(); s.clock.WallTime < now {
			s.clock = schemas.HLC{WallTime: now}
		} else {
			s.clock = s.clock.Next()
		}
		return s.clock
	}
	if s.rng.Intn(4) == 0 {
		s.clock = s.clock.Next()
	} else {
		s.clock = schemas.HLC{WallTime: s.clock.WallTime + 1 + s.rng.Int63n(int64(s.opts.MaxClockStep))}
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

// Txn is one CockroachDB transaction in progress. All its writes share one
// HLC; for each row only the last write is emitted.
type Txn struct {
	s      *Sim
	ts     schemas.HLC
	writes []write
	idx    map[*table]map[string]int
	done   bool
}

type write struct {
	t    *table
	key  []any
	kb   []byte
	vals []any // nil: delete
}

// Txn runs fn as one transaction and, if it returns nil, commits and emits
// its writes. The transaction's HLC is taken before fn runs and is strictly
// later than every earlier HLC. fn must not call other Sim methods.
func (s *Sim) Txn(ctx context.Context, fn func(tx *Txn) error) (schemas.HLC, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return schemas.HLC{}, err
	}
	tx := &Txn{s: s, ts: s.tick()}
	err := fn(tx)
	tx.done = true
	if err != nil {
		return schemas.HLC{}, err
	}
	return tx.ts, s.commit(ctx, tx)
}

// HLC returns the transaction's commit timestamp.
func (tx *Txn) HLC() schemas.HLC { return tx.ts }

// Upsert writes a whole row: columns missing from row are NULL, or their
// DEFAULT. Values use the Go types schemas.Kind documents.
func (tx *Txn) Upsert(table string, row map[string]any) error {
	if tx.done {
		return errors.New("simulator: transaction already finished")
	}
	t, err := tx.s.table(table)
	if err != nil {
		return err
	}
	vals, err := tx.s.rowValues(t, row, tx.ts)
	if err != nil {
		return fmt.Errorf("simulator: upsert into %q: %w", table, err)
	}
	sch := t.cur()
	key := make([]any, len(sch.key))
	for i, k := range sch.key {
		key[i] = vals[k]
	}
	return tx.add(t, key, vals)
}

// Delete deletes the row with the given primary key (in primary-index
// order). Deleting an absent row still emits a delete, as CockroachDB does.
func (tx *Txn) Delete(table string, key ...any) error {
	if tx.done {
		return errors.New("simulator: transaction already finished")
	}
	t, err := tx.s.table(table)
	if err != nil {
		return err
	}
	nk, err := t.normalizeKey(key)
	if err != nil {
		return fmt.Errorf("simulator: delete from %q: %w", table, err)
	}
	return tx.add(t, nk, nil)
}

func (tx *Txn) add(t *table, key []any, vals []any) error {
	kb, err := t.encodeKey(key)
	if err != nil {
		return fmt.Errorf("simulator: table %q: encode key: %w", t.name, err)
	}
	w := write{t: t, key: key, kb: kb, vals: vals}
	// Only the last write of a row is emitted. Small transactions find the
	// earlier write by scanning; large ones through an index.
	if len(tx.writes) < 16 {
		for i := range tx.writes {
			if tx.writes[i].t == t && bytes.Equal(tx.writes[i].kb, kb) {
				tx.writes[i] = w
				return nil
			}
		}
	} else {
		if tx.idx == nil {
			tx.idx = map[*table]map[string]int{}
			for i, o := range tx.writes {
				if tx.idx[o.t] == nil {
					tx.idx[o.t] = map[string]int{}
				}
				tx.idx[o.t][string(o.kb)] = i
			}
		}
		if i, ok := tx.idx[t][string(kb)]; ok {
			tx.writes[i] = w
			return nil
		}
		if tx.idx[t] == nil {
			tx.idx[t] = map[string]int{}
		}
		tx.idx[t][string(kb)] = len(tx.writes)
	}
	tx.writes = append(tx.writes, w)
	return nil
}

func (s *Sim) table(name string) (*table, error) {
	t, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("simulator: unknown table %q", name)
	}
	return t, nil
}

func (t *table) normalizeKey(key []any) ([]any, error) {
	sch := t.cur()
	if len(key) != len(sch.key) {
		return nil, fmt.Errorf("primary key has %d columns, got %d values", len(sch.key), len(key))
	}
	out := make([]any, len(key))
	for i, k := range sch.key {
		c := sch.cols[k]
		v, err := c.typ.normalize(key[i])
		if err != nil {
			return nil, fmt.Errorf("key column %q: %w", c.name, err)
		}
		if v == nil {
			return nil, fmt.Errorf("key column %q is NULL", c.name)
		}
		out[i] = v
	}
	return out, nil
}

// rowValues builds the canonical values of a full row of t's current
// version from row.
func (s *Sim) rowValues(t *table, row map[string]any, ts schemas.HLC) ([]any, error) {
	sch := t.cur()
	for name := range row {
		if _, ok := sch.byName[name]; !ok {
			return nil, fmt.Errorf("column %q does not exist", name)
		}
	}
	vals := make([]any, len(sch.cols))
	for i, c := range sch.cols {
		v, present := row[c.name]
		var err error
		if present {
			if v, err = c.typ.normalize(v); err != nil {
				return nil, fmt.Errorf("column %q: %w", c.name, err)
			}
		} else if c.dfn != nil {
			v = c.dfn(s, ts)
		}
		if v == nil && c.notNull {
			return nil, fmt.Errorf("null value in column %q violates not-null constraint", c.name)
		}
		vals[i] = v
	}
	return vals, nil
}

func (t *table) encodeKey(key []any) ([]byte, error) {
	sch := t.cur()
	if t.keyScratch == nil {
		t.keyScratch = newRowScratch(sch, sch.key)
	}
	native := t.keyScratch.fill(sch, sch.key, key, true)
	buf := make([]byte, 5, 32)
	copy(buf, t.keyHeader[:])
	return t.keyCodec.BinaryFromNative(buf, native)
}

// row returns the state of the row with framed key kb, creating it. Callers
// hold s.state.
func (t *table) row(key []any, kb []byte) *rowState {
	rs, ok := t.rows[string(kb)]
	if !ok {
		rs = &rowState{key: key, kb: kb}
		t.rows[string(kb)] = rs
		t.order = append(t.order, rs)
	}
	return rs
}

func (s *Sim) commit(ctx context.Context, tx *Txn) error {
	type ref struct {
		t  *table
		rs *rowState
		i  int
	}
	refs := make([]ref, len(tx.writes))
	s.state.Lock()
	for i, w := range tx.writes {
		rs := w.t.row(w.key, w.kb)
		rs.hist = append(rs.hist, rowVersion{ts: tx.ts, mvcc: tx.ts, vals: w.vals,
			schema: int32(w.t.cur().version), flags: flagEmitted})
		refs[i] = ref{w.t, rs, len(rs.hist) - 1}
	}
	s.state.Unlock()
	for _, r := range refs {
		if err := s.emit(ctx, r.t, r.rs, r.i); err != nil {
			return err
		}
	}
	return nil
}

// emit queues version i of rs for encoding and sending (see encode.go).
func (s *Sim) emit(ctx context.Context, t *table, rs *rowState, i int) error {
	v := rs.hist[i]
	job := encJob{t: t, rs: rs, v: v}
	after := t.versions[v.schema]
	before := after
	if s.opts.Diff {
		// The before record is built from the descriptor valid just before
		// the row's timestamp (cdcevent decodes the previous row there).
		before = t.schemaAt(prevHLC(v.ts))
		if before.version > after.version {
			before = after
		}
		if i > 0 && v.flags&flagScan == 0 && rs.hist[i-1].vals != nil {
			p := rs.hist[i-1]
			job.prev, job.prevSchema = p.vals, t.versions[p.schema]
		}
	}
	vc, err := s.valueCodec(ctx, t, before.version, after.version)
	if err != nil {
		return fmt.Errorf("simulator: table %q: %w", t.name, err)
	}
	job.vc = vc
	s.encQ = append(s.encQ, job)
	if len(s.encQ) >= encBatch {
		return s.drainEnc()
	}
	return nil
}

// allCols is 0..len(sch.cols)-1, cached per schema.
func allCols(sch *tableSchema) []int {
	if len(sch.all) != len(sch.cols) {
		sch.all = make([]int, len(sch.cols))
		for i := range sch.all {
			sch.all[i] = i
		}
	}
	return sch.all
}

// project maps vals of schema from onto schema to by column name.
func project(from *tableSchema, vals []any, to *tableSchema) []any {
	if from == to {
		return vals
	}
	out := make([]any, len(to.cols))
	for i, c := range to.cols {
		if j, ok := from.byName[c.name]; ok {
			out[i] = vals[j]
		}
	}
	return out
}

// send hands m to the producer, and again with DuplicateProb.
func (s *Sim) send(m *message) {
	n := 1
	if s.opts.DuplicateProb > 0 && s.dupRng.Float64() < s.opts.DuplicateProb {
		n = 2
	}
	for ; n > 0; n-- {
		s.cl.Produce(s.ctx, &kgo.Record{Topic: m.t.topic, Key: m.rs.kb, Value: m.value}, s.promise)
		s.produced++
	}
	if m.rs.sentTS.Less(m.ts) {
		m.rs.sentTS = m.ts
	}
}

// sendPending sends the queued rows in a uniformly random interleaving that
// keeps every key's order.
func (s *Sim) sendPending() {
	if len(s.pending) == 0 {
		return
	}
	groups := map[*rowState]int{}
	var queues [][]*message
	slots := make([]int, len(s.pending))
	for i, m := range s.pending {
		g, ok := groups[m.rs]
		if !ok {
			g = len(queues)
			groups[m.rs] = g
			queues = append(queues, nil)
		}
		queues[g] = append(queues[g], m)
		slots[i] = g
	}
	s.rng.Shuffle(len(slots), func(i, j int) { slots[i], slots[j] = slots[j], slots[i] })
	next := make([]int, len(queues))
	for _, g := range slots {
		s.send(queues[g][next[g]])
		next[g]++
	}
	s.pending = s.pending[:0]
}

// Resolve sends every queued row, waits until all rows are acknowledged, and
// then sends a resolved message at a new HLC (later than every row) to every
// partition of every topic, as CockroachDB's v2 Kafka sink does
// (FlushResolvedPayload, §4.1).
func (s *Sim) Resolve(ctx context.Context) (schemas.HLC, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return schemas.HLC{}, err
	}
	ts := s.tick()
	if err := s.flush(ctx); err != nil {
		return schemas.HLC{}, err
	}
	var v2 []byte
	if !s.opts.ResolvedV1 {
		// The v2 sink encodes one payload for the empty topic and sends it
		// to every topic.
		b, err := s.resolvedPayload(ctx, "", ts)
		if err != nil {
			return schemas.HLC{}, fmt.Errorf("simulator: %w", err)
		}
		v2 = b
	}
	for _, t := range s.tables {
		payload := v2
		if s.opts.ResolvedV1 {
			b, err := s.resolvedPayload(ctx, t.topic, ts)
			if err != nil {
				return schemas.HLC{}, fmt.Errorf("simulator: %w", err)
			}
			payload = b
		}
		for p := 0; p < t.partitions; p++ {
			s.cl.Produce(s.ctx, &kgo.Record{Topic: t.topic, Partition: int32(p), Value: payload}, s.promise)
		}
	}
	if err := s.flush(ctx); err != nil {
		return schemas.HLC{}, err
	}
	s.lastResolved = ts
	return ts, nil
}

func (s *Sim) flush(ctx context.Context) error {
	if err := s.sendAll(); err != nil {
		return err
	}
	s.sendPending()
	if err := s.cl.Flush(ctx); err != nil {
		return fmt.Errorf("simulator: flush: %w", err)
	}
	if err := s.producerErr(); err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	return nil
}

// Flush sends queued rows and waits until everything produced so far is
// acknowledged, without a resolved message.
func (s *Sim) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return err
	}
	return s.flush(ctx)
}

// Load sets table contents that exist before the feed starts. The rows get
// one HLC and are part of the oracle's state but are not emitted (use
// InitialScan to emit them).
func (s *Sim) Load(table string, rows ...map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	t, err := s.table(table)
	if err != nil {
		return err
	}
	ts := s.tick()
	type loaded struct {
		key, vals []any
		kb        []byte
	}
	ls := make([]loaded, 0, len(rows))
	for i, row := range rows {
		vals, err := s.rowValues(t, row, ts)
		if err != nil {
			return fmt.Errorf("simulator: load %q row %d: %w", table, i, err)
		}
		sch := t.cur()
		key := make([]any, len(sch.key))
		for j, k := range sch.key {
			key[j] = vals[k]
		}
		kb, err := t.encodeKey(key)
		if err != nil {
			return fmt.Errorf("simulator: load %q row %d: %w", table, i, err)
		}
		ls = append(ls, loaded{key, vals, kb})
	}
	s.state.Lock()
	defer s.state.Unlock()
	for _, l := range ls {
		rs := t.row(l.key, l.kb)
		if n := len(rs.hist); n > 0 && rs.hist[n-1].ts == ts {
			rs.hist[n-1].vals = l.vals
			continue
		}
		rs.hist = append(rs.hist, rowVersion{ts: ts, mvcc: ts, vals: l.vals, schema: int32(t.cur().version)})
	}
	return nil
}

// liveRows returns t's rows that currently exist, in primary-key order.
func (t *table) liveRows() []*rowState {
	var out []*rowState
	for _, rs := range t.order {
		if n := len(rs.hist); n > 0 && rs.hist[n-1].vals != nil {
			out = append(out, rs)
		}
	}
	slices.SortFunc(out, func(a, b *rowState) int { return compareKeys(a.key, b.key) })
	return out
}

// InitialScan emits every existing row of every table with updated = the
// scan HLC and a null before, like a changefeed's initial scan;
// mvcc_timestamp is the row's own commit HLC.
func (s *Sim) InitialScan(ctx context.Context) (schemas.HLC, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return schemas.HLC{}, err
	}
	ts := s.tick()
	type ref struct {
		t  *table
		rs *rowState
	}
	var refs []ref
	s.state.Lock()
	for _, t := range s.tables {
		for _, rs := range t.liveRows() {
			last := rs.hist[len(rs.hist)-1]
			rs.hist = append(rs.hist, rowVersion{ts: ts, mvcc: last.ts, vals: last.vals, schema: last.schema, flags: flagEmitted | flagScan})
			refs = append(refs, ref{t, rs})
		}
	}
	s.state.Unlock()
	for _, r := range refs {
		if err := s.emit(ctx, r.t, r.rs, len(r.rs.hist)-1); err != nil {
			return schemas.HLC{}, err
		}
	}
	return ts, nil
}

// Restart simulates the changefeed restarting from checkpoint from: rows
// that Reorder holds back until the next resolved are lost with the old run
// and sent by the new one, and every version with updated > from is sent
// again in per-key order, each already-sent one skipped with probability
// gapProb (the "gaps" CockroachDB documents for duplicates). Re-sent versions may be older than resolved
// messages already sent, which the changefeed guarantees allow for
// previously seen rows.
func (s *Sim) Restart(ctx context.Context, from schemas.HLC, gapProb float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return err
	}
	if gapProb < 0 || gapProb > 1 {
		return fmt.Errorf("simulator: gapProb %v not in [0,1]", gapProb)
	}
	// Committed rows reach Kafka before the crash, except those Reorder
	// holds back until the next resolved: those are lost with the old run
	// (and sent by the new one). Deciding this by commit and not by timing
	// keeps the feed deterministic.
	if err := s.sendAll(); err != nil {
		return err
	}
	s.pending = s.pending[:0]
	type ref struct {
		t  *table
		rs *rowState
		i  int
		ts schemas.HLC
	}
	var refs []ref
	for _, t := range s.tables {
		for _, rs := range t.order {
			for i, v := range rs.hist {
				if v.flags&flagEmitted == 0 {
					continue
				}
				sent := !rs.sentTS.Less(v.ts)
				if sent && (!from.Less(v.ts) || s.rng.Float64() < gapProb) {
					continue
				}
				refs = append(refs, ref{t, rs, i, v.ts})
			}
		}
	}
	slices.SortStableFunc(refs, func(a, b ref) int { return a.ts.Compare(b.ts) })
	s.log.Info("changefeed restart", zap.Stringer("from", from), zap.Int("reemitted", len(refs)))
	for _, r := range refs {
		if err := s.emit(ctx, r.t, r.rs, r.i); err != nil {
			return err
		}
	}
	return nil
}

// AddColumn adds col to table as a schema change at a new HLC: a new value
// schema is registered under the same subject, and every existing row is
// re-emitted at the change HLC with the new schema (schema_change_policy=
// backfill), the new column set to backfill (or its DEFAULT when backfill is
// nil).
func (s *Sim) AddColumn(ctx context.Context, table string, col ColumnDef, backfill any) (schemas.HLC, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return schemas.HLC{}, err
	}
	t, err := s.table(table)
	if err != nil {
		return schemas.HLC{}, err
	}
	old := t.cur()
	if _, dup := old.byName[col.Name]; dup {
		return schemas.HLC{}, fmt.Errorf("simulator: column %q of %q already exists", col.Name, table)
	}
	c, err := s.newColumn(col)
	if err != nil {
		return schemas.HLC{}, fmt.Errorf("simulator: add column to %q: %w", table, err)
	}
	bv, err := c.typ.normalize(backfill)
	if err != nil {
		return schemas.HLC{}, fmt.Errorf("simulator: add column %q backfill: %w", col.Name, err)
	}
	ts := s.tick()
	if bv == nil && c.dfn == nil && c.notNull && len(t.liveRows()) > 0 {
		return schemas.HLC{}, fmt.Errorf("simulator: add column %q: NOT NULL column needs a backfill value or DEFAULT", col.Name)
	}
	next := &tableSchema{version: old.version + 1, since: ts, cols: append(slices.Clone(old.cols), c),
		byName: map[string]int{}, key: old.key}
	for i, cc := range next.cols {
		next.byName[cc.name] = i
	}
	return ts, s.schemaChange(ctx, t, next, func(vals []any) []any {
		v := bv
		if v == nil && c.dfn != nil {
			v = c.dfn(s, ts)
		}
		return append(slices.Clone(vals), v)
	})
}

// DropColumn drops a non-key column as a schema change at a new HLC, with a
// new value schema and a backfill of every row without the column.
func (s *Sim) DropColumn(ctx context.Context, table, col string) (schemas.HLC, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableCtx(ctx); err != nil {
		return schemas.HLC{}, err
	}
	t, err := s.table(table)
	if err != nil {
		return schemas.HLC{}, err
	}
	old := t.cur()
	j, ok := old.byName[col]
	if !ok {
		return schemas.HLC{}, fmt.Errorf("simulator: column %q of %q does not exist", col, table)
	}
	if slices.Contains(old.key, j) {
		return schemas.HLC{}, fmt.Errorf("simulator: cannot drop primary-key column %q of %q", col, table)
	}
	if len(old.cols) == 1 {
		return schemas.HLC{}, fmt.Errorf("simulator: cannot drop the last column of %q", table)
	}
	ts := s.tick()
	next := &tableSchema{version: old.version + 1, since: ts, byName: map[string]int{}}
	for i, c := range old.cols {
		if i != j {
			next.byName[c.name] = len(next.cols)
			next.cols = append(next.cols, c)
		}
	}
	for _, k := range old.key {
		if k > j {
			k--
		}
		next.key = append(next.key, k)
	}
	return ts, s.schemaChange(ctx, t, next, func(vals []any) []any {
		return append(slices.Clone(vals[:j]), vals[j+1:]...)
	})
}

func (s *Sim) schemaChange(ctx context.Context, t *table, next *tableSchema, conv func([]any) []any) error {
	s.state.Lock()
	t.versions = append(t.versions, next)
	live := t.liveRows()
	for _, rs := range live {
		last := rs.hist[len(rs.hist)-1]
		rs.hist = append(rs.hist, rowVersion{ts: next.since, mvcc: next.since, vals: conv(last.vals),
			schema: int32(next.version), flags: flagEmitted})
	}
	s.state.Unlock()
	// The new descriptor version gets its schema now, as the first event
	// after the change would register it.
	if _, err := s.valueCodec(ctx, t, next.version, next.version); err != nil {
		return fmt.Errorf("simulator: table %q: %w", t.name, err)
	}
	for _, rs := range live {
		if err := s.emit(ctx, t, rs, len(rs.hist)-1); err != nil {
			return err
		}
	}
	s.log.Info("schema change", zap.String("table", t.name), zap.Int("version", next.version), zap.Int("backfilled", len(live)))
	return nil
}

// prevHLC is hlc.Timestamp.Prev: the largest HLC before h.
func prevHLC(h schemas.HLC) schemas.HLC {
	if h.Logical > 0 {
		return schemas.HLC{WallTime: h.WallTime, Logical: h.Logical - 1}
	}
	return schemas.HLC{WallTime: h.WallTime - 1, Logical: 1<<31 - 1}
}
