// Package queue owns the edge's durable store (docs/design.md, "Edge internals"): the
// queue of accepted transactions in accept order, the state of every
// transaction by id (the first answer, for idempotent resubmits), the
// dead-letter store, the quarantine of corrupt entries and the counters,
// all in one Badger database.
//
// One appender goroutine assigns gap-free sequence numbers and writes
// submissions in groups: one Badger transaction and one fsync per group,
// then every caller of the group gets its answer (group commit). Everything
// that matters is in Badger; the in-memory counters are a cache of keys
// written in the same Badger transactions as the data they count, so a
// restart (after Close or kill -9) recovers them exactly.
//
// Queue is a facade over parts with one concern each, all pointing to one
// core (core.go: the Badger database, the counters, the writers' lock):
// the appender (append.go, group commit), the committer (commit.go,
// rewind.go, deadletter.go: central's answers, lost commits, dead
// letters), the read side Reads (visible.go, reads.go: overlays,
// visibility, the change log, states), the forwarder's entryReader
// (read.go) and the pruner (prune.go). Every write of any part goes
// through a batch (batch.go); the key layout is in keys.go, the errors
// in errors.go.
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// Badger memory and disk options, chosen for < 256 MiB RSS with a backlog of
// a million transactions:
//   - MemTableSize 16 MiB, NumMemtables 2: Badger's memory is dominated by
//     memtables (each is an arena of MemTableSize); the default 64 MiB x 5
//     alone would be 320 MiB. Two small ones still absorb our write rate,
//     because payloads go to the value log (ValueThreshold) and the LSM only
//     holds keys and pointers.
//   - ValueThreshold 256 B: transaction payloads above it (attributes and
//     configs make most 0.3-2 KiB) go to the value log, so the LSM stays small (a million entries is tens of
//     MiB of keys) and deleting forwarded payloads lets value-log GC give the
//     space back; small tx-state records stay in the LSM, cheap to look up.
//   - ValueLogFileSize 64 MiB: GC rewrites a whole file at a time, so smaller
//     files give space back sooner after a backlog drains; each is mmapped.
//   - BlockCacheSize 8 MiB, IndexCacheSize 16 MiB: reads are sequential scans
//     of recent data (the forwarder) and point lookups of tx ids; a small
//     cache bounds memory, and with IndexCacheSize set the table indexes of
//     a large backlog are not all pinned in memory.
//   - Compression off: the LSM holds keys and pointers, which compress badly;
//     it saves CPU on the 2-core edge box (payloads are gzip'd on the link).
//   - NumCompactors 2: one per core; compaction keeps up, L0 does not stall.
//   - BaseTableSize 1 MiB (default 2): each compaction builds tables in
//     parallel (up to 8+ builders, each buffering about two tables in
//     memory); smaller tables halve that transient memory.
//   - SyncWrites: every Badger commit is msync'd (value log and memtable WAL)
//     before Commit returns. The appender makes ONE Badger transaction per
//     group, so this is one fsync per group. (SyncWrites=false plus db.Sync
//     was rejected: db.Sync syncs only the current value-log file and the
//     active memtable's WAL, so writes that landed in a file that rotated in
//     between would not be forced to disk.) Badger returns a failed fsync
//     of the memtable WAL, but only logs one of the value log after a
//     write (ValueThreshold sends every value of 256 B or more there:
//     payloads, dead letters, change-log records); its logger catches that
//     and the queue refuses every write until reopened (ErrSyncFailed).
//     Keeping all values in the LSM instead would need ValueThreshold above
//     the largest transaction, past Badger's 1 MiB limit, and memtables
//     full of payloads.
//   - DetectConflicts off: writers are serialized by the queue itself.
//
// Measured (go run ./bench -backlog 1000000: 1M single-observation
// transactions, 178 MiB of payload, written at full speed and read back):
// anonymous RSS 40 MiB once idle, peak 430 MiB while compacting without a Go
// memory limit and 170 MiB with GOMEMLIMIT=160MiB (chasqui-edge sets
// --memory-limit, default 192 MiB). The mmapped files add ~370 MiB of page
// cache to RSS, which the kernel reclaims under pressure.
const (
	memTableSize     = 16 << 20
	numMemtables     = 2
	valueLogFileSize = 64 << 20
	valueThreshold   = 256
	blockCacheSize   = 8 << 20
	indexCacheSize   = 16 << 20
	numCompactors    = 2
	baseTableSize    = 1 << 20
)

