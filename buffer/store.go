package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
)

// Options configure a Store.
type Options struct {
	// Dir is the directory of the Badger database. It is required unless
	// InMemory is set; it is created if missing.
	Dir string
	// InMemory keeps everything in memory (tests); nothing survives Close.
	InMemory bool
	// DiskBudget is the size in bytes of buffered events (keys and values,
	// see Usage) at which OverBudget reports true, so that the processor
	// pauses fetching. Zero means unlimited.
	DiskBudget int64
	// MemoryBudget is how many bytes of events the store may hold in
	// memory in front of Badger (see docs/BUFFER.md, "Memory front"):
	// events are written to Badger only when they do not fit. Zero writes
	// every event to Badger. The events held in memory count in Usage and
	// DiskBudget like those on disk.
	MemoryBudget int64
	// Logger receives the store's and Badger's messages; zap.NewNop() if nil.
	Logger *zap.Logger
}

// Partition names a Kafka partition of a changefeed topic.
type Partition struct {
	Topic     string
	Partition int32
}

// Event is one buffered changefeed row version.
type Event struct {
	// Updated is the row version's HLC (the changefeed's `updated`).
	Updated hlc.Timestamp
	// Table is the source table; it may not contain a NUL byte.
	Table string
	// Key is the row's opaque identity (the framed Kafka key).
	Key []byte
	// Offset is the Kafka offset of the record. When duplicates collapse,
	// the smallest offset is kept.
	Offset int64
	// Value is the opaque payload (the raw Kafka value).
	Value []byte
}

// State is the persisted state of one partition.
type State struct {
	// Base is the HLC through which the partition's events were applied and
	// trimmed (set by Reset and Trim only).
	Base hlc.Timestamp
	// Resolved is the latest resolved timestamp seen on the partition.
	Resolved hlc.Timestamp
	// Consumed is the next offset to fetch.
	Consumed int64
	// Events is the number of buffered (distinct) events.
	Events int64
}

// Usage is the buffer's total size over all partitions.
type Usage struct {
	// Events is the number of buffered events.
	Events int64
	// Bytes is the logical size of the buffered events: key and value bytes
	// as stored. The files on disk are larger by Badger's overhead (LSM
	// levels, tombstones not yet compacted, value-log garbage), typically
	// 1.2-2x; see docs/BUFFER.md.
	Bytes int64
}

