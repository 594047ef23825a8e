package queue

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
)

func openCommitTest(t *testing.T) *Queue {
	t.Helper()
	q, err := Open(Options{Dir: t.TempDir(), EdgeID: "edge-test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, q.Close()) })
	return q
}

// mixedTxs submits one transaction of each mutation kind and one of
// several mutations (record ids filled in by the queue for most).
func mixedTxs(t *testing.T, q *Queue) []Entry {
	t.Helper()
	obs := uuid.Must(uuid.NewV7()).String()
	done := opsv1.ObservationStatus_OBSERVATION_STATUS_COMPLETED
	txs := []*opsv1.Transaction{
		{Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_Observation{Observation: &opsv1.Observation{
			Id: obs, Instrument: "CHAI", StartTime: timestamppb.Now()}}}}},
		{Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_ObservationUpdate{ObservationUpdate: &opsv1.ObservationUpdate{
			Id: obs, Status: &done}}}}},
		{Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_InstrumentConfig{InstrumentConfig: &opsv1.InstrumentConfig{
			Instrument: "CHAI", ObservationId: obs}}}}},
		{Mutations: []*opsv1.Mutation{
			{Kind: &opsv1.Mutation_RawDataFile{RawDataFile: &opsv1.RawDataFile{ObservationId: obs, Path: "/a"}}},
			{Kind: &opsv1.Mutation_RawDataFile{RawDataFile: &opsv1.RawDataFile{ObservationId: obs, Path: "/b"}}},
			{Kind: &opsv1.Mutation_Observation{Observation: &opsv1.Observation{Instrument: "CHAI", StartTime: timestamppb.Now()}}},
		}},
	}
	for _, tx := range txs {
		tx.Id = uuid.Must(uuid.NewV7()).String()
	}
	_, err := q.Submit(context.Background(), txs)
	require.NoError(t, err)
	es, err := q.Read(1, 100, 1<<20)
	require.NoError(t, err)
	require.Len(t, es, len(txs))
	return es
}

func appliedResult(es []Entry, through, lsn uint64) CommitResult {
	res := CommitResult{ThroughSeq: through, LSN: lsn, LSNText: "0/1", CommittedAt: time.Now(), Entries: es}
	for _, e := range es {
		res.Results = append(res.Results, &centralv1.TransactionResult{
			TransactionId: e.Tx.GetId(), Seq: e.Seq, Outcome: centralv1.Outcome_OUTCOME_APPLIED})
	}
	return res
}

func states(t *testing.T, q *Queue, es []Entry) []txState {
	t.Helper()
	out := make([]txState, len(es))
	require.NoError(t, q.db.View(func(txn *badger.Txn) error {
		for i, e := range es {
			st, found, err := getState(txn, e.Tx.GetId())
			require.True(t, found)
			out[i] = st
			if err != nil {
				return err
			}
		}
		return nil
	}))
	return out
}

// TestApplyCommitFromEntriesKeepsTheAcceptedState: the COMMITTED state
// ApplyCommit rebuilds from the forwarder's entries is the state the
// appender stored (seq, accept time, record ids) plus the commit, exactly
// as if it had been read back.
func TestApplyCommitFromEntriesKeepsTheAcceptedState(t *testing.T) {
	t.Parallel()
	q := openCommitTest(t)
	es := mixedTxs(t, q)
	want := states(t, q, es)
	res := appliedResult(es, es[len(es)-1].Seq, 77)
	require.NoError(t, q.ApplyCommit(res))
	for i := range want {
		want[i].State = int32(edgev1.TransactionState_TRANSACTION_STATE_COMMITTED)
		want[i].CommittedAt, want[i].LSN, want[i].LSNText = res.CommittedAt.UnixNano(), 77, "0/1"
	}
	require.Equal(t, want, states(t, q, es))
	for i, e := range es {
		st, ok := acceptedState(&es[i], e.Tx.GetId(), e.Seq)
		require.True(t, ok)
		require.NotEmpty(t, st.RecordIDs)
	}
}