// DefaultDiskReserve is the free space below which the queue refuses writes:
// two memtables (flushed to L0 tables), one value-log file (Badger creates
// the next one whole, through mmap) and compaction headroom of a value-log
// file. Badger writes through mmap: on a really full disk it dies of SIGBUS
// rather than seeing ENOSPC, so it must never get there.
// Defaults of Options (the edge's flags use them too).
const (
	// DefaultMaxQueueBytes is Options.MaxQueueBytes: 1 GiB waiting for central.
	DefaultMaxQueueBytes = 1 << 30
	// DefaultTxRetention is Options.TxRetention: a settled transaction's
	// first answer is kept a week for resubmits.
	DefaultTxRetention = 7 * 24 * time.Hour
	// DefaultPayloadRetention is Options.PayloadRetention.
	DefaultPayloadRetention = 24 * time.Hour
	// DefaultOverlayRetention is Options.OverlayRetention: a committed
	// transaction's overlays and unseen record wait a day for the replica.
	DefaultOverlayRetention = 24 * time.Hour
)

const DefaultDiskReserve = 2*memTableSize + valueLogFileSize + 64<<20

// Options configure Open. The zero value of each field means its default.
type Options struct {
	// Dir is the Badger data directory. Required.
	Dir string
	// EdgeID is stamped on every transaction. Required. A data directory
	// keeps the edge id it was created with; opening it as another edge fails.
	EdgeID string
	// Logger receives warnings and errors. Required.
	Logger *slog.Logger
	// MaxQueueBytes bounds the payload bytes waiting for central (accepted,
	// not yet committed). Default 1 GiB.
	MaxQueueBytes int64
	// DiskReserve is the free space (bytes) under which writes are refused.
	// Default DefaultDiskReserve (160 MiB).
	DiskReserve uint64
	// TxRetention is how long a committed transaction's state (its first
	// answer, for deduplication and GetTransaction) is kept. Default 7 days.
	TxRetention time.Duration
	// PayloadRetention is how long a committed payload is kept for resends
	// (central failing over and losing its last commits). Default 24 h.
	PayloadRetention time.Duration
	// OverlayRetention is how long a committed transaction's pending
	// overlays (for reads) are kept when the replica never shows it
	// visible (no replica, or one far behind). Default 24 h.
	OverlayRetention time.Duration
	// MaxChanges is how many state changes the change log keeps for
	// WatchTransactions to resume from. Default 1,000,000.
	MaxChanges uint64
	// PruneInterval is how often the pruner runs. Default 1 min.
	PruneInterval time.Duration
	// GCInterval is how often value-log GC runs. Default 5 min.
	GCInterval time.Duration
	// MaxGroup is the most transactions one append group writes. Default 4096.
	MaxGroup int
	// StatFS returns the free bytes of the file system holding dir.
	// Default: statfs(2). Tests inject low space through it.
	StatFS func(dir string) (uint64, error)
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// UnsafeNoSync makes Badger commit without fsync: an acknowledged
	// write can be lost on power failure. Benchmarks only (go run ./bench
	// reports what the accept path costs without its fsync); chasqui-edge
	// has no flag for it.
	UnsafeNoSync bool
	// RowKey gives a row's canonical primary key (internal/rows.Key over
	// the key columns of its table, from the schema the edge learned), or
	// false when it cannot (the table is not known yet). Row overlays are
	// kept under that key; those it cannot key are kept per table and keyed
	// by the reader (rowoverlay.go). Nil: every row is kept unkeyed.
	RowKey func(*opsv1.Row) (key string, ok bool)

	// hooks: test stand-ins for commits and read-backs (testhooks.go).
	hooks testHooks
}