// Badger tuning. Badger's defaults target a large server (five 64 MB
// memtables, a 256 MB block cache, 1 GB value-log files, four compactors)
// and peak near 1 GB RSS. The buffer holds short-lived data on a small
// machine shared with the decoder and the warehouse, so each knob below is
// set deliberately.
const (
	// memTableSize: a 12 MB memtable absorbs about 45k events of ~250
	// bytes (event plus index share), so L0 flushes happen a few times a
	// second at full speed. Badger's cost in memory scales with it: the
	// arena is allocated in full up front, and each flush builds its L0
	// table in an allocator from Badger's pool of eight (ristretto's
	// z.AllocatorPool), which keeps the buffers the allocator grew when it
	// is returned and hands it to the next flush or compaction. An
	// allocator starts at twice BaseTableSize (4 MB) and doubles: 4+8+16 =
	// 28 MB hold a 12 MB memtable's table (its blocks plus a
	// worst-case-sized compressed copy of each), a 16 MB memtable's needs
	// a fourth buffer of 32 MB, so every pooled allocator that once built
	// an L0 table held 60 MB (4M unresolved events: anonymous memory 350
	// -> 285 MiB, CPU per event no worse). Measured earlier with 2M
	// buffered events: 32 MB gave a 750 MB peak Go heap, 16 MB 450-500 MB,
	// 8 MB 290 MB at a third less write throughput.
	memTableSize = 12 << 20
	// numMemtables: one being written plus one being flushed. More only
	// helps bursts that outrun L0 flushing, and each costs ~15 MB.
	numMemtables = 2
	// numLevelZeroTables: L0 is compacted into L1 once it holds 12 tables
	// (~145 MB of memtables; ~190 MB when this was measured with 16 MB
	// memtables; Badger's default is 5, this store used 4). Buffered events
	// are short-lived: an event is trimmed (a tombstone written) within a
	// window or two. With a deep L0 most events meet their tombstone while
	// both are still in L0, and the L0->L1 compaction drops the pair
	// instead of first rewriting the event into L1 and L2 and the
	// tombstone after it. Measured end to end (1M events, loaded machine):
	// 11.5-16.6 µs of CPU per event against 14.5-19.3 with 4, compaction
	// down from ~21% of the CPU to ~10%. Reads merge more L0 tables, which
	// the window scan and the duplicate lookup (bloom filters) barely
	// notice.
	numLevelZeroTables = 12
	// numLevelZeroTablesStall: writers stall at 30 L0 tables (~360 MB),
	// far above numLevelZeroTables, so that compaction falling behind slows
	// ingest only in a long burst.
	numLevelZeroTablesStall = 30
	// valueThreshold: values up to 1 KB, the bulk of changefeed rows, live
	// in the LSM tree next to their key: one write, no value-log GC needed
	// when they are trimmed (compaction drops them). Larger rows go to the
	// value log so compactions do not keep rewriting big payloads.
	// Measured against 64 bytes (everything in the value log): half the
	// Go heap (the LSM tables get tiny) but twice the steady-state disk
	// and a GC that rewrites live values; see docs/BUFFER.md.
	valueThreshold = 1 << 10
	// valueLogFileSize: 64 MB files instead of 1 GB. Badger preallocates
	// and mmaps whole files, and GC reclaims space one file at a time, so
	// small files keep the footprint close to the live data.
	valueLogFileSize = 64 << 20
	// blockCacheSize: compressed blocks (below) are decompressed into the
	// block cache when read. The window scan reads each block once, in
	// order, and the duplicate lookup touches only the newest tables, so a
	// small cache suffices.
	blockCacheSize = 8 << 20
	// indexCacheSize bounds the memory of table indexes and bloom filters,
	// which Badger otherwise keeps in memory for every table (unbounded with
	// a large buffer).
	indexCacheSize = 16 << 20
	// numCompactors: two is Badger's minimum for a working LSM (one of them
	// prioritises L0); the machine has two cores shared with decoding.
	numCompactors = 2
	// baseLevelSize: level-0 tables are compacted straight into the last
	// level until it holds 256 MB, then into the level above it (Badger's
	// default is 10 MB, which at 10M buffered events put three levels
	// between level 0 and the last). Event keys are in epoch order
	// (keys.go), so a compaction into a level rarely overlaps its tables,
	// but Badger rewrites every table on every move between levels.
	// Measured with 10M events written straight to Badger (8 partitions,
	// 10k events/s of HLC time): 32.4M keys rewritten by compaction and
	// 8.9 µs CPU per event at 10 MB, 11.0M and 6.1 µs at 256 MB (1 TB,
	// no level above the last: 11.7M, 6.3 µs). With trims 3M events behind
	// ingest, whose tombstones widen every level-0 table, 256 MB rewrote
	// the fewest keys too (53M, against 77M at 10 MB and 56M at 1 GB).
	baseLevelSize = 256 << 20
	// tableSizeMultiplier: every table is BaseTableSize (2 MB), at every
	// level. Badger's default doubles the table size per level below the
	// base level, and a compaction builds its tables in memory (uncompressed
	// blocks plus their compressed copies, several subcompactions side by
	// side), so with millions of buffered events the deep levels' builders
	// held most of the Go heap.
	tableSizeMultiplier = 1
	// gcDiscardRatio: rewrite a value-log file when half of it is garbage.
	gcDiscardRatio = 0.5
	// gcInterval is the least time between value-log GC runs; GC rewrites
	// live values, so running it after every trim would waste I/O.
	gcInterval = 30 * time.Second
)