// TestApplyCommitAgainAfterAPartialApply: results recorded once without the
// committed counter moving over them (an ApplyCommit that outgrew one
// Badger transaction and failed after its first part; here, results whose
// first seq is missing, so the mark cannot move) are not recorded again
// when the forwarder resends them with its entries: no second COMMITTED
// change, and a state that became VISIBLE meanwhile stays VISIBLE.
func TestApplyCommitAgainAfterAPartialApply(t *testing.T) {
	t.Parallel()
	q := openCommitTest(t)
	es := mixedTxs(t, q)
	accepted := q.Reads().LastChange()
	last := es[len(es)-1].Seq

	// The first part: states recorded, committed counter not moved.
	require.NoError(t, q.ApplyCommit(appliedResult(es[1:], last, 10)))
	require.Equal(t, uint64(0), q.CommittedThrough(), "seq 1 has no outcome yet: the mark stays before it")
	require.Equal(t, accepted+uint64(len(es)-1), q.Reads().LastChange())
	_, err := q.Replayed(10)
	require.NoError(t, err)
	changes := q.Reads().LastChange()

	// The resend, answered by central as duplicates with a later LSN.
	require.NoError(t, q.ApplyCommit(appliedResult(es, last, 20)))
	require.Equal(t, last, q.CommittedThrough())
	require.Equal(t, changes+1, q.Reads().LastChange(), "only seq 1's COMMITTED is new: no state change recorded twice")
	got := states(t, q, es)
	require.Equal(t, int32(edgev1.TransactionState_TRANSACTION_STATE_COMMITTED), got[0].State)
	require.Equal(t, uint64(20), got[0].LSN)
	for _, st := range got[1:] {
		require.Equal(t, int32(edgev1.TransactionState_TRANSACTION_STATE_VISIBLE), st.State)
		require.Equal(t, uint64(10), st.LSN)
	}
}

// TestApplyCommitMovesTheMarkOnlyOverRecordedOutcomes: central answers a
// resent batch with its cursor, which may lie past the batch; the mark
// moves over the batch's seqs only, so the seqs after it are sent again
// (after a restart too) and get their own outcomes.
func TestApplyCommitMovesTheMarkOnlyOverRecordedOutcomes(t *testing.T) {
	t.Parallel()
	q := openCommitTest(t)
	es := mixedTxs(t, q)
	last := es[len(es)-1].Seq

	require.NoError(t, q.ApplyCommit(appliedResult(es[:2], last, 10)))
	require.Equal(t, es[1].Seq, q.CommittedThrough(), "through seq %d is information, not permission to skip", last)

	require.NoError(t, q.ApplyCommit(appliedResult(es[2:], last, 30)))
	require.Equal(t, last, q.CommittedThrough())
}

// TestApplyCommitPrunedOutcomeIsFinal: central answers
// a seq whose record it pruned without an outcome (centrals before the
// refusal of such resends). The transaction gets the final state
// OUTCOME_UNKNOWN with central's reason, never an LSN, the mark moves over
// it, the change is logged, and a later answer does not change it.
func TestApplyCommitPrunedOutcomeIsFinal(t *testing.T) {
	t.Parallel()
	q := openCommitTest(t)
	es := mixedTxs(t, q)
	last := es[len(es)-1].Seq
	before := q.Reads().LastChange()

	res := appliedResult(es, last, 20)
	res.Results[1].Outcome = centralv1.Outcome_OUTCOME_UNSPECIFIED
	res.Results[1].Reason = "outcome no longer known: pruned after the retention"
	require.NoError(t, q.ApplyCommit(res))
	require.Equal(t, last, q.CommittedThrough(), "a final state: nothing left to ask central")
	require.Equal(t, before+uint64(len(es)), q.Reads().LastChange())
	st, err := q.GetTransaction(es[1].Tx.GetId())
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_OUTCOME_UNKNOWN, st.GetState())
	require.Contains(t, st.GetRejectReason(), "pruned")
	require.Zero(t, st.GetCommitLsnValue())
	require.NotNil(t, st.GetCommittedAt())

	require.NoError(t, q.ApplyCommit(appliedResult(es, last, 30)))
	st, err = q.GetTransaction(es[1].Tx.GetId())
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_OUTCOME_UNKNOWN, st.GetState())
	_, err = q.Replayed(1 << 40)
	require.NoError(t, err)
	st, err = q.GetTransaction(es[1].Tx.GetId())
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_OUTCOME_UNKNOWN, st.GetState(), "never VISIBLE")
}