func (o *Options) setDefaults() {
	if o.MaxQueueBytes == 0 {
		o.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if o.DiskReserve == 0 {
		o.DiskReserve = DefaultDiskReserve
	}
	if o.TxRetention == 0 {
		o.TxRetention = DefaultTxRetention
	}
	if o.PayloadRetention == 0 {
		o.PayloadRetention = DefaultPayloadRetention
	}
	if o.OverlayRetention == 0 {
		o.OverlayRetention = DefaultOverlayRetention
	}
	if o.MaxChanges == 0 {
		o.MaxChanges = 1_000_000
	}
	if o.PruneInterval == 0 {
		o.PruneInterval = time.Minute
	}
	if o.GCInterval == 0 {
		o.GCInterval = 5 * time.Minute
	}
	if o.MaxGroup == 0 {
		o.MaxGroup = 4096
	}
	if o.StatFS == nil {
		o.StatFS = statFS
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate names the first unusable field.
func (o Options) Validate() error {
	switch {
	case o.Dir == "":
		return errors.New("queue: Dir is required")
	case o.EdgeID == "":
		return errors.New("queue: EdgeID is required")
	case o.Logger == nil:
		return errors.New("queue: Logger is required")
	case o.MaxQueueBytes < 0:
		return errors.New("queue: MaxQueueBytes must not be negative")
	case o.TxRetention < 0 || o.PayloadRetention < 0:
		return errors.New("queue: TxRetention and PayloadRetention must not be negative")
	}
	return nil
}

// Queue is the edge's durable store. Open it with Open, run its maintenance
// loops with Run, and Close it. Its methods hand each call to the part
// that owns it.
type Queue struct {
	*core // shared by every part
	app   *appender
	com   *committer
	reads *Reads
	rd    *entryReader
	pr    *pruner

	wg      sync.WaitGroup // the appender
	runWG   sync.WaitGroup // Run
	stopRun context.CancelFunc
	closeMu sync.Mutex
	closed  bool
}

// forceUnsafeNoSync is set only in binaries built with the test-only tag
// chasqui_unsafe_nosync (nosync_build.go): it turns UnsafeNoSync on.
var forceUnsafeNoSync bool

// Open opens (or creates) the store in opts.Dir and starts the appender.
func Open(opts Options) (*Queue, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if forceUnsafeNoSync {
		opts.UnsafeNoSync = true
		opts.Logger.Error("queue: built with the test-only tag chasqui_unsafe_nosync: commits are not fsync'd, acknowledged writes are lost on power failure")
	}
	sf := &syncFailure{}
	bo := badger.DefaultOptions(opts.Dir).
		WithLogger(badgerLogger{l: opts.Logger.With("component", "badger"), sync: sf}).
		WithSyncWrites(!opts.UnsafeNoSync).
		WithDetectConflicts(false).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithValueLogFileSize(valueLogFileSize).
		WithValueThreshold(valueThreshold).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithNumCompactors(numCompactors).
		WithBaseTableSize(baseTableSize).
		WithCompression(options.None)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("queue: open badger in %s: %w", opts.Dir, err)
	}
	c := &core{
		opts:       opts,
		db:         db,
		syncFailed: sf,
		log:        opts.Logger.With("component", "queue"),
		reqs:       make(chan *submitReq, 1024),
		appended:   make(chan struct{}, 1),
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	c.wcond.L = &c.wmu
	c.ix = &indexer{core: c, wake: make(chan struct{}, 1)}
	app := &appender{core: c}
	q := &Queue{core: c, app: app, com: &committer{core: c, app: app},
		reads: &Reads{core: c}, rd: &entryReader{core: c}, pr: &pruner{core: c}}
	q.runCtx, q.stopRun = context.WithCancel(context.Background())
	if err := q.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		defer close(q.stopped)
		q.app.appendLoop()
	}()
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		q.ix.loop()
	}()
	return q, nil
}

// Close stops Run's loops and the appender (waiting submissions get
// ErrClosed), waits for them, and closes the Badger database.
func (q *Queue) Close() error {
	q.closeMu.Lock()
	if q.closed {
		q.closeMu.Unlock()
		return nil
	}
	q.closed = true
	q.stopRun()
	close(q.stop)
	q.closeMu.Unlock()
	q.runWG.Wait()
	q.wg.Wait()
	q.ix.close()  // wait for a reader's catch-up
	q.lockWrite() // wait for a writer still inside (Rewind, pruner, dead letters)
	defer q.unlockWrite()
	return q.db.Close()
}

// Run runs the maintenance loops (pruner and value-log GC) until ctx is done.
func (q *Queue) Run(ctx context.Context) error {
	q.closeMu.Lock()
	if q.closed {
		q.closeMu.Unlock()
		return ErrClosed
	}
	q.runWG.Add(1)
	q.closeMu.Unlock()
	defer q.runWG.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(q.runCtx, cancel)()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		every(ctx, q.opts.PruneInterval, func() {
			if _, err := q.pr.prune(ctx); err != nil && ctx.Err() == nil {
				q.log.Error("prune failed", "err", err)
			}
		})
	}()
	go func() {
		defer wg.Done()
		every(ctx, q.opts.GCInterval, func() {
			if err := q.RunGC(); err != nil && ctx.Err() == nil {
				q.log.Error("value-log gc failed", "err", err)
			}
		})
	}()
	wg.Wait()
	return nil
}

