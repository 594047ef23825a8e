package queue

import (
	"encoding/binary"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// batch is a Badger write that may outgrow one Badger transaction: it
// commits and starts another when the current one is full, writing the
// counters into each, so every committed part is consistent on its own.
type batch struct {
	c       *core
	txn     *badger.Txn
	m       *meta
	n       int
	bytes   int
	noFlush bool // one Badger transaction only: reserve fails with errGroupFull
	// The changes logged into the current Badger transaction, written as
	// one change-log record when it commits (seal).
	changes     []byte
	changeFirst uint64
	changeN     int
	// The COMMITTED transactions marked into it, written as one unseen
	// record (markCommitted).
	unseen     []byte
	unseenN    int
	unseenLast uint64
	unseenLSN  uint64
	unseenAt   time.Time
}

// sealUnseen writes the unseen record of what was marked committed so far.
func (b *batch) sealUnseen() error {
	if b.unseenN == 0 {
		return nil
	}
	v := make([]byte, 0, 16+binary.MaxVarintLen64+len(b.unseen))
	v = binary.BigEndian.AppendUint64(v, b.unseenLSN)
	v = binary.BigEndian.AppendUint64(v, uint64(b.unseenAt.UnixNano()))
	v = binary.AppendUvarint(v, uint64(b.unseenN))
	v = append(v, b.unseen...)
	if err := b.txn.SetEntry(badger.NewEntry(seqKey(prefixUnseenRec, b.unseenLast), v)); err != nil {
		return err
	}
	b.unseen, b.unseenN = b.unseen[:0], 0
	return nil
}

// Bounds of one Badger transaction, inside Badger's limits for our memtable
// size (MaxBatchSize is 15% of it, about 2.4 MiB; MaxBatchCount is far
// higher), so that a full group (MaxGroup transactions, two keys each) is
// normally one Badger transaction and one fsync.
const (
	batchMaxEntries = 10000
	batchMaxBytes   = 3 << 19 // 1.5 MiB
)

func (c *core) newBatch(m *meta) *batch {
	return &batch{c: c, txn: c.db.NewTransaction(true), m: m}
}

// reserve makes room for es in the current Badger transaction, committing
// it (counters included) and starting another when they would not fit.
// Callers then write es with b.txn directly.
func (b *batch) reserve(es ...*badger.Entry) error {
	return b.reserveN(entriesRoom(es))
}

// entriesRoom is what es take in a Badger transaction, as reserveN counts.
func entriesRoom(es []*badger.Entry) (n, size int) {
	for _, e := range es {
		size += len(e.Key) + 24 // Badger counts key, meta, value pointer
		if len(e.Value) < valueThreshold {
			size += len(e.Value)
		}
	}
	return len(es), size
}

// reserveN is reserve for n entries of size bytes in all.
func (b *batch) reserveN(n, size int) error {
	if b.n > 0 && (b.n+n > batchMaxEntries || b.bytes+size > batchMaxBytes) {
		if b.noFlush {
			return errGroupFull
		}
		if err := b.flush(); err != nil {
			return err
		}
	}
	b.n += n
	b.bytes += size
	return nil
}

// seal writes what the batch holds besides its entries: the change-log
// record of the changes logged into it, then the counters.
func (b *batch) seal() error {
	if err := b.sealUnseen(); err != nil {
		return err
	}
	if b.changeN > 0 {
		v := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(b.changes))
		v = append(v, changeRecordVersion)
		v = binary.AppendUvarint(v, b.changeFirst)
		v = binary.AppendUvarint(v, uint64(b.changeN))
		v = append(v, b.changes...)
		last := b.changeFirst + uint64(b.changeN) - 1
		if err := b.txn.SetEntry(badger.NewEntry(seqKey(prefixChange, last), v)); err != nil {
			return err
		}
		b.changes, b.changeN = b.changes[:0], 0
	}
	return writeMeta(b.txn, *b.m)
}

func (b *batch) flush() error {
	if err := b.seal(); err != nil {
		return err
	}
	if err := b.commitTxn(false); err != nil {
		return err
	}
	b.txn = b.c.db.NewTransaction(true)
	b.n, b.bytes = 0, 0
	return nil
}

// commit writes the counters and commits (durably: SyncWrites).
func (b *batch) commit() error {
	defer func() { b.txn = nil }()
	if err := b.seal(); err != nil {
		b.txn.Discard()
		return err
	}
	return b.commitTxn(true)
}

// commitTxn commits the current Badger transaction, one part of the batch
// (final: its last), unless the counters are stale (the caller holds wmu);
// tests stand in for the commit with testHooks.commitPart. A commit during
// which Badger logged a failed value-log fsync fails with ErrSyncFailed.
func (b *batch) commitTxn(final bool) error {
	if err := b.c.checkFresh(); err != nil {
		b.txn.Discard()
		return err
	}
	var err error
	if hook := b.c.opts.hooks.commitPart; hook != nil {
		err = hook(b.txn, final)
	} else {
		err = b.txn.Commit()
	}
	if err == nil {
		err = b.c.syncFailed.err() // written, but perhaps not durable
	}
	return err
}

func (b *batch) discard() {
	if b.txn != nil {
		b.txn.Discard()
		b.txn = nil
	}
	b.changes, b.changeN = b.changes[:0], 0
	b.unseen, b.unseenN = b.unseen[:0], 0
}
