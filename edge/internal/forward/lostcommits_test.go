package forward_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/internal/forward"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/pgtest"
)

// Central's database loses the commits of seqs 3 and 4
// after the edge recorded them, and the replica had shown them VISIBLE (a
// failover to a lagging replica; here their rows are deleted and the
// cursor set back, which is what central then finds). The next batch gets
// a sequence gap, the edge takes 3 and 4 back to waiting and resends them:
// they end COMMITTED with the new commit's LSN, and a replay that reached
// only their old LSN no longer makes them VISIBLE. Before the fix the
// resend's answer was ignored: they kept the LSN of a commit that no
// longer existed, and stayed VISIBLE.
func TestCentralLostCommitsResendReplacesLSN(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t, centralTemplate)
	addr := startCentral(t, dbURL)
	q := openQueue(t, t.TempDir())
	txs := []*opsv1.Transaction{fixture.ObservationTx(), fixture.ObservationTx(), fixture.ObservationTx(), fixture.ObservationTx()}
	ids := make([]string, 0, 5)
	for _, tx := range txs {
		ids = append(ids, tx.GetId())
	}
	ctx := context.Background()
	_, err := q.Submit(ctx, txs)
	require.NoError(t, err)
	state := func(i int) *edgev1.TransactionStatus {
		st, err := q.GetTransaction(ids[i])
		require.NoError(t, err)
		return st
	}
	cfg := forward.Config{MaxCount: 2, Window: 1, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
	b := start(t, addr, cfg, q)
	require.Eventually(t, func() bool { return q.CommittedThrough() == 4 }, 60*time.Second, poll, "first commits")
	b.stop()
	oldLSN := state(3).GetCommitLsnValue()
	require.NotZero(t, oldLSN)
	_, err = q.Replayed(oldLSN)
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_VISIBLE, state(3).GetState())

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	lost := []string{txs[2].GetMutations()[0].GetObservation().GetId(), txs[3].GetMutations()[0].GetObservation().GetId()}
	_, err = conn.Exec(ctx, `DELETE FROM chasqui.observations WHERE id = ANY($1::uuid[])`, lost)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `DELETE FROM chasqui.applied_transactions WHERE edge_id = $1 AND seq > 2`, q.EdgeID())
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `UPDATE chasqui.edge_cursors SET last_seq = 2 WHERE edge_id = $1`, q.EdgeID())
	require.NoError(t, err)

	tx5 := fixture.ObservationTx()
	ids = append(ids, tx5.GetId())
	_, err = q.Submit(ctx, []*opsv1.Transaction{tx5})
	require.NoError(t, err)
	start(t, addr, cfg, q)
	require.Eventually(t, func() bool {
		return q.CommittedThrough() == 5 && state(3).GetState() == edgev1.TransactionState_TRANSACTION_STATE_COMMITTED
	}, 60*time.Second, poll, "the lost commits resent and answered anew")
	for _, i := range []int{2, 3} {
		require.Greater(t, state(i).GetCommitLsnValue(), oldLSN, "seq %d: the new commit's LSN replaces the lost one's", i+1)
	}
	_, err = q.Replayed(oldLSN)
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, state(3).GetState(), "not VISIBLE on the lost commit's LSN")
	_, err = q.Replayed(state(4).GetCommitLsnValue())
	require.NoError(t, err)
	for i := range ids {
		require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_VISIBLE, state(i).GetState(), "seq %d", i+1)
	}
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM chasqui.observations WHERE id = ANY($1::uuid[])`, lost).Scan(&n))
	require.Equal(t, 2, n, "the lost records applied again, once each")
}