func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// EdgeID is the edge's id.
func (q *Queue) EdgeID() string { return q.opts.EdgeID }

// Epoch is the random id created with the data directory.
func (q *Queue) Epoch() string { return q.epoch }

// CommittedThrough is the highest seq central acknowledged.
func (q *Queue) CommittedThrough() uint64 { return q.snapshot().committed }

// LastSeq is the highest seq accepted (durable).
func (q *Queue) LastSeq() uint64 { return q.snapshot().lastSeq }

// Appended is signalled after each durable append group.
func (q *Queue) Appended() <-chan struct{} { return q.appended }

// Stats is the queue's part of the edge status.
type Stats struct {
	// Count and Bytes are the transactions waiting for central.
	Count, Bytes uint64
	// RetainedBytes are committed payloads kept for resends.
	RetainedBytes uint64
	// LimitBytes is MaxQueueBytes.
	LimitBytes uint64
	// OldestPending is the accept time of the oldest waiting transaction
	// (zero when none waits).
	OldestPending time.Time
	LastSeq       uint64
	Committed     uint64
	// Head is the lowest seq whose payload is still held.
	Head        uint64
	DeadLetters uint64
	// DiskFree is the free space of the data directory's file system.
	DiskFree uint64
	// DiskWaits counts the writes other than Submit (commit answers,
	// visibility, quarantine) that waited for free space (waitForSpace).
	DiskWaits uint64
	// AppendGroups counts the append groups written since Open: one
	// fsync'd Badger write each, so Accepted per group is what group
	// commit saves. Accepted counts the new transactions they stored
	// (duplicates and refused requests not included).
	AppendGroups, Accepted uint64
	// Indexed is the seq through which the read overlays are written
	// (LastSeq - Indexed is the indexer's lag), and IndexKeys the Badger
	// keys the indexer wrote since Open: what the accept path left to it.
	Indexed, IndexKeys uint64
}

// Stats reads the counters.
func (q *Queue) Stats() (Stats, error) {
	m := q.snapshot()
	s := Stats{
		AppendGroups:  q.groups.Load(),
		Accepted:      q.accepted.Load(),
		Count:         m.lastSeq - m.committed,
		Bytes:         m.cumLast - m.cumCommitted,
		RetainedBytes: m.cumCommitted - m.cumHead,
		LimitBytes:    uint64(q.opts.MaxQueueBytes),
		LastSeq:       m.lastSeq,
		Committed:     m.committed,
		Head:          m.head,
		DeadLetters:   m.dead,
		Indexed:       q.ix.through.Load(),
		IndexKeys:     q.ix.keys.Load(),
	}
	if m.committed > m.lastSeq { // central acknowledged seqs of an older store
		s.Count, s.Bytes = 0, 0
	}
	if s.Count > 0 {
		err := q.db.View(func(txn *badger.Txn) error {
			h, err := readHeader(txn, m.committed+1)
			if err == nil {
				s.OldestPending = h.acceptedAt
			}
			return err
		})
		if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return s, fmt.Errorf("queue: oldest pending: %w", err)
		}
	}
	free, err := q.opts.StatFS(q.opts.Dir)
	if err != nil {
		return s, fmt.Errorf("queue: statfs: %w", err)
	}
	s.DiskFree = free
	s.DiskWaits = q.diskWaits.Load()
	return s, nil
}
