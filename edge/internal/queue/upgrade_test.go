package queue_test

// Upgrade guarantee: a store written by the previous
// release opens with the new binary, every queued transaction reads back, the
// sequence continues gap-free and the backlog drains.
//
// v1Store below is a FROZEN copy of the on-disk format v1 (entryVersion = 1):
// the key layout, the entry header, the tx-state JSON and the counters, as
// written by the first release. It writes with plain Badger calls and none of
// the queue's own code, on purpose: when the format moves on (entryVersion
// becomes 2, a key or a field changes), this file must NOT be updated to
// match. It keeps describing what a v1 edge leaves on disk, and these tests
// must keep passing: the decoder has to accept v1 entries (or Open has to
// migrate them). When v2 ships, add a frozen v2 writer beside this one.
//
// What v1 leaves and this writer reproduces:
//
//	m/edge_id, m/epoch           strings (identity; Open refuses another edge id)
//	m/last_seq, m/cum_last, m/committed, m/cum_committed, m/head, m/cum_head,
//	m/dead, m/change, m/newest_lsn   big-endian uint64 counters
//	q/<be64 seq>                 [version=1][be64 cumulative payload bytes through seq]
//	                             [be64 accept time, unix ns] + marshalled opsv1.Transaction
//	                             (seq, edge_id, epoch, accepted_at set)
//	t/<tx id>                    tx state, JSON (seq, state, acc, rids, com, lsn, lsnt, reason, sqlstate)
//	c/<be64 through seq>         commit mark: [be64 committed at, unix ns][be64 cumulative bytes]
//	d/<tx id>                    marshalled edgev1.DeadLetter
//
// Read-side caches (overlays o/ os/, visibility v/, change log w/) are left
// out: draining does not need them and a store without them must open too.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// v1 transaction states (edgev1.TransactionState numbers, frozen).
const (
	v1Accepted  = 1
	v1Committed = 2
	v1Rejected  = 4
)

// v1TxState is the t/<id> JSON of format v1 (frozen copy).
type v1TxState struct {
	Seq         uint64   `json:"seq"`
	State       int32    `json:"state"`
	AcceptedAt  int64    `json:"acc"`
	RecordIDs   []string `json:"rids,omitempty"`
	CommittedAt int64    `json:"com,omitempty"`
	LSN         uint64   `json:"lsn,omitempty"`
	LSNText     string   `json:"lsnt,omitempty"`
	Reason      string   `json:"reason,omitempty"`
	SQLState    string   `json:"sqlstate,omitempty"`
}

// v1Store is what a v1 edge left on disk: n transactions accepted, the first
// committed of them committed by central (except rejected, which central
// rejected: a dead letter), the rest still waiting.
type v1Store struct {
	dir, edgeID, epoch string
	txs                []*opsv1.Transaction // index i holds seq i+1, as stored
	payloads           [][]byte
	accepted           []time.Time
	committed          uint64
	rejected           uint64 // seq of the dead letter (0: none)
	lsn                uint64
}

// plainBadger opens a store without the queue. Small memtables and
// value-log files only keep the test light; they are not part of the format.
func plainBadger(dir string) badger.Options {
	return badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true).
		WithMemTableSize(4 << 20).WithValueLogFileSize(4 << 20).WithValueThreshold(256)
}

func v1Seq(prefix string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefix), seq)
}

func v1U64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// v1Entry is the v1 queue-entry value.
func v1Entry(version byte, cum uint64, acceptedAt time.Time, payload []byte) []byte {
	v := []byte{version}
	v = binary.BigEndian.AppendUint64(v, cum)
	v = binary.BigEndian.AppendUint64(v, uint64(acceptedAt.UnixNano()))
	return append(v, payload...)
}

