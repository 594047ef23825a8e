package queue

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
)

// Rewind takes the commit mark back to seq-1 because central says it has
// not applied seq (a SequenceGap whose expected seq is at or below the
// mark): central's database lost commits the edge had recorded, as after a
// failover to a lagging replica. It returns how many transactions went
// back to waiting.
//
// Every COMMITTED or VISIBLE transaction from seq through the old mark
// goes back to ACCEPTED, without its LSN: that LSN is of a commit that no
// longer exists, and a replica of the new primary may replay past it
// without holding the transaction, so keeping it would report VISIBLE too
// early. The forwarder resends from seq and central's new answer brings
// the new LSN. The transactions also leave the unseen records (Replayed
// must not take them VISIBLE on the old LSN), and one that had become
// VISIBLE gets its overlays back, so reads keep showing it until it is
// visible again. A REJECTED transaction stays a dead letter: it is
// already with the operator, and the resend's answer is then ignored.
// When seq's payload was pruned already nothing changes and the error
// matches ErrPruned.
func (q *Queue) Rewind(seq uint64) (int, error) { return q.com.rewind(seq) }

func (cm *committer) rewind(seq uint64) (n int, err error) {
	// It writes overlays back: like the other writers besides Submit, it
	// waits for disk space rather than run Badger into a full disk.
	if err := cm.waitForSpace("rewind"); err != nil {
		return 0, err
	}
	cm.lockWrite()
	defer cm.unlockWrite()
	m := cm.snapshot()
	if seq == 0 || seq > m.committed {
		return 0, nil
	}
	if seq < m.head {
		// They cannot be resent: the operator must act, and until then
		// the mark stays where the forwarder can still probe central from.
		return 0, fmt.Errorf("%w: central lost its commits from seq %d (payloads held from %d)", ErrPruned, seq, m.head)
	}
	b := cm.newBatch(&m)
	defer func() {
		b.discard()
		if err != nil {
			cm.refresh()
		}
	}()
	old := m.committed
	if err := cm.rewindMarks(b, seq, old); err != nil {
		return 0, err
	}
	for s := seq; s <= old; s++ {
		back, err := cm.rewindOne(b, &m, s)
		if err != nil {
			return n, err
		}
		if back {
			n++
		}
	}
	cum, err := cm.cumBefore(b, m, seq)
	if err != nil {
		return n, err
	}
	m.committed, m.cumCommitted = seq-1, cum
	if err := b.commit(); err != nil {
		return n, fmt.Errorf("queue: rewind to %d: %w", seq, err)
	}
	cm.setMeta(m)
	cm.log.Warn("central lost commits this edge had recorded; they wait for central again",
		"from_seq", seq, "through_seq", old, "transactions", n)
	return n, nil
}

// rewindMarks takes back what marks seq through old as answered: it
// raises keyApplyHigh to old, lowers keyVisibleHigh below seq, and drops
// the unseen records and commit marks from seq on.
func (cm *committer) rewindMarks(b *batch, seq, old uint64) error {
	// The states of seq..old are read back, never rebuilt from entries
	// as if never answered (see keyApplyHigh).
	high, err := readUint64(b.txn, keyApplyHigh)
	if err != nil {
		return fmt.Errorf("queue: rewind: %w", err)
	}
	if old > high {
		e := badger.NewEntry(keyApplyHigh, binary.BigEndian.AppendUint64(nil, old))
		if err := b.reserve(e); err != nil {
			return err
		}
		if err := b.txn.SetEntry(e); err != nil {
			return err
		}
	}
	// The pruner deletes payloads through visibleThrough: the seqs taken
	// back are not visible any more, and their payloads are to be resent.
	vhigh, err := readUint64(b.txn, keyVisibleHigh)
	if err != nil {
		return fmt.Errorf("queue: rewind: %w", err)
	}
	if vhigh >= seq {
		e := badger.NewEntry(keyVisibleHigh, binary.BigEndian.AppendUint64(nil, seq-1))
		if err := b.reserve(e); err != nil {
			return err
		}
		if err := b.txn.SetEntry(e); err != nil {
			return err
		}
	}
	if err := forgetUnseen(b, seq); err != nil {
		return fmt.Errorf("queue: rewind: %w", err)
	}
	if err := dropMarks(b, seq); err != nil {
		return fmt.Errorf("queue: rewind: %w", err)
	}
	return nil
}

