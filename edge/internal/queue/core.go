package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
)

// meta is the in-memory copy of the counters (each also a key in Badger).
type meta struct {
	lastSeq      uint64 // highest seq written (and, once the group is answered, durable)
	cumLast      uint64 // payload bytes accepted through lastSeq (cumulative)
	committed    uint64 // every seq through it has its outcome recorded (not central's committed_through_seq: see ApplyCommit)
	cumCommitted uint64 // cumulative bytes through committed
	head         uint64 // lowest retained seq (1 when nothing was pruned)
	cumHead      uint64 // cumulative bytes through head-1
	dead         uint64 // dead letters
	change       uint64 // newest change-log number (WatchTransactions)
	newestLSN    uint64 // newest commit LSN central acknowledged
}

// core is the state every part of the queue shares: the Badger database,
// the counters, the writers' lock and the appender's channels. The parts
// (appender, committer, the read side, the pruner) each point to it.
type core struct {
	opts  Options
	db    *badger.DB
	log   *slog.Logger
	epoch string

	// wmu serializes every writer (appender groups, which carry
	// ApplyCommit's answers too, pruner, Rewind, dead-letter operations):
	// Badger runs without conflict detection.
	// The appender may leave one group committing (inflight) when it lets
	// go of wmu; every other writer takes it with lockWrite, which also
	// waits for that group to land, and bumps wgen on unlockWrite so the
	// appender knows a group it prepared ahead is stale.
	wmu      sync.Mutex
	wcond    sync.Cond // on wmu: the in-flight group landed
	inflight bool      // guarded by wmu
	wgen     uint64    // guarded by wmu
	// stale, guarded by wmu, is why the counters could not be read back
	// after a failed write (refresh): while set, m may be behind what is
	// durable, and no Badger write may commit (checkFresh).
	stale error
	// syncFailed is set by Badger's logger (badgerLogger) when Badger
	// logs a failed value-log fsync; see ErrSyncFailed.
	syncFailed *syncFailure
	groups     atomic.Uint64
	diskWaits  atomic.Uint64
	accepted   atomic.Uint64
	mu         sync.Mutex // guards m and changed
	m          meta
	changed    chan struct{} // closed at the next change (ChangeNotify)

	reqs     chan *submitReq
	appended chan struct{}
	stop     chan struct{} // closed by Close: the appender drains and exits
	stopped  chan struct{} // closed when the appender has exited
	runCtx   context.Context
	ix       *indexer // writes the overlays off the accept path
}

// load reads identity and counters, creating them with a new store.
func (c *core) load() error {
	return c.db.Update(func(txn *badger.Txn) error {
		edge, err := getString(txn, keyEdgeID)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			// A new store: a new epoch (docs/design.md, "Central").
			ep, err := uuid.NewRandom()
			if err != nil {
				return err
			}
			c.epoch = ep.String()
			if err := txn.Set(keyEdgeID, []byte(c.opts.EdgeID)); err != nil {
				return err
			}
			if err := txn.Set(keyEpoch, []byte(c.epoch)); err != nil {
				return err
			}
			c.m = meta{head: 1}
			if err := c.ix.loadIndexed(txn, 0); err != nil {
				return err
			}
			return writeMeta(txn, c.m)
		case err != nil:
			return fmt.Errorf("queue: read edge id: %w", err)
		case edge != c.opts.EdgeID:
			return fmt.Errorf("queue: data dir %s belongs to edge %q, not %q", c.opts.Dir, edge, c.opts.EdgeID)
		}
		if c.epoch, err = getString(txn, keyEpoch); err != nil {
			return fmt.Errorf("queue: read epoch: %w", err)
		}
		m, err := readMeta(txn)
		if err != nil {
			return err
		}
		c.m = m
		return c.ix.loadIndexed(txn, m.lastSeq)
	})
}

// lockWrite takes the writers' lock once no appender group is in flight.
func (c *core) lockWrite() {
	c.wmu.Lock()
	for c.inflight {
		c.wcond.Wait()
	}
}

// unlockWrite releases lockWrite, marking what the appender prepared ahead
// as stale.
func (c *core) unlockWrite() {
	c.wgen++
	c.wmu.Unlock()
}

func (c *core) snapshot() meta {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m
}

func (c *core) setMeta(m meta) {
	c.mu.Lock()
	if m.change != c.m.change && c.changed != nil {
		close(c.changed) // wake WatchTransactions streams
		c.changed = nil
	}
	c.m = m
	c.mu.Unlock()
}

// diskWaitPoll is how often a write waiting for free space looks again.
const diskWaitPoll = time.Second

// waitForSpace holds a write that adds to the store (a commit answer, the
// replica's visibility, a quarantine) while the free space is below half
// the reserve, until there is room again or the queue closes (ErrClosed).
// Submit is refused at the full reserve, so the writes that drain the
// backlog go on within the reserve's first half; the second half stays
// for Badger itself (memtable flushes, the next value-log file, which it
// writes through mmap and dies of SIGBUS on a full disk). They wait
// rather than fail: the forwarder and the replica watcher would only
// retry. Writes that free space (the pruner's deletes, discarding dead
// letters) do not wait. A statfs error is logged and not waited on: the
// write then goes on as it did before the check.
func (c *core) waitForSpace(what string) error {
	floor := c.opts.DiskReserve / 2
	warned := false
	for {
		free, err := c.opts.StatFS(c.opts.Dir)
		if err != nil {
			c.log.Error("statfs of data dir failed", "dir", c.opts.Dir, "err", err)
			return nil
		}
		if free >= floor {
			if warned {
				c.log.Info("disk space back above half the reserve; writing again", "write", what, "free_bytes", free)
			}
			return nil
		}
		if !warned {
			warned = true
			c.diskWaits.Add(1)
			c.log.Warn("disk space below half the reserve; write waits for space", "write", what,
				"free_bytes", free, "reserve_bytes", c.opts.DiskReserve)
		}
		select {
		case <-c.runCtx.Done():
			return ErrClosed
		case <-time.After(diskWaitPoll):
		}
	}
}

