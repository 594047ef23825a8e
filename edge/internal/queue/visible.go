package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// Read-your-writes and visibility (docs/design.md, "Guarantees" 7 and 8).
//
//   - Pending overlays: every mutation of an accepted transaction is also
//     written, in the same Badger transaction as its entry (no extra fsync),
//     under o/<observation id>/<seq><index>, so reads find the pending
//     writes of one observation with one prefix scan, in seq order;
//     os/<seq> lists a transaction's overlay keys so they are dropped
//     together: when it becomes VISIBLE, when central rejects it, or after
//     OverlayRetention without a replica.
//   - Not yet visible: the COMMITTED transactions of one commit answer
//     share one unseen record V/<last seq> -> (commit LSN, committed at,
//     then each seq and id); stores written before records have one
//     v/<seq> -> (LSN, committed at, id) per transaction, read first.
//     Commit LSNs grow with seq, so Replayed walks them from the start and
//     stops at the first LSN past the replay LSN: the work is the
//     transactions that become visible, never a full scan. The first one
//     left is also the oldest unreplayed commit (lag seconds).
//   - Change log: every state change (accepted, committed, visible,
//     rejected) is numbered by a counter kept with the others, so
//     WatchTransactions resumes after a reconnect without missing one; the
//     changes one Badger transaction logs share one record w/<number of
//     the last> (older stores: one w/<number> per change). It keeps about
//     the last MaxChanges changes (whole records).

// Overlay is one pending mutation of an observation.
type Overlay struct {
	Seq uint64
	// Committed: central acknowledged it (not yet visible in the replica).
	Committed bool
	Mutation  *opsv1.Mutation
}

// overlayObservation is the observation a mutation belongs to ("" for a
// configuration of no observation: nothing reads it back by observation).
func overlayObservation(m *opsv1.Mutation) string {
	switch k := m.GetKind().(type) {
	case *opsv1.Mutation_Observation:
		return k.Observation.GetId()
	case *opsv1.Mutation_ObservationUpdate:
		return k.ObservationUpdate.GetId()
	case *opsv1.Mutation_RawDataFile:
		return k.RawDataFile.GetObservationId()
	case *opsv1.Mutation_InstrumentConfig:
		return k.InstrumentConfig.GetObservationId()
	}
	return ""
}

// writeOverlays writes tx's overlays in b.
func writeOverlays(b *batch, tx *opsv1.Transaction) error {
	es, err := overlayEntries(b.c.opts.RowKey, tx)
	if err != nil || len(es) == 0 {
		return err
	}
	if err := b.reserve(es...); err != nil {
		return err
	}
	for _, e := range es {
		if err := b.txn.SetEntry(e); err != nil {
			return err
		}
	}
	return nil
}

// overlayEntries are tx's overlays and their list (os/<seq>), rows keyed
// with rowKey (Options.RowKey); none when no mutation has one.
func overlayEntries(rowKey func(*opsv1.Row) (string, bool), tx *opsv1.Transaction) ([]*badger.Entry, error) {
	var keys [][]byte
	var es []*badger.Entry
	for j, m := range tx.GetMutations() {
		var k []byte
		if r := m.GetRow(); r != nil {
			k = rowOverlayKey(rowKey, r, tx.GetSeq(), j) // rowoverlay.go
		} else if obs := overlayObservation(m); obs != "" {
			k = overlayKey(obs, tx.GetSeq(), j)
		}
		if k == nil {
			continue
		}
		v, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
		es = append(es, badger.NewEntry(k, v))
	}
	if len(keys) == 0 {
		return nil, nil
	}
	var list []byte // length-prefixed keys (keys hold binary seqs)
	for _, k := range keys {
		list = binary.AppendUvarint(list, uint64(len(k)))
		list = append(list, k...)
	}
	return append(es, badger.NewEntry(seqKey(prefixOverlaySeq, tx.GetSeq()), list)), nil
}