// Store is the buffer. It is safe for concurrent use: writes (Write, Trim,
// Reset, Drop) are serialised, except that the bulk of a Trim (its walk and
// deletions) runs beside Write, so ingest is not held up by a window's
// trim; reads (Scan, State, LowOffset, Usage) run concurrently with them on
// consistent snapshots.
type Store struct {
	db        *badger.DB
	log       *zap.Logger
	budget    int64
	memBudget int64
	inMemory  bool

	// tmu is held by Trim for its whole run, and by what must not run
	// beside the part of a trim that walks and deletes without mu: Reset
	// and Drop (they retire the id under it), the reaping of retired ids
	// (Badger's DropPrefix fails concurrent writes) and Close. Taken
	// before mu.
	tmu sync.Mutex
	// mu serialises everything that writes, except a trim's walk and
	// deletions, so that ingest goes on while a window's trim runs. The
	// in-memory counters stay consistent because a write's
	// read-check-count sequence is never interleaved with another's.
	mu      sync.Mutex
	nextID  uint32
	runSeq  uint64   // distinguishes offset index runs; starts at the open time
	garbage []uint32 // ids to reap, also persisted as 'g' keys
	failed  error    // set when a write failed half-way; the store must be reopened
	memSeq  uint64   // numbers the memory runs (mem.go)
	// direct is set when the memory front overflowed and was spilled:
	// Writes go straight to Badger until the next Trim.
	direct bool

	// memFoot is the memory the memory front's runs hold; spilled counts
	// the events spilled. Written under mu and smu, read under either.
	memFoot int64
	spilled int64

	// smu guards parts for readers.
	smu   sync.RWMutex
	parts map[Partition]*part

	events atomic.Int64
	bytes  atomic.Int64

	kick   chan struct{} // asks the background goroutine to reap and GC
	done   chan struct{}
	bg     sync.WaitGroup
	closed atomic.Bool
}

// part is the in-memory copy of one partition's state.
type part struct {
	id uint32
	// m is the persisted metadata: with the memory front its Consumed and
	// Resolved cover only what is durable, and its counters count only
	// the events in Badger.
	m meta
	// consumed and resolved are the partition's latest, whatever is
	// durable: what State reports. Guarded like m.
	consumed int64
	resolved hlc.Timestamp
	// mem are the partition's runs in memory, oldest first, memEvents and
	// memBytes their live events and bytes, memMax bounds their HLCs
	// (mem.go). Written under Store.mu and Store.smu.
	mem                 []*memRun
	memEvents, memBytes int64
	memMax              hlc.Timestamp
	// diskClean says that Badger holds no event of id: a complete trim
	// left none and none was written since, so trims skip their walk.
	// Guarded by Store.mu.
	diskClean bool
	// maxHLC bounds every event HLC of id in the store: an event above it
	// cannot be a duplicate, so Write skips the duplicate lookup for it.
	maxHLC hlc.Timestamp
	// trimFrom is where the next trim starts its walk: no event of id below
	// it is stored (a complete trim deleted them, and Write lowers it for
	// an event written below it). Without it every trim would walk from the
	// front of the range over the tombstones of the earlier trims that
	// compaction has not dropped yet. Zero (walk everything) after Open.
	// Guarded by Store.mu.
	trimFrom hlc.Timestamp
	// While a trim of id walks without mu, trimming is set and Write keeps
	// in lowWrite the lowest HLC it wrote (wroteLow says it did), so that
	// the trim does not move trimFrom above an event it did not see.
	// Guarded by Store.mu.
	trimming, wroteLow bool
	lowWrite           hlc.Timestamp
	// deadFrom is where dead-letter walks start: those below it were
	// trimmed (deadletter.go). Zero after Open.
	deadFrom atomic.Int64
}