// TestStateJSONAsEncodingJSON: the hand-written encoding of a state is
// encoding/json's, byte for byte, or declines.
func TestStateJSONAsEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, st := range []txState{
		{},
		{Seq: 1, State: 1, AcceptedAt: -5},
		{Seq: 1 << 63, State: 2, AcceptedAt: time.Now().UnixNano(), RecordIDs: []string{uuid.NewString(), uuid.NewString()},
			CommittedAt: time.Now().UnixNano(), LSN: 0x16B3748, LSNText: "0/16B3748"},
		{Seq: 9, State: 4, RecordIDs: []string{"a"}, CommittedAt: 3, Reason: "observation 1 does not exist", SQLState: "P0002", VisibleAt: 7},
		{RecordIDs: []string{}},
	} {
		want, err := json.Marshal(st)
		require.NoError(t, err)
		got, ok := appendStateJSON(nil, st)
		require.True(t, ok)
		require.Equal(t, string(want), string(got))
	}
	for _, s := range []string{`a"b`, `a\b`, "a\nb", "<a>", "a&b", "ü", "\x7f"} {
		_, ok := appendStateJSON(nil, txState{RecordIDs: []string{s}})
		require.False(t, ok, "%q needs escaping", s)
		e, err := stateEntry("id", txState{Seq: 1, LSNText: s}, 0)
		require.NoError(t, err)
		var st txState
		require.NoError(t, json.Unmarshal(e.Value, &st))
		require.Equal(t, s, st.LSNText)
	}
}

// A commit answer is recorded in parts, each in an append group, so a
// Submit made while a large one is recorded is answered before it ends.
// Recorded whole under the write lock, a 4000-result answer held it for
// 80 ms on average and up to 400 ms while a 1M backlog drained, and
// every Submit of the site waited behind it. The groups that record are
// made slow here (200 ms each) so the order cannot come out by chance.
func TestSubmitIsAnsweredWhileALargeCommitIsRecorded(t *testing.T) {
	var armed atomic.Bool
	started := make(chan struct{})
	var once sync.Once
	q, _ := openDurableTest(t, func(o *Options) {
		o.hooks.commitGroup = func(p *flight, txn *badger.Txn, done func(error)) {
			if armed.Load() && p.records() {
				once.Do(func() { close(started) })
				time.Sleep(200 * time.Millisecond)
			}
			done(txn.Commit())
		}
	})
	const n = 4 * applyPart
	txs := make([]*opsv1.Transaction, n)
	for i := range txs {
		txs[i] = fixture.ObservationTx()
	}
	_, err := q.Submit(context.Background(), txs)
	require.NoError(t, err)
	es, err := q.Read(1, n, 64<<20)
	require.NoError(t, err)
	require.Len(t, es, n)

	type outcome struct {
		at  time.Time
		err error
	}
	applied := make(chan outcome, 1)
	armed.Store(true)
	go func() {
		err := q.ApplyCommit(appliedResult(es, n, 7))
		applied <- outcome{time.Now(), err}
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("ApplyCommit never committed")
	}
	_, err = q.Submit(context.Background(), []*opsv1.Transaction{fixture.ObservationTx()})
	submitted := time.Now()
	require.NoError(t, err)
	a := <-applied
	require.NoError(t, a.err)
	require.True(t, submitted.Before(a.at),
		"the Submit was answered %v after ApplyCommit returned: it waited for the whole answer to be recorded", submitted.Sub(a.at))
	require.Equal(t, uint64(n), q.CommittedThrough(), "every part recorded")
	for _, st := range states(t, q, es) {
		require.Equal(t, int32(edgev1.TransactionState_TRANSACTION_STATE_COMMITTED), st.State)
	}
}

// groupSeen is what one append group carried when it was committed.
type groupSeen struct{ submits, records int }

