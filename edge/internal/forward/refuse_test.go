package forward_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/chasqui/chasqui/edge/internal/forward"
	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/pgtest"
	"github.com/chasqui/chasqui/internal/validate"
)

// runQueue opens a real queue in a temporary directory and runs it until
// the test ends.
func runQueue(t *testing.T, edgeID string) *queue.Queue {
	t.Helper()
	q, err := queue.Open(queue.Options{Dir: t.TempDir(), EdgeID: edgeID, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = q.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		require.NoError(t, q.Close())
	})
	return q
}

// submitEach stores txs one by one (seqs in the order given), as an edge
// that did not check them would have: the queue itself does not validate.
func submitEach(t *testing.T, q *queue.Queue, txs ...*opsv1.Transaction) {
	t.Helper()
	for _, tx := range txs {
		_, err := q.Submit(context.Background(), []*opsv1.Transaction{tx})
		require.NoError(t, err)
	}
}

// oversizedTx is a transaction whose every field central accepts but
// whose whole is larger than central's receive limit (an edge without the
// limit per transaction accepted such ones).
func oversizedTx(t *testing.T) *opsv1.Transaction {
	t.Helper()
	tx := fixture.ObservationTx()
	val := strings.Repeat("x", validate.MaxStructBytes-1024)
	for proto.Size(tx) <= validate.DefaultMaxMessageBytes {
		m := fixture.ObservationTx().GetMutations()[0]
		attrs, err := structpb.NewStruct(map[string]any{"blob": val})
		require.NoError(t, err)
		m.GetObservation().Attributes = attrs
		tx.Mutations = append(tx.Mutations, m)
	}
	return tx
}