// Open opens (or creates) the buffer store. If the previous process did not
// Close the store (a crash), Open recounts the buffered events of every
// partition: a key-only scan, proportional to the buffered events.
func Open(opts Options) (*Store, error) {
	if !opts.InMemory && opts.Dir == "" {
		return nil, errors.New("buffer: Options.Dir is required unless InMemory")
	}
	if opts.DiskBudget < 0 {
		return nil, fmt.Errorf("buffer: negative DiskBudget %d", opts.DiskBudget)
	}
	if opts.MemoryBudget < 0 {
		return nil, fmt.Errorf("buffer: negative MemoryBudget %d", opts.MemoryBudget)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	bo := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithNumLevelZeroTables(numLevelZeroTables).
		WithNumLevelZeroTablesStall(numLevelZeroTablesStall).
		WithValueThreshold(valueThreshold).
		WithValueLogFileSize(valueLogFileSize).
		// Snappy block compression: Badger writes its tables through
		// mmap, so every table page counts in the process's RSS until the
		// kernel reclaims it; compressed tables halve that and the disk
		// (2M buffered events: 410-450 -> 200-275 MiB file-backed RSS,
		// 500-570 -> 345-390 MiB on disk). Keys (table name, HLC prefix)
		// and Avro rows of one table compress well, and Snappy's CPU cost
		// was below the noise of the end-to-end benchmark.
		WithCompression(options.Snappy).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithNumCompactors(numCompactors).
		WithBaseLevelSize(baseLevelSize).
		// Durability against a process crash (kill -9) comes from Badger's
		// mmapped write-ahead log, which the kernel keeps. fsync per write
		// would cap throughput far below 100k events/s; after a machine
		// crash the warehouse checkpoint is the truth and the processor
		// resets the partition (see docs/BUFFER.md).
		WithSyncWrites(false).
		// Writers are serialised by Store.mu: conflict detection would only
		// cost memory and CPU.
		WithDetectConflicts(false).
		// Badger's metrics are process-global expvars; we report our own.
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{log.Named("badger").Sugar()})
	bo.TableSizeMultiplier = tableSizeMultiplier // no With method
	if opts.InMemory {
		bo.Dir, bo.ValueDir = "", ""
	}
	if !opts.InMemory {
		if err := removeEmptyMemtableWALs(opts.Dir); err != nil {
			return nil, fmt.Errorf("buffer: open %q: %w", opts.Dir, err)
		}
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("buffer: open badger in %q: %w", opts.Dir, err)
	}
	s := &Store{
		db:        db,
		log:       log,
		budget:    opts.DiskBudget,
		memBudget: opts.MemoryBudget,
		inMemory:  opts.InMemory,
		parts:     make(map[Partition]*part),
		runSeq:    uint64(time.Now().UnixNano()),
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("buffer: load %q: %w", opts.Dir, err)
	}
	s.bg.Add(1)
	go s.background()
	if !opts.InMemory {
		s.startPageout(opts.Dir)
	}
	return s, nil
}

