package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Prune deletes committed payloads once their transactions are VISIBLE in
// the site replica (or were rejected), or when their commit is older than
// PayloadRetention (no replica, or one far behind), one commit mark (one
// Commit answer) at a time, and returns how many entries it deleted. Each step moves the head in the same
// Badger transaction as the deletions, so the head is always found in its
// own key (never by scanning over deleted entries).
func (q *Queue) Prune(ctx context.Context) (int, error) {
	if err := q.pruneVisibility(ctx, q.opts.Now().Add(-q.opts.OverlayRetention)); err != nil {
		return 0, err
	}
	cutoff := q.opts.Now().Add(-q.opts.PayloadRetention)
	var visible uint64
	err := q.db.View(func(txn *badger.Txn) (err error) {
		visible, err = visibleThrough(txn)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("queue: prune: %w", err)
	}
	total := 0
	for ctx.Err() == nil {
		n, more, err := q.pruneOne(cutoff, visible)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
	return total, ctx.Err()
}

// pruneOne deletes the payloads of the oldest commit mark when it is older
// than cutoff or every seq it covers is visible (through visible).
func (q *Queue) pruneOne(cutoff time.Time, visible uint64) (int, bool, error) {
	q.lockWrite()
	defer q.unlockWrite()
	m := q.snapshot()
	b := q.newBatch(&m)
	defer b.discard()

	var markKey []byte
	var through, cum uint64
	var at time.Time
	// Marks below the head are deleted: seek past their tombstones.
	it := b.txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefixMark})
	it.Seek(seqKey(prefixMark, m.head))
	if it.Valid() {
		item := it.Item()
		markKey = item.KeyCopy(nil)
		through = binary.BigEndian.Uint64(markKey[len(prefixMark):])
		err := item.Value(func(v []byte) error {
			if len(v) != 16 {
				return fmt.Errorf("queue: commit mark %d has %d bytes", through, len(v))
			}
			at = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			cum = binary.BigEndian.Uint64(v[8:])
			return nil
		})
		if err != nil {
			it.Close()
			return 0, false, err
		}
	}
	it.Close()
	if markKey == nil || (at.After(cutoff) && through > visible) {
		return 0, false, nil
	}
	n := 0
	for seq := m.head; seq <= through; seq++ {
		k := seqKey(prefixQueue, seq)
		if err := b.reserve(&badger.Entry{Key: k}); err != nil {
			return n, false, err
		}
		if err := b.txn.Delete(k); err != nil {
			return n, false, err
		}
		m.head = seq + 1
		n++
	}
	if err := b.reserve(&badger.Entry{Key: markKey}); err != nil {
		return n, false, err
	}
	if err := b.txn.Delete(markKey); err != nil {
		return n, false, err
	}
	m.cumHead = cum
	if err := b.commit(); err != nil {
		q.refresh()
		return n, false, fmt.Errorf("queue: prune through %d: %w", through, err)
	}
	q.setMeta(m)
	return n, true, nil
}

// RunGC runs Badger's value-log GC until it finds nothing more to rewrite,
// so disk use falls after a backlog drains. Badger learns which value-log
// bytes are garbage only when a compaction drops the old version of their
// key, and after a drain nothing more may be written to make compactions
// run: when GC finds nothing although the value log holds far more than
// the payloads still kept (valueLogMostlyGarbage), RunGC flushes the
// memtables and compacts the tree itself, then runs GC again.
func (q *Queue) RunGC() error {
	rewrote, err := q.valueLogGC()
	if err != nil || rewrote || !q.valueLogMostlyGarbage() {
		return err
	}
	q.log.Info("value log mostly garbage after a drain; compacting so GC can give the space back")
	if err := q.flushMemtables(); err != nil {
		return fmt.Errorf("queue: gc: flush memtables: %w", err)
	}
	if err := q.db.Flatten(numCompactors); err != nil {
		return fmt.Errorf("queue: gc: compact: %w", err)
	}
	_, err = q.valueLogGC()
	return err
}

// valueLogGC rewrites value-log files while Badger finds one worth it, and
// reports whether it rewrote any.
func (q *Queue) valueLogGC() (bool, error) {
	for i := range 1000 {
		err := q.db.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return i > 0, nil
		}
		if err != nil {
			return i > 0, err
		}
	}
	return true, nil
}

// valueLogMostlyGarbage: the value-log files take more than two files
// beyond three times the payload bytes still kept (each payload is in the
// value log once as the entry and about once more as its read overlays).
func (q *Queue) valueLogMostlyGarbage() bool {
	m := q.snapshot()
	live := m.cumLast - m.cumHead
	files, err := filepath.Glob(filepath.Join(q.opts.Dir, "*.vlog"))
	if err != nil {
		return false
	}
	var used uint64
	for _, f := range files {
		var st syscall.Stat_t
		if syscall.Stat(f, &st) == nil {
			used += uint64(st.Blocks) * 512 // allocated: the files are sparse
		}
	}
	return used > 2*valueLogFileSize+3*live
}

// flushMemtables makes Badger write its memtables to level-0 tables, so a
// compaction sees the tombstones of pruned payloads. Badger has no call
// for only that: DropPrefix flushes them first, here dropping one key
// written for the purpose. DropPrefix refuses writes while it runs, so
// the queue's writers are held off meanwhile.
func (q *Queue) flushMemtables() error {
	q.lockWrite()
	defer q.unlockWrite()
	if err := q.db.Update(func(txn *badger.Txn) error { return txn.Set(keyGCFlush, []byte{1}) }); err != nil {
		return err
	}
	return q.db.DropPrefix(keyGCFlush)
}
