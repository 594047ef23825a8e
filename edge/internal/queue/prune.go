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

// pruner deletes what is no longer needed: forwarded payloads, overlays
// and unseen records past their retention, the change log beyond
// MaxChanges, and value-log garbage (RunGC).
type pruner struct{ *core }

// Prune deletes committed payloads once their transactions are VISIBLE in
// the site replica (or were rejected), or when their commit is older than
// PayloadRetention (no replica, or one far behind), one commit mark (one
// Commit answer) at a time, and returns how many entries it deleted. Each step moves the head in the same
// Badger transaction as the deletions, so the head is always found in its
// own key (never by scanning over deleted entries).
func (q *Queue) Prune(ctx context.Context) (int, error) { return q.pr.prune(ctx) }

func (p *pruner) prune(ctx context.Context) (int, error) {
	if err := p.pruneVisibility(ctx, p.opts.Now().Add(-p.opts.OverlayRetention)); err != nil {
		return 0, err
	}
	cutoff := p.opts.Now().Add(-p.opts.PayloadRetention)
	var visible uint64
	err := p.db.View(func(txn *badger.Txn) (err error) {
		visible, err = visibleThrough(txn)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("queue: prune: %w", err)
	}
	total := 0
	for ctx.Err() == nil {
		n, more, err := p.pruneOne(cutoff, visible)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
	return total, ctx.Err()
}

// pruneOne deletes the payloads of the oldest commit mark when it is older
// than cutoff or every seq it covers is visible (through visible).
func (p *pruner) pruneOne(cutoff time.Time, visible uint64) (int, bool, error) {
	p.lockWrite()
	defer p.unlockWrite()
	m := p.snapshot()
	b := p.newBatch(&m)
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
		p.refresh()
		return n, false, fmt.Errorf("queue: prune through %d: %w", through, err)
	}
	p.setMeta(m)
	return n, true, nil
}

// RunGC runs Badger's value-log GC until it finds nothing more to rewrite,
// so disk use falls after a backlog drains. Badger learns which value-log
// bytes are garbage only when a compaction drops the old version of their
// key, and after a drain nothing more may be written to make compactions
// run: when GC finds nothing although the value log holds far more than
// the payloads still kept (valueLogMostlyGarbage), RunGC flushes the
// memtables and compacts the tree itself, then runs GC again.
func (q *Queue) RunGC() error { return q.pr.runGC() }

func (p *pruner) runGC() error {
	rewrote, err := p.valueLogGC()
	if err != nil || rewrote || !p.valueLogMostlyGarbage() {
		return err
	}
	p.log.Info("value log mostly garbage after a drain; compacting so GC can give the space back")
	if err := p.flushMemtables(); err != nil {
		return fmt.Errorf("queue: gc: flush memtables: %w", err)
	}
	if err := p.db.Flatten(numCompactors); err != nil {
		return fmt.Errorf("queue: gc: compact: %w", err)
	}
	_, err = p.valueLogGC()
	return err
}

// valueLogGC rewrites value-log files while Badger finds one worth it, and
// reports whether it rewrote any.
func (p *pruner) valueLogGC() (bool, error) {
	for i := range 1000 {
		err := p.db.RunValueLogGC(0.5)
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
func (p *pruner) valueLogMostlyGarbage() bool {
	m := p.snapshot()
	live := m.cumLast - m.cumHead
	files, err := filepath.Glob(filepath.Join(p.opts.Dir, "*.vlog"))
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
func (p *pruner) flushMemtables() error {
	p.lockWrite()
	defer p.unlockWrite()
	if err := p.db.Update(func(txn *badger.Txn) error { return txn.Set(keyGCFlush, []byte{1}) }); err != nil {
		return err
	}
	return p.db.DropPrefix(keyGCFlush)
}

// pruneChunk bounds what one step of pruneVisibility clears: the unseen
// records of about that many transactions (with their overlays), or that
// many change-log records. Each step is its own write under the writers'
// lock, let go between steps so Submit is not starved behind a long prune.
const pruneChunk = 1024

// pruneVisibility drops change-log entries beyond MaxChanges, and the
// overlays and visibility entries of commits older than cutoff
// (OverlayRetention: an edge without a replica, or one that never caught
// up), step by step until nothing older is left or ctx is done. Above a
// fixed amount per prune (the pruner runs once a minute) a busy edge
// without a replica would pile them up until its disk is full.
func (p *pruner) pruneVisibility(ctx context.Context, cutoff time.Time) error {
	var from []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		next, err := p.pruneUnseen(from, cutoff)
		if err != nil {
			return fmt.Errorf("queue: prune visibility: %w", err)
		}
		if next == nil {
			break
		}
		from = next
	}
	var after uint64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		next, err := p.pruneChanges(after)
		if err != nil {
			return fmt.Errorf("queue: prune change log: %w", err)
		}
		if next == 0 {
			return nil
		}
		after = next
	}
}

// pruneUnseen clears one step of unseen records older than cutoff, from
// the key from on, with their overlays. It returns the key to go on from,
// nil when nothing older is left.
func (p *pruner) pruneUnseen(from []byte, cutoff time.Time) ([]byte, error) {
	p.lockWrite()
	defer p.unlockWrite()
	m := p.snapshot()
	b := p.newBatch(&m)
	defer b.discard()
	var dels [][]byte
	var seqs []uint64
	newer := false
	err := scanUnseen(b.txn, from, pruneChunk, func(r unseenRec) bool {
		if !r.at.Before(cutoff) {
			newer = true
			return false
		}
		dels = append(dels, r.key)
		seqs = append(seqs, r.seqs...)
		return true
	})
	if err != nil || len(dels) == 0 {
		return nil, err
	}
	for _, k := range dels {
		if err := b.reserve(&badger.Entry{Key: k}); err != nil {
			return nil, err
		}
		if err := b.txn.Delete(k); err != nil {
			return nil, err
		}
	}
	for _, seq := range seqs {
		if err := dropOverlays(b, seq); err != nil {
			return nil, err
		}
	}
	if err := b.commit(); err != nil {
		p.refresh()
		return nil, err
	}
	if newer {
		return nil, nil
	}
	// Seek just past the last key cleared (deleted keys are not seen again).
	return append(dels[len(dels)-1], 0), nil
}

// pruneChanges drops one step of change-log records beyond MaxChanges,
// those numbered after after. It returns the number of the last record
// dropped, 0 when none is left to drop.
func (p *pruner) pruneChanges(after uint64) (uint64, error) {
	p.lockWrite()
	defer p.unlockWrite()
	m := p.snapshot()
	if m.change <= p.opts.MaxChanges {
		return 0, nil
	}
	keep := m.change - p.opts.MaxChanges
	b := p.newBatch(&m)
	defer b.discard()
	var dels [][]byte
	last := uint64(0)
	it := b.txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefixChange})
	for it.Seek(seqKey(prefixChange, after+1)); it.Valid() && len(dels) < pruneChunk; it.Next() {
		n := binary.BigEndian.Uint64(it.Item().Key()[len(prefixChange):])
		if n > keep {
			break
		}
		dels = append(dels, it.Item().KeyCopy(nil))
		last = n
	}
	it.Close()
	if len(dels) == 0 {
		return 0, nil
	}
	for _, k := range dels {
		if err := b.reserve(&badger.Entry{Key: k}); err != nil {
			return 0, err
		}
		if err := b.txn.Delete(k); err != nil {
			return 0, err
		}
	}
	if err := b.commit(); err != nil {
		p.refresh()
		return 0, err
	}
	if len(dels) < pruneChunk {
		return 0, nil
	}
	return last, nil
}
