package api_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

type step struct {
	id    string
	state edgev1.TransactionState
}

func recv(t *testing.T, s edgev1.EdgeService_WatchTransactionsClient) (uint64, step) {
	t.Helper()
	r, err := s.Recv()
	require.NoError(t, err)
	return r.GetChange(), step{r.GetTransaction().GetTransactionId(), r.GetTransaction().GetState()}
}

func commit(t *testing.T, q *queue.Queue, id string, seq, lsn uint64) {
	t.Helper()
	require.NoError(t, q.ApplyCommit(queue.CommitResult{ThroughSeq: seq, LSN: lsn, LSNText: "0/1",
		Results: []*centralv1.TransactionResult{{TransactionId: id, Seq: seq, Outcome: centralv1.Outcome_OUTCOME_APPLIED}}}))
}

// TestWatchTransactions: one id from its current state, all ids, and a
// resume after a reconnect that misses nothing; a canceled stream ends.
func TestWatchTransactions(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idA, idB := newID(), newID()
	_, err := b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{obsTx(idA)}})
	require.NoError(t, err)

	one, err := b.edge.WatchTransactions(ctx, &edgev1.WatchTransactionsRequest{TransactionIds: []string{idA, idB}})
	require.NoError(t, err)
	all, err := b.edge.WatchTransactions(ctx, &edgev1.WatchTransactionsRequest{})
	require.NoError(t, err)
	_, got := recv(t, one) // the current state first
	require.Equal(t, step{idA, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED}, got)

	_, err = b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{obsTx(idB)}})
	require.NoError(t, err)
	commit(t, b.q, idA, 1, 100)
	_, err = b.q.Replayed(100)
	require.NoError(t, err)
	commit(t, b.q, idB, 2, 200)

	want := []step{
		{idB, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED},
		{idA, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED},
		{idA, edgev1.TransactionState_TRANSACTION_STATE_VISIBLE},
		{idB, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED},
	}
	var n []uint64
	for _, w := range want {
		c1, g1 := recv(t, one)
		c2, g2 := recv(t, all)
		require.Equal(t, w, g1)
		require.Equal(t, w, g2)
		require.Equal(t, c1, c2)
		n = append(n, c1)
	}
	require.IsIncreasing(t, n)

	// Reconnect after the second change: the rest follows, nothing missed.
	cancel()
	_, err = one.Recv()
	requireCode(t, err, codes.Canceled)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	again, err := b.edge.WatchTransactions(ctx2, &edgev1.WatchTransactionsRequest{TransactionIds: []string{idB, idA}, AfterChange: n[1]})
	require.NoError(t, err)
	_, err = b.q.Replayed(200)
	require.NoError(t, err)
	for _, w := range append(want[2:], step{idB, edgev1.TransactionState_TRANSACTION_STATE_VISIBLE}) {
		_, g := recv(t, again)
		require.Equal(t, w, g)
	}

	_, err = b.edge.WatchTransactions(ctx2, &edgev1.WatchTransactionsRequest{TransactionIds: []string{""}})
	require.NoError(t, err) // the error comes with the first Recv
	s, err := b.edge.WatchTransactions(ctx2, &edgev1.WatchTransactionsRequest{TransactionIds: []string{""}})
	require.NoError(t, err)
	_, err = s.Recv()
	requireField(t, err, "transaction_ids[0]")
	s, err = b.edge.WatchTransactions(ctx2, &edgev1.WatchTransactionsRequest{AfterChange: 1 << 40})
	require.NoError(t, err)
	_, err = s.Recv()
	requireCode(t, err, codes.OutOfRange)
}

// TestReadsBufferOnly: without a replica or central, a write reads back at
// once from the buffer, flagged buffer_only; status says no replica.
func TestReadsBufferOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	res, err := b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{obsTx(newID())}})
	require.NoError(t, err)
	oid := res.GetResults()[0].GetRecordIds()[0]
	g, err := b.edge.GetObservation(ctx, &edgev1.GetObservationRequest{Id: oid})
	require.NoError(t, err)
	require.True(t, g.GetBufferOnly())
	require.Equal(t, edgev1.RecordSource_RECORD_SOURCE_BUFFERED, g.GetObservation().GetSource())
	require.Equal(t, "CHAI", g.GetObservation().GetObservation().GetInstrument())
	l, err := b.edge.ListObservations(ctx, &edgev1.ListObservationsRequest{Instrument: "CHAI"})
	require.NoError(t, err)
	require.True(t, l.GetBufferOnly())
	require.Len(t, l.GetObservations(), 1)
	_, err = b.edge.GetObservation(ctx, &edgev1.GetObservationRequest{Id: newID()})
	requireCode(t, err, codes.NotFound)
	_, err = b.edge.ListObservations(ctx, &edgev1.ListObservationsRequest{PageToken: "zz"})
	requireCode(t, err, codes.InvalidArgument)

	st, err := b.admin.GetStatus(ctx, &edgev1.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "disabled", st.GetReplicaState())
}