// rewindOne takes seq s back to ACCEPTED, without its LSN, when it is
// COMMITTED or VISIBLE there; a VISIBLE one gets its overlays back. It
// reports whether it did.
func (cm *committer) rewindOne(b *batch, m *meta, s uint64) (bool, error) {
	committed := int32(edgev1.TransactionState_TRANSACTION_STATE_COMMITTED)
	visible := int32(edgev1.TransactionState_TRANSACTION_STATE_VISIBLE)
	item, err := b.txn.Get(seqKey(prefixQueue, s))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var e Entry
	err = item.Value(func(v []byte) error {
		var derr error
		e, _, derr = decodeEntry(s, v, cm.opts.EdgeID, cm.epoch)
		return derr
	})
	if err != nil {
		// Read quarantines it when the resend gets there.
		cm.log.Error("entry unreadable while taking back a lost commit", "seq", s, "err", err)
		return false, nil
	}
	id := e.Tx.GetId()
	st, found, err := getState(b.txn, id)
	if err != nil {
		return false, err
	}
	if !found || st.Seq != s || (st.State != committed && st.State != visible) {
		return false, nil
	}
	if st.State == visible {
		if err := writeOverlays(b, e.Tx); err != nil {
			return false, err
		}
	}
	st.State = int32(edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED)
	st.CommittedAt, st.LSN, st.LSNText, st.VisibleAt = 0, 0, "", 0
	se, err := stateEntry(id, st, 0) // kept until settled again
	if err != nil {
		return false, err
	}
	if err := b.reserve(se); err != nil {
		return false, err
	}
	if err := b.txn.SetEntry(se); err != nil {
		return false, err
	}
	if err := logChange(b, m, id, st); err != nil {
		return false, err
	}
	return true, nil
}

// cumBefore is the cumulative byte count through seq-1, for the counters
// of a commit mark taken back to it.
func (cm *committer) cumBefore(b *batch, m meta, seq uint64) (uint64, error) {
	cum := uint64(0)
	switch {
	case seq == 1:
	case seq == m.head:
		cum = m.cumHead
	default:
		h, err := readHeader(b.txn, seq-1)
		switch {
		case err == nil:
			cum = h.cum
		case errors.Is(err, errCorrupt):
			cm.log.Error("corrupt entry header; byte counters may drift", "seq", seq-1, "err", err)
			cum = m.cumHead
		default:
			return 0, fmt.Errorf("queue: rewind: entry %d: %w", seq-1, err)
		}
	}
	return cum, nil
}

// forgetUnseen takes the seqs from seq on out of the unseen records: their
// commits were lost. A record's key is its last seq, so only records at
// or past seq hold any; what they keep of lower seqs is written back under
// its own last seq, so a later record of the resent seqs cannot overwrite it.
func forgetUnseen(b *batch, seq uint64) error {
	var recs []unseenRec
	var legacy [][]byte
	for _, prefix := range [][]byte{prefixUnseen, prefixUnseenRec} {
		it := b.txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: prefix})
		for it.Seek(seqKey(prefix, seq)); it.Valid(); it.Next() {
			key := it.Item().KeyCopy(nil)
			if prefix[0] == prefixUnseen[0] {
				legacy = append(legacy, key)
				continue
			}
			var r unseenRec
			err := it.Item().Value(func(v []byte) error {
				var derr error
				r, derr = decodeUnseenRec(key, v)
				return derr
			})
			if err != nil {
				it.Close()
				return err
			}
			recs = append(recs, r)
		}
		it.Close()
	}
	for _, k := range legacy {
		if err := b.reserve(&badger.Entry{Key: k}); err != nil {
			return err
		}
		if err := b.txn.Delete(k); err != nil {
			return err
		}
	}
	for _, r := range recs {
		if err := b.reserve(&badger.Entry{Key: r.key}); err != nil {
			return err
		}
		if err := b.txn.Delete(r.key); err != nil {
			return err
		}
		var body []byte
		count, last := 0, uint64(0)
		for i, s := range r.seqs {
			if s >= seq {
				continue
			}
			body = binary.AppendUvarint(body, s)
			body = binary.AppendUvarint(body, uint64(len(r.ids[i])))
			body = append(body, r.ids[i]...)
			count++
			last = s
		}
		if count == 0 {
			continue
		}
		v := binary.BigEndian.AppendUint64(nil, r.lsn)
		v = binary.BigEndian.AppendUint64(v, uint64(r.at.UnixNano()))
		v = binary.AppendUvarint(v, uint64(count))
		e := badger.NewEntry(seqKey(prefixUnseenRec, last), append(v, body...))
		if err := b.reserve(e); err != nil {
			return err
		}
		if err := b.txn.SetEntry(e); err != nil {
			return err
		}
	}
	return nil
}

// dropMarks deletes the commit marks at or past seq: the pruner must not
// drop the payloads of lost commits, which are to be resent. The seqs a
// dropped mark covered below seq are pruned with the next mark.
func dropMarks(b *batch, seq uint64) error {
	var keys [][]byte
	it := b.txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefixMark})
	for it.Seek(seqKey(prefixMark, seq)); it.Valid(); it.Next() {
		keys = append(keys, it.Item().KeyCopy(nil))
	}
	it.Close()
	for _, k := range keys {
		if err := b.reserve(&badger.Entry{Key: k}); err != nil {
			return err
		}
		if err := b.txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