// sharedGroup makes an append group carry a commit answer and, behind
// it, a Submit, on a store of its own. It stores three transactions,
// then holds the appender on the group of a first Submit while it lines
// up the answer made by answer for the three and a second Submit, so
// those two start the next group together. It returns the store, the
// answer's error, the second Submit's error, and the groups committed
// after the first Submit's, in order.
func sharedGroup(t *testing.T, answer func(*Queue, []Entry) CommitResult) (q *Queue, recErr, submitErr error, groups []groupSeen) {
	t.Helper()
	var armed atomic.Bool
	inHook, release := make(chan struct{}), make(chan struct{})
	seen := make(chan groupSeen, 16)
	q, _ = openDurableTest(t, func(o *Options) {
		o.hooks.filled = func([]*submitReq) {
			if armed.CompareAndSwap(true, false) {
				close(inHook)
				<-release
			}
		}
		o.hooks.commitGroup = func(p *flight, txn *badger.Txn, done func(error)) {
			var g groupSeen
			for _, r := range p.group {
				if r.commit != nil {
					g.records++
				} else {
					g.submits++
				}
			}
			seen <- g
			done(txn.Commit())
		}
	})
	ctx := context.Background()
	_, err := q.Submit(ctx, fixture.ObservationTxs(3))
	require.NoError(t, err)
	<-seen
	es, err := q.Read(1, 3, 1<<20)
	require.NoError(t, err)
	// The answer goes to the appender as ApplyCommit sends it (after the
	// catch-up ApplyCommit makes first), so the test knows when it waits.
	require.NoError(t, q.ix.catchUp(3))
	res := answer(q, es)
	rec := &submitReq{commit: &res, done: make(chan submitResp, 1)}
	rec.estimate()

	armed.Store(true)
	first := make(chan error, 1)
	go func() { _, err := q.Submit(ctx, fixture.ObservationTxs(1)); first <- err }()
	select {
	case <-inHook:
	case <-time.After(30 * time.Second):
		t.Fatal("the first Submit never reached the appender")
	}
	q.app.reqs <- rec
	second := make(chan error, 1)
	go func() { _, err := q.Submit(ctx, fixture.ObservationTxs(1)); second <- err }()
	require.Eventually(t, func() bool { return len(q.app.reqs) == 2 }, 30*time.Second, time.Millisecond, "the Submit waits behind the answer")
	close(release)

	require.NoError(t, <-first)
	recErr, submitErr = (<-rec.done).err, <-second
	require.Equal(t, groupSeen{submits: 1}, <-seen, "the first Submit's group")
	for len(seen) > 0 {
		groups = append(groups, <-seen)
	}
	return q, recErr, submitErr, groups
}

// A commit answer and the Submits waiting with it are written in one
// append group: one Badger transaction and one fsync. Recorded apart,
// each took the write lock in turn, and during a drain a Submit waited
// for an answer's fsync and then its own.
func TestCommitAnswerSharesTheSubmitsFsync(t *testing.T) {
	q, recErr, submitErr, groups := sharedGroup(t, func(_ *Queue, es []Entry) CommitResult { return appliedResult(es, 3, 9) })
	require.NoError(t, recErr)
	require.NoError(t, submitErr)
	require.Equal(t, []groupSeen{{submits: 1, records: 1}}, groups, "the answer and the Submit behind it, one Badger commit")
	require.Equal(t, uint64(3), q.CommittedThrough())
}

// An answer that cannot be recorded (here a transaction's state is
// corrupt) fails ApplyCommit alone: the Submit that shared its group is
// stored in a group prepared again without it. Otherwise every Submit
// riding with the answer would fail for as long as the forwarder retried.
func TestAnswerThatCannotBeRecordedFailsAlone(t *testing.T) {
	q, recErr, submitErr, groups := sharedGroup(t, func(q *Queue, es []Entry) CommitResult {
		require.NoError(t, q.db.Update(func(txn *badger.Txn) error {
			return txn.Set(idKey(prefixTx, es[1].Tx.GetId()), []byte("{not json"))
		}))
		res := appliedResult(es, 3, 9)
		res.Entries = nil // the states are read back, the corrupt one too
		return res
	})
	require.ErrorContains(t, recErr, "tx state")
	require.NoError(t, submitErr, "the Submit that shared the answer's group")
	require.Equal(t, []groupSeen{{submits: 1}}, groups, "the group prepared again without the answer")
	require.Equal(t, uint64(5), q.LastSeq())
	require.Zero(t, q.CommittedThrough(), "nothing of the answer recorded")
}