// dropOverlays deletes the overlays of seq.
func dropOverlays(b *batch, seq uint64) error {
	sk := seqKey(prefixOverlaySeq, seq)
	item, err := b.txn.Get(sk)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return err
	}
	keys := [][]byte{sk}
	for len(v) > 0 {
		n, w := binary.Uvarint(v)
		if w <= 0 || uint64(len(v)-w) < n {
			return fmt.Errorf("queue: overlay list of seq %d is corrupt", seq)
		}
		keys = append(keys, v[w:w+int(n)])
		v = v[w+int(n):]
	}
	es := make([]*badger.Entry, len(keys))
	for i, k := range keys {
		es[i] = &badger.Entry{Key: k}
	}
	if err := b.reserve(es...); err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Overlays returns the pending mutations of observation obsID in seq order.
func (rs *Reads) Overlays(obsID string) ([]Overlay, error) {
	if err := rs.ix.catchUp(rs.snapshot().lastSeq); err != nil {
		return nil, err
	}
	committed := rs.snapshot().committed
	prefix := append(append(append([]byte(nil), prefixOverlay...), obsID...), '/')
	var out []Overlay
	err := rs.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 16, Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != len(prefix)+10 {
				continue // another observation id with this one as prefix
			}
			seq := binary.BigEndian.Uint64(k[len(prefix):])
			m := &opsv1.Mutation{}
			if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, m) }); err != nil {
				return fmt.Errorf("queue: overlay %q: %w", k, err)
			}
			out = append(out, Overlay{Seq: seq, Committed: seq <= committed, Mutation: m})
		}
		return nil
	})
	return out, err
}

// OverlaidObservations returns the observations with pending mutations
// and, for each, whether its insert is among them.
func (rs *Reads) OverlaidObservations() (map[string]bool, error) {
	if err := rs.ix.catchUp(rs.snapshot().lastSeq); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	err := rs.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: prefixOverlay})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) < len(prefixOverlay)+11 {
				continue
			}
			id := string(k[len(prefixOverlay) : len(k)-11])
			if out[id] {
				continue
			}
			m := &opsv1.Mutation{}
			if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, m) }); err != nil {
				return fmt.Errorf("queue: overlay %q: %w", k, err)
			}
			out[id] = m.GetObservation() != nil
		}
		return nil
	})
	return out, err
}

// unseen is a committed transaction the replica has not replayed yet.
func unseenValue(lsn uint64, at time.Time, id string) []byte {
	v := binary.BigEndian.AppendUint64(nil, lsn)
	v = binary.BigEndian.AppendUint64(v, uint64(at.UnixNano()))
	return append(v, id...)
}

