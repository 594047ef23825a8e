package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

func appliedAt(id string, seq, lsn uint64) queue.CommitResult {
	return queue.CommitResult{ThroughSeq: seq, LSN: lsn, LSNText: "0/0", CommittedAt: time.Now(),
		Results: []*centralv1.TransactionResult{{TransactionId: id, Seq: seq, Outcome: centralv1.Outcome_OUTCOME_APPLIED}}}
}

// TestOverlaysVisibilityAndChangeLog: a write's overlays are readable at once,
// turn committed with central's ack, and leave with VISIBLE exactly when
// the replay LSN reaches the commit LSN; every transition is in the change
// log in order, and all of it survives a reopen.
func TestOverlaysVisibilityAndChangeLog(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	start := b.q.Reads().LastChange()
	tx1 := obsTx(newID())
	a1 := submit1(t, b.q, tx1)
	obsID := a1.GetRecordIds()[0]
	done := opsv1.ObservationStatus_OBSERVATION_STATUS_COMPLETED
	tx2 := &opsv1.Transaction{Id: newID(), Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_ObservationUpdate{
		ObservationUpdate: &opsv1.ObservationUpdate{Id: obsID, Status: &done}}}}}
	a2 := submit1(t, b.q, tx2)

	ov, err := b.q.Reads().Overlays(obsID)
	require.NoError(t, err)
	require.Len(t, ov, 2)
	require.Equal(t, []uint64{a1.GetSeq(), a2.GetSeq()}, []uint64{ov[0].Seq, ov[1].Seq})
	require.False(t, ov[0].Committed)
	ids, err := b.q.Reads().OverlaidObservations()
	require.NoError(t, err)
	require.Equal(t, map[string]bool{obsID: true}, ids)

	require.NoError(t, b.q.ApplyCommit(appliedAt(tx1.GetId(), a1.GetSeq(), 1000)))
	require.NoError(t, b.q.ApplyCommit(appliedAt(tx2.GetId(), a2.GetSeq(), 2000)))
	ov, err = b.q.Reads().Overlays(obsID)
	require.NoError(t, err)
	require.True(t, ov[0].Committed && ov[1].Committed)

	acked, err := b.q.Replayed(999)
	require.NoError(t, err)
	require.Equal(t, uint64(2000), acked.Newest)
	require.False(t, acked.OldestUnreplayed.IsZero())
	st, err := b.q.GetTransaction(tx1.GetId())
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, st.GetState())

	acked, err = b.q.Replayed(1000)
	require.NoError(t, err)
	require.False(t, acked.OldestUnreplayed.IsZero(), "tx2 (LSN 2000) is not replayed")
	st, err = b.q.GetTransaction(tx1.GetId())
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_VISIBLE, st.GetState())
	require.NotNil(t, st.GetVisibleAt())
	st, err = b.q.GetTransaction(tx2.GetId())
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, st.GetState())
	ov, err = b.q.Reads().Overlays(obsID)
	require.NoError(t, err)
	require.Len(t, ov, 1, "tx1's overlay left with VISIBLE")

	b.reopen(t)
	acked, err = b.q.Replayed(2500)
	require.NoError(t, err)
	require.True(t, acked.OldestUnreplayed.IsZero())
	ov, err = b.q.Reads().Overlays(obsID)
	require.NoError(t, err)
	require.Empty(t, ov)

	cs, err := b.q.Reads().Changes(start, 100)
	require.NoError(t, err)
	type tr struct {
		id string
		s  edgev1.TransactionState
	}
	var got []tr
	for i, c := range cs {
		require.Equal(t, start+uint64(i)+1, c.N)
		got = append(got, tr{c.Status.GetTransactionId(), c.Status.GetState()})
	}
	require.Equal(t, []tr{
		{tx1.GetId(), edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED},
		{tx2.GetId(), edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED},
		{tx1.GetId(), edgev1.TransactionState_TRANSACTION_STATE_COMMITTED},
		{tx2.GetId(), edgev1.TransactionState_TRANSACTION_STATE_COMMITTED},
		{tx1.GetId(), edgev1.TransactionState_TRANSACTION_STATE_VISIBLE},
		{tx2.GetId(), edgev1.TransactionState_TRANSACTION_STATE_VISIBLE},
	}, got)
	require.Equal(t, uint64(2000), cs[3].Status.GetCommitLsnValue())

	// A watcher waiting on ChangeNotify wakes at the next change.
	ch := b.q.Reads().ChangeNotify()
	submit1(t, b.q, obsTx(newID()))
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no change notification")
	}
	_, err = b.q.Submit(context.Background(), nil)
	require.NoError(t, err)
}

// The change log keeps about MaxChanges changes: whole records go, so a
// reader resuming from a pruned number learns it (and resyncs), and one
// resuming from a kept number reads on.
func TestChangeLogPrunedBeyondMaxChanges(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *queue.Options) { o.MaxChanges = 5 })
	for range 4 { // four records of three changes each: 1-3, 4-6, 7-9, 10-12
		_, err := b.q.Submit(context.Background(), []*opsv1.Transaction{obsTx(newID()), obsTx(newID()), obsTx(newID())})
		require.NoError(t, err)
	}
	require.Equal(t, uint64(12), b.q.Reads().LastChange())
	_, err := b.q.Prune(context.Background())
	require.NoError(t, err)

	// Keeping the newest 5 means dropping through 7: the records ending
	// at 3 and 6 go, the one holding 7-9 stays whole.
	_, err = b.q.Reads().Changes(0, 10)
	require.ErrorIs(t, err, queue.ErrChangesPruned)
	_, err = b.q.Reads().Changes(5, 10)
	require.ErrorIs(t, err, queue.ErrChangesPruned)
	cs, err := b.q.Reads().Changes(6, 10)
	require.NoError(t, err)
	require.Len(t, cs, 6)
	for i, c := range cs {
		require.Equal(t, uint64(7+i), c.N)
	}
}
