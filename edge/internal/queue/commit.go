package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// committer records what central answers (ApplyCommit), takes lost
// commits back (Rewind), and keeps the dead letters central's rejections
// leave.
type committer struct {
	*core
	app *appender // writes the answers, in its append groups
}

// ApplyCommit durably records central's answer: each applied transaction
// becomes COMMITTED with the LSN (its state then kept for TxRetention), each
// rejected one REJECTED with the reason and copied into the dead-letter
// store. CommittedThrough moves only over the seqs right after it whose
// outcome is recorded, never to ThroughSeq alone: central answers a resent
// batch with its cursor, which may lie past the batch, and a seq the edge
// skipped there would stay ACCEPTED for good (no LSN; a rejection never a
// dead letter, its payload pruned). The seqs not covered stay above the
// mark, so the forwarder sends them again after a restart and central
// answers them from its stored outcomes. Idempotent: a result for a state
// already recorded, or for a seq the transaction no longer holds (retried
// from the dead letters), changes nothing.
func (q *Queue) ApplyCommit(res CommitResult) error { return q.com.applyCommit(res) }

// applyPart bounds the results one commit request carries. Each part
// is an ApplyCommit of its own (consistent alone, idempotent), as if
// central had answered smaller batches, so an append group carrying one
// stays small enough for one Badger transaction.
const applyPart = 256

// applyCommit hands res to the appender in parts: each is written into
// an append group's Badger transaction beside the Submits waiting then,
// under the same fsync. Recorded apart under the write lock, a part and
// an append group took turns: during a drain the appender waited 8-14 ms
// for the lock per group, and every Submit with it.
func (cm *committer) applyCommit(res CommitResult) error {
	if len(res.Entries) != len(res.Results) {
		res.Entries = nil
	}
	for first := true; first || len(res.Results) > 0; first = false {
		part := res
		n := min(len(res.Results), applyPart)
		part.Results, res.Results = res.Results[:n], res.Results[n:]
		if res.Entries != nil {
			part.Entries, res.Entries = res.Entries[:n], res.Entries[n:]
		}
		if len(res.Results) > 0 {
			part.ThroughSeq = 0 // central's cursor belongs to the last part
		}
		if err := cm.applyCommitPart(part); err != nil {
			return err
		}
	}
	return nil
}

func (cm *committer) applyCommitPart(res CommitResult) error {
	if err := cm.waitForSpace("apply commit"); err != nil {
		return err
	}
	// The answers drop overlays: those of their seqs must be written first,
	// or the indexer would write them after, for good.
	top := uint64(0)
	for _, r := range res.Results {
		top = max(top, r.GetSeq())
	}
	if err := cm.ix.catchUp(min(top, cm.snapshot().lastSeq)); err != nil {
		return err
	}
	r := &submitReq{commit: &res, done: make(chan submitResp, 1)}
	r.estimate()
	_, err := cm.app.do(context.Background(), r)
	if err != nil {
		return fmt.Errorf("queue: apply commit: %w", err)
	}
	return nil
}

// record writes res into b on the counters m: the results' states,
// dead letters and change-log entries, and the commit mark.
func (cm *committer) record(b *batch, m *meta, res CommitResult) error {
	at := res.CommittedAt
	if at.IsZero() {
		at = cm.opts.Now()
	}
	untouched, err := cm.raiseApplyHigh(b, *m, res)
	if err != nil {
		return err
	}
	entries := res.Entries
	if len(entries) != len(res.Results) {
		entries = nil
	}
	if res.ThroughSeq > m.lastSeq {
		cm.log.Warn("central acknowledged seqs this store never accepted", "through", res.ThroughSeq, "last_seq", m.lastSeq)
	}
	through := m.committed
	for i, r := range res.Results {
		var fresh *Entry
		if entries != nil && r.GetSeq() > untouched {
			fresh = &entries[i]
		}
		recorded, err := cm.applyResult(b, m, r, res, at, fresh)
		if err != nil {
			return err
		}
		if recorded && r.GetSeq() == through+1 && r.GetSeq() <= m.lastSeq {
			through++
		}
	}
	if through > m.committed {
		return cm.markThrough(b, m, through, at)
	}
	return nil
}

// raiseApplyHigh raises keyApplyHigh to the top seq of res, and returns
// the seq above which no result was ever written: the states there are
// still the appender's (see keyApplyHigh).
func (cm *committer) raiseApplyHigh(b *batch, m meta, res CommitResult) (uint64, error) {
	high, err := readUint64(b.txn, keyApplyHigh)
	if err != nil {
		return 0, fmt.Errorf("queue: apply commit: %w", err)
	}
	untouched := max(m.committed, high)
	top := uint64(0)
	for _, r := range res.Results {
		top = max(top, r.GetSeq())
	}
	if top > high {
		e := badger.NewEntry(keyApplyHigh, binary.BigEndian.AppendUint64(nil, top))
		if err := b.reserve(e); err != nil {
			return 0, err
		}
		if err := b.txn.SetEntry(e); err != nil {
			return 0, err
		}
	}
	return untouched, nil
}