// writeV1Store creates, with plain Badger calls, the store a v1 edge would
// leave with n transactions, committed of them committed and the one at
// seq rejected (0: none) dead-lettered. badVersion replaces the version
// byte of the entry at badSeq (0: none), for the future-version test.
func writeV1Store(t *testing.T, n, committed, rejected uint64, badSeq uint64, badVersion byte) *v1Store {
	t.Helper()
	s := &v1Store{
		dir: t.TempDir(), edgeID: "edge-v1", epoch: newID(),
		committed: committed, rejected: rejected, lsn: 0x16B3748,
	}
	db, err := badger.Open(plainBadger(s.dir))
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()

	base := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	committedAt := base.Add(time.Hour)
	var cum, cumCommitted, dead uint64
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	set := func(k, v []byte) { require.NoError(t, wb.Set(k, v)) }
	set([]byte("m/edge_id"), []byte(s.edgeID))
	set([]byte("m/epoch"), []byte(s.epoch))
	for seq := uint64(1); seq <= n; seq++ {
		at := base.Add(time.Duration(seq) * time.Second)
		obs := newID()
		tx := &opsv1.Transaction{
			Id: newID(),
			Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_RawDataFile{RawDataFile: &opsv1.RawDataFile{
				ObservationId: obs, Path: "/data/run-" + strings.Repeat("x", int(seq%7)*40) + ".h5",
			}}}},
			EdgeId:     s.edgeID,
			Epoch:      s.epoch,
			Seq:        seq,
			AcceptedAt: timestamppb.New(at),
		}
		payload, err := proto.Marshal(tx)
		require.NoError(t, err)
		cum += uint64(len(payload))
		version := byte(1)
		if seq == badSeq {
			version = badVersion
		}
		set(v1Seq("q/", seq), v1Entry(version, cum, at, payload))
		st := v1TxState{Seq: seq, State: v1Accepted, AcceptedAt: at.UnixNano(), RecordIDs: []string{obs}}
		switch {
		case seq == rejected:
			st.State, st.CommittedAt = v1Rejected, committedAt.UnixNano()
			st.Reason, st.SQLState = "observation_id: no such observation", "23503"
			dl, err := proto.Marshal(&edgev1.DeadLetter{
				Transaction: tx, Reason: st.Reason, Sqlstate: st.SQLState, RejectedAt: timestamppb.New(committedAt),
			})
			require.NoError(t, err)
			set([]byte("d/"+tx.GetId()), dl)
			dead++
		case seq <= committed:
			st.State, st.CommittedAt = v1Committed, committedAt.UnixNano()
			st.LSN, st.LSNText = s.lsn, "0/16B3748"
		}
		sv, err := json.Marshal(st)
		require.NoError(t, err)
		set([]byte("t/"+tx.GetId()), sv)
		if seq == committed {
			cumCommitted = cum
		}
		s.txs = append(s.txs, tx)
		s.payloads = append(s.payloads, payload)
		s.accepted = append(s.accepted, at)
	}
	if committed > 0 {
		set(v1Seq("c/", committed), append(v1U64(uint64(committedAt.UnixNano())), v1U64(cumCommitted)...))
	}
	for k, v := range map[string]uint64{
		"m/last_seq": n, "m/cum_last": cum,
		"m/committed": committed, "m/cum_committed": cumCommitted,
		"m/head": 1, "m/cum_head": 0, "m/dead": dead,
		"m/change": 0, "m/newest_lsn": s.lsn,
	} {
		set([]byte(k), v1U64(v))
	}
	require.NoError(t, wb.Flush())
	return s
}

func (s *v1Store) open(t *testing.T) *queue.Queue {
	t.Helper()
	q, err := queue.Open(queue.Options{Dir: s.dir, EdgeID: s.edgeID, Logger: discard()})
	require.NoError(t, err)
	return q
}

// applyAll answers, as central would, that every entry from..through applied.
func applyAll(t *testing.T, q *queue.Queue, from, through uint64) {
	t.Helper()
	es, err := q.Read(from, int(through-from+1), 1<<30)
	require.NoError(t, err)
	require.Len(t, es, int(through-from+1))
	res := queue.CommitResult{ThroughSeq: through, LSN: 0x2000000, LSNText: "0/2000000", CommittedAt: time.Now()}
	for _, e := range es {
		res.Results = append(res.Results, &centralv1.TransactionResult{
			TransactionId: e.Tx.GetId(), Seq: e.Seq, Outcome: centralv1.Outcome_OUTCOME_APPLIED,
		})
	}
	require.NoError(t, q.ApplyCommit(res))
}

