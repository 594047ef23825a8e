package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Prune deletes committed payloads whose commit is older than
// PayloadRetention, one commit mark (one Commit answer) at a time, and
// returns how many entries it deleted. Each step moves the head in the same
// Badger transaction as the deletions, so the head is always found in its
// own key (never by scanning over deleted entries).
func (q *Queue) Prune(ctx context.Context) (int, error) {
	if err := q.pruneVisibility(ctx, q.opts.Now().Add(-q.opts.OverlayRetention)); err != nil {
		return 0, err
	}
	cutoff := q.opts.Now().Add(-q.opts.PayloadRetention)
	total := 0
	for ctx.Err() == nil {
		n, more, err := q.pruneOne(cutoff)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
	return total, ctx.Err()
}

func (q *Queue) pruneOne(cutoff time.Time) (int, bool, error) {
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
	if markKey == nil || at.After(cutoff) {
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
// so disk use falls after a backlog drains.
func (q *Queue) RunGC() error {
	for range 1000 {
		err := q.db.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}