// Central refusing single transactions for good (one too large for its
// receive limit, one breaking a rule the edge did not check when it
// accepted it) never holds the queue: each is isolated, withdrawn and
// moved to the dead letters with central's reason, in seq order, and the
// ones behind it commit. Real central, real PostgreSQL, real queue.
func TestRefusedTransactionsBecomeDeadLetters(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t, centralTemplate)
	addr := startCentral(t, dbURL)
	q := runQueue(t, "edge-refuse")

	huge := oversizedTx(t)
	badRule := fixture.ObservationTx()
	badRule.GetMutations()[0].GetObservation().Instrument = strings.Repeat("I", validate.MaxNameLen+1)
	txs := []*opsv1.Transaction{fixture.ObservationTx(), huge, fixture.ObservationTx(), fixture.ObservationTx(), badRule, fixture.ObservationTx(), fixture.ObservationTx()}
	submitEach(t, q, txs...)
	refused := map[string]string{huge.GetId(): "ResourceExhausted", badRule.GetId(): "instrument"}

	b := start(t, addr, forward.Config{MaxCount: 100, Window: 4, BackoffMax: time.Second}, q)
	require.Eventually(t, func() bool { return q.CommittedThrough() == uint64(len(txs)) }, 60*time.Second, poll, "all answered")

	for i, tx := range txs {
		st, err := q.GetTransaction(tx.GetId())
		require.NoError(t, err)
		require.Equal(t, uint64(i+1), st.GetSeq())
		if want, ok := refused[tx.GetId()]; ok {
			require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_REJECTED, st.GetState(), "seq %d", i+1)
			require.Contains(t, st.GetRejectReason(), want, "seq %d", i+1)
			continue
		}
		require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, st.GetState(), "seq %d", i+1)
		require.NotEmpty(t, st.GetCommitLsn())
	}

	// The dead letters keep each refused transaction whole, for the
	// operator to inspect, fix and retry, or discard.
	dls, _, err := q.ListDeadLetters("", 10)
	require.NoError(t, err)
	require.Len(t, dls, 2)
	for _, dl := range dls {
		want, ok := refused[dl.GetTransaction().GetId()]
		require.True(t, ok, "dead letter %s", dl.GetTransaction().GetId())
		require.Contains(t, dl.GetReason(), want)
		require.Len(t, dl.GetTransaction().GetMutations(), len(map[string]*opsv1.Transaction{
			huge.GetId(): huge, badRule.GetId(): badRule}[dl.GetTransaction().GetId()].GetMutations()))
	}

	// Central consumed their seqs as rejected, applied nothing of them,
	// and applied every other one.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer func() { require.NoError(t, conn.Close(ctx)) }()
	rows, err := conn.Query(ctx, `SELECT seq, outcome FROM chasqui.applied_transactions WHERE edge_id = $1 ORDER BY seq`, q.EdgeID())
	require.NoError(t, err)
	outcomes, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		Seq     int64
		Outcome string
	}])
	require.NoError(t, err)
	require.Len(t, outcomes, len(txs))
	for i, o := range outcomes {
		want := "applied"
		if _, ok := refused[txs[i].GetId()]; ok {
			want = "rejected"
		}
		require.Equal(t, want, o.Outcome, "seq %d", o.Seq)
	}
	var obs int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM chasqui.observations WHERE edge_id = $1`, q.EdgeID()).Scan(&obs))
	require.Equal(t, int64(len(txs)-2), obs)

	// The operator fixes the one that broke a rule and retries it: it
	// commits under a new seq.
	fixed := proto.Clone(badRule).(*opsv1.Transaction)
	fixed.GetMutations()[0].GetObservation().Instrument = "CHAI"
	fixed.EdgeId, fixed.Epoch, fixed.Seq, fixed.AcceptedAt = "", "", 0, nil
	res, err := q.RetryDeadLetter(ctx, badRule.GetId(), fixed)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := q.GetTransaction(badRule.GetId())
		return err == nil && st.GetState() == edgev1.TransactionState_TRANSACTION_STATE_COMMITTED
	}, 60*time.Second, poll, "retried dead letter committed (seq %d)", res.GetSeq())
	require.Contains(t, b.logs.String(), "withdrawing it into the dead letters")
}

// A refusal of the whole link (here PERMISSION_DENIED for the edge, which
// also refuses the withdrawal) holds the queue: nothing becomes a dead
// letter, and everything commits once the link is allowed again.
func TestLinkRefusalHoldsQueue(t *testing.T) {
	t.Parallel()
	q := runQueue(t, "edge-denied")
	submitEach(t, q, fixture.ObservationTx(), fixture.ObservationTx(), fixture.ObservationTx(), fixture.ObservationTx())

	central := newFakeCentral()
	var denied atomic.Bool
	denied.Store(true)
	var withdrawals atomic.Int64
	central.hook = func(_ context.Context, req *centralv1.CommitRequest) error {
		if req.GetWithdrawReason() != "" {
			withdrawals.Add(1)
		}
		if denied.Load() {
			return status.Error(codes.PermissionDenied, "permission denied for this edge")
		}
		return nil
	}
	b := start(t, serveCentral(t, central), forward.Config{
		BackoffBase: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
	}, q)
	require.Eventually(t, func() bool { return withdrawals.Load() >= 3 }, 30*time.Second, poll,
		"withdrawal refused several times")
	require.Equal(t, forward.StateRefused, b.fwd.State())
	require.Zero(t, q.CommittedThrough())
	dls, _, err := q.ListDeadLetters("", 10)
	require.NoError(t, err)
	require.Empty(t, dls, "a link refusal made dead letters")

	denied.Store(false)
	require.Eventually(t, func() bool { return q.CommittedThrough() == 4 }, 30*time.Second, poll, "committed once allowed")
	dls, _, err = q.ListDeadLetters("", 10)
	require.NoError(t, err)
	require.Empty(t, dls)
	for _, id := range central.applied() {
		st, err := q.GetTransaction(id)
		require.NoError(t, err)
		require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, st.GetState())
	}
	require.Len(t, central.applied(), 4)
}