// TestUpgradeFromV1OpensReadsContinuesDrains is the upgrade guarantee: when
// entryVersion becomes 2 this test must keep passing unchanged.
func TestUpgradeFromV1OpensReadsContinuesDrains(t *testing.T) {
	t.Parallel()
	const n, committed, rejected = 40, 15, 7
	s := writeV1Store(t, n, committed, rejected, 0, 0)
	q := s.open(t)
	closed := false
	defer func() {
		if !closed {
			require.NoError(t, q.Close())
		}
	}()

	// Identity and counters come from the v1 keys.
	require.Equal(t, s.epoch, q.Epoch())
	require.Equal(t, uint64(committed), q.CommittedThrough())
	require.Equal(t, uint64(n), q.LastSeq())
	st, err := q.Stats()
	require.NoError(t, err)
	var pendingBytes, retained uint64
	for i, p := range s.payloads {
		if uint64(i+1) <= committed {
			retained += uint64(len(p))
		} else {
			pendingBytes += uint64(len(p))
		}
	}
	require.Equal(t, uint64(n-committed), st.Count)
	require.Equal(t, pendingBytes, st.Bytes)
	require.Equal(t, retained, st.RetainedBytes)
	require.Equal(t, uint64(1), st.DeadLetters)
	require.True(t, s.accepted[committed].Equal(st.OldestPending), "oldest pending is seq %d's accept time", committed+1)

	// Every waiting entry reads back as written, in order; the retained
	// committed ones too.
	es, err := q.Read(q.CommittedThrough()+1, n, 1<<30)
	require.NoError(t, err)
	require.Len(t, es, n-committed)
	for _, e := range es {
		want := s.txs[e.Seq-1]
		require.Truef(t, proto.Equal(want, e.Tx), "seq %d: read %v, wrote %v", e.Seq, e.Tx, want)
		require.Equal(t, len(s.payloads[e.Seq-1]), e.Size)
	}
	es, err = q.Read(1, committed, 1<<30)
	require.NoError(t, err)
	require.Len(t, es, committed)
	require.True(t, proto.Equal(s.txs[0], es[0].Tx))

	// States, the dead letter and idempotent resubmits of v1 transactions.
	ts, err := q.GetTransaction(s.txs[0].GetId())
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, ts.GetState())
	require.Equal(t, "0/16B3748", ts.GetCommitLsn())
	dls, _, err := q.ListDeadLetters("", 10)
	require.NoError(t, err)
	require.Len(t, dls, 1)
	require.True(t, proto.Equal(s.txs[rejected-1], dls[0].GetTransaction()))
	dup, err := q.Submit(context.Background(), []*opsv1.Transaction{proto.Clone(s.txs[n-1]).(*opsv1.Transaction)})
	require.NoError(t, err)
	require.True(t, dup[0].GetDuplicate())
	require.Equal(t, uint64(n), dup[0].GetSeq())

	// New submissions continue the v1 sequence without a gap, same epoch.
	var fresh []*opsv1.Transaction
	for range 3 {
		fresh = append(fresh, &opsv1.Transaction{Id: newID(), Mutations: []*opsv1.Mutation{{
			Kind: &opsv1.Mutation_RawDataFile{RawDataFile: &opsv1.RawDataFile{ObservationId: newID(), Path: "/data/new.h5"}},
		}}})
	}
	acks, err := q.Submit(context.Background(), fresh)
	require.NoError(t, err)
	for i, a := range acks {
		require.False(t, a.GetDuplicate())
		require.Equal(t, uint64(n+1+i), a.GetSeq())
	}
	es, err = q.Read(n, 10, 1<<30)
	require.NoError(t, err)
	require.Len(t, es, 4, "v1 entry %d then the new ones, contiguous", n)
	require.Equal(t, s.txs[n-1].GetId(), es[0].Tx.GetId())
	require.Equal(t, s.epoch, es[3].Tx.GetEpoch())

	// Drain: central applies everything; the queue is empty, and stays so
	// after a restart.
	last := uint64(n + len(fresh))
	applyAll(t, q, committed+1, last)
	st, err = q.Stats()
	require.NoError(t, err)
	require.Zero(t, st.Count)
	require.Zero(t, st.Bytes)
	require.Equal(t, last, st.Committed)
	ts, err = q.GetTransaction(s.txs[n-1].GetId())
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, ts.GetState())
	require.NoError(t, q.Close())
	closed = true

	q = s.open(t)
	defer func() { require.NoError(t, q.Close()) }()
	st, err = q.Stats()
	require.NoError(t, err)
	require.Zero(t, st.Count)
	require.Zero(t, st.Bytes)
	require.Equal(t, last, q.CommittedThrough())
	require.Equal(t, last, q.LastSeq())
}