// markThrough moves the commit mark up to through: the counters, and a
// c/ mark (committed at, cumulative bytes) for the pruner.
func (cm *committer) markThrough(b *batch, m *meta, through uint64, at time.Time) error {
	cum := m.cumCommitted
	h, err := readHeader(b.txn, through)
	switch {
	case err == nil:
		cum = h.cum
	case errors.Is(err, errCorrupt):
		cm.log.Error("corrupt entry header; byte counters may drift", "seq", through, "err", err)
	default:
		return fmt.Errorf("queue: apply commit: entry %d: %w", through, err)
	}
	m.committed, m.cumCommitted = through, cum
	mv := binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano()))
	mark := badger.NewEntry(seqKey(prefixMark, through), binary.BigEndian.AppendUint64(mv, cum))
	if err := b.reserve(mark); err != nil {
		return err
	}
	return b.txn.SetEntry(mark)
}

func readUint64(txn *badger.Txn, key []byte) (uint64, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var v uint64
	err = item.Value(func(b []byte) error {
		if len(b) != 8 {
			return fmt.Errorf("%s has %d bytes", key, len(b))
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	return v, err
}

// acceptedState is the state the appender wrote for e's transaction when
// it accepted it (seq, ACCEPTED, accept time, one record id per mutation,
// as the payload holds them), or false when e cannot tell.
func acceptedState(e *Entry, id string, seq uint64) (txState, bool) {
	tx := e.Tx
	if tx == nil || e.Seq != seq || tx.GetSeq() != seq || tx.GetId() != id || tx.GetAcceptedAt() == nil {
		return txState{}, false
	}
	rids := make([]string, len(tx.GetMutations()))
	for j, mu := range tx.GetMutations() {
		if rids[j] = recordID(mu); rids[j] == "" {
			return txState{}, false
		}
	}
	return txState{
		Seq:        seq,
		State:      int32(edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED),
		AcceptedAt: tx.GetAcceptedAt().AsTime().UnixNano(),
		RecordIDs:  rids,
	}, true
}

// recordID is the id of the record a stored mutation writes ("" if none).
func recordID(mu *opsv1.Mutation) string {
	switch k := mu.GetKind().(type) {
	case *opsv1.Mutation_Observation:
		return k.Observation.GetId()
	case *opsv1.Mutation_ObservationUpdate:
		return k.ObservationUpdate.GetId()
	case *opsv1.Mutation_InstrumentConfig:
		return k.InstrumentConfig.GetId()
	case *opsv1.Mutation_RawDataFile:
		return k.RawDataFile.GetId()
	}
	return ""
}

// applyResult records one transaction's outcome and reports whether the
// edge now holds an outcome for r's seq (it may move its commit mark over
// it): recorded now or before, or the transaction is no longer held there
// (retried from the dead letters under a new seq, or settled and expired).
// A result without an outcome (central's record pruned) is recorded as
// OUTCOME_UNKNOWN, a final state.
// fresh, when set, is the entry of a seq never answered before: an applied
// transaction's state is then rebuilt from it instead of read back.
func (cm *committer) applyResult(b *batch, m *meta, r *centralv1.TransactionResult, res CommitResult, at time.Time, fresh *Entry) (bool, error) {
	id := r.GetTransactionId()
	st, found, err := cm.heldState(b, r, fresh)
	if err != nil {
		return false, err
	}
	if !found || st.Seq != r.GetSeq() {
		cm.log.Warn("commit result for a transaction not held at that seq; ignored",
			"tx", id, "seq", r.GetSeq(), "found", found, "held_seq", st.Seq)
		return true, nil
	}
	if st.State != int32(edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED) {
		return true, nil // answered before
	}
	switch r.GetOutcome() {
	case centralv1.Outcome_OUTCOME_APPLIED:
		return true, cm.recordApplied(b, m, id, st, res, at)
	case centralv1.Outcome_OUTCOME_REJECTED:
		return true, cm.recordRejected(b, m, r, st, at)
	default:
		return true, cm.recordOutcomeUnknown(b, m, r, st, at)
	}
}

// heldState is the state the edge holds for r's transaction: rebuilt from
// fresh for an applied transaction never answered before, else read back.
func (cm *committer) heldState(b *batch, r *centralv1.TransactionResult, fresh *Entry) (txState, bool, error) {
	if fresh != nil && r.GetOutcome() == centralv1.Outcome_OUTCOME_APPLIED {
		if st, found := acceptedState(fresh, r.GetTransactionId(), r.GetSeq()); found {
			return st, true, nil
		}
	}
	return getState(b.txn, r.GetTransactionId())
}

// putState writes st as id's state in b, kept for ttl (0: for good).
func putState(b *batch, id string, st txState, ttl time.Duration) error {
	e, err := stateEntry(id, st, ttl)
	if err != nil {
		return err
	}
	if err := b.reserve(e); err != nil {
		return err
	}
	return b.txn.SetEntry(e)
}

// recordApplied makes an accepted transaction COMMITTED with the LSN.
func (cm *committer) recordApplied(b *batch, m *meta, id string, st txState, res CommitResult, at time.Time) error {
	st.State = int32(edgev1.TransactionState_TRANSACTION_STATE_COMMITTED)
	st.CommittedAt, st.LSN, st.LSNText = at.UnixNano(), res.LSN, res.LSNText
	if err := putState(b, id, st, cm.opts.TxRetention); err != nil {
		return err
	}
	if err := markCommitted(b, m, id, st, at); err != nil {
		return err
	}
	return logChange(b, m, id, st)
}

// recordRejected makes an accepted transaction REJECTED and moves it, with
// its payload, to the dead letters.
func (cm *committer) recordRejected(b *batch, m *meta, r *centralv1.TransactionResult, st txState, at time.Time) error {
	id := r.GetTransactionId()
	tx, err := cm.rejectedPayload(b, id, st.Seq)
	if err != nil {
		return err
	}
	dl := &edgev1.DeadLetter{
		Transaction: tx,
		Reason:      r.GetReason(),
		Sqlstate:    r.GetSqlstate(),
		RejectedAt:  timestamppb.New(at),
	}
	dv, err := proto.Marshal(dl)
	if err != nil {
		return err
	}
	st.State = int32(edgev1.TransactionState_TRANSACTION_STATE_REJECTED)
	st.CommittedAt, st.Reason, st.SQLState = at.UnixNano(), r.GetReason(), r.GetSqlstate()
	se, err := stateEntry(id, st, 0) // kept while the dead letter is
	if err != nil {
		return err
	}
	de := badger.NewEntry(idKey(prefixDead, id), dv)
	if err := b.reserve(se, de); err != nil {
		return err
	}
	if err := b.txn.SetEntry(se); err != nil {
		return err
	}
	if err := b.txn.SetEntry(de); err != nil {
		return err
	}
	m.dead++
	// A rejected write never becomes visible: reads stop showing it.
	if err := dropOverlays(b, st.Seq); err != nil {
		return err
	}
	if err := logChange(b, m, id, st); err != nil {
		return err
	}
	cm.log.Warn("transaction rejected by central; moved to dead letters",
		"tx", id, "seq", st.Seq, "reason", r.GetReason(), "sqlstate", r.GetSqlstate())
	return nil
}

// rejectedPayload is the transaction queued at seq for its dead letter:
// nil when the entry is gone or corrupt (a dead letter without payload).
func (cm *committer) rejectedPayload(b *batch, id string, seq uint64) (*opsv1.Transaction, error) {
	var tx *opsv1.Transaction
	item, err := b.txn.Get(seqKey(prefixQueue, seq))
	if err == nil {
		err = item.Value(func(v []byte) error {
			e, _, derr := decodeEntry(seq, v, cm.opts.EdgeID, cm.epoch)
			if derr != nil {
				cm.log.Error("rejected transaction's entry is corrupt; dead letter without payload", "tx", id, "err", derr)
				return nil
			}
			tx = e.Tx
			return nil
		})
	}
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		return nil, err
	}
	return tx, nil
}

// recordOutcomeUnknown: central passed the seq but no longer knows its
// outcome (pruned after its retention; only centrals before the refusal
// of such resends answer so). Waiting would leave it ACCEPTED for good:
// it gets a final state of its own, never COMMITTED, for the operator to
// check against central's data.
func (cm *committer) recordOutcomeUnknown(b *batch, m *meta, r *centralv1.TransactionResult, st txState, at time.Time) error {
	id := r.GetTransactionId()
	reason := r.GetReason()
	if reason == "" {
		reason = "central answered without an outcome"
	}
	st.State = int32(edgev1.TransactionState_TRANSACTION_STATE_OUTCOME_UNKNOWN)
	st.CommittedAt, st.Reason = at.UnixNano(), reason
	if err := putState(b, id, st, cm.opts.TxRetention); err != nil {
		return err
	}
	// Whether PostgreSQL holds it, the replica will tell readers.
	if err := dropOverlays(b, st.Seq); err != nil {
		return err
	}
	cm.log.Error("central no longer knows this transaction's outcome; its state is OUTCOME_UNKNOWN: check central's data",
		"tx", id, "seq", r.GetSeq(), "reason", reason)
	return logChange(b, m, id, st)
}