// writeMeta writes every counter. Writers are serialized (wmu) and each
// starts from the current counters, so writing all of them is always right.
func writeMeta(txn *badger.Txn, m meta) error {
	for _, p := range []struct {
		k []byte
		v uint64
	}{
		{keyLastSeq, m.lastSeq}, {keyCumLast, m.cumLast},
		{keyCommitted, m.committed}, {keyCumCommitted, m.cumCommitted},
		{keyHead, m.head}, {keyCumHead, m.cumHead}, {keyDead, m.dead},
		{keyChange, m.change}, {keyNewestLSN, m.newestLSN},
	} {
		if err := txn.Set(p.k, binary.BigEndian.AppendUint64(nil, p.v)); err != nil {
			return err
		}
	}
	return nil
}

func readMeta(txn *badger.Txn) (meta, error) {
	var m meta
	for _, p := range []struct {
		k []byte
		v *uint64
	}{
		{keyLastSeq, &m.lastSeq}, {keyCumLast, &m.cumLast},
		{keyCommitted, &m.committed}, {keyCumCommitted, &m.cumCommitted},
		{keyHead, &m.head}, {keyCumHead, &m.cumHead}, {keyDead, &m.dead},
		{keyChange, &m.change}, {keyNewestLSN, &m.newestLSN},
	} {
		item, err := txn.Get(p.k)
		if errors.Is(err, badger.ErrKeyNotFound) && (bytes.Equal(p.k, keyChange) || bytes.Equal(p.k, keyNewestLSN)) {
			continue // a store from before the change log
		}
		if err != nil {
			return m, fmt.Errorf("queue: read %s: %w", p.k, err)
		}
		err = item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("queue: counter %s has %d bytes", p.k, len(v))
			}
			*p.v = binary.BigEndian.Uint64(v)
			return nil
		})
		if err != nil {
			return m, err
		}
	}
	return m, nil
}

func getString(txn *badger.Txn, key []byte) (string, error) {
	item, err := txn.Get(key)
	if err != nil {
		return "", err
	}
	v, err := item.ValueCopy(nil)
	return string(v), err
}

// badgerVlogSyncError is how Badger v4 (value.go, valueLog.write) logs a
// failed fsync of the value log after a write it still reports done. A
// test checks that Badger's source still says so.
const badgerVlogSyncError = "Error while curlf sync:"

// syncFailure holds the first failed value-log fsync Badger logged.
type syncFailure struct{ msg atomic.Pointer[string] }

func (s *syncFailure) set(msg string) { s.msg.CompareAndSwap(nil, &msg) }

// err is ErrSyncFailed with Badger's message once an fsync failed.
func (s *syncFailure) err() error {
	if m := s.msg.Load(); m != nil {
		return fmt.Errorf("%w (%s)", ErrSyncFailed, *m)
	}
	return nil
}

// badgerLogger sends Badger's log to slog; its chatty info goes to debug.
// It also watches for the one error Badger logs instead of returning: a
// failed value-log fsync (ErrSyncFailed). Badger logs it from its write
// goroutine before it reports the write done, so the write that hit it
// sees it set when its commit returns.
type badgerLogger struct {
	l    *slog.Logger
	sync *syncFailure
}

func (b badgerLogger) Errorf(f string, a ...any) {
	m := msg(f, a)
	if strings.HasPrefix(f, badgerVlogSyncError) {
		b.sync.set(m)
		b.l.Error("value-log fsync failed; the queue refuses every write until the edge restarts", "err", m)
		return
	}
	b.l.Error(m)
}
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(msg(f, a)) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(msg(f, a)) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.l.Debug(msg(f, a)) }

func msg(f string, a []any) string { return strings.TrimSpace(fmt.Sprintf(f, a...)) }

// refresh reads the counters back from the store after a failed write, part
// of which may be durable; the caller holds wmu. If they cannot be read,
// the in-memory ones may be behind the store: a write built on them could
// reuse the seq of a durable entry and overwrite it. So they are marked
// stale, and every write is refused (checkFresh) until a read-back succeeds.
func (c *core) refresh() {
	if c.syncFailed.err() != nil {
		return // the store may hold writes that are not durable; see settle
	}
	if err := c.reload(); err != nil {
		c.log.Error("reading the counters back failed; writes refused until they can be read", "err", err)
		c.stale = err
		return
	}
	c.stale = nil
}

// checkFresh is called, under wmu, before every Badger commit: it fails while
// the counters are stale. It first tries to read them back; the write fails
// even when that works, since it was built on the stale ones.
func (c *core) checkFresh() error {
	if err := c.syncFailed.err(); err != nil {
		return err
	}
	if c.stale == nil {
		return nil
	}
	if c.refresh(); c.stale != nil {
		return fmt.Errorf("%w: %v; writes refused until they can", ErrCountersStale, c.stale)
	}
	return ErrRetry
}

func (c *core) reload() error {
	if hook := c.opts.hooks.readBack; hook != nil {
		if err := hook(); err != nil {
			return err
		}
	}
	return c.db.View(func(txn *badger.Txn) error {
		m, err := readMeta(txn)
		if err == nil {
			c.setMeta(m)
		}
		return err
	})
}