// TestUnknownEntryVersionIsQuarantined: an entry with a version this binary
// does not know (written by a newer release, then downgraded) is corrupt to
// it: Read quarantines it (x/<seq> keeps the bytes as found) and a tombstone
// takes its seq, the entries around it read on and the queue drains.
// (corrupt_test.go covers garbage headers and payloads; this is a complete,
// well-formed entry whose only fault is its version.)
func TestUnknownEntryVersionIsQuarantined(t *testing.T) {
	t.Parallel()
	const n, bad = 5, 3
	const future = byte(0xfe)
	s := writeV1Store(t, n, 0, 0, bad, future)
	q := s.open(t)
	closed := false
	defer func() {
		if !closed {
			require.NoError(t, q.Close())
		}
	}()

	es, err := q.Read(1, n, 1<<30)
	require.NoError(t, err)
	require.Len(t, es, n)
	for _, e := range es {
		if e.Seq == bad {
			require.NotEqual(t, s.txs[bad-1].GetId(), e.Tx.GetId(), "a tombstone takes the seq")
			require.Equal(t, uint64(bad), e.Tx.GetSeq())
			require.NotNil(t, e.Tx.GetMutations()[0].GetObservationUpdate())
			continue
		}
		require.True(t, proto.Equal(s.txs[e.Seq-1], e.Tx), "seq %d", e.Seq)
	}
	_, err = q.Stats()
	require.NoError(t, err)
	applyAll(t, q, 1, n)
	st, err := q.Stats()
	require.NoError(t, err)
	require.Zero(t, st.Count)
	require.NoError(t, q.Close())
	closed = true

	// The bytes as found are kept for the operator, with the reason.
	db, err := badger.Open(plainBadger(s.dir))
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	require.NoError(t, db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(v1Seq("x/", bad))
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		reason, raw, ok := strings.Cut(string(v), "\x00")
		require.True(t, ok)
		require.Contains(t, reason, "version 254")
		require.Equal(t, byte(future), raw[0])
		require.Equal(t, s.payloads[bad-1], []byte(raw[17:]))
		return nil
	}))
}

