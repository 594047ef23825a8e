package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// indexer writes the read side's overlays (o/, r/ and the os/ lists) of
// accepted transactions off the accept path: Submit writes only the entry
// and the transaction's state, and the indexer follows the appended seqs
// in Badger transactions of its own. keyIndexed, written with the
// overlays, is how far it got, so after a restart (kill -9 included) it
// resumes there; writing a seq's overlays again writes the same keys, so
// re-indexing is harmless.
//
// Every writer that drops overlays (central's answers, then visibility,
// pruning and Rewind, which only handle answered seqs) first has the
// indexer catch up through the seqs it handles (catchUp), and every read
// of overlays catches up through the last seq accepted when it starts
// (read-your-writes). So the indexer only ever writes overlays of seqs no
// writer has answered yet: it never brings back overlays a writer dropped.
type indexer struct {
	*core
	mu      sync.Mutex // held while indexing: the goroutine or a catchUp
	closed  bool       // guarded by mu: Close was called
	through atomic.Uint64
	keys    atomic.Uint64 // Badger keys written (Stats.IndexKeys)
	wake    chan struct{}
}

// indexStep bounds the entries one Badger transaction of the indexer covers.
const indexStep = 1024

// indexRetry is how long the indexer waits after a failed step.
const indexRetry = time.Second

// loadIndexed reads keyIndexed. A store written before the indexer has
// no keyIndexed, but overlays for every seq: it starts at lastSeq.
func (ix *indexer) loadIndexed(txn *badger.Txn, lastSeq uint64) error {
	item, err := txn.Get(keyIndexed)
	if errors.Is(err, badger.ErrKeyNotFound) {
		ix.through.Store(lastSeq)
		return txn.Set(keyIndexed, binary.BigEndian.AppendUint64(nil, lastSeq))
	}
	if err != nil {
		return fmt.Errorf("queue: read %s: %w", keyIndexed, err)
	}
	return item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("queue: %s has %d bytes", keyIndexed, len(v))
		}
		ix.through.Store(binary.BigEndian.Uint64(v))
		return nil
	})
}

// loop indexes what the appender lands until the queue stops, starting
// with what was left unindexed when the store last closed.
func (ix *indexer) loop() {
	ix.kick()
	for {
		select {
		case <-ix.stop:
			return
		case <-ix.wake:
		}
		if ix.opts.hooks.noIndexLoop {
			continue
		}
		if err := ix.catchUp(ix.snapshot().lastSeq); err != nil && !errors.Is(err, ErrClosed) {
			ix.log.Error("indexing overlays failed; retrying", "err", err)
			select {
			case <-ix.stop:
				return
			case <-time.After(indexRetry):
				ix.kick()
			}
		}
	}
}

// kick wakes the indexer's goroutine.
func (ix *indexer) kick() {
	select {
	case ix.wake <- struct{}{}:
	default:
	}
}

// catchUp returns once the overlays of every seq through target are
// written (or an error), writing them itself when the goroutine is behind.
func (ix *indexer) catchUp(target uint64) error {
	if ix.through.Load() >= target {
		return nil
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for ix.through.Load() < target {
		if ix.closed {
			return ErrClosed
		}
		if err := ix.step(target); err != nil {
			return fmt.Errorf("queue: index overlays: %w", err)
		}
	}
	return nil
}

// step writes the overlays of the seqs after through, up to target and
// indexStep of them, with keyIndexed, in one Badger transaction; the
// caller holds mu. Seqs whose entry is gone (pruned) or corrupt get none.
func (ix *indexer) step(target uint64) error {
	if err := ix.syncFailed.err(); err != nil {
		return err
	}
	from := ix.through.Load() + 1
	last := min(target, from+indexStep-1)
	txn := ix.db.NewTransaction(true)
	defer txn.Discard()
	es, last, err := ix.collect(txn, from, last)
	if err != nil {
		return err
	}
	for _, e := range es {
		if err := txn.SetEntry(e); err != nil {
			return err
		}
	}
	if err := txn.Set(keyIndexed, binary.BigEndian.AppendUint64(nil, last)); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	if err := ix.syncFailed.err(); err != nil {
		return err
	}
	ix.through.Store(last)
	ix.keys.Add(uint64(len(es)) + 1)
	return nil
}

// collect returns the overlays of the entries from seq from through last,
// and the seq it stopped at: before last when one Badger transaction
// would not hold more (but never before from).
func (ix *indexer) collect(txn *badger.Txn, from, last uint64) ([]*badger.Entry, uint64, error) {
	var out []*badger.Entry
	size := 0
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: prefixQueue})
	defer it.Close()
	for it.Seek(seqKey(prefixQueue, from)); it.Valid(); it.Next() {
		seq := binary.BigEndian.Uint64(it.Item().Key()[len(prefixQueue):])
		if seq > last {
			break
		}
		var es []*badger.Entry
		err := it.Item().Value(func(v []byte) error {
			e, _, derr := decodeEntry(seq, v, ix.opts.EdgeID, ix.epoch)
			if derr != nil {
				ix.log.Error("corrupt entry not indexed for reads", "seq", seq, "err", derr)
				return nil
			}
			var err error
			es, err = overlayEntries(ix.opts.RowKey, e.Tx)
			return err
		})
		if err != nil {
			return nil, 0, err
		}
		add := 0
		for _, e := range es {
			add += len(e.Key) + len(e.Value) + 24
		}
		if len(out) > 0 && (len(out)+len(es) > batchMaxEntries || size+add > batchMaxBytes) {
			return out, seq - 1, nil // this seq waits for the next step
		}
		out = append(out, es...)
		size += add
	}
	return out, last, nil
}

// close makes every later catchUp fail with ErrClosed, once the one
// running is done.
func (ix *indexer) close() {
	ix.mu.Lock()
	ix.closed = true
	ix.mu.Unlock()
}