func parseUnseen(v []byte) (lsn uint64, at time.Time, id string, err error) {
	if len(v) < 16 {
		return 0, time.Time{}, "", fmt.Errorf("queue: visibility entry has %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))), string(v[16:]), nil
}

// markCommitted records a COMMITTED transaction for visibility tracking.
// It joins b's unseen record (written when b commits, see seal), which
// holds the COMMITTED transactions of one commit answer: one LSN, one time.
func markCommitted(b *batch, m *meta, id string, st txState, at time.Time) error {
	if b.unseenN > 0 && (b.unseenLSN != st.LSN || !b.unseenAt.Equal(at)) {
		// Another answer in the same Badger transaction: its own record.
		if err := b.sealUnseen(); err != nil {
			return err
		}
	}
	n := 0
	if b.unseenN == 0 {
		n = 1
	}
	if err := b.reserveN(n, len(id)+2*binary.MaxVarintLen64+24); err != nil {
		return err
	}
	if b.unseenN == 0 {
		b.unseenLSN, b.unseenAt = st.LSN, at
	}
	b.unseen = binary.AppendUvarint(b.unseen, st.Seq)
	b.unseen = binary.AppendUvarint(b.unseen, uint64(len(id)))
	b.unseen = append(b.unseen, id...)
	b.unseenN++
	b.unseenLast = st.Seq
	m.newestLSN = max(m.newestLSN, st.LSN)
	return nil
}

// An unseen record, under V/<its last seq>: the commit LSN and time
// (be64 each), the count (uvarint), then per transaction its seq and its
// length-prefixed id (uvarints). Stores written before records kept one
// v/<seq> entry per transaction (unseenValue); those still read, first.
type unseenRec struct {
	key  []byte
	lsn  uint64
	at   time.Time
	seqs []uint64
	ids  []string
}

func decodeUnseenRec(key, v []byte) (unseenRec, error) {
	r := unseenRec{key: key}
	if len(v) < 16 {
		return r, fmt.Errorf("%w: unseen record of %d bytes", errCorrupt, len(v))
	}
	r.lsn = binary.BigEndian.Uint64(v)
	r.at = time.Unix(0, int64(binary.BigEndian.Uint64(v[8:])))
	rest := v[16:]
	count, k := binary.Uvarint(rest)
	if k <= 0 {
		return r, fmt.Errorf("%w: unseen record count", errCorrupt)
	}
	rest = rest[k:]
	for range count {
		seq, k := binary.Uvarint(rest)
		if k <= 0 {
			return r, fmt.Errorf("%w: unseen record seq", errCorrupt)
		}
		rest = rest[k:]
		l, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < l {
			return r, fmt.Errorf("%w: unseen record id", errCorrupt)
		}
		r.seqs = append(r.seqs, seq)
		r.ids = append(r.ids, string(rest[k:k+int(l)]))
		rest = rest[k+int(l):]
	}
	return r, nil
}

// scanUnseen calls f with the unseen records in commit order (older
// per-transaction entries first, as records of one), from the key from on
// (nil: from the start), until f returns false or max transactions were
// passed.
func scanUnseen(txn *badger.Txn, from []byte, max int, f func(unseenRec) bool) error {
	n := 0
	for _, prefix := range [][]byte{prefixUnseen, prefixUnseenRec} {
		if bytes.HasPrefix(from, prefixUnseenRec) && bytes.Equal(prefix, prefixUnseen) {
			continue // from lies past every per-transaction entry
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: prefix})
		if bytes.HasPrefix(from, prefix) {
			it.Seek(from)
		} else {
			it.Rewind()
		}
		for ; it.Valid() && n < max; it.Next() {
			key := it.Item().KeyCopy(nil)
			var r unseenRec
			err := it.Item().Value(func(v []byte) error {
				if prefix[0] == prefixUnseenRec[0] {
					var err error
					r, err = decodeUnseenRec(key, v)
					return err
				}
				l, at, id, err := parseUnseen(v)
				r = unseenRec{key: key, lsn: l, at: at, seqs: []uint64{binary.BigEndian.Uint64(key[len(prefix):])}, ids: []string{id}}
				return err
			})
			if err != nil {
				it.Close()
				return err
			}
			if !f(r) {
				it.Close()
				return nil
			}
			n += len(r.seqs)
		}
		it.Close()
		if n >= max {
			return nil
		}
	}
	return nil
}

// The change log holds records under w/<number of their last change>.
// A record is changeRecordVersion, the number of its first change and the
// count (uvarints), then each change as a length-prefixed
// TransactionStatus: one record per Badger transaction, however many
// changes it logs. (Stores written before records kept one bare
// TransactionStatus per change, under its own number; those still read.)
const changeRecordVersion = 0 // never the first byte of a marshalled message

// logChange appends a state change to the change log: to b's record,
// written when b commits.
func logChange(b *batch, m *meta, id string, st txState) error {
	v, err := changeValue(id, st)
	if err != nil {
		return err
	}
	n, size := changeRoom(b, v)
	if err := b.reserveN(n, size); err != nil {
		return err
	}
	appendChange(b, m, v)
	return nil
}

// changeValue is the logged form of tx id's state st.
func changeValue(id string, st txState) ([]byte, error) {
	return proto.Marshal(st.status(id))
}

// changeRoom is what logging v takes in b's Badger transaction: the
// change-log record's key when v is its first change, and v's bytes.
func changeRoom(b *batch, v []byte) (n, size int) {
	if b.changeN == 0 {
		n = 1
	}
	return n, len(v) + binary.MaxVarintLen64 + 24
}

// appendChange logs v into b, in room reserved before.
func appendChange(b *batch, m *meta, v []byte) {
	m.change++
	if b.changeN == 0 {
		b.changeFirst = m.change
	}
	b.changes = binary.AppendUvarint(b.changes, uint64(len(v)))
	b.changes = append(b.changes, v...)
	b.changeN++
}

// decodeChanges calls f for each change of the record under key number
// last, in order.
func decodeChanges(last uint64, v []byte, f func(n uint64, raw []byte) error) error {
	if len(v) == 0 || v[0] != changeRecordVersion {
		return f(last, v) // a change of an older store, alone under its number
	}
	first, k := binary.Uvarint(v[1:])
	if k <= 0 {
		return fmt.Errorf("%w: change record %d: bad first", errCorrupt, last)
	}
	rest := v[1+k:]
	count, k := binary.Uvarint(rest)
	if k <= 0 || count == 0 || first+count-1 != last {
		return fmt.Errorf("%w: change record %d: first %d, count %d", errCorrupt, last, first, count)
	}
	rest = rest[k:]
	for n := first; n <= last; n++ {
		l, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < l {
			return fmt.Errorf("%w: change record %d: change %d truncated", errCorrupt, last, n)
		}
		if err := f(n, rest[k:k+int(l)]); err != nil {
			return err
		}
		rest = rest[k+int(l):]
	}
	return nil
}

// visibleThrough is the highest seq through which every committed
// transaction is VISIBLE (or was rejected: its payload lives on in the
// dead letters): below the first seq still waiting in an unseen record,
// and at most the highest seq the replica made visible, so unseen records
// dropped after OverlayRetention without a replica do not count.
func visibleThrough(txn *badger.Txn) (uint64, error) {
	high, err := readUint64(txn, keyVisibleHigh)
	if err != nil || high == 0 {
		return 0, err
	}
	through := high
	err = scanUnseen(txn, nil, 1, func(r unseenRec) bool {
		if len(r.seqs) > 0 {
			through = min(through, slices.Min(r.seqs)-1)
		}
		return false
	})
	return through, err
}

// replayStep bounds the transactions one Badger write of Replayed makes
// VISIBLE.
const replayStep = 4096

// Acked is what the replica watcher learns from Replayed.
type Acked struct {
	Newest           uint64
	OldestUnreplayed time.Time
}

// Replayed records that the site replica has replayed through lsn: every
// COMMITTED transaction with commit LSN <= lsn becomes VISIBLE (state,
// change log) and its overlays are dropped, in one durable Badger write.
func (q *Queue) Replayed(lsn uint64) (Acked, error) { return q.reads.replayed(lsn) }

func (rs *Reads) replayed(lsn uint64) (Acked, error) {
	for {
		if err := rs.waitForSpace("replayed"); err != nil {
			return Acked{}, err
		}
		acked, more, err := rs.replayedStep(lsn)
		if err != nil || !more {
			return acked, err
		}
	}
}

// replayedStep is one Badger write of Replayed, under the writers' lock:
// at most replayStep transactions, and whether more may be replayed.
func (rs *Reads) replayedStep(lsn uint64) (Acked, bool, error) {
	rs.lockWrite()
	defer rs.unlockWrite()
	m := rs.snapshot()
	b := rs.newBatch(&m)
	defer b.discard()
	var (
		acked = Acked{Newest: m.newestLSN}
		done  [][]byte
		ids   []string
		seqs  []uint64
	)
	err := scanUnseen(b.txn, nil, replayStep, func(r unseenRec) bool {
		if r.lsn > lsn {
			acked.OldestUnreplayed = r.at
			return false
		}
		done = append(done, r.key)
		ids = append(ids, r.ids...)
		seqs = append(seqs, r.seqs...)
		return true
	})
	if err != nil {
		return acked, false, err
	}
	if len(done) == 0 {
		return acked, false, nil
	}
	for _, k := range done {
		if err := b.reserve(&badger.Entry{Key: k}); err != nil {
			return acked, false, err
		}
		if err := b.txn.Delete(k); err != nil {
			return acked, false, err
		}
	}
	if err := raiseVisibleHigh(b, seqs); err != nil {
		return acked, false, err
	}
	now := rs.opts.Now()
	for i := range ids {
		if err := rs.makeVisible(b, &m, ids[i], seqs[i], lsn, now); err != nil {
			return acked, false, err
		}
	}
	if err := b.commit(); err != nil {
		rs.refresh()
		return acked, false, fmt.Errorf("queue: replayed: %w", err)
	}
	rs.setMeta(m)
	// More may be left: the next step takes the lock again, so Submit and
	// the others get it in between.
	return acked, acked.OldestUnreplayed.IsZero() && len(ids) >= replayStep, nil
}

// raiseVisibleHigh raises keyVisibleHigh to the highest of seqs.
func raiseVisibleHigh(b *batch, seqs []uint64) error {
	high, err := readUint64(b.txn, keyVisibleHigh)
	if err != nil {
		return err
	}
	if len(seqs) > 0 && slices.Max(seqs) > high {
		top := slices.Max(seqs)
		e := badger.NewEntry(keyVisibleHigh, binary.BigEndian.AppendUint64(nil, top))
		if err := b.reserve(e); err != nil {
			return err
		}
		if err := b.txn.SetEntry(e); err != nil {
			return err
		}
	}
	return nil
}

// makeVisible drops the overlays of transaction id at seq, whose unseen
// record the replica replayed through lsn, and makes it VISIBLE at now.
func (rs *Reads) makeVisible(b *batch, m *meta, id string, seq, lsn uint64, now time.Time) error {
	if err := dropOverlays(b, seq); err != nil {
		return err
	}
	st, found, err := getState(b.txn, id)
	if err != nil {
		return err
	}
	// Only a COMMITTED transaction whose own LSN is replayed: one
	// taken back after central lost its commit (Rewind) waits for
	// its new one.
	if !found || st.Seq != seq || st.State != int32(edgev1.TransactionState_TRANSACTION_STATE_COMMITTED) || st.LSN > lsn {
		return nil
	}
	st.State, st.VisibleAt = int32(edgev1.TransactionState_TRANSACTION_STATE_VISIBLE), now.UnixNano()
	e, err := stateEntry(id, st, rs.opts.TxRetention)
	if err != nil {
		return err
	}
	if err := b.reserve(e); err != nil {
		return err
	}
	if err := b.txn.SetEntry(e); err != nil {
		return err
	}
	return logChange(b, m, id, st)
}

// Change is one entry of the change log.
type Change struct {
	N      uint64
	Status *edgev1.TransactionStatus
}

// LastChange is the number of the newest change.
func (rs *Reads) LastChange() uint64 { return rs.snapshot().change }

// ChangeNotify is closed at the next change: wait on it, then read Changes.
func (rs *Reads) ChangeNotify() <-chan struct{} {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.changed == nil {
		rs.changed = make(chan struct{})
	}
	return rs.changed
}

// Changes returns up to limit changes numbered after after, in order.
// ErrChangesPruned when change after+1 is no longer held.
func (rs *Reads) Changes(after uint64, limit int) ([]Change, error) {
	var out []Change
	err := rs.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: min(limit, 256), Prefix: prefixChange})
		defer it.Close()
		// The record holding change after+1 is the first whose last
		// change is after+1 or later.
		for it.Seek(seqKey(prefixChange, after+1)); it.Valid() && len(out) < limit; it.Next() {
			last := binary.BigEndian.Uint64(it.Item().Key()[len(prefixChange):])
			err := it.Item().Value(func(v []byte) error {
				return decodeChanges(last, v, func(n uint64, raw []byte) error {
					if n <= after || len(out) >= limit {
						return nil
					}
					if len(out) == 0 && n != after+1 {
						return fmt.Errorf("%w: change %d (oldest held %d)", ErrChangesPruned, after+1, n)
					}
					s := &edgev1.TransactionStatus{}
					if err := proto.Unmarshal(raw, s); err != nil {
						return fmt.Errorf("%w: change %d: %v", errCorrupt, n, err)
					}
					out = append(out, Change{N: n, Status: s})
					return nil
				})
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && len(out) == 0 && after < rs.snapshot().change {
		// Nothing from after+1 although newer changes exist: pruned.
		return nil, fmt.Errorf("%w: change %d", ErrChangesPruned, after+1)
	}
	return out, err
}

func setEntries(txn *badger.Txn, es []*badger.Entry) error {
	for _, e := range es {
		if err := txn.SetEntry(e); err != nil {
			return err
		}
	}
	return nil
}