// Before change-log records, a store kept one bare TransactionStatus per
// change under w/<its number> (frozen here). Those changes still read, and
// the log continues after them in records.
func TestChangeLogOfEarlierStoresReads(t *testing.T) {
	t.Parallel()
	s := writeV1Store(t, 3, 0, 0, 0, 0)
	db, err := badger.Open(plainBadger(s.dir))
	require.NoError(t, err)
	for i, tx := range s.txs {
		v, err := proto.Marshal(&edgev1.TransactionStatus{
			TransactionId: tx.GetId(), Seq: tx.GetSeq(),
			State: edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, AcceptedAt: timestamppb.New(s.accepted[i]),
		})
		require.NoError(t, err)
		require.NoError(t, db.Update(func(txn *badger.Txn) error { return txn.Set(v1Seq("w/", uint64(i+1)), v) }))
	}
	require.NoError(t, db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("m/change"), v1U64(3)) }))
	require.NoError(t, db.Close())

	q := s.open(t)
	defer func() { require.NoError(t, q.Close()) }()
	cs, err := q.Reads().Changes(0, 10)
	require.NoError(t, err)
	require.Len(t, cs, 3)
	for i, c := range cs {
		require.Equal(t, uint64(i+1), c.N)
		require.Equal(t, s.txs[i].GetId(), c.Status.GetTransactionId())
	}

	ids := []string{newID(), newID()}
	_, err = q.Submit(context.Background(), []*opsv1.Transaction{obsTx(ids[0]), obsTx(ids[1])})
	require.NoError(t, err)
	require.Equal(t, uint64(5), q.Reads().LastChange())
	cs, err = q.Reads().Changes(2, 10)
	require.NoError(t, err)
	require.Len(t, cs, 3)
	require.Equal(t, []uint64{3, 4, 5}, []uint64{cs[0].N, cs[1].N, cs[2].N})
	require.Equal(t, s.txs[2].GetId(), cs[0].Status.GetTransactionId())
	require.Equal(t, ids, []string{cs[1].Status.GetTransactionId(), cs[2].Status.GetTransactionId()})

	// A limit cuts inside a record; the next read resumes after it.
	cs, err = q.Reads().Changes(3, 1)
	require.NoError(t, err)
	require.Len(t, cs, 1)
	require.Equal(t, uint64(4), cs[0].N)
	cs, err = q.Reads().Changes(4, 10)
	require.NoError(t, err)
	require.Len(t, cs, 1)
	require.Equal(t, uint64(5), cs[0].N)
	require.Equal(t, ids[1], cs[0].Status.GetTransactionId())
}

// Before unseen records, a store kept one v/<seq> entry per COMMITTED
// transaction waiting to be seen on the replica: [be64 lsn][be64 commit
// time][id] (frozen here). Those still become VISIBLE, before anything
// committed after the upgrade.
func TestUnseenEntriesOfEarlierStoresBecomeVisible(t *testing.T) {
	t.Parallel()
	const n, committed = 6, 4
	s := writeV1Store(t, n, committed, 0, 0, 0)
	db, err := badger.Open(plainBadger(s.dir))
	require.NoError(t, err)
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for _, tx := range s.txs[:committed] {
		v := binary.BigEndian.AppendUint64(nil, s.lsn)
		v = binary.BigEndian.AppendUint64(v, uint64(at.UnixNano()))
		v = append(v, tx.GetId()...)
		require.NoError(t, db.Update(func(txn *badger.Txn) error { return txn.Set(v1Seq("v/", tx.GetSeq()), v) }))
	}
	require.NoError(t, db.Close())

	q := s.open(t)
	defer func() { require.NoError(t, q.Close()) }()
	// The rest commits after the upgrade, at a later LSN.
	applyAll(t, q, committed+1, n) // LSN 0x2000000 > s.lsn
	state := func(i int) edgev1.TransactionState {
		st, err := q.GetTransaction(s.txs[i].GetId())
		require.NoError(t, err)
		return st.GetState()
	}

	acked, err := q.Replayed(s.lsn)
	require.NoError(t, err)
	require.False(t, acked.OldestUnreplayed.IsZero(), "the newer commit is still waiting")
	for i := range n {
		want := edgev1.TransactionState_TRANSACTION_STATE_VISIBLE
		if i >= committed {
			want = edgev1.TransactionState_TRANSACTION_STATE_COMMITTED
		}
		require.Equal(t, want, state(i), "seq %d", i+1)
	}
	acked, err = q.Replayed(0x2000000)
	require.NoError(t, err)
	require.True(t, acked.OldestUnreplayed.IsZero())
	for i := range n {
		require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_VISIBLE, state(i), "seq %d", i+1)
	}
}