// load reads the persisted state, reaps garbage and, after a crash,
// recounts.
func (s *Store) load() error {
	clean := false
	fresh := true
	ids := make(map[uint32]Partition)
	metas := make(map[uint32]meta)
	err := s.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(keyClean); err == nil {
			clean = true
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it, err := txn.Get(keyNextID)
		switch {
		case err == nil:
			fresh = false
			if err := it.Value(func(v []byte) error {
				if len(v) != idSize {
					return errors.New("malformed next id")
				}
				s.nextID = binary.BigEndian.Uint32(v)
				return nil
			}); err != nil {
				return err
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		iter := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer iter.Close()
		for _, prefix := range []byte{prefixPart, prefixMeta, prefixGarb} {
			for iter.Seek([]byte{prefix}); iter.ValidForPrefix([]byte{prefix}); iter.Next() {
				item := iter.Item()
				k := item.Key()
				switch prefix {
				case prefixPart:
					p, err := decodePartKey(k)
					if err != nil {
						return err
					}
					var id uint32
					if err := item.Value(func(v []byte) error {
						if len(v) != idSize {
							return fmt.Errorf("malformed id of %s[%d]", p.Topic, p.Partition)
						}
						id = binary.BigEndian.Uint32(v)
						return nil
					}); err != nil {
						return err
					}
					ids[id] = p
				case prefixMeta:
					if len(k) != 1+idSize {
						return fmt.Errorf("malformed meta key %s", HexPrefix(k))
					}
					var m meta
					if err := item.Value(func(v []byte) error {
						var err error
						m, err = decodeMeta(v)
						return err
					}); err != nil {
						return err
					}
					metas[binary.BigEndian.Uint32(k[1:])] = m
				case prefixGarb:
					if len(k) != 1+idSize {
						return fmt.Errorf("malformed garbage key %s", HexPrefix(k))
					}
					s.garbage = append(s.garbage, binary.BigEndian.Uint32(k[1:]))
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for id, p := range ids {
		m := metas[id]
		s.parts[p] = &part{id: id, m: m, consumed: m.consumed, resolved: m.resolved}
	}
	migrated, err := s.migrateEvents()
	if err != nil {
		return err
	}
	if err := s.reap(); err != nil {
		return err
	}
	// Migrated events have longer keys than the counters counted.
	recount := !clean && !fresh || migrated > 0
	if recount {
		s.log.Warn("buffer was not closed cleanly: recounting buffered events", zap.Int("partitions", len(s.parts)))
	}
	var changed []*part
	var events, size int64
	for p, pt := range s.parts {
		if recount && !pt.m.base.IsZero() {
			// Finish a Trim the crash interrupted (Base is persisted
			// before its deletions). Events at Base itself go too: they
			// are re-deliveries of versions already applied.
			if err := s.trim(context.Background(), p, pt.m.base); err != nil {
				return fmt.Errorf("finish trim of %s[%d]: %w", p.Topic, p.Partition, err)
			}
		}
		n, b, maxHLC, err := s.count(pt.id, !recount)
		if err != nil {
			return err
		}
		pt.maxHLC = maxHLC
		if recount && (n != pt.m.events || b != pt.m.bytes) {
			pt.m.events, pt.m.bytes = n, b
			changed = append(changed, pt)
		}
		events += pt.m.events
		size += pt.m.bytes
	}
	s.events.Store(events)
	s.bytes.Store(size)
	return s.db.Update(func(txn *badger.Txn) error {
		for _, pt := range changed {
			if err := txn.Set(idPrefix(prefixMeta, pt.id), pt.m.encode()); err != nil {
				return err
			}
		}
		// From here on, a crash leaves no clean marker behind.
		if err := txn.Delete(keyClean); err != nil {
			return err
		}
		return nil
	})
}

// count returns the number and size of id's events and their largest HLC.
// With maxOnly it only finds the largest HLC (one reverse seek).
func (s *Store) count(id uint32, maxOnly bool) (n, size int64, maxHLC hlc.Timestamp, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		ev := allIDEvents(txn, id, true)
		ev.seekFirst()
		if ev.valid {
			maxHLC = eventHLC(ev.item().Key())
		}
		ev.close()
		if maxOnly {
			return nil
		}
		ev = allIDEvents(txn, id, false)
		defer ev.close()
		for ev.seekFirst(); ev.valid; ev.next() {
			item := ev.item()
			n++
			size += item.KeySize() + item.ValueSize()
		}
		return nil
	})
	return n, size, maxHLC, err
}

// reap deletes the data of ids that Reset or Drop retired. Callers hold tmu
// and mu (or are Open): DropPrefix blocks all writes while it runs.
func (s *Store) reap() error {
	if len(s.garbage) == 0 {
		return nil
	}
	// A retired id's events lie in every epoch between other ids' events,
	// so they are deleted key by key; its offset index and dead letters
	// are ranges of their own.
	for _, id := range s.garbage {
		if err := s.deleteEvents(id); err != nil {
			return fmt.Errorf("drop retired partition data: %w", err)
		}
	}
	prefixes := make([][]byte, 0, 2*len(s.garbage))
	for _, id := range s.garbage {
		prefixes = append(prefixes, idPrefix(prefixOffset, id), idPrefix(prefixDead, id))
	}
	if err := s.db.DropPrefix(prefixes...); err != nil {
		return fmt.Errorf("drop retired partition data: %w", err)
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		for _, id := range s.garbage {
			if err := txn.Delete(idPrefix(prefixMeta, id)); err != nil {
				return err
			}
			if err := txn.Delete(idPrefix(prefixGarb, id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("forget retired partition ids: %w", err)
	}
	s.garbage = s.garbage[:0]
	return nil
}

// deleteEvents deletes every event of id, a retired id that no Write
// uses any more.
func (s *Store) deleteEvents(id uint32) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	ev := allIDEvents(txn, id, false)
	defer ev.close()
	for ev.seekFirst(); ev.valid; ev.next() {
		if err := wb.Delete(ev.item().KeyCopy(nil)); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// background reaps retired partitions and runs value-log GC after trims,
// at most once per gcInterval.
func (s *Store) background() {
	defer s.bg.Done()
	for {
		select {
		case <-s.done:
			return
		case <-s.kick:
		}
		s.tmu.Lock()
		s.mu.Lock()
		if s.failed == nil {
			if err := s.reap(); err != nil {
				s.log.Warn("buffer: reaping retired partitions failed (retried later)", zap.Error(err))
			}
		}
		s.mu.Unlock()
		s.tmu.Unlock()
		if !s.inMemory {
			// Value-log GC runs concurrently with writes. Each call
			// rewrites at most one file; loop while files qualify.
			for i := 0; i < 16; i++ {
				if err := s.db.RunValueLogGC(gcDiscardRatio); err != nil {
					if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
						s.log.Warn("buffer: value-log GC failed", zap.Error(err))
					}
					break
				}
			}
		}
		select {
		case <-s.done:
			return
		case <-time.After(gcInterval):
		}
	}
}

func (s *Store) kickBackground() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Close flushes and closes the store. After a clean Close the next Open
// trusts the persisted counters instead of recounting.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.done)
	s.bg.Wait()
	s.tmu.Lock()
	defer s.tmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.failed == nil && s.hasMemRuns() {
		// The memory front goes to Badger, so that a restart resumes from
		// where this process stopped rather than re-reading it from Kafka.
		if err := s.spill(-1); err != nil {
			errs = append(errs, fmt.Errorf("buffer: spill the memory front: %w", err))
		}
	}
	if s.failed == nil && !s.inMemory {
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(keyClean, nil) }); err != nil {
			errs = append(errs, fmt.Errorf("buffer: mark clean shutdown: %w", err))
		}
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("buffer: close badger: %w", err))
	}
	return errors.Join(errs...)
}

// checkWritable reports why the store cannot take writes. Callers hold mu.
func (s *Store) checkWritable() error {
	if s.closed.Load() {
		return errors.New("buffer: store is closed")
	}
	if s.failed != nil {
		return fmt.Errorf("buffer: an earlier write failed half-way, reopen the store: %w", s.failed)
	}
	return nil
}

// State returns p's persisted state, and false if p is unknown (never
// written or reset, or dropped).
func (s *Store) State(p Partition) (State, bool, error) {
	if s.closed.Load() {
		return State{}, false, errors.New("buffer: store is closed")
	}
	s.smu.RLock()
	defer s.smu.RUnlock()
	pt, ok := s.parts[p]
	if !ok {
		return State{}, false, nil
	}
	return State{Base: pt.m.base, Resolved: pt.resolved, Consumed: pt.consumed, Events: pt.m.events + pt.memEvents}, true, nil
}

// Usage returns the number and logical size of all buffered events.
func (s *Store) Usage() Usage {
	return Usage{Events: s.events.Load(), Bytes: s.bytes.Load()}
}

// OverBudget reports whether the buffered bytes reached Options.DiskBudget.
// It turns false again once Trim, Reset or Drop freed enough.
func (s *Store) OverBudget() bool {
	return s.budget > 0 && s.bytes.Load() >= s.budget
}

// lookup returns p's in-memory state, or nil.
func (s *Store) lookup(p Partition) *part {
	s.smu.RLock()
	defer s.smu.RUnlock()
	return s.parts[p]
}

// badgerLogger bridges Badger's printf logging to zap. Badger logs every
// compaction and memtable flush at INFO; those are demoted to debug so that
// highwater's info log stays about highwater. Warnings and errors keep
// their level.
type badgerLogger struct{ s *zap.SugaredLogger }

func (l badgerLogger) Errorf(f string, a ...any)   { l.s.Errorf(strings.TrimSpace(f), a...) }
func (l badgerLogger) Warningf(f string, a ...any) { l.s.Warnf(strings.TrimSpace(f), a...) }
func (l badgerLogger) Infof(f string, a ...any)    { l.s.Debugf(strings.TrimSpace(f), a...) }
func (l badgerLogger) Debugf(f string, a ...any)   { l.s.Debugf(strings.TrimSpace(f), a...) }
